"""HRMAS against its ablations and hand-designed baselines at equal neuron count (docs/hrmas.md).

For each dataset (FSDD; events-digits, derived) and seed, every method ends in a network of the same
neurons, retrained from re-initialised weights with the same budget and evaluated on the test split:

* ``hrmas``          SC-ML search (motif size, intra types, lateral types) + SpiKL-IP, retrained
* ``hrmas_keep_ip``  the same searched arch, retrained keeping the IP-adapted voltage_decay / input_gain
* ``hrmas_no_ip``    SC-ML search without the IP step
* ``unstructured``   DARTS over the type of every recurrent (post, pre) pair, no motifs, + IP
* ``fc``             fully-connected recurrent layer (lif_recurrent), no search
* ``scml_shuffled``  that seed's hrmas arch with its intra types (and its lateral types) randomly permuted:
                     same motif size, same numbers of exc / inh / none, positions not searched
* ``random_sparse``  random recurrent synapses, as many as that seed's hrmas arch has

Also recorded: the budget curve (val accuracy after each retraining epoch), search cost as a ratio to the
final network's retraining, and stability: accuracy and firing rate on a fixed train subset right before /
after probed alpha steps and after the IP step, and the drop when the supernet is replaced by its argmax
(weights inherited) with and without an IP repair window.

    nice .venv/bin/python bench/hrmas.py            # full (about 25 min on 2 shared cores)
    .venv/bin/python bench/hrmas.py --quick          # smoke (about 2 min)

Writes bench/results/hrmas.json, hrmas_stability.png, hrmas_budget.png; run directories under build/.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

NEURON = {"current_decay": 0.5, "voltage_decay": 0.05, "threshold": 1.0, "bias": 0.0}
OUT_NEURON = {"current_decay": 0.5, "voltage_decay": 0.2, "threshold": 1.0, "bias": 0.0}
METHODS = ("hrmas", "hrmas_keep_ip", "hrmas_no_ip", "unstructured", "scml_shuffled", "fc", "random_sparse")
LABELS = {"hrmas": "HRMAS (SC-ML + IP)", "hrmas_keep_ip": "HRMAS, IP params kept", "hrmas_no_ip": "HRMAS without IP",
          "unstructured": "unstructured search + IP", "scml_shuffled": "SC-ML, HRMAS types shuffled",
          "fc": "fully-connected RSNN", "random_sparse": "random sparse RSNN"}
# Budgets chosen so the fully-connected network is clearly below its ceiling (about 0.9 on FSDD at 128
# neurons, 0.95+ on events-digits), so architecture differences can show.
FULL = {"fsdd": {"size": 48, "search_epochs": 4, "batch": 64, "retrain_epochs": 6, "limit": None, "warmup": 20},
        "events-digits": {"size": 32, "search_epochs": 4, "batch": 32, "retrain_epochs": 3, "limit": None,
                          "warmup": 20}}
QUICK = {"fsdd": {"size": 32, "search_epochs": 2, "batch": 32, "retrain_epochs": 2, "limit": 480, "warmup": 4},
         "events-digits": {"size": 32, "search_epochs": 2, "batch": 32, "retrain_epochs": 2, "limit": 480,
                           "warmup": 4}}
IP_REPAIR_BATCHES = 10


def space_dict(name: str, layer_type: str, settings: dict, seed: int, ip: bool) -> dict:
    layer = {"type": layer_type, "name": "hidden", "size": settings["size"], "neuron": dict(NEURON)}
    if layer_type == "scml_search":
        layer["motif_sizes"] = [2, 4, 8, 16]
    return {"format": "rsnn2chip.search-space", "version": 1, "name": name, "input_size": "auto",
            "readout": "spike_count",
            "layers": [layer, {"type": "lif_dense", "name": "output", "size": "auto", "neuron": dict(OUT_NEURON)}],
            "search": {"epochs": settings["search_epochs"], "batch_size": settings["batch"], "seed": seed,
                       "alpha_lr": 0.03, "warmup_steps": settings["warmup"], "log_every": 10, "probe_every": 5,
                       "checkpoint_every": 10_000},
            "ip": {"enabled": ip, "eta_r": 0.2, "eta_tau": 0.2, "target_rate": 0.05},
            "retrain": {"epochs": settings["retrain_epochs"], "batch_size": settings["batch"]}}


def probe_deltas(records: list[dict]) -> dict:
    probes = [r for r in records if r.get("kind") == "probe"]
    out = {}
    for metric in ("accuracy", "rate"):
        before = np.array([p["before"][metric] for p in probes])
        alpha = np.array([p["after_alpha"][metric] for p in probes])
        ip = np.array([p["after_ip"][metric] for p in probes])
        out[metric] = {"steps": [p["step"] for p in probes], "before": before.tolist(),
                       "after_alpha": alpha.tolist(), "after_ip": ip.tolist(),
                       "alpha_delta_mean": float(np.mean(alpha - before)) if len(probes) else None,
                       "ip_delta_mean": float(np.mean(ip - alpha)) if len(probes) else None}
    return out


def discretisation_dip(outcome, val, train, space) -> dict:
    """Supernet -> its argmax with inherited weights -> after an IP repair window, on the val split."""
    from rsnn2chip.search.ip import ip_step
    from rsnn2chip.search.space import IPConfig
    from rsnn2chip.train import depth_of, evaluate
    supernet = evaluate(outcome.model, val)
    model = outcome.model.inherited_model()
    dropped = evaluate(model, val)
    cfg = IPConfig(**{**space.ip.__dict__, "enabled": True})
    order = train.batch_order(space.search.batch_size, shuffle=True, seed=12345)
    for i in range(IP_REPAIR_BATCHES):
        ip_step(model, train, [order[i % len(order)]], cfg, depth_of(model))
    repaired = evaluate(model, val)
    rate = lambda r: r["spike_rate"]["hidden"]  # noqa: E731
    return {"supernet": {"accuracy": supernet["accuracy"], "rate": rate(supernet)},
            "argmax": {"accuracy": dropped["accuracy"], "rate": rate(dropped)},
            "argmax_after_ip": {"accuracy": repaired["accuracy"], "rate": rate(repaired)}}


def run_job(job: dict) -> dict:
    """All methods for one (dataset, seed); runs in a worker process."""
    import torch
    torch.set_num_threads(1)
    from rsnn2chip.data import load_dataset
    from rsnn2chip.nn import matching_random_sparse, prepare_torch
    from rsnn2chip.search.hrmas import LOG_FILE, read_log, retrain_phase, search_phase
    from rsnn2chip.search.space import space_from_dict
    from rsnn2chip.search.supernet import synapse_count
    from rsnn2chip.train import TrainConfig, evaluate, train
    prepare_torch()
    dataset, seed, settings, root = job["dataset"], job["seed"], job["settings"], Path(job["root"])
    train_data = load_dataset(dataset, "train", limit=settings["limit"])
    val = load_dataset(dataset, "val", encoding=train_data.encoding, limit=settings["limit"])
    test = load_dataset(dataset, "test", encoding=train_data.encoding, limit=settings["limit"])
    results: dict[str, dict] = {}

    def finish(method: str, arch: dict, trained, retrain_s: float, extra: dict) -> None:
        hidden = arch["layers"][0]
        evaluations = trained.metrics["evaluations"]
        t = evaluate(trained.model, test)
        results[method] = {"test_accuracy": t["accuracy"], "test_spike_rate": t["mean_spike_rate"],
                           "recurrent_synapses": synapse_count(hidden), "neurons": hidden["size"],
                           "motif_size": hidden.get("motif_size"), "retrain_seconds": retrain_s,
                           "retrain_epoch_seconds": len(train_data) / trained.metrics["train_samples_per_s"],
                           "val_curve": [e["val_accuracy"] for e in evaluations], **extra}
        if "search_seconds" in extra:
            results[method]["search_cost_ratio"] = extra["search_seconds"] / results[method]["retrain_epoch_seconds"]

    for method, layer_type, ip in (("hrmas", "scml_search", True), ("hrmas_no_ip", "scml_search", False),
                                   ("unstructured", "unstructured_search", True)):
        space = space_from_dict(space_dict(method, layer_type, settings, seed, ip)) \
            .resolved(train_data.n_channels, train_data.n_classes)
        out = root / f"{dataset}_{method}_s{seed}"
        outcome = search_phase(space, train_data, val, out)
        records = read_log(out / LOG_FILE)
        extra = {"search_seconds": outcome.seconds, "search_steps": outcome.steps,
                 "probes": probe_deltas(records), "discretisation": discretisation_dip(outcome, val, train_data, space),
                 "final_rates": records[-1]["rates"]["hidden"] if records else None}
        arch, trained, retrain_s = retrain_phase(space, outcome, train_data, val, out)
        finish(method, arch, trained, retrain_s, extra)
        if method == "hrmas":
            keep = copy.deepcopy(space)
            keep.retrain.keep_intrinsic = True
            arch_k, trained_k, retrain_k = retrain_phase(keep, outcome, train_data, val, root / f"{out.name}_keep")
            finish("hrmas_keep_ip", arch_k, trained_k, retrain_k,
                   {"search_seconds": outcome.seconds, "search_steps": outcome.steps})
            hrmas_arch = arch
    cfg = TrainConfig(epochs=settings["retrain_epochs"], batch_size=settings["batch"], seed=seed)
    rng = np.random.default_rng(1000 + seed)
    shuffled = copy.deepcopy(hrmas_arch["layers"][0])
    k = shuffled["motif_size"]
    shuffled["intra_types"] = rng.permutation(np.ravel(shuffled["intra_types"])).reshape(k, k).tolist()
    shuffled["inter_types"] = rng.permutation(np.ravel(shuffled["inter_types"])).reshape(2, k).tolist()
    baselines = {
        "scml_shuffled": shuffled,
        "fc": {"type": "lif_recurrent", "name": "hidden", "size": settings["size"], "neuron": dict(NEURON)},
        "random_sparse": matching_random_sparse(hrmas_arch["layers"][0], mask_seed=seed),
    }
    for method, layer in baselines.items():
        arch = {**hrmas_arch, "name": method, "layers": [layer, copy.deepcopy(hrmas_arch["layers"][1])]}
        start = time.perf_counter()
        trained = train(arch, train_data, val, cfg, root / f"{dataset}_{method}_s{seed}.pt")
        finish(method, arch, trained, time.perf_counter() - start, {})
    return {"dataset": dataset, "seed": seed, "derived": train_data.derived, "results": results,
            "splits": {"train": len(train_data), "val": len(val), "test": len(test)}}


# --------------------------------------------------------------------------- aggregation

def mean_sd(values) -> dict:
    v = np.asarray([x for x in values if x is not None], np.float64)
    return {"mean": float(v.mean()) if v.size else None, "sd": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "n": int(v.size)}


def paired(jobs: list[dict], a: str, b: str) -> dict:
    diffs = [j["results"][a]["test_accuracy"] - j["results"][b]["test_accuracy"] for j in jobs]
    stats = mean_sd(diffs)
    return {**stats, "diffs": diffs, "wins": int(sum(d > 0 for d in diffs)), "holds": bool(stats["mean"] > 0)}


def summarise(jobs: list[dict]) -> dict:
    summary = {}
    for dataset in sorted({j["dataset"] for j in jobs}):
        runs = [j for j in jobs if j["dataset"] == dataset]
        methods = {}
        for m in METHODS:
            rows = [j["results"][m] for j in runs]
            methods[m] = {"test_accuracy": mean_sd(r["test_accuracy"] for r in rows),
                          "recurrent_synapses": mean_sd(r["recurrent_synapses"] for r in rows),
                          "neurons": rows[0]["neurons"],
                          "motif_sizes": [r["motif_size"] for r in rows],
                          "search_cost_ratio": mean_sd(r.get("search_cost_ratio") for r in rows),
                          "val_curve": np.mean([r["val_curve"] for r in rows], axis=0).tolist(),
                          "val_curve_sd": np.std([r["val_curve"] for r in rows], axis=0).tolist()}
        stability = {}
        for m in ("hrmas", "hrmas_no_ip", "unstructured"):
            rows = [j["results"][m] for j in runs]
            stability[m] = {
                "alpha_step_accuracy_delta": mean_sd(r["probes"]["accuracy"]["alpha_delta_mean"] for r in rows),
                "ip_step_accuracy_delta": mean_sd(r["probes"]["accuracy"]["ip_delta_mean"] for r in rows),
                "alpha_step_rate_delta": mean_sd(r["probes"]["rate"]["alpha_delta_mean"] for r in rows),
                "discretisation_accuracy_drop": mean_sd(r["discretisation"]["supernet"]["accuracy"]
                                                        - r["discretisation"]["argmax"]["accuracy"] for r in rows),
                "ip_repair_accuracy_gain": mean_sd(r["discretisation"]["argmax_after_ip"]["accuracy"]
                                                   - r["discretisation"]["argmax"]["accuracy"] for r in rows),
                "final_rate_w1": mean_sd((r["final_rates"] or {}).get("w1") for r in rows),
                "final_rate_mean": mean_sd((r["final_rates"] or {}).get("mean") for r in rows)}
        summary[dataset] = {"derived": runs[0]["derived"], "seeds": [j["seed"] for j in runs],
                            "splits": runs[0]["splits"], "methods": methods, "stability": stability,
                            "claims": {"hrmas_beats_fc": paired(runs, "hrmas", "fc"),
                                       "ip_helps": paired(runs, "hrmas", "hrmas_no_ip"),
                                       "ip_params_kept_help": paired(runs, "hrmas_keep_ip", "hrmas_no_ip"),
                                       "motifs_beat_unstructured": paired(runs, "hrmas", "unstructured"),
                                       "search_beats_shuffled_types": paired(runs, "hrmas", "scml_shuffled"),
                                       "motifs_beat_random_sparse": paired(runs, "hrmas", "random_sparse")}}
    return summary


# --------------------------------------------------------------------------- pictures and table

def plot_stability(jobs: list[dict], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    datasets = sorted({j["dataset"] for j in jobs})
    fig = Figure(figsize=(13, 3.6 * len(datasets)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(datasets), 3, squeeze=False)
    colours = {"hrmas": "#d62728", "hrmas_no_ip": "#1f77b4", "unstructured": "#2ca02c"}
    for row, dataset in enumerate(datasets):
        runs = [j for j in jobs if j["dataset"] == dataset]
        ax_acc, ax_rate, ax_disc = axes[row]
        for m, colour in colours.items():
            for metric, ax in (("accuracy", ax_acc), ("rate", ax_rate)):
                steps = np.concatenate([j["results"][m]["probes"][metric]["steps"] for j in runs])
                before = np.concatenate([j["results"][m]["probes"][metric]["before"] for j in runs])
                alpha = np.concatenate([j["results"][m]["probes"][metric]["after_alpha"] for j in runs])
                after = np.concatenate([j["results"][m]["probes"][metric]["after_ip"] for j in runs])
                if not steps.size:
                    continue
                ax.plot(steps, alpha - before, "x", ms=4, color=colour, alpha=0.6,
                        label=f"{LABELS[m]}: alpha step (mean {np.mean(alpha - before):+.4f})")
                if m != "hrmas_no_ip":
                    ax.plot(steps, after - before, "o", ms=3, mfc="none", color=colour, alpha=0.6,
                            label=f"{LABELS[m]}: alpha step + IP (mean {np.mean(after - before):+.4f})")
        for ax, what in ((ax_acc, "accuracy"), (ax_rate, "hidden firing rate")):
            ax.axhline(0, color="black", lw=0.8)
            ax.set_title(f"{dataset}: change in probe {what}\nright after each probed alpha step", fontsize=10)
            ax.set_xlabel("search step")
            ax.legend(fontsize=6)
        stages = ("supernet", "argmax", "argmax_after_ip")
        for m, colour in colours.items():
            acc = np.array([[j["results"][m]["discretisation"][s]["accuracy"] for s in stages] for j in runs])
            ax_disc.errorbar(range(3), acc.mean(0), yerr=acc.std(0), color=colour, marker="o", capsize=3,
                             label=LABELS[m])
        ax_disc.set_xticks(range(3), ["supernet", "argmax\n(inherited weights)", f"+ IP repair\n({IP_REPAIR_BATCHES} batches)"])
        ax_disc.set_title(f"{dataset}: val accuracy when the supernet\nis replaced by its argmax", fontsize=10)
        ax_disc.legend(fontsize=7)
    fig.savefig(path, format="png", dpi=100)


def plot_budget(summary: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(6 * len(summary), 4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(summary), squeeze=False)[0]
    for ax, (dataset, s) in zip(axes, summary.items()):
        for m in METHODS:
            curve, sd = np.asarray(s["methods"][m]["val_curve"]), np.asarray(s["methods"][m]["val_curve_sd"])
            epochs = np.arange(1, len(curve) + 1)
            ax.plot(epochs, curve, marker="o", label=LABELS[m])
            ax.fill_between(epochs, curve - sd, curve + sd, alpha=0.15)
        derived = " (derived)" if s["derived"] else ""
        ax.set_title(f"{dataset}{derived}: val accuracy vs retraining epochs, {s['methods']['fc']['neurons']} neurons")
        ax.set_xlabel("retraining epoch (cosine schedule over the whole budget)")
        ax.set_ylabel("val accuracy (mean over seeds)")
        ax.legend(fontsize=7)
    fig.savefig(path, format="png", dpi=100)


def print_table(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table
    console = Console()
    for dataset, s in summary.items():
        derived = " (derived: simulated sensor)" if s["derived"] else ""
        table = Table(title=f"{dataset}{derived}: {len(s['seeds'])} seeds, "
                            f"{s['methods']['fc']['neurons']} recurrent neurons, test split {s['splits']['test']}")
        for col in ("method", "test acc (mean ± sd)", "recurrent synapses", "motif sizes", "search cost / retrain"):
            table.add_column(col, justify="right")
        for m in METHODS:
            r = s["methods"][m]
            acc, syn, cost = r["test_accuracy"], r["recurrent_synapses"], r["search_cost_ratio"]
            table.add_row(LABELS[m], f"{acc['mean']:.4f} ± {acc['sd']:.4f}", f"{syn['mean']:.0f}",
                          ",".join(str(k) for k in r["motif_sizes"] if k) or "-",
                          "-" if cost["mean"] is None else f"{cost['mean']:.2f} ± {cost['sd']:.2f}")
        console.print(table)
        for claim, c in s["claims"].items():
            console.print(f"  {claim}: mean diff {c['mean']:+.4f} ± {c['sd']:.4f} (wins {c['wins']}/{c['n']}) -> "
                          f"{'holds' if c['holds'] else 'does NOT hold'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, 480 samples per split, 2 search epochs")
    parser.add_argument("--seeds", type=int, nargs="+", help="default: 0 1 2 3 4 (quick: 0)")
    parser.add_argument("--datasets", nargs="+", default=["fsdd", "events-digits"])
    parser.add_argument("--jobs", type=int, default=2, help="worker processes, one thread each")
    parser.add_argument("--out", default="bench/results/hrmas.json")
    parser.add_argument("--runs", default="build/bench_hrmas", help="run directories (search logs, models)")
    args = parser.parse_args()
    settings = QUICK if args.quick else FULL
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2, 3, 4])
    jobs = [{"dataset": d, "seed": s, "settings": settings[d], "root": args.runs} for d in args.datasets
            for s in seeds]
    jobs.sort(key=lambda j: j["dataset"] != "fsdd")  # the long ones first, so the pool drains evenly
    start = time.perf_counter()
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            done = list(pool.map(run_job, jobs))
    else:
        done = [run_job(j) for j in jobs]
    summary = summarise(done)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_stability(done, out.with_name("hrmas_stability.png"))
    plot_budget(summary, out.with_name("hrmas_budget.png"))
    payload = {"benchmark": "hrmas", "quick": args.quick, "machine": platform.machine(),
               "python": platform.python_version(), "wall_seconds": time.perf_counter() - start,
               "command": "bench/hrmas.py " + ("--quick" if args.quick else ""), "settings": settings,
               "seeds": seeds, "summary": summary, "runs": done}
    out.write_text(json.dumps(payload, indent=1, default=float) + "\n")
    print_table(summary)
    print(f"wrote {out}, {out.with_name('hrmas_stability.png')}, {out.with_name('hrmas_budget.png')} "
          f"in {payload['wall_seconds']:.0f} s")


if __name__ == "__main__":
    import rsnn2chip  # noqa: F401  (installs the lava import fix before anything imports lava)
    main()
