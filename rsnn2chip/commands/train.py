from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from rsnn2chip import argtypes, distributed
from rsnn2chip.data import dataset_names, load_splits
from rsnn2chip.data.encoding import ANALOG_ENCODERS
from rsnn2chip.errors import InputError, ModelError, about_file
from rsnn2chip.fileio import check_distinct_paths, check_output_file
from rsnn2chip.preflight import check_arch_fits
from rsnn2chip.safeio import load_yaml
from rsnn2chip.targets import load_target
from rsnn2chip.nn.network import check_arch
from rsnn2chip.train import TrainConfig, resolve_arch, train

HELP = "train a recurrent spiking network (BPTT, Adam) on a dataset and write model.pt + metrics JSON"
EXAMPLE = ("rsnn2chip train --arch examples/arch/fc_rnn_fsdd.yaml --data fsdd -o build/fsdd.pt\n"
           "  rsnn2chip train --arch examples/arch/fc_rnn_fsdd.yaml --data my_series.npz -o build/mine.pt\n"
           "  torchrun --standalone --nproc-per-node 2 -m rsnn2chip train ...   (data-parallel, docs/hrmas.md)")


def add_arguments(parser) -> None:
    defaults = TrainConfig()
    parser.add_argument("--arch", required=True,
                        help="network arch as YAML (the RSNN arch dict; input_size and the last layer's size "
                             "may be 'auto')")
    parser.add_argument("--data", required=True,
                        help=f"dataset: {', '.join(dataset_names())}, NAME:DIR, or a .npz file (docs/data.md)")
    parser.add_argument("-o", "--output", required=True,
                        help="checkpoint to write: the best model on validation, rewritten at each of the run's ~40 "
                             "validations that improves on it, and at the end")
    parser.add_argument("--metrics", type=argtypes.path_text,
                        help="metrics JSON (default: OUTPUT with suffix .metrics.json)")
    parser.add_argument("--epochs", type=argtypes.positive_int, default=None,
                        help=f"train exactly this many epochs (default: a budget of {defaults.budget_epochs} epochs "
                             f"clamped to {defaults.min_steps}..{defaults.max_steps} optimizer steps, with early "
                             "stopping; docs/training.md)")
    parser.add_argument("--steps", type=argtypes.positive_int, default=None,
                        help="train exactly this many optimizer steps")
    parser.add_argument("--batch-size", type=argtypes.positive_int, default=defaults.batch_size,
                        help="largest batch; small data sets get smaller ones (default %(default)s)")
    parser.add_argument("--lr", type=argtypes.learning_rate, default=defaults.lr,
                        help="peak Adam learning rate in (0, 10], after warm-up, before cosine decay "
                             "(default %(default)s)")
    parser.add_argument("--patience", type=argtypes.int_in_range(0, 10 ** 6), default=defaults.patience,
                        help="stop after this many validations without a better one; 0 never stops early "
                             "(default %(default)s)")
    parser.add_argument("--rate-reg", type=argtypes.non_negative_float, default=defaults.rate_reg, metavar="LAMBDA",
                        help="add LAMBDA * mean spike rate to the loss for sparser activity (default 0: off)")
    parser.add_argument("--encoding", choices=sorted(ANALOG_ENCODERS), default=None,
                        help="how analog features enter (fsdd, npz frames): graded = one graded spike per channel "
                             "and step (default), delta = 0/1 ON/OFF spikes (docs/data.md)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default=defaults.device,
                        help="auto: CUDA when torch sees a GPU, else CPU (default %(default)s)")
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


def check_outputs(args, output: Path, metrics_path: Path) -> None:
    """Refuse, before training, outputs that cannot be written or would overwrite an input or each other."""
    check_distinct_paths({"--arch": args.arch, "--data": args.data}, {"-o/--output": output, "--metrics": metrics_path})
    for path in (output, metrics_path):
        check_output_file(path)


def run(args, out) -> int:
    # Read before training, with or without --qat: the soft-LIF path compiles for it after training, and the
    # metadata names it, so a misspelt target would otherwise fail late or be recorded silently.
    load_target(args.target)
    if args.neuron == "softlif":
        return run_softlif(args, out)
    if args.noise:
        raise InputError("--noise applies only to --neuron softlif", found=f"--noise {args.noise:g}",
                         fix="drop --noise, or add --neuron softlif")
    if args.epochs and args.steps:
        raise InputError("give --epochs or --steps, not both", found=f"--epochs {args.epochs} --steps {args.steps}")
    arch = read_arch(args.arch)
    output = Path(args.output)
    metrics_path = Path(args.metrics) if args.metrics else metrics_path_for(output)
    check_outputs(args, output, metrics_path)
    cfg = TrainConfig(epochs=args.epochs, steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                      limit=args.limit, qat=args.qat, target=args.target, patience=args.patience,
                      rate_reg=args.rate_reg, device=args.device)
    with out.status(f"loading {args.data}"):
        train_data, val_data, test_data = load_splits(args.data, args.limit, args.encoding)
    with about_file(args.arch):  # before training starts; the checks see the sizes the data set gives
        arch = resolve_arch(arch, train_data.n_channels, train_data.n_classes)
        problems = check_arch(arch)
        if problems:
            raise ModelError(problems=problems)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())
    # A low refresh rate: the redraw thread competes with training for the GIL.
    with Progress(*columns, console=out.err, transient=True, disable=args.json, refresh_per_second=2) as progress:
        result = train(arch, train_data, val_data, cfg, output, metrics_path, progress,
                       extra_meta={"arch_file": str(args.arch)}, test_data=test_data)
    # Under torchrun every rank trained in step; only rank 0 wrote the files and reports them.
    main_rank = distributed.is_main()
    distributed.cleanup()
    if not main_rank:
        return 0
    metrics = result.metrics
    test = metrics.get("test")
    if args.json:
        out.json({"model": str(output), "metrics": str(metrics_path), "final": metrics["final"],
                  "best_val": metrics["best_val"], "test_accuracy": test["accuracy"] if test else None,
                  "seconds": metrics["seconds"], "steps": metrics["evaluations"][-1]["step"]})
        return 0
    derived = " [yellow](derived: simulated sensor)[/]" if train_data.derived else ""
    table = Table(title=f"{train_data.name}{derived}: {len(train_data)} train / {len(val_data)} val / "
                        f"{len(test_data)} test samples, {train_data.n_channels} channels, "
                        f"{train_data.n_classes} classes, {train_data.encoding.get('kind', '?')} input")
    for col in ("step", "epoch", "lr", "train loss", "train acc", "val loss", "val acc", "spike rate", "s"):
        table.add_column(col, justify="right")
    for e in metrics["evaluations"]:
        table.add_row(str(e["step"]), str(e["epoch"]), f"{e['lr']:.2e}", f"{e['train_loss']:.4f}",
                      f"{e['train_accuracy']:.3f}", _fmt(e["val_loss"], ".4f"), _fmt(e["val_accuracy"], ".3f"),
                      f"{e['mean_spike_rate']:.4f}", f"{e['seconds']:.1f}")
    out.console.print(table)
    best = metrics["best_val"]
    stopped = " (stopped early)" if metrics.get("stopped_early") else ""
    out.console.print(f"best validation accuracy {_fmt(best['val_accuracy'], '.4f')} at step {best['step']}{stopped}; "
                      f"kept that model")
    if test:
        out.console.print(f"[bold]test accuracy {test['accuracy']:.4f}[/] on {test['samples']} samples "
                          f"({test['synops_per_sample']:.0f} synaptic ops per sample)")
    out.console.print(f"wrote {output} and {metrics_path}")
    return 0


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def run_softlif(args, out) -> int:
    """``--neuron softlif``: train a soft-LIF rate net on static images and convert it (docs/softlif.md)."""
    from rsnn2chip.softlif.ann import ANNConfig
    from rsnn2chip.softlif.training import train_softlif

    if args.qat:
        raise InputError("--qat does not apply to --neuron softlif: the converted network is quantized by "
                         "`rsnn2chip compile`, and its rate model has no fixed-point forward pass")
    if args.noise < 0:
        raise InputError("--noise must be >= 0 (sigma in Hz)", found=args.noise)
    output = Path(args.output)
    metrics_path = Path(args.metrics) if args.metrics else metrics_path_for(output)
    check_outputs(args, output, metrics_path)
    # The soft-LIF rate net trains by epochs (docs/softlif.md); the step budget is the spiking recipe's.
    cfg = ANNConfig(activation="softlif", noise=args.noise, epochs=args.epochs or ANNConfig.epochs,
                    batch_size=args.batch_size,
                    lr=args.lr, seed=args.seed)
    with out.status("training") as status:
        def on_epoch(row: dict) -> None:
            if status:
                status.update(f"epoch {row['epoch']}/{cfg.epochs}: val acc {row.get('val_accuracy', 0.0):.3f}")

        result = train_softlif(read_arch(args.arch), args.data, output, metrics_path, cfg, target=args.target,
                               limit=args.limit, arch_file=str(args.arch), on_epoch=on_epoch)
    metrics, spiking = result.metrics, result.spiking
    if args.json:
        out.json({"model": str(output), "metrics": str(metrics_path), "final": metrics["final"],
                  "best_val": metrics["best_val"], "val_spiking": spiking, "seconds": result.seconds,
                  "notes": result.notes})
        return 0
    table = Table(title=f"soft-LIF ({result.dataset}, sigma {args.noise:g} Hz): {result.n_train} train / "
                        f"{result.n_val} val images")
    for col in ("epoch", "train loss", "train acc", "val loss", "val acc"):
        table.add_column(col, justify="right")
    for e in metrics["epochs"]:
        table.add_row(str(e["epoch"]), f"{e['train_loss']:.4f}", f"{e['train_accuracy']:.3f}",
                      f"{e.get('val_loss', float('nan')):.4f}", f"{e.get('val_accuracy', float('nan')):.3f}")
    out.console.print(table)
    acc = spiking.get("accuracy")
    out.console.print(f"spiking val accuracy (reference backend, {result.steps} steps): "
                      + (f"{acc:.3f}" if acc is not None else f"n/a ({spiking.get('reason')})"))
    for note in result.notes:
        out.console.print(f"[yellow]note:[/] {note}")
    out.console.print(f"wrote {output} and {metrics_path}")
    return 0
