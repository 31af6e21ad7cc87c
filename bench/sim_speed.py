"""Throughput of the reference backend beside Lava on the same compiled network.

For each network size it compiles a random RSNN (input -> recurrent -> readout),
runs the same input through both backends, checks the spikes are identical,
and reports steps per second and the ratio. Each figure is the best of
``--repeats`` runs, the kinds of run taking turns (the machine is shared), with a pause after each Lava
run; Lava's includes building its processes, the reference's its own preparation (stacking the weights). The
reference's first call in a process, which compiles its kernels or loads them
from numba's disk cache, is reported apart. The reference also runs twice as many
steps, one sample and batched: the difference is the cost of the steps alone, without
the preparation that a run pays once, and gives the batch gain per step.
Writes bench/results/sim_speed.json.

    .venv/bin/python bench/sim_speed.py [--sizes 64 256 1024] [--steps 200] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np


# A pause after each Lava run: the run that follows one is slowed while the machine settles from Lava's OS
# processes, and in every repeat the same kind follows it. Measured at 1,034 neurons, six times each, the batched
# run right after Lava took 28.2 ms at best (median 36.0), one second later 23.9 (median 27.9).
LAVA_SETTLE_S = 1.0


def build(size: int, n_in: int, seed: int):
    from rsnn2chip.checkpoint import save_checkpoint  # noqa: F401  (keeps torch import out of timing)
    from rsnn2chip.compiler import compile_graph
    from rsnn2chip.nn import RSNN
    from rsnn2chip.nn.network import example_arch
    from rsnn2chip.targets import load_target
    import torch

    torch.manual_seed(seed)
    model = RSNN(example_arch(f"bench{size}", input_size=n_in, sizes=(size, 10)))
    return compile_graph(model.to_ir(), load_target("loihi2-sim"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=16, help="reference batch (Lava runs one sample)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure; the best counts")
    parser.add_argument("--out", default="bench/results/sim_speed.json")
    args = parser.parse_args()

    from rsnn2chip.backends import first_divergence, run
    from rsnn2chip.backends.lava import process_count
    from rsnn2chip.backends.plan import lower

    def best_interleaved(art, x) -> dict[str, tuple[float, object]]:
        """Best wall time and a result of each run, the runs taking turns in every repeat, so that a busy
        spell on the shared machine slows all of them rather than one."""
        runs = {"reference": ("reference", x[:1], 1), "lava": ("lava", x[:1], 1),
                "reference_batched": ("reference", x, 1), "reference_long": ("reference", x[:1], 2),
                "reference_batched_long": ("reference", x, 2)}  # name: backend, inputs, times the steps
        results = {name: [] for name in runs}
        for _ in range(args.repeats):
            for name, (backend, inputs, length) in runs.items():
                results[name].append(run(art, np.tile(inputs, (1, length, 1)), length * args.steps, backend=backend))
                if backend == "lava":
                    time.sleep(LAVA_SETTLE_S)
        return {name: (min(r.wall_s for r in rs), rs[0]) for name, rs in results.items()}

    rows, first_call_s = [], None
    for size in args.sizes:
        art = build(size, 16, seed=0)
        x = (np.random.default_rng(size).random((args.batch, args.steps, 16)) < 0.2).astype(np.int8)
        if first_call_s is None:
            first_call_s = run(art, x[:1], args.steps, backend="reference").wall_s
        timed = best_interleaved(art, x)
        (ref1_s, ref1), (lava_s, lava), (ref_batch_s, _) = timed["reference"], timed["lava"], timed["reference_batched"]
        identical = first_divergence(ref1, lava) is None
        row = {"neurons": size + 10, "steps": args.steps, "lava_processes": process_count(lower(art.graph)),
               "lava_steps_per_s": args.steps / lava_s,
               "reference_steps_per_s": args.steps / ref1_s,
               "reference_batched_sample_steps_per_s": args.batch * args.steps / ref_batch_s,
               "identical": identical, "spikes": sum(lava.spike_counts().values())}
        row["speedup_single"] = row["reference_steps_per_s"] / row["lava_steps_per_s"]
        row["speedup_batched"] = row["reference_batched_sample_steps_per_s"] / row["lava_steps_per_s"]
        row["batch_gain"] = row["reference_batched_sample_steps_per_s"] / row["reference_steps_per_s"]
        # The extra steps of the long runs, without the preparation each run pays once.
        row["reference_step_us"] = (timed["reference_long"][0] - ref1_s) / args.steps * 1e6
        row["reference_batched_sample_step_us"] = (timed["reference_batched_long"][0] - ref_batch_s) / (
            args.steps * args.batch) * 1e6
        row["batch_gain_per_step"] = row["reference_step_us"] / row["reference_batched_sample_step_us"]
        rows.append(row)
        print(f"{row['neurons']:6d} neurons, {row['lava_processes']} Lava processes: "
              f"lava {row['lava_steps_per_s']:8.0f} steps/s (incl. build), reference {row['reference_steps_per_s']:8.0f} "
              f"steps/s (x{row['speedup_single']:.1f}), batched {row['reference_batched_sample_steps_per_s']:8.0f} "
              f"sample-steps/s (x{row['speedup_batched']:.1f}, batch gain x{row['batch_gain']:.1f}, per step "
              f"x{row['batch_gain_per_step']:.1f}); identical={identical}")
    from rsnn2chip.fileio import atomic_write_bytes

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": "sim_speed", "command": "python bench/sim_speed.py " + " ".join(sys.argv[1:]),
              "batch": args.batch, "repeats": args.repeats, "lava_settle_s": LAVA_SETTLE_S,
              "reference_first_call_s": first_call_s, "machine": platform.machine(),
              "python": platform.python_version(), "rows": rows}
    atomic_write_bytes(out, json.dumps(result, indent=1).encode())
    print(f"wrote {out}")


if __name__ == "__main__":
    import rsnn2chip  # noqa: F401  (installs the lava import fix before any lava import)
    main()
