"""Test accuracy of SC-ML against its baselines at equal neuron count, over a neuron budget sweep.

Models (the hidden layer; every spiking model has the same lif_dense spike-count readout as
examples/arch/scml_fsdd.yaml and the same neuron parameters):

* ``scml``            SC-ML, the hand-chosen motif of examples/arch/scml_fsdd.yaml (motif size 4)
* ``fc``              fully-connected recurrent LIF layer (lif_recurrent), size^2 recurrent synapses
* ``random_sparse``   random recurrent synapses, exactly as many as the SC-ML layer of that size
                      (matching_random_sparse, mask_seed = seed)
* ``self_recurrent``  one self-loop per neuron
* ``gru``             non-spiking reference: torch.nn.GRU with ``size`` units on the same 0/1 spike input,
                      linear readout of the hidden state at the **last valid step** of each sample;
                      same optimiser (Adam, lr, cosine schedule to lr/10, grad clip), batch size and epochs.
                      Its "recurrent synapses" are the 3 * size^2 hidden-to-hidden weights.

Sizes must be multiples of 4 (the motif size). Every (dataset, size, seed) trains all models from scratch
on the train split and reports test accuracy; ``train_samples_per_s`` is training samples x epochs over the
summed epoch times of ``train()`` (each includes its validation pass; the GRU loop times the same).

    nice .venv/bin/python bench/scml_sweep.py           # default run (see DEFAULT below)
    .venv/bin/python bench/scml_sweep.py --quick         # smoke: 1 seed, sizes 16 32, 1 epoch, 256 samples

Writes bench/results/scml_sweep.json; checkpoints under build/bench_scml_sweep/.
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SCML_ARCH = ROOT / "examples" / "arch" / "scml_fsdd.yaml"
MODELS = ("scml", "fc", "random_sparse", "self_recurrent", "gru")
LABELS = {"scml": "SC-ML (motif 4)", "fc": "FC RSNN", "random_sparse": "random sparse RSNN",
          "self_recurrent": "self-recurrent", "gru": "GRU (non-spiking)"}
# Default budget: about 11 min on 2 shared cores with 2 workers (all training samples, 8 epochs, 5 seeds).
DEFAULT = {"sizes": [16, 32, 64, 128], "seeds": [0, 1, 2, 3, 4], "datasets": ["fsdd", "events-digits"],
           "epochs": {"fsdd": 8, "events-digits": 8}, "batch_size": 64, "limit": {"fsdd": None, "events-digits": None}}
QUICK = {"sizes": [16, 32], "seeds": [0], "datasets": ["fsdd", "events-digits"],
         "epochs": {"fsdd": 1, "events-digits": 1}, "batch_size": 64, "limit": {"fsdd": 256, "events-digits": 256}}


def base_arch() -> dict:
    import yaml
    return yaml.safe_load(SCML_ARCH.read_text())


def arch_for(model: str, size: int, seed: int) -> dict:
    from rsnn2chip.nn import matching_random_sparse
    arch = base_arch()
    scml = copy.deepcopy(arch["layers"][0])
    scml["size"] = size
    neuron = dict(scml["neuron"])
    if model == "scml":
        hidden = scml
    elif model == "fc":
        hidden = {"type": "lif_recurrent", "name": "hidden", "size": size, "neuron": neuron}
    elif model == "random_sparse":
        hidden = matching_random_sparse(scml, mask_seed=seed)
    elif model == "self_recurrent":
        hidden = {"type": "self_recurrent", "name": "hidden", "size": size, "neuron": neuron}
    else:
        raise ValueError(model)
    return {**arch, "name": f"{model}_{size}", "layers": [hidden, arch["layers"][1]]}


def recurrent_synapses(model: str, size: int) -> int:
    from rsnn2chip.nn import scml_synapse_count
    if model in ("scml", "random_sparse"):
        return scml_synapse_count(arch_for("scml", size, 0)["layers"][0])
    if model == "fc":
        return size * size
    if model == "self_recurrent":
        return size
    return 3 * size * size  # GRU hidden-to-hidden weights (reset, update, new gates)


# --------------------------------------------------------------------------- GRU reference

def train_gru(train_data, val_data, test_data, size: int, cfg) -> tuple[float, float]:
    """Returns (test accuracy, train samples/s)."""
    import torch
    import torch.nn.functional as F
    from torch import nn
    from rsnn2chip.train import seed_everything

    class GRUClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(train_data.n_channels, size, batch_first=True)
            self.readout = nn.Linear(size, train_data.n_classes)

        def forward(self, x, lengths):
            out, _ = self.gru(x)
            last = out[torch.arange(x.shape[0]), (lengths - 1).clamp(min=0).long()]
            return self.readout(last)

    def accuracy(model, data):
        model.eval()
        correct = 0
        with torch.no_grad():
            for b in data.batches(cfg.eval_batch_size):
                correct += int((model(b.x, b.lengths).argmax(1) == b.y).sum())
        model.train()
        return correct / max(len(data), 1)

    seed_everything(cfg.seed)
    model = GRUClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(cfg.epochs, 1), eta_min=cfg.lr / 10)
    start = time.perf_counter()
    for epoch in range(cfg.epochs):
        for b in train_data.batches(cfg.batch_size, shuffle=True, seed=cfg.seed * 1000 + epoch):
            loss = F.cross_entropy(model(b.x, b.lengths), b.y)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
        if scheduler:
            scheduler.step()
        accuracy(model, val_data)  # same per-epoch validation pass as train()
    wall = time.perf_counter() - start
    return accuracy(model, test_data), len(train_data) * cfg.epochs / wall


# --------------------------------------------------------------------------- one job

def run_job(job: dict) -> list[dict]:
    """All models for one (dataset, size, seed); runs in a worker process."""
    import torch
    torch.set_num_threads(1)
    from rsnn2chip.data import load_dataset
    from rsnn2chip.nn import prepare_torch
    from rsnn2chip.train import TrainConfig, evaluate, train
    prepare_torch()
    dataset, size, seed, root = job["dataset"], job["size"], job["seed"], Path(job["root"])
    limit = job["limit"]
    train_data = load_dataset(dataset, "train", limit=limit)
    val = load_dataset(dataset, "val", encoding=train_data.encoding, limit=limit)
    test = load_dataset(dataset, "test", encoding=train_data.encoding, limit=limit)
    cfg = TrainConfig(epochs=job["epochs"], batch_size=job["batch_size"], seed=seed)
    # warm-up (first-call costs of torch and the layer code), so the first model's throughput is not penalised
    warm = TrainConfig(epochs=1, batch_size=job["batch_size"], seed=seed)
    train(arch_for("scml", size, seed), train_data.limit(2 * warm.batch_size), val.limit(warm.batch_size), warm,
          root / f"warmup_{dataset}_n{size}_s{seed}.pt")
    rows = []
    for model in job["models"]:
        start = time.perf_counter()
        if model == "gru":
            acc, sps = train_gru(train_data, val, test, size, cfg)
        else:
            arch = arch_for(model, size, seed)
            trained = train(arch, train_data, val, cfg, root / f"{dataset}_{model}_n{size}_s{seed}.pt")
            # training steps only (train() times them), not model building, validation or first imports
            sps = trained.metrics["train_samples_per_s"]
            acc = evaluate(trained.model, test)["accuracy"]
        rows.append({"dataset": dataset, "size": size, "seed": seed, "model": model, "test_accuracy": acc,
                     "synapses": recurrent_synapses(model, size), "train_samples_per_s": sps,
                     "seconds": time.perf_counter() - start, "derived": bool(train_data.derived),
                     "splits": {"train": len(train_data), "val": len(val), "test": len(test)}})
        print(f"  {dataset} n={size} seed={seed} {model}: test acc {acc:.4f} ({rows[-1]['seconds']:.0f} s)",
              flush=True)
    return rows


# --------------------------------------------------------------------------- aggregation, table

def mean_sd(values) -> dict:
    v = np.asarray(list(values), np.float64)
    return {"mean": float(v.mean()) if v.size else None, "sd": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "n": int(v.size)}


def summarise(rows: list[dict]) -> dict:
    summary: dict = {}
    for r in rows:
        summary.setdefault(r["dataset"], {}).setdefault(str(r["size"]), {}).setdefault(r["model"], []).append(r)
    out: dict = {}
    for dataset, sizes in summary.items():
        out[dataset] = {}
        for size in sorted(sizes, key=int):
            out[dataset][size] = {}
            for model in MODELS:
                runs = sizes[size].get(model)
                if not runs:
                    continue
                out[dataset][size][model] = {
                    "test_accuracy": mean_sd(r["test_accuracy"] for r in runs),
                    "synapses": runs[0]["synapses"],
                    "train_samples_per_s": float(np.mean([r["train_samples_per_s"] for r in runs]))}
    return out


def print_table(summary: dict, meta: dict) -> None:
    for dataset, sizes in summary.items():
        derived = " (derived: simulated sensor)" if meta["derived"].get(dataset) else ""
        print(f"\n{dataset}{derived}: {meta['epochs'][dataset]} epochs, seeds {meta['seeds']}, "
              f"test split {meta['splits'][dataset]['test']}")
        print(f"{'size':>5} {'model':<20} {'test acc (mean ± sd, n)':>26} {'rec. synapses':>14} {'train samples/s':>16}")
        for size, models in sizes.items():
            for model, r in models.items():
                a = r["test_accuracy"]
                print(f"{size:>5} {LABELS[model]:<20} {a['mean']:>14.4f} ± {a['sd']:.4f} ({a['n']}) "
                      f"{r['synapses']:>14d} {r['train_samples_per_s']:>16.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke: 1 seed, sizes 16 32, 1 epoch, 256 samples")
    parser.add_argument("--sizes", type=int, nargs="+")
    parser.add_argument("--seeds", type=int, nargs="+")
    parser.add_argument("--epochs", type=int, help="epochs for every dataset (default: per dataset, see DEFAULT)")
    parser.add_argument("--datasets", nargs="+")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--limit", type=int, help="samples per split (default: all)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes, one thread each")
    parser.add_argument("--out", default="bench/results/scml_sweep.json")
    parser.add_argument("--runs", default="build/bench_scml_sweep")
    args = parser.parse_args()
    settings = copy.deepcopy(QUICK if args.quick else DEFAULT)
    sizes = args.sizes or settings["sizes"]
    seeds = args.seeds or settings["seeds"]
    datasets = args.datasets or settings["datasets"]
    bad = [s for s in sizes if s <= 0 or s % 4]
    if bad:
        parser.error(f"sizes must be positive multiples of the motif size 4: {bad}")
    epochs = {d: args.epochs or settings["epochs"].get(d, 2) for d in datasets}
    limits = {d: args.limit if args.limit is not None else settings["limit"].get(d) for d in datasets}
    jobs = [{"dataset": d, "size": n, "seed": s, "epochs": epochs[d], "batch_size": settings["batch_size"],
             "limit": limits[d], "models": args.models, "root": args.runs}
            for d in datasets for n in sizes for s in seeds]
    # the long ones first (FSDD sequences are much longer; big layers cost more), so the pool drains evenly
    jobs.sort(key=lambda j: (j["dataset"] != "fsdd", -j["size"]))
    Path(args.runs).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            done = [row for rows in pool.map(run_job, jobs) for row in rows]
    else:
        done = [row for j in jobs for row in run_job(j)]
    wall = time.perf_counter() - start
    summary = summarise(done)
    meta = {"derived": {r["dataset"]: r["derived"] for r in done}, "epochs": epochs, "seeds": seeds,
            "splits": {r["dataset"]: r["splits"] for r in done}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": "scml_sweep", "command": " ".join(["bench/scml_sweep.py", *sys.argv[1:]]),
               "quick": args.quick, "machine": platform.machine(), "python": platform.python_version(),
               "jobs": args.jobs, "threads_per_job": 1, "wall_seconds": wall,
               "settings": {"sizes": sizes, "seeds": seeds, "datasets": datasets, "epochs": epochs,
                            "batch_size": settings["batch_size"], "limit": limits, "models": args.models,
                            "scml_arch": str(SCML_ARCH.relative_to(ROOT)),
                            "gru_readout": "linear on the hidden state at the last valid step"},
               **meta, "summary": summary, "runs": done}
    out.write_text(json.dumps(payload, indent=1) + "\n")
    print_table(summary, meta)
    print(f"\nwrote {out} in {wall:.0f} s")


if __name__ == "__main__":
    import rsnn2chip  # noqa: F401  (installs the lava import fix before anything imports lava)
    main()
