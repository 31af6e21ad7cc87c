from pathlib import Path

import numpy as np
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from rsnn2chip import argtypes, artifact
from rsnn2chip.compiler import PASSES, compile_file
from rsnn2chip.errors import InputError, SpikeCountsError
from rsnn2chip.fileio import check_distinct_paths, check_output_file
from rsnn2chip.passes.partition import MAPPERS
from rsnn2chip.passes.quantize import QuantizationConfig
from rsnn2chip.safeio import load_npy
from rsnn2chip.targets import load_target

HELP = "compile a model (model.pt, netx .net or NIR) for a target into a .r2c artifact"
EXAMPLE = "rsnn2chip compile model.pt --target loihi2-sim -o net.r2c"


def add_arguments(parser) -> None:
    parser.add_argument("model", help="model file: a checkpoint from `rsnn2chip train` (model.pt), a lava-dl netx HDF5 "
                        "(.net) or a NIR graph (.nir)")
    parser.add_argument("--target", default="loihi2-sim", help="target name in targets/ or a .toml path")
    parser.add_argument("-o", "--output", type=argtypes.path_text,
                        help="artifact path (default: MODEL with suffix .r2c)")
    parser.add_argument("--mapper", default="greedy", choices=sorted(MAPPERS),
                        help="core partitioner: greedy (contiguous in IR order, fastest), rcm (contiguous in a "
                             "graph locality order), metis (graph partition), auto (runs all three; keeps the fewest "
                             "chips, then, among those within 1%% of the fewest cores, the least hop-weighted "
                             "traffic); see docs/mapping.md")
    parser.add_argument("--spike-counts", metavar="NPY", type=argtypes.path_text,
                        help="measured spikes per LIF neuron (.npy, IR order) to weigh traffic by, instead of "
                             "synapse counts")
    parser.add_argument("--threshold-mantissa", type=argtypes.THRESHOLD_MANTISSA,
                        default=QuantizationConfig.threshold_mantissa_target,
                        help="target threshold mantissa; larger = finer weights, less headroom (default %(default)s)")
    parser.add_argument("--weight-clip-percentile", type=argtypes.percentile, default=100.0,
                        help="clip weight magnitudes above this percentile per projection (default: never clip)")


SPIKE_COUNTS_FIX = "save one count per LIF neuron (IR order) as a 1-D array with numpy.save"


def _load_spike_counts(path: str) -> np.ndarray:
    """The file's counts, checked here where the file is known; their length is checked against the network later."""
    counts = load_npy(path, "spike counts file", fix=SPIKE_COUNTS_FIX)
    if counts.ndim != 1:
        raise InputError("spike counts must be a 1-D array, one count per neuron", file=path,
                         found=f"shape {counts.shape}", allowed="shape (neurons,)", fix=SPIKE_COUNTS_FIX)
    bad = np.flatnonzero(~np.isfinite(counts) | (counts < 0))
    if bad.size:
        raise InputError("spike counts must be finite and >= 0", file=path, where=f"index {bad[0]}",
                         found=float(counts[bad[0]]), allowed="finite counts >= 0", fix=SPIKE_COUNTS_FIX)
    return counts


def run(args, out) -> int:
    target = load_target(args.target)
    output = Path(args.output) if args.output else Path(args.model).with_suffix(".r2c")
    check_distinct_paths({"MODEL": args.model, "--spike-counts": args.spike_counts, "--target": args.target},
                         {"-o/--output": output})
    check_output_file(output)
    qcfg = QuantizationConfig(args.threshold_mantissa, args.weight_clip_percentile)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=out.err, transient=True, disable=args.json) as progress:
        task = progress.add_task("reading model", total=len(PASSES) + 1)

        def on_pass(name: str) -> None:
            progress.update(task, description=name, advance=1)

        spikes = _load_spike_counts(args.spike_counts) if args.spike_counts else None
        try:
            compiled = compile_file(args.model, target, mapper=args.mapper, qcfg=qcfg, on_pass=on_pass,
                                    spike_counts=spikes)
        except SpikeCountsError as exc:  # the problem is in the counts' file, not in the model named so far
            for problem in exc.problems:
                problem.file = args.spike_counts
            exc.args = (exc.render(),)
            raise
        progress.update(task, description="writing artifact", advance=1)
        artifact.save(compiled, output)
    info = compiled.cores.graph
    result = {"artifact": str(output), "target": target.name, "cores": info["n_cores"],
              "lower_bound": info["lower_bound"]["cores"], "chips_used": info["chips_used"],
              "mapper": info.get("mapper_chosen", info["mapper"]), "intercore_synapses": info["intercore_synapses"],
              "hop_weighted_synapses": info["hop_weighted_synapses"], "warnings": compiled.warnings}
    if info.get("mapper_candidates"):
        result["mapper_candidates"] = info["mapper_candidates"]
    if args.json:
        out.json(result)
        return 0
    out.console.print(f"compiled [bold]{args.model}[/] for [bold]{target.name}[/] -> {output} "
                      f"({info['n_cores']} cores on {info['chips_used']} chip(s), lower bound "
                      f"{info['lower_bound']['cores']}, mapper {result['mapper']}, "
                      f"{info['intercore_synapses']} synapses cross cores)")
    if info.get("mapper_candidates"):
        out.console.print(_mappers_table(info))
    for w in compiled.warnings:
        details = "; ".join(f"{k} {w[k]}" for k in ("where", "found", "allowed") if w.get(k) is not None)
        line = f"[{w.get('rule')}] {w['message']}" + (f" ({details})" if details else "") \
            + (f"; fix: {w['fix']}" if w.get("fix") else "")
        out.console.print("[yellow]warning:[/] " + escape(line), soft_wrap=True)  # "[rule]" is not rich markup
    return 0


def _mappers_table(info: dict) -> Table:
    """What --mapper auto tried, and which it kept (docs/mapping.md, "cost")."""
    table = Table(title="--mapper auto: " + ", then ".join(info.get("mapper_cost_order", [])))
    for col in ("mapper", "violating cores", "chips", "cores", "inter-core traffic", "hop-weighted traffic", "kept"):
        table.add_column(col, justify="right")
    for name, cost in info["mapper_candidates"].items():
        table.add_row(name, *(str(cost[k]) for k in ("violating_cores", "chips", "cores", "intercore_traffic",
                                                     "hop_weighted_traffic")),
                      "yes" if name == info.get("mapper_chosen") else "")
    return table

