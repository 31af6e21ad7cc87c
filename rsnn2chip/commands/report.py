from rich.table import Table

from rsnn2chip import artifact
from rsnn2chip.report import summary

HELP = "summarise a compiled network: populations, synapses, cores used, weight exponents, quantization error"
EXAMPLE = "rsnn2chip report net.r2c --json"


def add_arguments(parser) -> None:
    parser.add_argument("artifact", help="compiled network (.r2c)")
    parser.add_argument("--cores", type=int, default=10, help="rows of the per-core table (busiest first)")


def run(args, out) -> int:
    s = summary(artifact.load(args.artifact))
    if args.json:
        out.json(s)
        return 0
    c = out.console
    m = s["mapping"]
    c.print(f"[bold]{s['network']}[/] on [bold]{s['target']}[/]: {s['totals']['neurons']} neurons, "
            f"{s['totals']['synapses']} synapses, {m['n_cores']} cores (lower bound {m['lower_bound']['cores']}, "
            f"ratio {m['cores_over_lb']:.2f}), mapper {m['mapper']}, "
            f"{m['intercore_synapses']} synapses cross cores")
    pops = Table(title="populations")
    for col in ("name", "layer", "kind", "neurons", "motifs", "state scale", "params that lost precision"):
        pops.add_column(col)
    for p in s["populations"]:
        pops.add_row(p["name"], p["layer"], p["kind"], str(p["neurons"]),
                     f"{p['motifs']} x {p['motif_size']}" if p["motif_size"] else "-",
                     f"{p['state_scale']:g}" if p["state_scale"] else "-", ", ".join(p["params_lost_precision"]) or "-")
    c.print(pops)
    projs = Table(title="projections (quantization)")
    for col in ("projection", "synapses", "sign", "weight exp", "mantissa range", "clipped", "rounded to 0",
                "rms rel. error"):
        projs.add_column(col)
    for p in s["projections"]:
        projs.add_row(p["name"], str(p["synapses"]), p["sign_mode"], str(p["weight_exp"]),
                      f"{p['mantissa_min']}..{p['mantissa_max']}", f"{p['clipped_fraction']:.2%}",
                      f"{p['zeroed_fraction']:.2%}", f"{p['rms_rel_error']:.3%}")
    c.print(projs)
    limits = s["limits"]
    cores = Table(title=f"cores (busiest {min(args.cores, len(s['cores']))} of {len(s['cores'])}; used/limit)")
    cores.add_column("core")
    for r in limits:
        cores.add_column(r.replace("_", " "))
    busiest = sorted(s["cores"], key=lambda row: -max(row[r] / limits[r] for r in limits if limits[r]))
    for row in busiest[:args.cores]:
        cores.add_row(str(row["core"]), *(f"{row[r]}/{limits[r]} ({row[r] / limits[r]:.0%})" for r in limits))
    c.print(cores)
    for w in s["warnings"]:
        c.print(f"[yellow]warning:[/] [{w.get('rule')}] {w['message']} ({w.get('where')}; fix: {w.get('fix')})")
    return 0
