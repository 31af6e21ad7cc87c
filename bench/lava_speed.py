"""rsnn2chip's Lava ``Network`` against lava-dl netx's ``netx.hdf5.Network`` on the same networks.

For each hidden size H it builds a slayer CUBA network 12 -> H -> H (recurrent)
-> 9, exports it with slayer's own ``export_hdf5``, and runs it

* by netx: ``netx.hdf5.Network(file)``;
* by rsnn2chip: the same file compiled (``netx`` frontend, loihi2-sim target)
  and run as ``rsnn2chip.lava.Network``;

both fed by a ``RingBuffer`` and read by an ``Extractor`` on ``out`` (a
RingBuffer sink's ``data.get()`` moves one element per message), with Lava's
``Loihi2SimCfg(select_tag="fixed_pt")``. It checks that the output spikes are
identical and reports the build time (process creation + compile + first
step), the steady-state steps/s (best of ``--repeats`` interleaved runs: the
machine is shared) and, for a test set of ``--samples`` samples, samples/s (best of ``--sample-repeats``
interleaved runs):
netx the way its user would (one build per sample), rsnn2chip batched
(by the batch plan ``eval --backend lava`` uses: replicas, and rounds of them in one build). Every run happens
in a watchdog child. Ratios are ours / netx; JSON goes to
bench/results/lava_speed.json (``--resume`` keeps the sizes already there).

``--fsdd`` also times ``rsnn2chip eval --backend lava`` against the reference
on the FSDD test split, with the SC-ML arch of examples/arch/scml_fsdd.yaml
(untrained: this measures speed and agreement, not accuracy).

    .venv/bin/python bench/lava_speed.py [--sizes 64 512 2048] [--steps 300] [--resume]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import rsnn2chip  # noqa: E402,F401  (installs the lava import fix before any lava import)
from rsnn2chip.backends.watchdog import run_with_watchdog  # noqa: E402
from rsnn2chip.fileio import atomic_write_bytes  # noqa: E402

N_IN, N_OUT = 12, 9
NEURON = {"threshold": 1.25, "current_decay": 0.25, "voltage_decay": 0.03}
WARMUP_STEPS = 20


def slayer_network(path: Path, hidden: int, seed: int) -> Path:
    """12 -> H -> H (recurrent) -> 9 CUBA blocks, exported by slayer's own export_hdf5."""
    import torch
    from lava.lib.dl import slayer

    from rsnn2chip.interop.slayer import export_netx

    torch.manual_seed(seed)
    blocks = [slayer.block.cuba.Dense(NEURON, N_IN, hidden, weight_scale=2),
              slayer.block.cuba.Recurrent(NEURON, hidden, hidden, weight_scale=2),
              slayer.block.cuba.Dense(NEURON, hidden, N_OUT, weight_scale=2)]
    return export_netx(blocks, path, N_IN)


def compile_netx(path: Path):
    from rsnn2chip.compiler import compile_graph
    from rsnn2chip.frontends import netx
    from rsnn2chip.targets import load_target

    # The 2-chip target: H = 2048 needs more than one chip's 120 cores.
    return compile_graph(netx.load(path), load_target("loihi2-sim-2chip"))


def make_process(kind: str, source):
    if kind == "netx":
        from lava.lib.dl.netx import hdf5
        return hdf5.Network(net_config=str(source))
    from rsnn2chip.lava import Network
    return Network(source)


def timed_run(kind: str, source, x: np.ndarray) -> dict:
    """Build, run WARMUP_STEPS (build time), then the rest (steady state); output spikes (T, 9)."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc import io
    from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel

    steps = x.shape[0]
    cfg = Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map={Extractor: PyLoihiExtractorModel})
    start = time.perf_counter()
    net = make_process(kind, source)
    src = io.source.RingBuffer(data=np.ascontiguousarray(x.T, dtype=np.int32))
    sink = Extractor(shape=net.out.shape, buffer_size=steps)
    src.s_out.connect(net.inp)
    net.out.connect(sink.in_port)
    net.run(condition=RunSteps(num_steps=WARMUP_STEPS), run_cfg=cfg)
    built = time.perf_counter()
    net.run(condition=RunSteps(num_steps=steps - WARMUP_STEPS), run_cfg=cfg)
    done = time.perf_counter()
    spikes = np.stack([sink.receive() for _ in range(steps)]).astype(bool)
    if kind == "ours":  # `out` sends the process holding the readout; keep the readout's columns
        spikes = net.readout.select(spikes)
    net.stop()
    return {"build_s": built - start, "steps_per_s": (steps - WARMUP_STEPS) / (done - built), "spikes": spikes}


def netx_samples(path, xs: np.ndarray) -> dict:
    """One netx build and run per sample, as a netx user evaluates a test set."""
    start = time.perf_counter()
    outs = [timed_run("netx", path, x)["spikes"] for x in xs]
    return {"wall_s": time.perf_counter() - start, "spikes": np.stack(outs)}


def our_samples(art, xs: np.ndarray) -> dict:
    """The samples as ``eval --backend lava`` runs them (``layout.best_batch_plan``)."""
    from rsnn2chip.backends import lava as lava_backend
    from rsnn2chip.backends.plan import lower

    net = lower(art.graph)
    start = time.perf_counter()
    spikes, _ = lava_backend.simulate(net, xs, xs.shape[1])
    wall = time.perf_counter() - start
    lo, hi = net.lif_slices[list(net.lif_slices)[-1]]
    return {"wall_s": wall, "spikes": spikes[:, :, lo:hi]}


def measure(hidden: int, args, rng: np.random.Generator) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = slayer_network(Path(tmp) / f"h{hidden}.net", hidden, seed=hidden)
        art = compile_netx(path)
        x = (rng.random((args.steps, N_IN)) < args.rate).astype(np.int8)
        limit = 120 + args.steps * hidden / 50
        runs = {"netx": [], "ours": []}
        for _ in range(args.repeats):
            for kind, source in (("netx", path), ("ours", art)):
                runs[kind].append(run_with_watchdog(timed_run, (kind, source, x), limit, f"{kind} H={hidden}"))
        identical = all(np.array_equal(r["spikes"], runs["netx"][0]["spikes"]) for r in runs["ours"] + runs["netx"])
        best = {k: max(r["steps_per_s"] for r in v) for k, v in runs.items()}
        build = {k: min(r["build_s"] for r in v) for k, v in runs.items()}
        xs = (rng.random((args.samples, args.sample_steps, N_IN)) < args.rate).astype(np.int8)
        samples = {"netx": [], "ours": []}
        for _ in range(args.sample_repeats):  # interleaved, best counts, as for the steady state
            samples["netx"].append(run_with_watchdog(netx_samples, (path, xs), limit * args.samples,
                                                     f"netx samples H={hidden}"))
            samples["ours"].append(our_samples(art, xs))
        theirs, ours = (min(samples[k], key=lambda r: r["wall_s"]) for k in ("netx", "ours"))
        from rsnn2chip.lava.layout import best_batch_plan, plan
        from rsnn2chip.backends.plan import lower
        lowered = lower(art.graph)
        layout = plan(lowered)
        batch_plan = best_batch_plan(lowered, args.samples, args.sample_steps)
    row = {"hidden": hidden, "steps": args.steps, "identical_spikes": bool(identical),
           "output_spikes": int(runs["netx"][0]["spikes"].sum()),
           "netx_steps_per_s": best["netx"], "ours_steps_per_s": best["ours"],
           "steps_ratio": best["ours"] / best["netx"],
           "netx_build_s": build["netx"], "ours_build_s": build["ours"],
           "ours_processes": layout.process_count,
           "ours_neuron_processes": [list(g.populations) for g in layout.neuron_groups],
           "ours_synapses": [g.kind if g.parts == 1 else f"{g.kind} (part of {g.parts})"
                             for g in layout.synapse_groups],
           "samples": args.samples, "sample_steps": args.sample_steps,
           "samples_identical": all(np.array_equal(samples["netx"][0]["spikes"], r["spikes"])
                                    for r in samples["netx"] + samples["ours"]),
           "sample_repeats": args.sample_repeats,
           "ours_batch_plan": {"replicas": batch_plan.replicas, "in_sequence": batch_plan.in_sequence,
                               "reset_in_network": batch_plan.reset_in_network},
           "netx_samples_per_s": args.samples / theirs["wall_s"], "ours_samples_per_s": args.samples / ours["wall_s"]}
    row["samples_ratio"] = row["ours_samples_per_s"] / row["netx_samples_per_s"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 512, 2048])
    parser.add_argument("--steps", type=int, default=300, help="steps per steady-state run (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per network; best counts")
    parser.add_argument("--samples", type=int, default=16, help="test-set size for samples/s (default %(default)s)")
    parser.add_argument("--sample-steps", type=int, default=100, help="steps per test sample (default %(default)s)")
    parser.add_argument("--sample-repeats", type=int, default=3,
                        help="interleaved test-set runs per side; the best counts (default %(default)s)")
    parser.add_argument("--rate", type=float, default=0.25, help="input spike probability per step and channel")
    parser.add_argument("--out", default="bench/results/lava_speed.json")
    parser.add_argument("--resume", action="store_true", help="keep the sizes already in --out")
    parser.add_argument("--fsdd", action="store_true", help="also time `eval --backend lava` on the FSDD test split")
    args = parser.parse_args()

    out = Path(args.out)
    rows, extra = [], {}
    if args.resume and out.is_file():
        previous = json.loads(out.read_text())
        rows = [r for r in previous["rows"] if r["hidden"] in args.sizes]
        extra = {k: v for k, v in previous.items() if k == "fsdd_eval"}
    done = {r["hidden"] for r in rows}
    for hidden in args.sizes:
        if hidden in done:
            print(f"H={hidden}: kept from {out}")
            continue
        row = measure(hidden, args, np.random.default_rng(hidden))
        rows.append(row)
        print(f"H={hidden:5d}: netx {row['netx_steps_per_s']:7.0f} steps/s, ours {row['ours_steps_per_s']:7.0f} "
              f"steps/s, ours/netx {row['steps_ratio']:.2f}; build netx {row['netx_build_s']:.2f} s, ours "
              f"{row['ours_build_s']:.2f} s; {row['samples']} samples: netx {row['netx_samples_per_s']:.2f}/s, "
              f"ours {row['ours_samples_per_s']:.2f}/s, ours/netx {row['samples_ratio']:.1f}; "
              f"identical={row['identical_spikes'] and row['samples_identical']} "
              f"({row['output_spikes']} output spikes; {row['ours_processes']} processes)", flush=True)
        _write(out, args, rows, extra)
    if args.fsdd:
        extra["fsdd_eval"] = fsdd_eval()
    _write(out, args, rows, extra)
    print(f"wrote {out}")


def fsdd_eval() -> dict:
    """``rsnn2chip eval`` of one compiled SC-ML network on the FSDD test split, reference and lava."""
    import contextlib
    import io

    import torch
    import yaml

    from rsnn2chip import artifact, ir
    from rsnn2chip.cli import main as cli_main
    from rsnn2chip.data.encoding import graded_input_of
    from rsnn2chip.nn.network import INPUT_NAME
    from rsnn2chip.compiler import compile_graph
    from rsnn2chip.data import load_dataset
    from rsnn2chip.nn import RSNN
    from rsnn2chip.targets import load_target

    arch = yaml.safe_load((ROOT / "examples" / "arch" / "scml_fsdd.yaml").read_text())
    data = load_dataset("fsdd", "test")  # the default encoding, as `rsnn2chip train` and `eval` use it
    arch["input_size"] = data.n_channels
    arch["layers"][-1]["size"] = 10
    torch.manual_seed(0)
    result = {"arch": "examples/arch/scml_fsdd.yaml (untrained, seed 0)"}
    graph = RSNN(arch).to_ir()
    ir.population(graph, INPUT_NAME).graded = graded_input_of(data.encoding)  # as a trained checkpoint records
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scml.r2c"
        artifact.save(compile_graph(graph, load_target("loihi2-sim")), path)
        for backend in ("reference", "lava"):
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                code = cli_main(["eval", str(path), "--data", "fsdd", "--split", "test", "--backend", backend,
                                 "--json"])
            if code != 0:
                raise SystemExit(f"eval --backend {backend} failed ({code})")
            got = json.loads(buf.getvalue())
            result[backend] = {k: got[k] for k in ("samples", "accuracy", "mean_spike_rate", "samples_per_s")}
    result["identical_accuracy_and_rates"] = all(result["lava"][k] == result["reference"][k]
                                                 for k in ("accuracy", "mean_spike_rate"))
    print(f"FSDD test split, {result['lava']['samples']} samples: eval --backend lava "
          f"{result['lava']['samples_per_s']:.1f} samples/s (reference {result['reference']['samples_per_s']:.0f}); "
          f"accuracy and spike rate identical={result['identical_accuracy_and_rates']}", flush=True)
    return result


def _write(out: Path, args, rows, extra) -> None:
    payload = {"benchmark": "lava_speed", "command": "python bench/lava_speed.py " + " ".join(sys.argv[1:]),
               "machine": platform.machine(), "python": platform.python_version(),
               "rows": sorted(rows, key=lambda r: r["hidden"]), **extra}
    atomic_write_bytes(out, json.dumps(payload, indent=1).encode())


if __name__ == "__main__":
    main()
