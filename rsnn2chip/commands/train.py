from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from rsnn2chip import argtypes, distributed
from rsnn2chip.data import dataset_names, load_dataset, require_samples
from rsnn2chip.errors import InputError
from rsnn2chip.fileio import check_output_file
from rsnn2chip.preflight import check_arch_fits
from rsnn2chip.safeio import load_yaml
from rsnn2chip.train import TrainConfig, train

HELP = "train a recurrent spiking network (BPTT, Adam) on a dataset and write model.pt + metrics JSON"
EXAMPLE = ("rsnn2chip train --arch examples/arch/rsnn_fsdd.yaml --data fsdd --epochs 12 -o build/fsdd.pt\n"
           "  torchrun --standalone --nproc-per-node 2 -m rsnn2chip train ...   (data-parallel, docs/hrmas.md)")


def add_arguments(parser) -> None:
    defaults = TrainConfig()
    parser.add_argument("--arch", required=True,
                        help="network arch as YAML (the RSNN arch dict; input_size and the last layer's size "
                             "may be 'auto')")
    parser.add_argument("--data", required=True,
                        help=f"dataset: {', '.join(dataset_names())}, NAME:DIR, or a .npz file (docs/data.md)")
    parser.add_argument("-o", "--output", required=True, help="checkpoint to write (rewritten after every epoch)")
    parser.add_argument("--metrics", help="metrics JSON (default: OUTPUT with suffix .metrics.json)")
    parser.add_argument("--epochs", type=argtypes.positive_int, default=defaults.epochs, help="default %(default)s")
    parser.add_argument("--batch-size", type=argtypes.positive_int, default=defaults.batch_size,
                        help="default %(default)s")
    parser.add_argument("--lr", type=argtypes.learning_rate, default=defaults.lr,
                        help="Adam learning rate, in (0, 10] (default %(default)s)")
    parser.add_argument("--seed", type=argtypes.SEED, default=defaults.seed, help="default %(default)s")
    parser.add_argument("--qat", action="store_true", help="quantization-aware training for --target")
    parser.add_argument("--target", default=defaults.target, help="target for --qat (default %(default)s)")
    parser.add_argument("--limit", type=argtypes.positive_int, help="use at most N samples of the train and val splits")
    parser.add_argument("--neuron", choices=("lif", "softlif"), default="lif",
                        help="lif: BPTT on spikes; softlif: train a soft-LIF rate net on static images "
                             "(digits-images, fmnist-images) and convert it to spiking LIF (docs/softlif.md)")
    parser.add_argument("--noise", type=argtypes.non_negative_float, default=0.0, metavar="SIGMA",
                        help="softlif only: Gaussian noise (Hz) on the rates of firing neurons while training")


def read_arch(path: str) -> dict:
    arch = load_yaml(path, "arch file", fix="see examples/arch/rsnn_fsdd.yaml")
    if not isinstance(arch, dict):
        raise InputError("arch file must hold a mapping (the RSNN arch dict)", file=path,
                         found=type(arch).__name__, fix="see examples/arch/rsnn_fsdd.yaml")
    check_arch_fits(arch, path)
    return arch


def metrics_path_for(output: Path) -> Path:
    return output.with_name(output.stem + ".metrics.json")


def run(args, out) -> int:
    if args.neuron == "softlif":
        from rsnn2chip.softlif.cli import run_train
        return run_train(args, out)
    if args.noise:
        raise InputError("--noise applies only to --neuron softlif", found=args.noise)
    arch = read_arch(args.arch)
    output = Path(args.output)
    metrics_path = Path(args.metrics) if args.metrics else metrics_path_for(output)
    for path in (output, metrics_path):
        check_output_file(path)
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                      limit=args.limit, qat=args.qat, target=args.target)
    with out.err.status(f"loading {args.data}", spinner="dots") if not args.json else _Null():
        train_data = require_samples(load_dataset(args.data, "train", limit=args.limit), "train", args.data)
        # val is encoded with the train split's encoder, as eval will be.
        val_data = load_dataset(args.data, "val", encoding=train_data.encoding, limit=args.limit)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())
    # A low refresh rate: the redraw thread competes with training for the GIL.
    with Progress(*columns, console=out.err, transient=True, disable=args.json, refresh_per_second=2) as progress:
        result = train(arch, train_data, val_data, cfg, output, metrics_path, progress,
                       extra_meta={"arch_file": str(args.arch)})
    # Under torchrun every rank trained in step; only rank 0 wrote the files and reports them.
    main_rank = distributed.is_main()
    distributed.cleanup()
    if not main_rank:
        return 0
    metrics = result.metrics
    if args.json:
        out.json({"model": str(output), "metrics": str(metrics_path), "final": metrics["final"],
                  "best_val": metrics["best_val"], "seconds": sum(e["seconds"] for e in metrics["epochs"])})
        return 0
    derived = " [yellow](derived: simulated sensor)[/]" if train_data.derived else ""
    table = Table(title=f"{train_data.name}{derived}: {len(train_data)} train / {len(val_data)} val samples, "
                        f"{train_data.n_channels} channels, {train_data.n_classes} classes")
    for col in ("epoch", "train loss", "train acc", "val loss", "val acc", "spike rate", "s"):
        table.add_column(col, justify="right")
    for e in metrics["epochs"]:
        table.add_row(str(e["epoch"]), f"{e['train_loss']:.4f}", f"{e['train_accuracy']:.3f}",
                      _fmt(e["val_loss"], ".4f"), _fmt(e["val_accuracy"], ".3f"), f"{e['mean_spike_rate']:.4f}",
                      f"{e['seconds']:.1f}")
    out.console.print(table)
    out.console.print(f"wrote {output} and {metrics_path}")
    return 0


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
