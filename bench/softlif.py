"""Soft-LIF training and spiking deployment (Hunsberger & Eliasmith 2015) on real image sets.

For each dataset and seed it trains a ReLU MLP and soft-LIF MLPs of the same shape (training noise sigma in
Hz, on the rate of neurons that fire), converts each soft-LIF net to a spiking RSNN (rsnn2chip.softlif),
compiles it for loihi2-sim and runs it on the bit-exact reference backend with regular rate-coded inputs
for several simulation lengths. It reports test error of

* the ReLU ANN, the soft-LIF ANN (its own rate function), the same weights under the hard LIF rate and
  under the rate the deployed Loihi neuron has for a constant drive (no refractory period, whole steps);
* the spiking network after T steps (class = output neuron with most spikes in T + depth steps).

Writes bench/results/softlif.json and bench/results/softlif.png. Runs are saved as they finish;
``--resume`` keeps the runs of an earlier invocation with the same settings.

    nice .venv/bin/python bench/softlif.py [--datasets digits fmnist] [--seeds 0 1 2] [--resume]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NAMES = {"digits": "digits-images", "fmnist": "fmnist-images"}
# Per-dataset protocol; command-line options override it for every dataset.
DEFAULTS = {
    "digits": {"sizes": [128, 64], "seeds": [0, 1, 2, 3, 4], "epochs": 60, "tau_refs": [0.001, 0.0005],
               "dts": [0.001, 0.005], "spike_limit": None},
    "fmnist": {"sizes": [256, 128], "seeds": [0, 1, 2], "epochs": 15, "tau_refs": [0.001], "dts": [0.001, 0.005],
               "spike_limit": 5000},
}
PAPER = {"dataset": "CIFAR-10", "ann": 14.03, "softlif_ann": 15.89, "spiking_sigma10": 16.46}


def run_key(run: dict) -> tuple:
    return (run["dataset"], run["seed"], run["model"], run.get("sigma"), run.get("tau_ref"), run["epochs"],
            tuple(run["sizes"]))


def spiking_errors(net, dep, x, y, steps_list, target) -> dict:
    from rsnn2chip.backends import run
    from rsnn2chip.compiler import compile_graph
    from rsnn2chip.data.images import encode, encoding_spec
    from rsnn2chip.softlif import to_rsnn

    model, meta = to_rsnn(net, dep)
    art = compile_graph(model.to_ir(), target)
    depth = len(model.layers)
    out = {"error": {}, "rate_hz": {}, "seconds": {}}
    for steps in steps_list:
        spec = encoding_spec("digits-images", steps=steps, max_rate=dep.input_rate)
        wrong, totals, start = 0, {}, time.perf_counter()
        for i in range(0, len(y), 250):
            xs = encode(x[i:i + 250], spec).astype(np.int8)
            xs = np.concatenate([xs, np.zeros((len(xs), depth, xs.shape[2]), np.int8)], axis=1)
            res = run(art, xs, xs.shape[1])
            counts = res.spikes[net.names[-1]].sum(axis=1)
            wrong += int((counts.argmax(axis=1) != y[i:i + 250]).sum())
            for name, s in res.spikes.items():
                totals[name] = totals.get(name, 0) + int(s.sum())
        out["error"][str(steps)] = wrong / len(y)
        out["rate_hz"][str(steps)] = {k: v / (len(y) * (steps + depth) * model.layers[k].size * dep.dt)
                                      for k, v in totals.items()}
        out["seconds"][str(steps)] = time.perf_counter() - start
    out["voltage_decay"] = meta["constants"]["voltage_decay"]
    return out


def one_run(dataset: str, seed: int, model: str, sigma, tau_ref, proto: dict, data: dict, args, target) -> dict:
    from rsnn2chip.softlif import Deployment, SoftLIFParams
    from rsnn2chip.softlif.ann import ANNConfig, build, evaluate, train

    (x_tr, y_tr), (x_te, y_te) = data["train"], data["test"]
    params = SoftLIFParams(tau_ref=tau_ref if tau_ref is not None else SoftLIFParams.tau_ref)
    cfg = ANNConfig(activation=model, noise=sigma or 0.0, epochs=proto["epochs"], seed=seed)
    sizes = [x_tr.shape[1], *proto["sizes"], 10]
    names = [f"hidden{i}" for i in range(len(proto["sizes"]))] + ["output"]
    net = build(sizes, names, params, cfg)
    start = time.perf_counter()
    train(net, x_tr, y_tr, cfg)
    run = {"dataset": dataset, "seed": seed, "model": model, "sigma": sigma, "tau_ref": tau_ref,
           "epochs": proto["epochs"], "sizes": sizes, "train_seconds": time.perf_counter() - start,
           "ann_error": evaluate(net, x_te, y_te)["error"], "test_samples": len(y_te)}
    if model == "softlif":
        run["lif_rate_error"] = evaluate(net.set_rate("lif"), x_te, y_te)["error"]
        limit = proto["spike_limit"] or len(y_te)
        run["spike_samples"] = limit
        run["deploy"] = {}
        for dt in proto["dts"]:
            dep = Deployment(dt=dt)
            net.set_rate("softlif")
            spiking = spiking_errors(net, dep, x_te[:limit], y_te[:limit], args.steps, target)
            run["deploy"][str(dt)] = {
                "loihi_rate_error": evaluate(net.set_rate("loihi", spiking["voltage_decay"], dt), x_te, y_te)["error"],
                "ann_error_on_spike_subset": evaluate(net.set_rate("softlif"), x_te[:limit], y_te[:limit])["error"],
                **spiking}
    return run


# --------------------------------------------------------------------------- summary

def stats(values) -> dict:
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    return {"mean": float(v.mean()) if v.size else None, "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "n": int(v.size)}


def summarize(runs: list[dict], steps: list[int]) -> dict:
    summary = {}
    for dataset in sorted({r["dataset"] for r in runs}):
        rows = {}
        mine = [r for r in runs if r["dataset"] == dataset]
        relu = [r for r in mine if r["model"] == "relu"]
        rows["relu"] = {"ann_error": stats(r["ann_error"] for r in relu)}
        combos = {(r["sigma"], r["tau_ref"]) for r in mine if r["model"] == "softlif"}
        for sigma, tau_ref in sorted(combos, key=lambda c: (-c[1], c[0])):  # the paper's tau_ref first
            group = [r for r in mine if r["model"] == "softlif" and r["sigma"] == sigma and r["tau_ref"] == tau_ref]
            row = {"sigma_hz": sigma, "tau_ref": tau_ref, "ann_error": stats(r["ann_error"] for r in group),
                   "lif_rate_error": stats(r["lif_rate_error"] for r in group), "deploy": {}}
            for dt in sorted({dt for r in group for dt in r["deploy"]}, key=float):
                deps = [r["deploy"][dt] for r in group if dt in r["deploy"]]
                row["deploy"][dt] = {
                    "loihi_rate_error": stats(d["loihi_rate_error"] for d in deps),
                    "ann_error_on_spike_subset": stats(d["ann_error_on_spike_subset"] for d in deps),
                    "spiking_error": {str(t): stats(d["error"][str(t)] for d in deps) for t in steps},
                    # per seed, so ratio and gap compare each spiking network with its own ANN
                    "spiking_over_ann": {str(t): stats(d["error"][str(t)] / max(d["ann_error_on_spike_subset"], 1e-9)
                                                       for d in deps) for t in steps},
                    "spiking_minus_ann": {str(t): stats(d["error"][str(t)] - d["ann_error_on_spike_subset"]
                                                        for d in deps) for t in steps},
                }
            rows[f"softlif sigma={sigma:g} tau_ref={tau_ref * 1e3:g}ms"] = row
        summary[dataset] = rows
    return summary


def noise_ratios(summary: dict, steps: list[int]) -> dict:
    """Spiking error with sigma = 10 divided by that with sigma = 0 (same tau_ref, dt, seeds)."""
    out = {}
    for dataset, rows in summary.items():
        for key, row in rows.items():
            if not key.startswith("softlif") or row["sigma_hz"] != 0:
                continue
            noisy = rows.get(key.replace("sigma=0 ", "sigma=10 "))
            if not noisy:
                continue
            for dt, dep in row["deploy"].items():
                ndep = noisy["deploy"].get(dt)
                if not ndep:
                    continue
                ratio = {str(t): _ratio(ndep["spiking_error"][str(t)]["mean"], dep["spiking_error"][str(t)]["mean"])
                         for t in steps}
                ratio["ann"] = _ratio(noisy["ann_error"]["mean"], row["ann_error"]["mean"])
                out[f"{dataset} tau_ref={row['tau_ref'] * 1e3:g}ms dt={float(dt) * 1e3:g}ms"] = ratio
    return out


def _ratio(a, b):
    return None if a is None or not b else a / b


def pct(s: dict | None) -> str:
    if not s or s.get("mean") is None:
        return "-"
    return f"{100 * s['mean']:.2f}" + (f"±{100 * s['std']:.2f}" if s["n"] > 1 else "")


def print_tables(summary: dict, ratios: dict, steps: list[int], runs: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table
    console = Console(width=200)
    for dataset, rows in summary.items():
        dts = sorted({dt for row in rows.values() for dt in row.get("deploy", {})}, key=float)
        n_seeds = len({r["seed"] for r in runs if r["dataset"] == dataset})
        for dt in dts:
            sample = next(r for r in runs if r["dataset"] == dataset and r["model"] == "softlif")
            table = Table(title=f"{dataset}: test error % (mean±sd over {n_seeds} seeds; ANN on "
                                f"{sample['test_samples']} images, spiking on {sample['spike_samples']}), "
                                f"deployed with dt = {float(dt) * 1e3:g} ms per step")
            for col in ("network", "ANN", "LIF rate", "Loihi rate", *[f"T={t}" for t in steps],
                        f"spike/ANN T={steps[-1]}", f"spike-ANN T={steps[-1]}"):
                table.add_column(col, justify="right")
            table.add_row("ReLU ANN", pct(rows["relu"]["ann_error"]), *["-"] * (len(steps) + 4))
            for key, row in rows.items():
                if key == "relu" or dt not in row["deploy"]:
                    continue
                dep = row["deploy"][dt]
                ratio = dep["spiking_over_ann"][str(steps[-1])]
                table.add_row(key, pct(row["ann_error"]), pct(row["lif_rate_error"]), pct(dep["loihi_rate_error"]),
                              *[pct(dep["spiking_error"][str(t)]) for t in steps],
                              f"{ratio['mean']:.2f}" if ratio["mean"] is not None else "-",
                              pct(dep["spiking_minus_ann"][str(steps[-1])]))
            console.print(table)
    table = Table(title="noise effect: error(sigma=10 Hz) / error(sigma=0), same seeds")
    for col in ("setting", "ANN", *[f"T={t}" for t in steps]):
        table.add_column(col, justify="right")
    for key, ratio in ratios.items():
        table.add_row(key, *[f"{ratio[k]:.2f}" if ratio[k] is not None else "-" for k in ["ann", *map(str, steps)]])
    console.print(table)


def plot(summary: dict, steps: list[int], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    panels = [(d, dt) for d, rows in summary.items()
              for dt in sorted({dt for row in rows.values() for dt in row.get("deploy", {})}, key=float)]
    cols = min(2, len(panels))
    rows_n = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(6.4 * cols, 4.4 * rows_n), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (dataset, dt) in zip(axes.flat, panels):
        rows = summary[dataset]
        ax.axhline(100 * rows["relu"]["ann_error"]["mean"], color="k", ls="--", lw=1, label="ReLU ANN")
        for i, (key, row) in enumerate(k for k in rows.items() if k[0] != "relu"):
            if dt not in row["deploy"]:
                continue
            dep = row["deploy"][dt]
            mean = [100 * dep["spiking_error"][str(t)]["mean"] for t in steps]
            sd = [100 * dep["spiking_error"][str(t)]["std"] for t in steps]
            line = ax.errorbar(steps, mean, yerr=sd, marker="o", ms=3, capsize=2,
                               label=f"spiking, σ={row['sigma_hz']:g} Hz, τref={row['tau_ref'] * 1e3:g} ms")
            ax.axhline(100 * row["ann_error"]["mean"], color=line[0].get_color(), ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(steps, [str(t) for t in steps])
        ax.set_xlabel(f"simulation length T (steps of {float(dt) * 1e3:g} ms)")
        ax.set_ylabel("test error (%)")
        lo, hi = ax.get_ylim()
        ticks = [t for t in (1, 1.5, 2, 3, 4, 5, 7, 10, 12, 15, 20, 30, 50, 70, 100) if lo <= t <= hi]
        ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(f"{dataset}, dt = {float(dt) * 1e3:g} ms (dotted: soft-LIF ANN of the same colour)", fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------- main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["digits", "fmnist"], choices=sorted(NAMES))
    parser.add_argument("--seeds", type=int, nargs="+", help="override every dataset's seeds")
    parser.add_argument("--epochs", type=int, help="override every dataset's epochs")
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.0, 10.0], help="training noise, Hz")
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 20, 50, 100, 200])
    parser.add_argument("--spike-limit", type=int, help="spiking test images per dataset (default: per dataset)")
    parser.add_argument("--out", default="bench/results/softlif.json")
    parser.add_argument("--resume", action="store_true", help="keep finished runs from --out")
    args = parser.parse_args()

    from rsnn2chip.data.images import static_images
    from rsnn2chip.errors import InputError
    from rsnn2chip.nn import prepare_torch
    from rsnn2chip.targets import load_target

    prepare_torch()
    target = load_target("loihi2-sim")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(out.read_text()) if args.resume and out.exists() else {"runs": [], "protocol": {}}
    done = {run_key(r): r for r in previous["runs"] if r.get("steps") == args.steps}
    # Datasets this invocation does not touch keep their earlier runs and protocol.
    runs = [r for r in previous["runs"] if r["dataset"] not in args.datasets and r.get("steps") == args.steps]
    kept_protocol = {d: p for d, p in previous["protocol"].get("datasets", {}).items()
                     if any(r["dataset"] == d for r in runs)}
    skipped = {}
    command = " ".join(["nice", ".venv/bin/python", *sys.argv])
    for dataset in args.datasets:
        proto = dict(DEFAULTS[dataset])
        if args.seeds:
            proto["seeds"] = args.seeds
        if args.epochs:
            proto["epochs"] = args.epochs
        if args.spike_limit:
            proto["spike_limit"] = args.spike_limit
        try:
            data = {split: static_images(NAMES[dataset], split)[:2] for split in ("train", "test")}
        except InputError as err:
            skipped[dataset] = err.render()
            # Earlier results for a dataset whose files are missing here are kept, not erased.
            kept = [r for r in previous["runs"] if r["dataset"] == dataset and r.get("steps") == args.steps]
            runs += kept
            if kept and dataset in previous["protocol"].get("datasets", {}):
                kept_protocol[dataset] = previous["protocol"]["datasets"][dataset]
            print(f"skipping {dataset}: {err.render()}" + (f" (keeping {len(kept)} earlier runs)" if kept else ""),
                  flush=True)
            continue
        plan = [("relu", None, None)] + [("softlif", s, tr) for tr in proto["tau_refs"] for s in args.sigmas]
        for seed in proto["seeds"]:
            for model, sigma, tau_ref in plan:
                probe = {"dataset": dataset, "seed": seed, "model": model, "sigma": sigma, "tau_ref": tau_ref,
                         "epochs": proto["epochs"], "sizes": [data["train"][0].shape[1], *proto["sizes"], 10]}
                cached = done.get(run_key(probe))
                if cached and (model == "relu" or (set(cached["deploy"]) == {str(dt) for dt in proto["dts"]}
                                                   and cached["spike_samples"] == (proto["spike_limit"]
                                                                                   or cached["test_samples"]))):
                    runs.append(cached)
                    continue
                start = time.perf_counter()
                run = one_run(dataset, seed, model, sigma, tau_ref, proto, data, args, target)
                run["steps"] = args.steps
                runs.append(run)
                spk = {dt: {t: round(100 * e, 2) for t, e in d["error"].items()}
                       for dt, d in run.get("deploy", {}).items()}
                print(f"{dataset} seed {seed} {model} sigma={sigma} tau_ref={tau_ref}: ANN "
                      f"{100 * run['ann_error']:.2f}%  spiking {spk}  ({time.perf_counter() - start:.0f} s)",
                      flush=True)
                write(out, runs, args, command, skipped, kept_protocol)
    write(out, runs, args, command, skipped, kept_protocol)
    result = json.loads(out.read_text())
    print_tables(result["summary"], result["noise_ratio"], args.steps, runs)
    plot(result["summary"], args.steps, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")


def write(out: Path, runs: list[dict], args, command: str, skipped: dict, kept_protocol: dict) -> None:
    import torch
    summary = summarize(runs, args.steps)
    payload = {
        "format": "rsnn2chip.bench.softlif", "version": 1, "command": command,
        "platform": {"python": platform.python_version(), "torch": torch.__version__, "machine": platform.machine()},
        "protocol": {"datasets": {**kept_protocol, **{
                         d: {**DEFAULTS[d], **({"seeds": args.seeds} if args.seeds else {}),
                             **({"epochs": args.epochs} if args.epochs else {}),
                             **({"spike_limit": args.spike_limit} if args.spike_limit else {}),
                             "command": command} for d in args.datasets if d not in skipped}},
                     "sigmas_hz": args.sigmas, "steps": args.steps, "target": "loihi2-sim", "backend": "reference",
                     "input_code": "regular rate code, 1 spike/step at intensity 1",
                     "readout": "argmax of output spike counts over T + depth steps",
                     "noise_units": "Hz (spikes/s), added to the rate where j > 1, as in the paper"},
        "paper_cifar10_percent": PAPER, "skipped": skipped, "runs": runs, "summary": summary,
        "noise_ratio": noise_ratios(summary, args.steps),
    }
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1) + "\n")
    tmp.replace(out)


if __name__ == "__main__":
    main()
