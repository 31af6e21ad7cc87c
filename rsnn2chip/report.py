"""The report of a compiled network, as one JSON-safe dict every format renders.

:func:`build` collects per-core utilisation, per-layer quantization
diagnostics, static and measured inter-core traffic, a cost estimate and
per-layer activity; the text, JSON and HTML renderers (``rsnn2chip.viz``)
only format it, so they cannot disagree. How every number is defined:
docs/reports.md.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from rsnn2chip import cost, fixedpoint as fx, ir
from rsnn2chip.activity import Activity, check_matches
from rsnn2chip.artifact import CompiledNetwork
from rsnn2chip.fileio import plain

FORMAT = "rsnn2chip.report"
VERSION = 1
# Dense core x core matrices beyond this many cores would dwarf the rest of the JSON; edges always come.
MAX_MATRIX_CORES = 128
MEASURED_DEFINITION = (
    "messages: each spike of a neuron on core a counts once for every distinct core b != a that its synapses "
    "reach (the router sends one message per destination core); synaptic_events: once per synapse it reaches")


# --------------------------------------------------------------------------- quantization

@dataclass
class WeightCheck:
    """One projection's synapses (in ``proj.weight`` CSR order) and what quantization did to each."""

    rows: np.ndarray  # post neuron
    cols: np.ndarray  # pre neuron
    float_w: np.ndarray
    mantissa: np.ndarray  # 0 where the weight was rounded away
    represented: np.ndarray | None  # float value the mantissa stands for; None without a state scale
    clipped: np.ndarray  # bool
    zeroed: np.ndarray  # bool


def _mantissa_at(m: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Mantissa at each (row, col), 0 where none is stored (zero mantissas are eliminated)."""
    coo = sp.csr_matrix(m).tocoo()
    if coo.nnz == 0:
        return np.zeros(rows.size, np.int64)
    width = max(m.shape[1], 1)
    keys = coo.row.astype(np.int64) * width + coo.col
    order = np.argsort(keys)
    keys, vals = keys[order], coo.data[order]
    want = rows.astype(np.int64) * width + cols
    idx = np.minimum(np.searchsorted(keys, want), keys.size - 1)
    return np.where(keys[idx] == want, vals[idx], 0).astype(np.int64)


def weight_check(graph, proj: ir.Projection) -> WeightCheck:
    """Recompute, per synapse, clipping and rounding to zero exactly as ``passes/quantize.py`` decided them."""
    w = sp.csr_matrix(proj.weight)
    coo = w.tocoo()
    q = proj.quant
    mant = _mantissa_at(q.mantissa, coo.row, coo.col)
    scale = ir.population(graph, proj.post).state_scale
    zeroed = (mant == 0) & (coo.data != 0)
    if not scale:
        return WeightCheck(coo.row, coo.col, coo.data, mant, None, np.zeros(mant.size, bool), zeroed)
    lo, hi = fx.WEIGHT_RANGE[q.sign_mode]
    step = 2 if q.sign_mode == "mixed" else 1
    unit = 2.0 ** q.weight_exp * (1 << fx.ACT_SHIFT) / scale  # float weight of one mantissa step
    exact = coo.data / unit
    clipped = (exact > hi + step / 2) | (exact < lo - step / 2)
    return WeightCheck(coo.row, coo.col, coo.data, mant, mant * unit, clipped, zeroed)


def projection_diagnostics(graph, proj: ir.Projection) -> dict:
    q = proj.quant
    c = weight_check(graph, proj)
    n = int(c.float_w.size)
    lo, hi = fx.WEIGHT_RANGE[q.sign_mode]
    row = {"name": proj.name, "pre": proj.pre, "post": proj.post, "synapses": n,
           "synapses_stored": int(np.count_nonzero(c.mantissa)), "weight_exp": int(q.weight_exp),
           "sign_mode": q.sign_mode, "clipped": int(c.clipped.sum()), "clipped_fraction": c.clipped.sum() / max(n, 1),
           "zeroed": int(c.zeroed.sum()), "zeroed_fraction": c.zeroed.sum() / max(n, 1),
           # Over the synapses only (a rounded-away weight counts as 0): an excitatory matrix's smallest
           # mantissa says how much of the low end it uses.
           "mantissa_min": int(c.mantissa.min()) if n else 0, "mantissa_max": int(c.mantissa.max()) if n else 0,
           "mantissa_limits": [lo, hi],
           "mantissa_range_used": float(np.abs(c.mantissa).max(initial=0) / max(hi, -lo))}
    row.update(_weight_errors(c, q.stats))
    return row


def _weight_errors(c: WeightCheck, stats: dict) -> dict:
    if c.represented is None:
        return {"rms_rel_error": stats.get("rms_rel_error"), "max_abs_error": stats.get("max_abs_error")}
    err = c.represented - c.float_w
    # Norms of weights scaled to at most 1: an artifact written before compile refused weights beyond 1e100
    # can hold ones whose squares overflow, which made inf / inf here.
    peak = float(np.abs(c.float_w).max(initial=0.0))
    if not np.isfinite(peak):
        return {"rms_rel_error": None, "max_abs_error": None}
    rel = float(np.linalg.norm(err / peak) / np.linalg.norm(c.float_w / peak)) if peak > 0 else 0.0
    return {"rms_rel_error": rel, "max_abs_error": float(np.abs(err).max(initial=0.0))}


def layer_diagnostics(graph) -> list[dict]:
    """Per layer: its populations' parameter conversions and the projections into it."""
    layers: dict[str, dict] = {}
    for pop in ir.populations(graph, "lif"):
        entry = layers.setdefault(pop.layer, {"layer": pop.layer, "populations": [], "projections": [], "params": []})
        entry["populations"].append(pop.name)
        entry["params"] += [{"population": pop.name, **loss} for loss in pop.quant_stats.get("params", [])]
    for proj in ir.projections(graph):
        layers[ir.population(graph, proj.post).layer]["projections"].append(projection_diagnostics(graph, proj))
    for entry in layers.values():
        entry["params_lost_precision"] = sorted({p["param"] for p in entry["params"] if p.get("lost_precision")})
    return list(layers.values())


# --------------------------------------------------------------------------- cores

def core_rows(art: CompiledNetwork) -> list[dict]:
    cores, limits = art.cores, art.target.core
    layer_of = {p.name: p.layer for p in ir.populations(art.graph)}
    rows = []
    for c in sorted(cores.nodes):
        d = cores.nodes[c]
        res = {r: {"used": int(d["used"][r]), "limit": limits.limit(r),
                   "percent": 100.0 * d["used"][r] / limits.limit(r)}
               for r in cores.graph["resources"]}
        worst = max(res, key=lambda r: res[r]["percent"]) if res else None
        rows.append({"core": c, "chip": d["chip"], "position": list(d["position"]),
                     "layers": list(dict.fromkeys(layer_of[s[0]] for s in d["slices"])), "slices": d["slices"],
                     "neuron_ranges": [f"{name}[{lo}:{hi}]" for name, lo, hi in d["slices"]],
                     "synapses": int(d["used"].get("synapses", 0)), "resources": res,
                     "utilisation_percent": res[worst]["percent"] if worst else 0.0, "bottleneck": worst})
    return rows


# Per resource, what shrinks its demand or packs it tighter; used where that resource sets the core count.
LOWER_IT = {
    "neurons": "fewer neurons, or a target with more neurons per core",
    "synapse_memory_bits": "fewer synapses (sparser recurrence or input projections), fewer weight bits on the "
                           "target, or smaller motifs so that cores fill more evenly",
    "input_axons": "fewer distinct presynaptic neurons per core: keep neurons that share inputs together "
                   "(--mapper metis or auto), or narrower fan-in",
    "output_axons": "fewer destination cores per neuron: keep neurons with their targets (--mapper metis or auto)",
    "neuron_profiles": "fewer distinct neuron parameter sets (shared decays and biases)",
    "threshold_profiles": "fewer distinct thresholds",
}
# Why a resource's use grows past what the bound assumed once layers are split over cores.
GROWS = {
    "input_axons": "a neuron whose targets sit on k cores needs an input axon on each of them",
    "output_axons": "a neuron whose targets sit on k cores needs k output axons",
    "synapse_memory_bits": "each input axon adds a header to synapse memory, and splitting a layer's targets over "
                           "cores adds axons",
    "neuron_profiles": "every core holding part of a layer keeps its own copy of the layer's parameter sets",
    "threshold_profiles": "every core holding part of a layer keeps its own copy of the layer's thresholds",
}
# Below this mean fill of its resource, the bound resource's cores are called loosely packed.
TIGHT_FILL = 0.9


def core_count(art: CompiledNetwork, rows: list[dict]) -> dict:
    """Why the mapping uses this many cores: the lower bound, what binds each core, and what would lower it.

    ``fill[r]`` is the resource used over all cores divided by what the cores offer, ``cores_worth[r]`` the used
    amount in cores' capacity; comparing ``cores_worth`` with ``lower_bound[r]`` shows where the mapping needs
    more of a resource than the bound assumed (axons: a layer split over cores reaches more cores per neuron).
    """
    g = art.cores.graph
    lb = {k: int(v) for k, v in g["lower_bound"].items()}
    limits = {r: art.target.core.limit(r) for r in g["resources"]}
    n = len(rows)
    resources = [r for r in g["resources"] if limits.get(r)]
    used = {r: sum(row["resources"][r]["used"] for row in rows) for r in resources}
    fill = {r: used[r] / (n * limits[r]) if n else 0.0 for r in resources}
    worth = {r: used[r] / limits[r] for r in resources}
    binding = {}
    for row in rows:
        binding[row["bottleneck"]] = binding.get(row["bottleneck"], 0) + 1
    bound_by = max((r for r in resources), key=lambda r: lb.get(r, 0), default=None)
    reasons, lower = [], []
    if bound_by is None:
        return {"cores": n, "lower_bound": lb.get("cores", 0), "reasons": [], "lower_it": []}
    reasons.append(f"the lower bound is {lb['cores']} core(s), set by {bound_by}: the network needs "
                   f"{worth[bound_by]:.1f} cores' worth of it at {limits[bound_by]:,} per core")
    if n > lb["cores"]:
        extra = n - lb["cores"]
        reasons.append(f"{extra} core(s) above the bound ({n / max(lb['cores'], 1):.2f}x)")
        for r, k in sorted(binding.items(), key=lambda kv: -kv[1]):
            reasons.append(f"{k} of {n} cores are full first in {r} (mean fill {fill[r]:.0%} over all cores)")
        grown = [r for r in resources if worth[r] > max(lb.get(r, 0), 1) * 1.05 and r in binding]
        for r in grown:
            reasons.append(f"{r}: the mapping uses {worth[r]:.1f} cores' worth, the bound assumed {lb.get(r, 0)}: "
                           + GROWS.get(r, "the split over cores needs more of it than the minimum"))
        unused = n - worth[bound_by]
        others = {r: k for r, k in binding.items() if r != bound_by}
        if others:
            left = sum(limits[bound_by] - row["resources"][bound_by]["used"] for row in rows
                       if row["bottleneck"] != bound_by) / limits[bound_by]
            reasons.append(f"the cores leave {unused:.1f} cores' worth of {bound_by} unused, {left:.1f} of it on the "
                           f"{sum(others.values())} core(s) that fill up first in another resource ("
                           + ", ".join(f"{r}: {k}" for r, k in others.items()) + ")")
        if fill.get(bound_by, 1.0) < TIGHT_FILL:
            reasons.append(f"cores hold on average {fill[bound_by]:.0%} of their {bound_by}: whole units (a motif, "
                           "or a neuron) and the mapper's packing leave the rest empty")
        for r in dict.fromkeys([*sorted(binding, key=lambda r: -binding[r]), bound_by]):
            lower.append(f"{r}: {LOWER_IT.get(r, 'less demand of it')}")
        if g.get("mapper") != "auto":
            lower.append("--mapper auto tries greedy, rcm and metis and keeps the cheapest (fewest chips, then cores "
                         "within 1%, then least hop-weighted traffic)")
    else:
        reasons.append("the mapping meets the bound: no mapper can use fewer cores")
        lower.append(f"{bound_by}: {LOWER_IT.get(bound_by, 'less demand of it')}")
    return {"cores": n, "lower_bound": lb["cores"], "lower_bound_per_resource": lb, "bound_by": bound_by,
            "binding_cores": binding, "fill": fill, "cores_worth": worth, "reasons": reasons, "lower_it": lower}


def core_summary(rows: list[dict]) -> dict:
    if not rows:
        return {"busiest": None, "emptiest": None, "mean_percent": {}}
    util = [r["utilisation_percent"] for r in rows]
    names = list(rows[0]["resources"])
    return {"busiest": rows[int(np.argmax(util))]["core"], "emptiest": rows[int(np.argmin(util))]["core"],
            "mean_percent": {n: float(np.mean([r["resources"][n]["percent"] for r in rows])) for n in names}}


# --------------------------------------------------------------------------- traffic

def _to_cores(lay: cost.ChipLayout, per_source: sp.spmatrix) -> sp.csr_matrix:
    """(n_cores, n_cores): rows of a (LIF sources x cores) matrix summed by the core each source sits on."""
    m = (lay.home(np.ones(lay.n_lif)).T @ per_source).tocsr()
    m.eliminate_zeros()
    return m


def _totals(lay: cost.ChipLayout, m: sp.csr_matrix) -> tuple[int, int, int]:
    """(off-diagonal sum, diagonal sum, sum of value x hops) of a core x core matrix."""
    coo = m.tocoo()
    local = int(coo.data[coo.row == coo.col].sum())
    return int(coo.data.sum()) - local, local, int((coo.data * lay.hops(coo.row, coo.col)).sum())


def _dense(lay: cost.ChipLayout, m: sp.csr_matrix):
    return m.toarray().astype(np.int64) if lay.n_cores <= MAX_MATRIX_CORES else None


def static_traffic(lay: cost.ChipLayout) -> tuple[dict, dict]:
    syn = lay.fanout[:lay.n_lif]
    s, a = _to_cores(lay, syn), _to_cores(lay, (syn > 0).astype(np.float64))
    intercore, local, hop_weighted = _totals(lay, s)
    inp = lay.fanout[lay.n_lif:]
    out = {"synapses": _dense(lay, s), "axons": _dense(lay, a), "intercore_synapses": intercore,
           "intercore_axons": _totals(lay, a)[0], "local_synapses": local, "hop_weighted_synapses": hop_weighted,
           "input_synapses_per_core": np.asarray(inp.sum(axis=0)).ravel().astype(np.int64)}
    return out, {"synapses": s, "axons": a}


def measured_traffic(lay: cost.ChipLayout, act: Activity) -> tuple[dict, dict]:
    counts = np.zeros(lay.n_sources)
    for name, (lo, hi) in lay.source_slices.items():
        counts[lo:hi] = act.counts(name)
    syn = lay.fanout[:lay.n_lif]
    spiking = sp.diags(counts[:lay.n_lif])
    msgs = _to_cores(lay, spiking @ (syn > 0).astype(np.float64))
    events = _to_cores(lay, spiking @ syn)
    intercore, local, hop_weighted = _totals(lay, msgs)
    inp, c_in = lay.fanout[lay.n_lif:], counts[lay.n_lif:]
    out = {"definition": MEASURED_DEFINITION, "samples": act.batch, "steps": act.steps,
           "messages": _dense(lay, msgs), "synaptic_events": _dense(lay, events), "intercore_messages": intercore,
           "local_messages": local, "intercore_synaptic_events": _totals(lay, events)[0],
           "hop_weighted_messages": hop_weighted,
           "input_messages_per_core": ((inp > 0).astype(np.float64).T @ c_in).astype(np.int64),
           "input_synaptic_events_per_core": (inp.T @ c_in).astype(np.int64)}
    return out, {"messages": msgs, "synaptic_events": events}


def traffic_edges(lay: cost.ChipLayout, static: dict, measured: dict | None) -> list[dict]:
    """Every inter-core link, heaviest hop-weighted first (by messages with a run, else by synapses)."""
    parts = {**static, **(measured or {})}
    busy = functools.reduce(lambda x, y: x + y, (abs(m) for m in parts.values())).tocoo()
    off = busy.row != busy.col
    src, dst = busy.row[off], busy.col[off]
    if src.size == 0:  # one core, or cores that never talk; scipy cannot index with empty arrays
        return []
    hops = lay.hops(src, dst)
    values = {k: np.asarray(m[src, dst]).ravel().astype(np.int64) for k, m in parts.items()}
    edges = [{"src": int(a), "dst": int(b), "hops": int(h), **{k: int(v[i]) for k, v in values.items()}}
             for i, (a, b, h) in enumerate(zip(src, dst, hops))]
    key = "messages" if measured else "synapses"
    return sorted(edges, key=lambda e: (-e[key] * max(e["hops"], 1), -e["synapses"], e["src"], e["dst"]))


def traffic(lay: cost.ChipLayout, act: Activity | None) -> dict:
    static, static_m = static_traffic(lay)
    measured, measured_m = measured_traffic(lay, act) if act is not None else (None, None)
    everything = np.arange(lay.n_cores)
    hops = lay.hops(everything[:, None], everything[None, :]) if lay.n_cores <= MAX_MATRIX_CORES else None
    return {"n_cores": lay.n_cores, "edges": traffic_edges(lay, static_m, measured_m), "static": static,
            "measured": measured, "hops": hops}


# --------------------------------------------------------------------------- activity

def activity_summary(graph, act: Activity) -> dict:
    pops = []
    for pop in ir.populations(graph):
        s = act.spikes[pop.name]
        per_neuron = s.sum(axis=(0, 1)) / max(act.batch * act.steps, 1)
        pops.append({"population": pop.name, "layer": pop.layer, "kind": pop.kind, "neurons": pop.size,
                     "spikes": int(s.sum()), "rate": float(s.sum() / max(s.size, 1)),
                     "max_rate": float(per_neuron.max(initial=0.0)), "silent_neurons": int((per_neuron == 0).sum())})
    return {"backend": act.backend, "samples": act.batch, "steps": act.steps, "populations": pops}


# --------------------------------------------------------------------------- the whole report

def populations(graph) -> list[dict]:
    """One row per population; a LIF population also names its neuron model (``NeuronModel.report_fields``)."""
    return [{"name": p.name, "layer": p.layer, "kind": p.kind, "neurons": p.size, "motif_size": p.motif_size,
             "motifs": p.n_motifs, "state_scale": p.state_scale,
             "params_lost_precision": [q["param"] for q in p.quant_stats.get("params", []) if q.get("lost_precision")],
             **({"neuron_model": None} if p.model is None else p.model.report_fields(p.fixed))}
            for p in ir.populations(graph)]


def mapping(art: CompiledNetwork) -> dict:
    g = art.cores.graph
    keys = ("mapper", "mapper_chosen", "mapper_cost_order", "mapper_candidates", "n_cores", "lower_bound",
            "cores_over_lb", "chips_used", "placement")
    chip = art.target.chip
    return {**{k: g[k] for k in keys if k in g}, "mesh": list(chip.mesh), "cores_per_chip": chip.cores,
            "chips": chip.chips}


def sources(target) -> list[dict]:
    return [{"section": name, "source": sec.get("source", "not given"), "uncertain": sec.get("uncertain")}
            for name, sec in target.data.items() if isinstance(sec, dict) and "source" in sec]


def build(art: CompiledNetwork, act: Activity | None = None) -> dict:
    """Everything the report shows; ``act`` (a run's activity) adds measured traffic, cost and activity."""
    g = art.graph
    if act is not None:
        check_matches(act, g)
    lay = cost.layout(art)
    rows = core_rows(art)
    layers = layer_diagnostics(g)
    report = {
        "format": FORMAT, "version": VERSION, "network": g.graph.get("name"), "target": art.target.name,
        "target_description": art.target.description, "provenance": art.provenance,
        "totals": {"neurons": ir.total_neurons(g, "lif"), "inputs": ir.total_neurons(g, "input"),
                   "synapses": sum(p.n_synapses for p in ir.projections(g)), "cores": len(rows)},
        "mapping": mapping(art), "limits": {r: art.target.core.limit(r) for r in art.cores.graph["resources"]},
        "cores": rows, "core_summary": core_summary(rows), "core_count": core_count(art, rows),
        "populations": populations(g),
        "layers": layers, "projections": [p for layer in layers for p in layer["projections"]],
        "traffic": traffic(lay, act),
        "activity": activity_summary(g, act) if act is not None else None,
        "cost": cost.estimate(art, act, lay) if act is not None else None,
        "sources": sources(art.target), "warnings": art.warnings,
    }
    return plain(report)
