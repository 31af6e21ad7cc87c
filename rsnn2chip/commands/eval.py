import time
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from rsnn2chip import argtypes
from rsnn2chip import artifact as artifact_io
from rsnn2chip import inputs, ir, readout
from rsnn2chip.backends import backend_names, get_backend
from rsnn2chip.checkpoint import ZIP_MAGIC, load_checkpoint, model_from_checkpoint
from rsnn2chip.data import dataset_names, require_samples
from rsnn2chip.data.common import SpikeData
from rsnn2chip.errors import InputError
from rsnn2chip.data.encoding import graded_input_of
from rsnn2chip.nn import prepare_torch
from rsnn2chip.safeio import check_readable_file
from rsnn2chip.train import evaluate

HELP = "measure accuracy, spike rate and speed of a model (float/qat) or compiled network (reference/lava)"
EXAMPLE = "rsnn2chip eval net.r2c --data fsdd --split test --backend reference --limit 200"
MODEL_BACKENDS = ("float", "qat")
ARTIFACT_BACKENDS = tuple(backend_names())
DEFAULT_BATCH = 64


def add_arguments(parser) -> None:
    parser.add_argument("model", help="model.pt (float, qat backends) or a compiled .r2c (reference, lava)")
    parser.add_argument("--data", required=True,
                        help=f"dataset: {', '.join(dataset_names())}, NAME:DIR, or a .npz file (docs/data.md)")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"), help="default %(default)s")
    parser.add_argument("--backend", default=None, choices=MODEL_BACKENDS + ARTIFACT_BACKENDS,
                        help="default: float for model.pt, reference for .r2c")
    parser.add_argument("--limit", type=argtypes.positive_int, help="evaluate only the first N samples of the split")
    parser.add_argument("--batch-size", type=argtypes.positive_int, default=None,
                        help=f"samples per simulator call (default: the backend's preferred batch, {DEFAULT_BATCH} "
                             "for float, qat and reference, 256 for lava, whose builds cost seconds)")


def is_checkpoint(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(len(ZIP_MAGIC)) == ZIP_MAGIC and path.suffix != ".r2c"
    except OSError:
        return False


def run(args, out) -> int:
    path = Path(args.model)
    check_readable_file(path, "model file", fix="pass model.pt from `rsnn2chip train` or a .r2c from "
                                                "`rsnn2chip compile`")
    checkpoint = is_checkpoint(path)
    backend = args.backend or ("float" if checkpoint else "reference")
    if checkpoint and backend not in MODEL_BACKENDS:
        raise InputError(f"backend {backend!r} runs compiled networks, not checkpoints", file=str(path),
                         allowed=", ".join(MODEL_BACKENDS),
                         fix=f"compile first: rsnn2chip compile {path} -o net.r2c; then eval net.r2c")
    if not checkpoint and backend not in ARTIFACT_BACKENDS:
        raise InputError(f"backend {backend!r} runs model.pt checkpoints, not compiled networks", file=str(path),
                         allowed=", ".join(ARTIFACT_BACKENDS), fix="pass the model.pt the artifact was compiled from")
    notes = []
    if args.batch_size is None:
        args.batch_size = DEFAULT_BATCH if checkpoint else get_backend(backend).preferred_batch
    if checkpoint:
        result = eval_checkpoint(path, args, backend, out)
    else:
        result = eval_artifact(path, args, backend, notes, out)
    result.update(model=str(path), backend=backend, split=args.split, notes=notes)
    if args.json:
        out.json(result)
        return 0
    derived = " (derived: simulated sensor)" if result["dataset"]["derived"] else ""
    table = Table(title=f"{path.name} on {result['dataset']['name']}{derived} {args.split} split, {backend} backend")
    for col in ("samples", "accuracy", "mean spike rate", "samples/s"):
        table.add_column(col, justify="right")
    table.add_row(str(result["samples"]), f"{result['accuracy']:.4f}", f"{result['mean_spike_rate']:.4f}",
                  f"{result['samples_per_s']:.1f}")
    out.console.print(table)
    rates = Table(title="spikes / neuron / step")
    rates.add_column("population")
    rates.add_column("rate", justify="right")
    for name, rate in result["spike_rate"].items():
        rates.add_row(name, f"{rate:.4f}")
    out.console.print(rates)
    for note in notes:
        out.console.print(f"[yellow]note:[/] {note}")
    return 0


# --------------------------------------------------------------------------- model.pt

def eval_checkpoint(path: Path, args, backend: str, out) -> dict:
    prepare_torch()
    meta = load_checkpoint(path)["meta"]
    model = model_from_checkpoint(path)
    if backend == "qat":
        enable_qat_for_eval(model, meta)
    data = load_for(args, {"encoding": meta.get("encoding") or None, "dataset": meta.get("dataset")}, path)
    check_channels(data, model.input_size, path)
    with out.status(f"evaluating {len(data)} samples ({backend})"):
        stats = evaluate(model, data, args.batch_size)
    stats.pop("predictions")
    return {"dataset": data.describe(), **stats}


def enable_qat_for_eval(model, meta: dict) -> None:
    try:
        from rsnn2chip.nn.qat import enable_qat
    except ImportError as err:
        raise InputError(f"the qat backend needs rsnn2chip.nn.qat, which cannot be imported ({err})",
                         fix="use --backend float") from None
    from rsnn2chip.passes.quantize import QuantizationConfig
    from rsnn2chip.targets import load_target
    target = (meta.get("qat") or {}).get("target") or "loihi2-sim"
    enable_qat(model, load_target(target), QuantizationConfig(), input_graded=graded_input_of(meta.get("encoding")))


# --------------------------------------------------------------------------- .r2c



def eval_artifact(path: Path, args, backend: str, notes: list, out) -> dict:
    art = artifact_io.load(path)
    data = load_for(args, inputs.training_meta(art, notes), path)
    n_input = ir.total_neurons(art.graph, "input")
    check_channels(data, n_input, path)
    tally = readout.tally_for(art)
    start = time.perf_counter()
    columns = (TextColumn(f"{backend} backend"), BarColumn(), MofNCompleteColumn(), TextColumn("samples, left"),
               TimeRemainingColumn())
    with Progress(*columns, console=out.err, transient=True, disable=args.json) as progress, \
            get_backend(backend).open(art) as session:
        task = progress.add_task("eval", total=len(data))
        for batch in data.batches(args.batch_size, extra_steps=tally.depth):
            readout.classify(session, batch.x.numpy(), batch.lengths.numpy(), batch.y.numpy(), tally)
            progress.advance(task, len(batch.y))
    wall = time.perf_counter() - start
    return {"dataset": data.describe(), "samples": len(data), "accuracy": tally.accuracy,
            "spike_rate": tally.spike_rate(), "mean_spike_rate": tally.mean_spike_rate,
            "samples_per_s": len(data) / wall if wall > 0 else float("inf"), "output_population": tally.output,
            "readout": tally.readout.name, "readout_depth": tally.depth}


def load_for(args, trained: dict, path: Path) -> SpikeData:
    """The split to evaluate, encoded as in training (``trained``: ``{"encoding", "dataset"}``)."""
    data = inputs.load_as_trained(args.data, args.split, trained, path, args.limit)
    require_samples(data, args.split, args.data)
    return data


def check_channels(data: SpikeData, n_input: int, path: Path) -> None:
    if data.n_channels != n_input:
        raise InputError("the dataset's channel count does not match the model's input", file=str(path),
                         found=f"{data.n_channels} channels ({data.name})", allowed=n_input,
                         fix="evaluate on the dataset (and encoding) the model was trained on")
