import contextlib
import io

import numpy as np
from rich.table import Table

from rsnn2chip import activity, argtypes, artifact
from rsnn2chip.fileio import atomic_write_bytes
from rsnn2chip.backends import BACKENDS, RunResult, first_divergence, prepare_inputs, run as run_backend
from rsnn2chip.backends.plan import lower
from rsnn2chip.safeio import load_npy

HELP = "run a compiled network on spike input with the reference (NumPy) or Lava backend"
EXAMPLE = "rsnn2chip run net.r2c --input x.npy --steps 100 --backend lava --compare"


def add_arguments(parser) -> None:
    parser.add_argument("artifact", help="compiled network (.r2c)")
    parser.add_argument("--input", required=True,
                        help=".npy of 0/1 spikes, shape (T, channels) or (batch, T, channels)")
    parser.add_argument("--steps", type=argtypes.positive_int, help="time steps to run (default: input length)")
    parser.add_argument("--backend", default="reference", choices=sorted(BACKENDS))
    parser.add_argument("--compare", action="store_true",
                        help="run both backends and report the first (population, neuron, step) that differs")
    parser.add_argument("--timeout", type=argtypes.positive_float, help="seconds before the Lava watchdog stops a run")
    parser.add_argument("--save-spikes", metavar="NPZ", help="write spikes per population to this .npz")
    parser.add_argument("--save-activity", metavar="RUN",
                        help="save this run's spikes (every population, input included) for `rsnn2chip report "
                             "--activity RUN`: a directory, or a file ending in .npz (with --compare: the Lava run)")


def load_spike_input(path: str) -> np.ndarray:
    return load_npy(path, "input spike file", fix="pass a .npy array of 0/1 spikes saved with numpy.save")


def _options(backend: str, timeout):
    return {"timeout": timeout} if backend == "lava" and timeout is not None else {}


def _table(result: RunResult) -> Table:
    table = Table(title=f"{result.backend}: {result.steps} steps in {result.wall_s:.2f} s")
    for col in ("population", "neurons", "spikes", "rate (spikes/neuron/step)"):
        table.add_column(col)
    for name, s in result.spikes.items():
        n = s.shape[-1]
        table.add_row(name, str(n), str(int(s.sum())), f"{s.mean():.4f}" if s.size else "0")
    return table


def run(args, out) -> int:
    art = artifact.load(args.artifact)
    x = load_spike_input(args.input)
    steps = args.steps if args.steps is not None else (x.shape[-2] if x.ndim >= 2 else 0)
    backends = ["reference", "lava"] if args.compare else [args.backend]
    results = {}
    for name in backends:
        busy = out.err.status(f"running {name} backend for {steps} steps", spinner="dots")
        with contextlib.nullcontext() if args.json else busy:
            results[name] = run_backend(art, x, steps, backend=name, **_options(name, args.timeout))
    payload = {name: {"wall_s": r.wall_s, "steps": r.steps, "spike_counts": r.spike_counts()}
               for name, r in results.items()}
    status = 0
    if args.compare:
        div = first_divergence(results["reference"], results["lava"])
        payload["comparison"] = "identical" if div is None else {"first_difference": div.__dict__}
        status = 0 if div is None else 1
    if args.save_spikes:
        _save_spikes(args.save_spikes, results)
    if args.save_activity:
        _save_activity(args.save_activity, art, x, steps, results[backends[-1]])
    if args.json:
        out.json(payload)
        return status
    for r in results.values():
        out.console.print(_table(r))
    if args.compare:
        if div is None:
            out.console.print("[bold green]identical[/]: reference and Lava agree on every spike")
        else:
            out.console.print(f"[bold red]differ[/]: first at population {div.population}, neuron {div.neuron}, "
                              f"step {div.step} (sample {div.sample}): reference={div.a}, lava={div.b}")
    return status


def _save_spikes(path: str, results: dict) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **{f"{b}/{pop}": s for b, r in results.items() for pop, s in r.spikes.items()})
    atomic_write_bytes(path, buf.getvalue())


def _save_activity(path: str, art, x: np.ndarray, steps: int, result: RunResult) -> None:
    net = lower(art.graph)
    act = activity.from_run(result, prepare_inputs(net, x, steps), net.input_slices, art.graph.graph.get("name", ""))
    activity.save(act, path)
