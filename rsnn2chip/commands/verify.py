import contextlib

from rich.table import Table

from rsnn2chip import argtypes, artifact, inputs, ir
from rsnn2chip.checkpoint import load_checkpoint, model_from_checkpoint
from rsnn2chip.errors import InputError
from rsnn2chip.frontends import checkpoint as checkpoint_frontend
from rsnn2chip.frontends import load_network
from rsnn2chip.passes.quantize import QuantizationConfig
from rsnn2chip.verify import verify, verify_compiled

HELP = ("check fidelity: run the trained model (float and quantization-aware), the reference backend and Lava on "
        "one input; name the first (layer, neuron, step) where each pair differs and why; exit 1 if Lava and the "
        "reference differ at all")
EXAMPLE = ("rsnn2chip verify model.pt net.r2c --input x.npy --steps 100\n"
           "  rsnn2chip verify net.nir net.r2c --input x.npy     # a NIR or netx source: its float model\n"
           "  rsnn2chip verify net.r2c --input x.npy             # the artifact's own float IR")
EXPECTED = {("float", "qat"): "quantization", ("float", "reference"): "quantization",
            ("qat", "reference"): "must match when compiled with the same settings",
            ("reference", "lava"): "must match exactly"}


def add_arguments(parser) -> None:
    parser.add_argument("model", help="the trained model (model.pt), or the .nir/.net it was compiled from; "
                                      "or just the .r2c (its own float IR is the float run)")
    parser.add_argument("artifact", nargs="?", type=argtypes.path_text, help="the network compiled from it (.r2c)")
    inputs.add_arguments(parser, "verify on")
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


def check_pair(model_path: str, source, art, artifact_path: str) -> list[str]:
    """Refuse a model and an artifact that cannot be one network (differences would be the files', not the
    compiler's); a note where the model is not the very file the artifact was compiled from (a copy, or the
    .nir exported from it, can still be the same network). ``source``: the model's IR."""
    compiled_from = art.provenance.get("source", "?")
    for kind, what in (("input", "input channels"), ("lif", "neurons")):
        in_model, in_artifact = ir.total_neurons(source, kind), ir.total_neurons(art.graph, kind)
        if in_model != in_artifact:
            raise InputError("the model and the artifact are not the same network", file=model_path, where=what,
                             found=f"{in_model} in the model, {in_artifact} in {artifact_path}",
                             allowed="the same network on both sides",
                             fix=f"pass the model {artifact_path} was compiled from ({compiled_from}), or compile "
                                 f"this one: rsnn2chip compile {model_path}")
    if artifact.sha256_file(model_path) != art.provenance.get("source_sha256"):
        return [f"{model_path} is not the file {artifact_path} was compiled from ({compiled_from}): where they "
                "differ, the cause may be the files and not the compiler"]
    return []


def run(args, out) -> int:
    model_path, artifact_path = (args.model, args.artifact) if args.artifact else (None, args.model)
    if model_path is not None and model_path.endswith(".r2c"):
        raise InputError("the first path is the source model, the second the compiled network", file=model_path,
                         fix=f"rsnn2chip verify MODEL {model_path} --input X.npy, or just "
                             f"rsnn2chip verify {model_path} --input X.npy")
    art = artifact.load(artifact_path)
    source = load_network(model_path) if model_path is not None else None
    pair_notes = check_pair(model_path, source, art, artifact_path) if model_path is not None else []
    is_checkpoint = model_path is not None and checkpoint_frontend.sniff(model_path)

    def training(notes: list) -> dict:  # the checkpoint records its training run; else the artifact may
        if is_checkpoint:
            meta = load_checkpoint(model_path)["meta"]
            return {"encoding": meta.get("encoding"), "dataset": meta.get("dataset")}
        return inputs.training_meta(art, notes)

    x, input_notes = inputs.load(args, training, ir.total_neurons(art.graph, "input"),
                                  model_path if is_checkpoint else artifact_path)
    lava_options = {"timeout": args.timeout} if args.timeout else {}
    if is_checkpoint:
        model = model_from_checkpoint(model_path)
        qcfg = QuantizationConfig(args.threshold_mantissa, args.weight_clip_percentile)
        busy = out.err.status("running float, quantization-aware, reference and Lava", spinner="dots")
        with contextlib.nullcontext() if args.json else busy:
            result = verify(model, art, x, args.steps, qcfg=qcfg, lava_options=lava_options, model_path=model_path)
    else:
        busy = out.err.status("running the float IR, reference and Lava", spinner="dots")
        with contextlib.nullcontext() if args.json else busy:
            result = verify_compiled(art, x, args.steps, source_graph=source, lava_options=lava_options)
    result.warnings = pair_notes + input_notes + result.warnings
    traces = result.readout.get("identical_trace", {})
    status = 0 if result.lava_matches_reference and traces.get("reference/lava", True) else 1
    if args.json:
        out.json({"model": model_path, "artifact": artifact_path, **result.to_dict()})
        return status
    for w in result.warnings:
        out.console.print(f"[yellow]warning:[/] {w}")
    for pair in result.pairs:
        out.console.print(_pair_table(pair))
        if not pair["identical"]:
            out.console.print(_divergence_line(pair), soft_wrap=True)
    r = result.readout
    if r:
        out.console.print(f"readout ({r['readout']}, reads {r['reads']} of the output): predicted class per sample "
                          + "; ".join(f"{run} {' '.join(map(str, c))}" for run, c in r["predicted_class"].items()))
        out.console.print("readout traces: " + ", ".join(f"{pair} {'identical' if same else 'DIFFER'}"
                                                          for pair, same in traces.items()))
    verdict = "[bold green]Lava and the reference agree on every spike and readout value[/]" if status == 0 else \
        "[bold red]Lava and the reference differ[/]"
    out.console.print(verdict)
    return status
