import contextlib

from rich.table import Table

from rsnn2chip import argtypes, artifact
from rsnn2chip.checkpoint import model_from_checkpoint
from rsnn2chip.commands.run import load_spike_input
from rsnn2chip.passes.quantize import QuantizationConfig
from rsnn2chip.verify import verify

HELP = ("check fidelity: run the trained model (float and quantization-aware), the reference backend and Lava on "
        "one input; name the first (layer, neuron, step) where each pair differs and why; exit 1 if Lava and the "
        "reference differ at all")
EXAMPLE = "rsnn2chip verify model.pt net.r2c --input x.npy --steps 100"
EXPECTED = {("float", "qat"): "quantization", ("float", "reference"): "quantization",
            ("qat", "reference"): "must match when compiled with the same settings",
            ("reference", "lava"): "must match exactly"}


def add_arguments(parser) -> None:
    parser.add_argument("model", help="the trained model (model.pt)")
    parser.add_argument("artifact", help="the network compiled from it (.r2c)")
    parser.add_argument("--input", required=True,
                        help=".npy of 0/1 spikes, shape (T, channels) or (batch, T, channels)")
    parser.add_argument("--steps", type=argtypes.positive_int, help="time steps to run (default: input length)")
    parser.add_argument("--timeout", type=argtypes.positive_float, help="seconds before the Lava watchdog stops a run")
    parser.add_argument("--threshold-mantissa", type=argtypes.THRESHOLD_MANTISSA,
                        default=QuantizationConfig.threshold_mantissa_target,
                        help="as given to `compile` (for the quantization-aware run; default %(default)s)")
    parser.add_argument("--weight-clip-percentile", type=argtypes.percentile, default=100.0,
                        help="as given to `compile` (for the quantization-aware run; default 100)")


def _pair_table(pair: dict) -> Table:
    verdict = "[green]identical[/]" if pair["identical"] else "[red]differ[/]"
    table = Table(title=f"{pair['a']} vs {pair['b']}: {verdict} ({EXPECTED[(pair['a'], pair['b'])]})")
    for col in ("layer", "agreement", f"spikes {pair['a']}", f"spikes {pair['b']}", "entries differing"):
        table.add_column(col)
    for row in pair["layers"]:
        table.add_row(row["layer"], f"{row['agreement']:.4%}", str(row["spikes_a"]), str(row["spikes_b"]),
                      str(row["differing"]))
    return table


def _divergence_line(pair: dict) -> str:
    d = pair["first_divergence"]
    return (f"first difference: layer {d['layer']}, neuron {d['neuron']}, step {d['step']} (sample {d['sample']}): "
            f"{pair['a']}={int(d[pair['a']])}, {pair['b']}={int(d[pair['b']])}\n  why: {d['why']}")


def run(args, out) -> int:
    model = model_from_checkpoint(args.model)
    art = artifact.load(args.artifact)
    x = load_spike_input(args.input)
    qcfg = QuantizationConfig(args.threshold_mantissa, args.weight_clip_percentile)
    lava_options = {"timeout": args.timeout} if args.timeout else {}
    busy = out.err.status("running float, quantization-aware, reference and Lava", spinner="dots")
    with contextlib.nullcontext() if args.json else busy:
        result = verify(model, art, x, args.steps, qcfg=qcfg, lava_options=lava_options, model_path=args.model)
    status = 0 if result.lava_matches_reference else 1
    if args.json:
        out.json({"model": args.model, "artifact": args.artifact, **result.to_dict()})
        return status
    for w in result.warnings:
        out.console.print(f"[yellow]warning:[/] {w}")
    for pair in result.pairs:
        out.console.print(_pair_table(pair))
        if not pair["identical"]:
            out.console.print(_divergence_line(pair), soft_wrap=True)
    verdict = "[bold green]Lava and the reference agree on every spike[/]" if status == 0 else \
        "[bold red]Lava and the reference differ[/]"
    out.console.print(verdict)
    return status
