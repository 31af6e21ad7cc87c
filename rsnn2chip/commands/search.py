import shutil
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from rsnn2chip import argtypes, distributed
from rsnn2chip.data import dataset_names, load_splits
from rsnn2chip.fileio import check_distinct_paths, check_output_directory, publish_directory

HELP = ("HRMAS architecture search of SC-ML layers with intrinsic-plasticity self-repair; writes the searched "
        "arch, the retrained model.pt, a JSON-lines log and pictures")
EXAMPLE = "rsnn2chip search --space examples/search/space_fsdd.yaml --data fsdd -o build/search"


def add_arguments(parser) -> None:
    parser.add_argument("--space", required=True, help="search space YAML (docs/hrmas.md)")
    parser.add_argument("--data", required=True,
                        help=f"dataset: {', '.join(dataset_names())}, NAME:DIR, or a .npz file (docs/data.md)")
    parser.add_argument("-o", "--output", required=True, help="run directory (created)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the run directory's last checkpoint (same space, data and seed)")
    parser.add_argument("--seed", type=argtypes.SEED, help="overrides search.seed of the space")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: CUDA when torch sees a GPU, else CPU (default %(default)s)")
    parser.add_argument("--limit", type=argtypes.positive_int,
                        help="use at most N samples of each split (quick runs, tests)")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG pictures")


def run(args, out) -> int:
    from rsnn2chip.search import load_space, run_hrmas

    space = load_space(args.space)
    if args.seed is not None:
        space.search.seed = args.seed
    output = Path(args.output)
    target = check_output_directory(output)  # absolute: `-o .` names the directory the run is published into
    check_distinct_paths({"--space": args.space, "--data": args.data}, {"-o/--output": output})
    env = distributed.setup()
    work = working_directory(target, args.resume, env.is_main)
    quiet = args.json or not env.is_main
    with out.status(f"loading {args.data}", quiet):
        train_data, val_data, test_data = load_splits(args.data, args.limit)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=out.err, transient=True, disable=quiet, refresh_per_second=2) as progress:
        task = progress.add_task("search", total=None)

        def on_step(step: int, total: int) -> None:
            progress.update(task, completed=step, total=total, description=f"search step {step}/{total}")

        result = run_hrmas(space, (train_data, val_data, test_data), work, resume=args.resume, progress=progress,
                           on_step=on_step, plots=not args.no_plots, device=args.device)
        progress.remove_task(task)
    distributed.cleanup()
    if not env.is_main:
        return 0
    if work != target:
        publish_directory(work, target)
    summary = {"output": str(output), "arch": str(output / "arch.yaml"), "model": str(output / "model.pt"),
               "test_accuracy": result["test"]["accuracy"] if result["test"] else None,
               "recurrent_synapses": result["recurrent_synapses"], "search_seconds": result["search_seconds"],
               "search_cost_ratio": result["search_cost_ratio"], "entropy": result["entropy"],
               "discretisation": result["discretisation"],
               "searched_layers": {name: {k: v for k, v in layer.items() if not k.endswith("_types")}
                                   for name, layer in result["searched_layers"].items()}}
    if args.json:
        out.json(summary)
        return 0
    derived = " [yellow](derived: simulated sensor)[/]" if train_data.derived else ""
    table = Table(title=f"HRMAS on {train_data.name}{derived}: {len(train_data)} train / {len(val_data)} val / "
                        f"{len(test_data)} test samples")
    for col in ("layer", "motif size", "synapses", "exc", "inh"):
        table.add_column(col, justify="right")
    for name, layer in result["searched_layers"].items():
        types = [v for row in layer.get("intra_types", []) + layer.get("inter_types", []) for v in row]
        table.add_row(name, str(layer.get("motif_size", "-")), str(layer["recurrent_synapses"]),
                      str(types.count(1)), str(types.count(-1)))
    out.console.print(table)
    test = result["test"]["accuracy"] if result["test"] else float("nan")
    drop = result["discretisation"]
    out.console.print(f"test accuracy {test:.4f}; search {result['search_seconds']:.1f} s = "
                      f"{result['search_cost_ratio']:.2f} x the retraining; discretisation: val accuracy "
                      f"{drop['supernet_val_accuracy']:.4f} (supernet) -> {drop['argmax_val_accuracy']:.4f} (argmax, same "
                      f"weights); wrote {output}/ (arch.yaml, model.pt, search_log.jsonl, result.json, *.png)")
    return 0


def working_directory(output: Path, resume: bool, main_rank: bool) -> Path:
    """Where the run writes until it is done: a hidden sibling, moved to ``output`` at the end, so a killed or
    failed search never leaves a half-written run directory. ``--resume`` continues in the sibling it left
    (or, for a finished run, in ``output`` itself)."""
    partial = output.with_name(f".{output.name}.partial")
    if resume and not partial.exists() and output.is_dir():
        return output
    if not resume and partial.exists() and main_rank:
        shutil.rmtree(partial)
    return partial
