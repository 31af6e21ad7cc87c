"""Core-mapping benchmark: cores / lower bound, inter-core traffic, compile time and peak memory.

Networks (built directly as IR with random weights, no training):

* ``scml``: SC-ML-structured (docs/scml.md, docs/hrmas.md). An input
  population of 700 channels (SHD-sized), two SC-ML recurrent layers of N/2
  neurons each with motifs of k = 16 neurons (dense k x k inside a motif,
  self-loops included; neuron i of motif m linked one-to-one to neuron i of
  motifs m-1 and m+1, a ring), and a readout of 20 neurons.
  Feed-forward fan-in is 80 per neuron so that 1M neurons carry ~98M synapses
  (SC-ML's recurrence alone is only k + 2 = 18 per neuron): each motif of
  layer 1 listens densely to 80 random input channels; each motif of layer 2
  listens densely to 80 random neurons of a 160-neuron window of layer 1 at
  the same relative position (a topographic projection, as between stacked
  sensory layers). The readout is dense, as in SC-ML, but from a pool of
  min(1024, N/2) layer-2 neurons taken at a regular stride: a dense readout
  from all 500k neurons cannot exist on Loihi (one neuron's fan-in is bounded
  by a core's 4096 input axons and 192 KB). Synapses: about N * 98 +
  20 * min(1024, N/2) before quantization; weights that round to a zero
  mantissa are not stored, so the mapped count is a few percent lower.
* ``random``: one non-motif population of N neurons, each with 20 random
  recurrent sources and 4 of 256 input channels, plus a readout of 20 neurons
  from a strided pool of 20. Locality-free: the hard case for every mapper.

For each network and mapper it reports cores used / lower bound, synapses
crossing cores and hop-weighted synapses (after placement), against a
*naive* baseline: units shuffled randomly (fixed seed), then packed by the same
exact packer and placed in plain snake order, i.e. a packer blind to locality.
Each size runs in its own subprocess so peak memory (``ru_maxrss``) is its own.
Compile time = quantize + resource demand + partition + place + design-rule
checks with the default mapper (greedy), the same passes `rsnn2chip compile`
runs; mapper and placement times are listed per mapper.

Target: loihi2-sim with chip.chips raised to 64 so no size stops at the
chip_cores rule (the 1M network needs about 12 chips of 120 cores).

    .venv/bin/python bench/mapping.py            # 1k, 10k, 100k, 1M SC-ML; 1k-100k random
    .venv/bin/python bench/mapping.py --quick    # 1k and 10k only
    .venv/bin/python bench/mapping.py --sizes 1000 100000 --families scml
"""
from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rsnn2chip import ir  # noqa: E402
from rsnn2chip.neurons.cuba_lif import CubaLIF  # noqa: E402
from rsnn2chip.passes import checks  # noqa: E402
from rsnn2chip.passes.partition import MAPPERS, Packer, partition, repair  # noqa: E402
from rsnn2chip.passes.place import build_core_graph, place_cores, placement_cost, traffic_matrix  # noqa: E402
from rsnn2chip.passes.quantize import QuantizationConfig, quantize  # noqa: E402
from rsnn2chip.passes.resources import lower_bound, network_demand, unit_core_usage  # noqa: E402
from rsnn2chip.targets import load_target, target_from_dict  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "mapping.json"
DEFAULT_SIZES = (1_000, 10_000, 100_000, 1_000_000)
RANDOM_MAX = 100_000  # random graphs beyond this are all-to-all between thousands of cores; see docstring
MOTIF = 16
N_INPUT = 700
FF_FAN_IN = 80
READOUT = 20
READOUT_POOL = 1024


# --------------------------------------------------------------------------- networks

def _csr(rows_by_neuron: np.ndarray, shape, rng) -> sp.csr_matrix:
    """CSR from an (n_rows, fan_in) array of sorted, distinct column indices, random mixed-sign weights."""
    n, f = rows_by_neuron.shape
    data = rng.standard_normal(n * f) * (1.0 / np.sqrt(max(f, 1)))
    indptr = np.arange(0, n * f + 1, f, dtype=np.int64)
    return sp.csr_matrix((data, rows_by_neuron.ravel().astype(np.int32), indptr), shape=shape)


def _dedup_csr(rows: np.ndarray, cols: np.ndarray, shape, rng) -> sp.csr_matrix:
    m = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=shape)
    m.sum_duplicates()
    m.data = rng.standard_normal(m.nnz) * (1.0 / np.sqrt(max(m.nnz / max(shape[0], 1), 1)))
    return m


def _neuron(threshold=1.0):
    return CubaLIF(0.2, 0.05, threshold, 0.0)


def _recurrent(n: int, k: int, rng) -> sp.csr_matrix:
    """SC-ML recurrence: dense k x k motifs plus one-to-one links to motifs m-1 and m+1 (a ring)."""
    m = n // k
    idx = np.arange(n)
    motif, j = idx // k, idx % k
    own = motif[:, None] * k + np.arange(k)[None, :]
    if m >= 3:
        lateral = np.stack([((motif - 1) % m) * k + j, ((motif + 1) % m) * k + j], axis=1)
        cols = np.sort(np.concatenate([own, lateral], axis=1), axis=1)
        return _csr(cols, (n, n), rng)
    lateral = np.stack([((motif - 1) % m) * k + j, ((motif + 1) % m) * k + j], axis=1)
    cols = np.concatenate([own, lateral], axis=1)
    return _dedup_csr(np.repeat(idx, cols.shape[1]), cols.ravel(), (n, n), rng)


def _motif_fan_in(n_post: int, k: int, n_pre: int, fan_in: int, rng, window: int | None) -> sp.csr_matrix:
    """Each motif listens densely to ``fan_in`` sources: random among all (window None) or in a local window."""
    m = n_post // k
    f = min(fan_in, n_pre)
    if window is None:
        # One independent random subset per motif: argsort of random keys, top f, sorted.
        picks = np.sort(np.argsort(rng.random((m, n_pre)), axis=1)[:, :f], axis=1) if n_pre <= 4096 else \
            np.sort(rng.integers(0, n_pre, (m, f)), axis=1)
    else:
        w = min(window, n_pre)
        centre = ((np.arange(m) * k + k // 2) * n_pre) // max(n_post, 1)
        start = np.clip(centre - w // 2, 0, n_pre - w)
        offs = np.sort(np.argsort(rng.random((m, w)), axis=1)[:, :f], axis=1)
        picks = start[:, None] + offs
    cols = np.repeat(picks, k, axis=0)
    if window is None and n_pre > 4096:  # sampled with replacement: drop repeats
        idx = np.arange(n_post)
        return _dedup_csr(np.repeat(idx, f), cols.ravel(), (n_post, n_pre), rng)
    return _csr(cols, (n_post, n_pre), rng)


def _readout(n_pre: int, pool: int, rng) -> sp.csr_matrix:
    """Dense readout from a pool of ``pool`` neurons taken at a regular stride over the layer."""
    f = min(pool, n_pre)
    cols = np.tile((np.arange(f) * n_pre) // f, (READOUT, 1))
    return _csr(cols, (READOUT, n_pre), rng)


def scml_network(n: int, seed: int = 0, k: int = MOTIF):
    rng = np.random.default_rng(seed)
    half = max(k, (n // 2) // k * k)
    g = ir.new_graph(f"scml{n}")
    ir.add_population(g, ir.Population("input", N_INPUT, "input"))
    ir.add_population(g, ir.Population("l1", half, "l1", _neuron(), k))
    ir.add_population(g, ir.Population("l2", half, "l2", _neuron(), k))
    ir.add_population(g, ir.Population("readout", READOUT, "readout", _neuron()))
    ir.add_projection(g, ir.Projection("input", "l1", _motif_fan_in(half, k, N_INPUT, FF_FAN_IN, rng, None)))
    ir.add_projection(g, ir.Projection("l1", "l1", _recurrent(half, k, rng)))
    ir.add_projection(g, ir.Projection("l1", "l2", _motif_fan_in(half, k, half, FF_FAN_IN, rng, 2 * FF_FAN_IN)))
    ir.add_projection(g, ir.Projection("l2", "l2", _recurrent(half, k, rng)))
    ir.add_projection(g, ir.Projection("l2", "readout", _readout(half, READOUT_POOL, rng)))
    return g


def random_network(n: int, seed: int = 0, fan_in: int = 20, input_fan_in: int = 4, n_input: int = 256):
    rng = np.random.default_rng(seed)
    g = ir.new_graph(f"random{n}")
    ir.add_population(g, ir.Population("input", n_input, "input"))
    ir.add_population(g, ir.Population("rec", n, "rec", _neuron()))
    ir.add_population(g, ir.Population("readout", READOUT, "readout", _neuron()))
    idx = np.arange(n)
    ir.add_projection(g, ir.Projection("input", "rec", _dedup_csr(
        np.repeat(idx, input_fan_in), rng.integers(0, n_input, n * input_fan_in), (n, n_input), rng)))
    ir.add_projection(g, ir.Projection("rec", "rec", _dedup_csr(
        np.repeat(idx, fan_in), rng.integers(0, n, n * fan_in), (n, n), rng)))
    ir.add_projection(g, ir.Projection("rec", "readout", _readout(n, 20, rng)))
    return g


FAMILIES = {"scml": scml_network, "random": random_network}


def bench_target():
    base = load_target("loihi2-sim")
    data = copy.deepcopy(base.data)
    data["chip"]["chips"] = 64
    data["target"]["name"] = "loihi2-sim-x64"
    return target_from_dict(data, "bench: loihi2-sim with chip.chips = 64")


# --------------------------------------------------------------------------- one case (in a subprocess)

def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def naive_assignment(demand, target, seed: int = 0) -> np.ndarray:
    order = np.random.default_rng(seed).permutation(demand.n_units)
    return repair(demand, target, Packer(demand, target).pack(order))


def traffic_figures(demand, core_of_unit, target, refine: bool) -> dict:
    stats = unit_core_usage(demand, core_of_unit, target)
    n_cores = int(core_of_unit.max()) + 1
    w = traffic_matrix(stats, n_cores)
    t0 = time.perf_counter()
    positions, info = place_cores(w, n_cores, target, refine=refine)
    return {"cores": n_cores, "intercore_synapses": int(w.sum() / 2),
            "hop_weighted": float(placement_cost(w, positions, target)),
            "hop_weighted_snake": float(info["cost_snake"]), "place_s": time.perf_counter() - t0,
            "placement": info["method"]}


def run_case(family: str, n: int, mappers: list[str], seed: int = 0) -> dict:
    target = bench_target()
    out = {"family": family, "neurons_requested": n}
    t0 = time.perf_counter()
    graph = FAMILIES[family](n, seed)
    out["build_s"] = time.perf_counter() - t0
    out["neurons"] = ir.total_neurons(graph, "lif")
    out["synapses_float"] = int(sum(p.n_synapses for p in ir.projections(graph)))
    out["rss_after_build_mb"] = _rss_mb()
    gc.collect()

    t = time.perf_counter()
    quantize(graph, target, QuantizationConfig())
    quantize_s = time.perf_counter() - t
    t = time.perf_counter()
    demand = network_demand(graph)
    demand_s = time.perf_counter() - t
    out["synapses"] = int(demand.incoming.nnz)  # stored on chip: zero mantissas dropped
    out["mappers"] = {}
    for name in mappers:
        demand.cache.clear()  # each mapper timed from scratch, as one compile would run it
        times = {"quantize": quantize_s, "demand": demand_s}
        t = time.perf_counter()
        mapping = partition(demand, target, name)
        times["partition"] = time.perf_counter() - t
        t = time.perf_counter()
        cores = build_core_graph(demand, mapping, target)
        times["place"] = time.perf_counter() - t
        t = time.perf_counter()
        problems = checks.run_checks(checks.CheckContext(graph, demand, cores, target))
        times["checks"] = time.perf_counter() - t
        info = cores.graph
        figures = {"cores": info["n_cores"], "cores_over_lb": info["cores_over_lb"],
                   "intercore_synapses": info["intercore_synapses"],
                   "hop_weighted": float(info["hop_weighted_synapses"]),
                   "hop_weighted_snake": float(info["placement"]["cost_snake"]),
                   "placement": info["placement"]["method"], "chips_used": info["chips_used"],
                   "violations": sorted({p.rule for p in problems if p.severity == "error"}),
                   "compile_s": sum(times.values()), "compile_breakdown_s": times,
                   "map_s": times["partition"] + times["place"]}
        if name == "auto":
            figures["auto_chose"] = info["mapper_chosen"]
            figures["auto_candidates"] = info["mapper_candidates"]
        out["mappers"][name] = figures
        out["lower_bound"] = info["lower_bound"]
        out[f"rss_after_{name}_mb"] = _rss_mb()
    demand.cache.clear()
    t = time.perf_counter()
    naive = naive_assignment(demand, target, seed)
    part_s = time.perf_counter() - t
    figures = traffic_figures(demand, naive, target, refine=False)
    figures["map_s"] = part_s + figures.pop("place_s")
    figures["cores_over_lb"] = figures["cores"] / lower_bound(demand, target)["cores"]
    out["mappers"]["naive"] = figures
    out["compile_s"] = out["mappers"].get("greedy", next(iter(out["mappers"].values())))["compile_s"]
    out["peak_rss_mb"] = _rss_mb()
    return out


# --------------------------------------------------------------------------- driver

def _run_subprocess(family: str, n: int, mappers: list[str]) -> dict:
    cmd = [sys.executable, __file__, "--one", f"{family}:{n}", "--mappers", *mappers]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        return {"family": family, "neurons_requested": n, "error": proc.stderr.strip()[-2000:],
                "wall_s": time.perf_counter() - t}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _table(results: list[dict]) -> str:
    head = (f"{'network':>14} {'neurons':>9} {'synapses':>11} {'LB':>5} {'mapper':>7} {'cores':>6} {'c/LB':>6} "
            f"{'x-core syn':>11} {'/naive':>6} {'/metis':>6} {'hop-w syn':>12} {'/naive':>6} {'/metis':>6} "
            f"{'map s':>6} {'compile s':>9}")
    lines = [head, "-" * len(head)]
    for r in results:
        name = f"{r['family']}-{r['neurons_requested']}"
        if "error" in r:
            lines.append(f"{name:>14} ERROR {r['error'].splitlines()[-1] if r['error'] else ''}")
            continue
        naive = r["mappers"]["naive"]
        metis = r["mappers"].get("metis")

        def ratio(a, b):
            return f"{a / b:6.3f}" if b else f"{'-':>6}"
        for m, f in r["mappers"].items():
            lines.append(
                f"{name:>14} {r['neurons']:>9} {r['synapses']:>11} {r['lower_bound']['cores']:>5} {m:>7} "
                f"{f['cores']:>6} {f['cores_over_lb']:>6.3f} {f['intercore_synapses']:>11} "
                f"{ratio(f['intercore_synapses'], naive['intercore_synapses'])} "
                f"{ratio(f['intercore_synapses'], metis['intercore_synapses'] if metis else 0)} "
                f"{f['hop_weighted']:>12.4g} {ratio(f['hop_weighted'], naive['hop_weighted'])} "
                f"{ratio(f['hop_weighted'], metis['hop_weighted'] if metis else 0)} {f['map_s']:>6.2f} "
                f"{f.get('compile_s', float('nan')):>9.2f}")
    lines.append("")
    head2 = (f"{'network':>14} {'greedy compile s':>16} {'quantize':>8} {'demand':>6} {'part':>6} {'place':>6} "
             f"{'check':>6} {'peak MB':>8} {'IR MB':>7} {'violations'}")
    lines += [head2, "-" * len(head2)]
    for r in results:
        if "error" in r:
            continue
        g = r["mappers"].get("greedy") or next(iter(r["mappers"].values()))
        b = g["compile_breakdown_s"]
        lines.append(f"{r['family'] + '-' + str(r['neurons_requested']):>14} {g['compile_s']:>16.2f} "
                     f"{b['quantize']:>8.2f} {b['demand']:>6.2f} {b['partition']:>6.2f} {b['place']:>6.2f} "
                     f"{b['checks']:>6.2f} {r['peak_rss_mb']:>8.0f} {r['rss_after_build_mb']:>7.0f} "
                     f"{', '.join(g['violations']) or '-'}")
    return "\n".join(lines)


def _growth(results: list[dict]) -> dict:
    """Exponent b of time ~ size^b and memory ~ size^b between the smallest and largest size of each family."""
    out = {}
    for fam in FAMILIES:
        rs = [r for r in results if r.get("family") == fam and "error" not in r]
        if len(rs) < 2:
            continue
        a, b = rs[0], rs[-1]
        ratio = np.log(b["synapses"] / a["synapses"])
        out[fam] = {"time_exponent_vs_synapses": float(np.log(max(b["compile_s"], 1e-9) / max(a["compile_s"], 1e-9))
                                                       / ratio),
                    "memory_exponent_vs_synapses": float(np.log(b["peak_rss_mb"] / a["peak_rss_mb"]) / ratio)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", help="neuron counts (default 1k 10k 100k 1M)")
    ap.add_argument("--quick", action="store_true", help="1k and 10k only")
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    ap.add_argument("--mappers", nargs="+", default=["greedy", "rcm", "metis", "auto"], choices=sorted(MAPPERS))
    ap.add_argument("--random-max", type=int, default=RANDOM_MAX, help="largest random graph (default 100k)")
    ap.add_argument("--out", default=str(RESULTS), help="JSON results path")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        family, n = args.one.split(":")
        print(json.dumps(run_case(family, int(n), args.mappers)))
        return 0
    sizes = args.sizes or ((1_000, 10_000) if args.quick else DEFAULT_SIZES)
    results = []
    for family in args.families:
        for n in sizes:
            if family == "random" and n > args.random_max:
                continue
            print(f"running {family} {n} ...", file=sys.stderr, flush=True)
            t = time.perf_counter()
            r = _run_subprocess(family, n, args.mappers)
            r["wall_s"] = time.perf_counter() - t
            results.append(r)
    print(_table(results))
    growth = _growth(results)
    for fam, g in growth.items():
        print(f"{fam}: compile time ~ synapses^{g['time_exponent_vs_synapses']:.2f}, "
              f"peak memory ~ synapses^{g['memory_exponent_vs_synapses']:.2f}")
    payload = {"command": "python bench/mapping.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "cpu_count": os.cpu_count(), "target": "loihi2-sim with chip.chips = 64",
               "naive_baseline": "units in a seeded random order, packed by the same exact packer, snake placement",
               "results": results, "growth": growth}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(payload, indent=1))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
