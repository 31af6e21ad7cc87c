import contextlib
import io
from pathlib import Path

import numpy as np
from rich.table import Table

from rsnn2chip import activity, argtypes, artifact, inputs, ir
from rsnn2chip.fileio import atomic_write_bytes, check_distinct_paths, check_output_file
from rsnn2chip.backends import RunResult, backend_names, first_divergence, get_backend, prepare_inputs
from rsnn2chip.backends import run as run_backend
from rsnn2chip.backends.plan import lower
from rsnn2chip.readout import compiled_readout, predicted_classes, run_probes

HELP = "run a compiled network on spike input with the reference (NumPy) or Lava backend"
EXAMPLE = ("rsnn2chip run net.r2c --input x.npy --steps 100 --backend lava --compare\n"
           "  rsnn2chip run net.r2c --data fsdd --index 3      # a test sample, encoded as in training")


def add_arguments(parser) -> None:
    parser.add_argument("artifact", help="compiled network (.r2c)")
    inputs.add_arguments(parser, "run")
    parser.add_argument("--steps", type=argtypes.positive_int, help="time steps to run (default: input length)")
    parser.add_argument("--backend", default="reference", choices=backend_names())
    parser.add_argument("--compare", action="store_true",
                        help="run the reference and --backend (lava when --backend is reference) and report the "
                             "first (population, neuron, step) that differs")
    parser.add_argument("--timeout", type=argtypes.positive_float,
                        help="seconds before a backend that takes a timeout (lava's watchdog) stops a run")
    parser.add_argument("--save-spikes", metavar="NPZ", help="write spikes per population to this .npz")
    parser.add_argument("--save-activity", metavar="RUN",
                        help="save this run's spikes (every population, input included) for `rsnn2chip report "
                             "--activity RUN`: a directory (new, empty or an earlier saved run: it is replaced "
                             "whole), or a file ending in .npz (with --compare: the Lava run)")


def _options(backend: str, timeout):
    return {"timeout": timeout} if timeout is not None and "timeout" in get_backend(backend).options else {}


def _table(result: RunResult) -> Table:
    table = Table(title=f"{result.backend}: {result.steps} steps in {result.wall_s:.2f} s")
    for col in ("population", "neurons", "spikes", "rate (spikes/neuron/step)"):
        table.add_column(col)
    for name, s in result.spikes.items():
        n = s.shape[-1]
        table.add_row(name, str(n), str(int(s.sum())), f"{s.mean():.4f}" if s.size else "0")
    return table


def run(args, out) -> int:
    # Output paths are refused before the run they would end.
    if args.save_spikes:
        check_output_file(Path(args.save_spikes))
    if args.save_activity:
        activity.check_output(args.save_activity)
    check_distinct_paths({"ARTIFACT": args.artifact, "--input": args.input},
                         {"--save-spikes": args.save_spikes, "--save-activity": args.save_activity})
    art = artifact.load(args.artifact)
    x, notes = inputs.load(args, lambda found: inputs.training_meta(art, found),
                           ir.total_neurons(art.graph, "input"), args.artifact)
    steps = args.steps if args.steps is not None else (x.shape[-2] if x.ndim >= 2 else 0)
    other = args.backend if args.backend != "reference" else "lava"
    backends = ["reference", other] if args.compare else [args.backend]
    results = {}
    readout, _ = compiled_readout(art.graph)
    for name in backends:
        busy = out.err.status(f"running {name} backend for {steps} steps", spinner="dots")
        with contextlib.nullcontext() if args.json else busy:
            results[name] = run_backend(art, x, steps, backend=name, probes=run_probes(readout),
                                        **_options(name, args.timeout))
    predicted = {name: predicted_classes(art.graph, r)[0] for name, r in results.items()}
    payload = {name: {"wall_s": r.wall_s, "steps": r.steps, "spike_counts": r.spike_counts(),
                      "predicted_class": predicted[name].tolist(), "readout": readout.name}
               for name, r in results.items()}
    if notes:
        payload["input"] = notes
    status = 0
    if args.compare:
        div = first_divergence(results["reference"], results[other])
        payload["comparison"] = "identical" if div is None else {"first_difference": div.__dict__}
        status = 0 if div is None else 1
    if args.save_spikes:
        _save_spikes(args.save_spikes, results)
    if args.save_activity:
        _save_activity(args.save_activity, art, x, steps, results[backends[-1]])
    if args.json:
        out.json(payload)
        return status
    for note in notes:
        out.console.print(f"input: {note}")
    for name, r in results.items():
        out.console.print(_table(r))
        out.console.print(f"{name}: predicted class per sample ({readout.name} readout over all {r.steps} steps): "
                          f"{' '.join(str(c) for c in predicted[name])}")
    if args.compare:
        if div is None:
            out.console.print(f"[bold green]identical[/]: reference and {other} agree on every spike")
        else:
            out.console.print(f"[bold red]differ[/]: first at population {div.population}, neuron {div.neuron}, "
                              f"step {div.step} (sample {div.sample}): reference={div.a}, {other}={div.b}")
    return status


def _save_spikes(path: str, results: dict) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **{f"{b}/{pop}": s for b, r in results.items() for pop, s in r.spikes.items()})
    atomic_write_bytes(path, buf.getvalue())


def _save_activity(path: str, art, x: np.ndarray, steps: int, result: RunResult) -> None:
    net = lower(art.graph)
    act = activity.from_run(result, prepare_inputs(net, x, steps), net.input_slices, art.graph.graph.get("name", ""))
    activity.save(act, path)
