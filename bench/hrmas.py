"""HRMAS against hand-designed RSNNs of the same neuron count, paired over seeds (docs/hrmas.md).

Every network is trained by the training recipe (a budget in optimizer steps, best on validation, early
stopping) and tested on the test split; every search uses ``examples/search/space_fsdd.yaml`` (the defaults a
user gets) with only the layer size and seed changed. Per (data set, size, seed):

* ``hrmas``          the example space as shipped
* ``hrmas_ip_flip``  the same with IP switched (off if the space has it on, on if off): the IP ablation
* ``hrmas_soft``     the same without the discretisation remedies (no annealing, no entropy term)
* ``hrmas_inherit``  ``hrmas``'s search, retrained from the supernet's weights instead of fresh ones
* ``unstructured``   DARTS over the type of every recurrent (post, pre) pair, no motifs (``--methods``)
* ``scml_shuffled``  ``hrmas``'s arch with its intra and lateral types permuted (same counts, not searched)
* ``fc``             a fully-connected recurrent layer (``lif_recurrent``)
* ``random_sparse``  random free-sign recurrent synapses, as many as ``hrmas``'s arch has
* ``feedforward``    no recurrent synapses at all (how much the data needs recurrence)

Recorded for each network: test accuracy, recurrent synapses, neurocores on loihi2-sim (compiled), and for
searches the search's wall time as a multiple of one training run of its network, the final entropy of the
choices and the accuracy drop at discretisation. The searched model is also compiled and run: its test accuracy
on the reference backend, and Lava == reference on its first 4 test samples. The tiny sets (``fsdd4a``, ``fsdd4b``: 4 FSDD digits, 40
training recordings) check that a search with defaults works on little data.

    nice .venv/bin/python bench/hrmas.py --resume      # background; rerun with --resume after an interruption
    .venv/bin/python bench/hrmas.py --quick             # smoke: the tiny sets, seed 0 (about 2 min)

Writes bench/results/hrmas.json; run directories (logs, models, per-method results) under build/bench_hrmas/.
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
SPACE = ROOT / "examples" / "search" / "space_fsdd.yaml"
LABELS = {"hrmas": "HRMAS, example space as shipped", "hrmas_ip_flip": "HRMAS, IP switched",
          "hrmas_soft": "HRMAS without annealing / entropy", "hrmas_inherit": "HRMAS, retrained from supernet weights",
          "unstructured": "unstructured search (no motifs)", "scml_shuffled": "HRMAS arch, types shuffled",
          "fc": "fully-connected RSNN", "random_sparse": "random sparse RSNN, HRMAS synapse count",
          "feedforward": "no recurrence"}
SEARCHES = {"hrmas", "hrmas_ip_flip", "hrmas_soft", "unstructured"}
FULL_METHODS = ["hrmas", "hrmas_ip_flip", "hrmas_soft", "hrmas_inherit", "scml_shuffled", "fc", "random_sparse",
                "feedforward"]
SCALE_METHODS = ["hrmas", "fc", "random_sparse"]
TINY_METHODS = ["hrmas", "fc"]
TINY_SETS = ("fsdd4a", "fsdd4b")
CLAIMS = {"hrmas_beats_fc": ("hrmas", "fc"), "hrmas_beats_random_sparse": ("hrmas", "random_sparse"),
          "search_beats_shuffled_types": ("hrmas", "scml_shuffled"), "ip_switch": ("hrmas", "hrmas_ip_flip"),
          "remedies_help": ("hrmas", "hrmas_soft"), "reinit_beats_inherit": ("hrmas", "hrmas_inherit"),
          "motifs_beat_unstructured": ("hrmas", "unstructured"), "recurrence_helps_fc": ("fc", "feedforward")}


def data_arg(dataset: str) -> str:
    """What ``load_splits`` reads: FSDD by name, the tiny sets and bench/datasets.py's sets as built files."""
    from datasets import build, build_fsdd_tiny
    if dataset == "fsdd":
        return dataset
    return str(build_fsdd_tiny(dataset) if dataset in TINY_SETS else build(dataset))


def _switch_ip(space, hidden: dict) -> None:
    space.ip.enabled = not space.ip.enabled


def _no_remedies(space, hidden: dict) -> None:
    space.search.temperature_end = space.search.temperature_start
    space.search.entropy_weight = 0.0


def _no_motifs(space, hidden: dict) -> None:
    hidden["type"] = "unstructured_search"
    hidden.pop("motif_sizes", None)


# Each search method is the example space with one change.
SPACE_CHANGES = {"hrmas": lambda space, hidden: None, "hrmas_ip_flip": _switch_ip, "hrmas_soft": _no_remedies,
                 "unstructured": _no_motifs}
assert set(SPACE_CHANGES) == SEARCHES


def method_space(method: str, size: int, seed: int):
    """The example space with the layer size and seed set, and the method's one change."""
    from rsnn2chip.search.space import load_space
    space = load_space(SPACE)
    space.search.seed = seed
    hidden = space.searched_layers()[0]
    hidden["size"] = size
    SPACE_CHANGES[method](space, hidden)
    return space


def plain_layer(method: str, hrmas_arch: dict, seed: int) -> dict:
    """The hidden layer of a baseline, with the searched layer's neuron and size."""
    from rsnn2chip.nn import matching_random_sparse
    searched = copy.deepcopy(hrmas_arch["layers"][0])
    base = {key: searched[key] for key in ("name", "size", "neuron")}
    if method == "scml_shuffled":
        rng = np.random.default_rng(1000 + seed)
        k = searched["motif_size"]
        searched["intra_types"] = rng.permutation(np.ravel(searched["intra_types"])).reshape(k, k).tolist()
        searched["inter_types"] = rng.permutation(np.ravel(searched["inter_types"])).reshape(2, k).tolist()
        return searched
    if method == "random_sparse":
        return matching_random_sparse(searched, mask_seed=seed)
    return {**base, "type": {"fc": "lif_recurrent", "feedforward": "lif_dense"}[method]}


def network_record(model_path: Path, arch: dict, test) -> dict:
    from rsnn2chip.checkpoint import model_from_checkpoint
    from rsnn2chip.compiler import compile_file
    from rsnn2chip.search.supernet import synapse_count
    from rsnn2chip.targets import load_target
    from rsnn2chip.train import evaluate
    result = evaluate(model_from_checkpoint(model_path), test)
    compiled = compile_file(model_path, load_target("loihi2-sim"))
    hidden = arch["layers"][0]
    return {"test_accuracy": result["accuracy"], "test_spike_rate": result["mean_spike_rate"],
            "recurrent_synapses": synapse_count(hidden), "neurons": hidden["size"],
            "motif_size": hidden.get("motif_size"), "cores": compiled.cores.number_of_nodes()}


def run_method(method: str, group: dict, data, out: Path) -> dict:
    from rsnn2chip.fileio import atomic_write_bytes
    from rsnn2chip.search.hrmas import ARCH_FILE, MODEL_FILE, retrain_phase, run_hrmas, search_phase
    from rsnn2chip.train import TrainConfig, train
    train_data, val, test = data
    size, seed = group["size"], group["seed"]
    if method in SEARCHES:
        result = run_hrmas(method_space(method, size, seed), data, out / method, resume=True, plots=False)
        arch = _read_yaml(out / method / ARCH_FILE)
        record = {"search_seconds": result["search_seconds"], "retrain_seconds": result["retrain_seconds"],
                  "search_cost": result["search_seconds"] / result["retrain_seconds"],
                  "entropy": result["entropy"], "discretisation": result["discretisation"]}
        model_path = out / method / MODEL_FILE
    elif method == "hrmas_inherit":
        space = method_space("hrmas", size, seed).resolved(train_data.n_channels, train_data.n_classes)
        outcome = search_phase(space, train_data, val, out / "hrmas", resume=True)  # finished: loads it
        space.retrain.init = "inherit"
        arch, _, seconds = retrain_phase(space, outcome, train_data, val, out / method)
        record = {"retrain_seconds": seconds}
        model_path = out / method / MODEL_FILE
    else:
        hrmas_arch = _read_yaml(out / "hrmas" / ARCH_FILE)
        arch = {**hrmas_arch, "name": method,
                "layers": [plain_layer(method, hrmas_arch, seed), copy.deepcopy(hrmas_arch["layers"][1])]}
        model_path = out / f"{method}.pt"
        start = time.perf_counter()
        train(arch, train_data, val, TrainConfig(seed=seed), model_path)
        record = {"retrain_seconds": time.perf_counter() - start}
    record.update(network_record(model_path, arch, test))
    atomic_write_bytes(out / f"{method}.json", json.dumps(record, indent=1, default=float).encode())
    return record


def deployed_check(group_dir: Path, dataset: str, lava_samples: int = 4) -> dict:
    """The searched model deployed (bench/accuracy.py's ``deployed_run``), cached in the run directory."""
    cached = group_dir / "hrmas_deployed.json"
    if cached.exists():
        return json.loads(cached.read_text())
    from accuracy import deployed_run
    from rsnn2chip.data import load_splits
    from rsnn2chip.fileio import atomic_write_bytes
    depth = len(_read_yaml(group_dir / "hrmas" / "arch.yaml")["layers"])
    record = deployed_run(group_dir / "hrmas" / "model.pt", load_splits(data_arg(dataset))[2], depth, lava_samples)
    atomic_write_bytes(cached, json.dumps(record).encode())
    return record


def _read_yaml(path: Path) -> dict:
    import yaml
    return yaml.safe_load(path.read_text())


def run_group(group: dict) -> dict:
    """Every method of one (data set, size, seed), each result cached in its run directory."""
    import torch
    torch.set_num_threads(1)
    from rsnn2chip.data import load_splits
    from rsnn2chip.nn import prepare_torch
    prepare_torch()
    out = Path(group["runs"]) / f"{group['dataset']}_n{group['size']}_s{group['seed']}"
    out.mkdir(parents=True, exist_ok=True)
    data = load_splits(data_arg(group["dataset"]))
    results = {}
    for method in group["methods"]:
        cached = out / f"{method}.json"
        results[method] = json.loads(cached.read_text()) if cached.exists() else run_method(method, group, data, out)
    return {**{k: group[k] for k in ("dataset", "size", "seed")}, "results": results,
            "splits": {"train": len(data[0]), "val": len(data[1]), "test": len(data[2])}}


# --------------------------------------------------------------------------- aggregation

def mean_sd(values) -> dict:
    v = np.asarray([x for x in values if x is not None], np.float64)
    return {"mean": float(v.mean()) if v.size else None, "sd": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "n": int(v.size)}


def paired(runs: list[dict], a: str, b: str) -> dict:
    diffs = [r["results"][a]["test_accuracy"] - r["results"][b]["test_accuracy"] for r in runs]
    stats = mean_sd(diffs)
    return {**stats, "diffs": diffs, "wins": int(sum(d > 0 for d in diffs)), "ties": int(sum(d == 0 for d in diffs)),
            "holds": bool(stats["mean"] >= 0)}


def summarise(groups: list[dict]) -> dict:
    summary = {}
    for key in sorted({(g["dataset"], g["size"]) for g in groups}):
        runs = sorted((g for g in groups if (g["dataset"], g["size"]) == key), key=lambda g: g["seed"])
        methods = {}
        for m in runs[0]["results"]:
            rows = [r["results"][m] for r in runs]
            methods[m] = {field: mean_sd(row.get(field) for row in rows)
                          for field in ("test_accuracy", "recurrent_synapses", "cores", "search_cost",
                                        "retrain_seconds", "test_spike_rate")}
            methods[m]["motif_sizes"] = [row["motif_size"] for row in rows]
            if "lava_equals_reference" in rows[0]:
                methods[m]["deployed_test_accuracy"] = mean_sd(row["deployed_test_accuracy"] for row in rows)
                methods[m]["lava_equals_reference"] = all(row["lava_equals_reference"] for row in rows)
                methods[m]["lava_samples"] = sum(row["lava_samples"] for row in rows)
            if m in SEARCHES:
                methods[m]["discretisation_drop"] = mean_sd(row["discretisation"]["drop"] for row in rows)
                methods[m]["entropy"] = {kind: mean_sd(row["entropy"]["hidden"].get(kind) for row in rows)
                                         for kind in ("size", "types")}
        claims = {name: paired(runs, a, b) for name, (a, b) in CLAIMS.items() if a in methods and b in methods}
        fc_synapses = methods.get("fc", {}).get("recurrent_synapses", {}).get("mean")
        summary[f"{key[0]} n={key[1]}"] = {
            "dataset": key[0], "neurons": key[1], "seeds": [r["seed"] for r in runs], "splits": runs[0]["splits"],
            "methods": methods, "claims": claims,
            "hrmas_synapse_share_of_fc": (methods["hrmas"]["recurrent_synapses"]["mean"] / fc_synapses
                                          if fc_synapses else None)}
    return summary


def print_table(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table
    console = Console()
    for name, s in summary.items():
        table = Table(title=f"{name}: {len(s['seeds'])} seeds, test split {s['splits']['test']}")
        for col in ("method", "test acc", "recurrent synapses", "cores", "motif sizes", "search / one training"):
            table.add_column(col, justify="right")
        for m, r in s["methods"].items():
            acc, cost = r["test_accuracy"], r["search_cost"]
            table.add_row(LABELS[m], f"{acc['mean']:.4f} ± {acc['sd']:.4f}", f"{r['recurrent_synapses']['mean']:.0f}",
                          f"{r['cores']['mean']:.1f}", ",".join(str(k) for k in r["motif_sizes"] if k) or "-",
                          "-" if cost["mean"] is None else f"{cost['mean']:.2f}")
        console.print(table)
        for claim, c in s["claims"].items():
            console.print(f"  {claim}: {c['mean'] * 100:+.2f} pp ± {c['sd'] * 100:.2f} "
                          f"(won {c['wins']}, tied {c['ties']} of {c['n']}) -> {'holds' if c['holds'] else 'fails'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: the tiny sets only, seed 0, into hrmas_quick.json and its own run directory")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4],
                        help="seeds at the first size and on the tiny sets")
    parser.add_argument("--scale-seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds at larger sizes")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256],
                        help="FSDD layer sizes; the first gets every method, larger ones hrmas/fc/random_sparse")
    parser.add_argument("--methods", nargs="+", default=FULL_METHODS, choices=list(LABELS),
                        help="methods at the first size (default: all but unstructured)")
    parser.add_argument("--datasets", nargs="+", default=["fsdd"],
                        help="fsdd, or a set bench/datasets.py builds (fmnist-rows, UCR/UEA names)")
    parser.add_argument("--no-tiny", action="store_true", help="skip the tiny-set check")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes, one thread each")
    parser.add_argument("--resume", action="store_true", help="keep finished methods of an earlier run")
    parser.add_argument("--out", help="default bench/results/hrmas.json (--quick: hrmas_quick.json)")
    parser.add_argument("--runs", help="run directories: logs, models, results (default build/bench_hrmas[_quick])")
    args = parser.parse_args()
    suffix = "_quick" if args.quick else ""
    args.out = args.out or f"bench/results/hrmas{suffix}.json"
    args.runs = args.runs or f"build/bench_hrmas{suffix}"
    seeds, sizes = ([0], args.sizes[:1]) if args.quick else (args.seeds, args.sizes)
    if args.quick:
        args.datasets = []
    if not args.resume:
        shutil.rmtree(args.runs, ignore_errors=True)
    groups = [] if args.no_tiny else [{"dataset": d, "size": sizes[0], "seed": s, "methods": TINY_METHODS,
                                       "runs": args.runs} for d in TINY_SETS for s in seeds]
    groups += [{"dataset": d, "size": n, "seed": s, "methods": args.methods if n == sizes[0] else SCALE_METHODS,
                "runs": args.runs} for d in args.datasets for n in sizes
               for s in (seeds if n == sizes[0] else args.scale_seeds)]
    # Lava sets the fork start method when first imported and fails if the pool has chosen one already.
    import rsnn2chip.lava  # noqa: F401
    start, done = time.perf_counter(), []
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(run_group, g): g for g in groups}
        for future in as_completed(futures):
            done.append(future.result())
            g, elapsed = futures[future], time.perf_counter() - start
            left = elapsed / len(done) * (len(groups) - len(done))
            print(f"[{len(done)}/{len(groups)}] {g['dataset']} n={g['size']} seed {g['seed']}: "
                  f"hrmas {done[-1]['results']['hrmas']['test_accuracy']:.4f}; about {left / 60:.0f} min left",
                  flush=True)
    for g in done:  # in this process, one at a time: Lava starts a process per population
        g["results"]["hrmas"].update(deployed_check(
            Path(args.runs) / f"{g['dataset']}_n{g['size']}_s{g['seed']}", g["dataset"]))
    summary = summarise(done)
    compute = sum(r.get("search_seconds", 0) + r.get("retrain_seconds", 0) for g in done for r in g["results"].values())
    payload = {"compute_seconds": compute, "benchmark": "hrmas", "quick": args.quick, "machine": platform.machine(),
               "python": platform.python_version(), "wall_seconds": time.perf_counter() - start,
               "command": " ".join(["bench/hrmas.py"] + [a for a in sys.argv[1:] if a != "--resume"]),
               "space": str(SPACE.relative_to(ROOT)),
               "seeds": seeds, "scale_seeds": args.scale_seeds, "sizes": sizes, "summary": summary, "runs": done}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=1, default=float) + "\n")
    print_table(summary)
    print(f"wrote {out} in {payload['wall_seconds']:.0f} s")


if __name__ == "__main__":
    import rsnn2chip  # noqa: F401  (installs the lava import fix before anything imports lava)
    main()
