"""Placement and the per-core graph.

Cores go onto each chip's mesh (chips in a row; crossing a chip boundary
costs a full mesh span per chip step). The objective is hop-weighted
traffic: inter-core synapses (or spikes sent, when spike counts were given)
times mesh hops. Placement is deterministic:

1. two starts, both laid out in boustrophedon (snake) order so consecutive
   indices are one hop apart: cores in mapper order, and cores in reverse
   Cuthill-McKee order of the traffic graph (which puts the partners of
   every core near it in one dimension); the cheaper one is kept;
2. a bounded local search: each core, heaviest first, is moved toward the
   weighted median of its partners' positions by swapping with the core
   there (or taking an empty slot) when that lowers the total cost, for a
   fixed number of passes.

The result is the *core graph* stored in the artifact: one node per core
with its contents, position and resource use, one edge per pair of cores
that exchange spikes, weighted by synapse count. See docs/mapping.md.
"""
from __future__ import annotations

import math

import networkx as nx
import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import reverse_cuthill_mckee

from rsnn2chip.passes.mapping import MappingResult
from rsnn2chip.passes.resources import RESOURCES, NetworkDemand, assignment_key, lower_bound, unit_core_usage
from rsnn2chip.targets import Target

MAX_PASSES = 8
MAX_VISITS = 40_000  # bounds local-search time (~0.1 ms per visit) independently of network size
MIN_GAIN = 0.002  # stop when a pass lowers the cost by less than this fraction


def snake_positions(n_cores: int, target: Target) -> np.ndarray:
    """(chip, row, col) of each core index."""
    rows, cols = target.chip.mesh
    per_chip = target.chip.cores
    k = np.arange(n_cores)
    chip, local = k // per_chip, k % per_chip
    row = local // cols
    col = np.where(row % 2 == 0, local % cols, cols - 1 - local % cols)
    return np.stack([chip, row, col], axis=1)


def hop_distance(pos_a: np.ndarray, pos_b: np.ndarray, target: Target) -> np.ndarray:
    """Mesh hops between cores; crossing chips costs a full mesh span per chip step."""
    rows, cols = target.chip.mesh
    within = np.abs(pos_a[..., 1] - pos_b[..., 1]) + np.abs(pos_a[..., 2] - pos_b[..., 2])
    return within + np.abs(pos_a[..., 0] - pos_b[..., 0]) * (rows + cols)


def traffic_matrix(stats: dict, n_cores: int) -> sp.csr_matrix:
    """Symmetric core x core traffic (spikes when measured, else synapses), diagonal removed."""
    src, dst, val = stats["spike_traffic"] if "spike_traffic" in stats else stats["traffic"]
    off = src != dst
    t = sp.csr_matrix((val[off].astype(np.float64), (src[off], dst[off])), shape=(n_cores, n_cores))
    w = (t + t.T).tocsr()
    w.sum_duplicates()
    w.sort_indices()
    return w


def placement_cost(w: sp.csr_matrix, positions: np.ndarray, target: Target) -> float:
    coo = w.tocoo()
    return float(0.5 * np.sum(coo.data * hop_distance(positions[coo.row], positions[coo.col], target)))


class _LocalSearch:
    """Swap refinement of a core -> slot assignment; see the module docstring."""

    def __init__(self, w: sp.csr_matrix, slots: np.ndarray, slot_of: np.ndarray, target: Target):
        self.w = w
        rows, cols = target.chip.mesh
        self.span = rows + cols
        self.shape = (int(slots[:, 0].max()) + 1, rows, cols)
        self.chip, self.row, self.col = (slots[:, i].astype(np.int64) for i in range(3))
        self.lookup = np.full(self.shape, -1, np.int64)
        self.lookup[self.chip, self.row, self.col] = np.arange(slots.shape[0])
        self.slot_of = slot_of.copy()
        self.core_at = np.full(slots.shape[0], -1, np.int64)
        self.core_at[slot_of] = np.arange(slot_of.size)

    def _dist(self, s: np.ndarray, t: np.ndarray) -> np.ndarray:
        return (np.abs(self.chip[s] - self.chip[t]) * self.span + np.abs(self.row[s] - self.row[t])
                + np.abs(self.col[s] - self.col[t]))

    def _partners(self, core: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.w.indptr[core], self.w.indptr[core + 1]
        return self.w.indices[lo:hi], self.w.data[lo:hi]

    def _cost_at(self, core: int, slots: np.ndarray) -> np.ndarray:
        nb, wt = self._partners(core)
        if nb.size == 0:
            return np.zeros(slots.size)
        return self._dist(slots[:, None], self.slot_of[nb][None, :]) @ wt

    @staticmethod
    def _median(values: np.ndarray, weights: np.ndarray) -> int:
        order = np.argsort(values, kind="stable")
        cum = np.cumsum(weights[order])
        return int(values[order][np.searchsorted(cum, cum[-1] / 2)])

    def _candidates(self, core: int) -> np.ndarray:
        nb, wt = self._partners(core)
        s = self.slot_of[nb]
        c, r, k = self._median(self.chip[s], wt), self._median(self.row[s], wt), self._median(self.col[s], wt)
        out = []
        for dr, dc in ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)):
            rr, cc = r + dr, k + dc
            if 0 <= rr < self.shape[1] and 0 <= cc < self.shape[2] and self.lookup[c, rr, cc] >= 0:
                out.append(self.lookup[c, rr, cc])
        return np.array(out, np.int64)

    def _weight(self, a: int, b: int) -> float:
        nb, wt = self._partners(a)
        i = np.searchsorted(nb, b)
        return float(wt[i]) if i < nb.size and nb[i] == b else 0.0

    def run(self, start_cost: float, max_passes: int = MAX_PASSES, max_visits: int = MAX_VISITS) -> dict:
        """Passes over the cores, heaviest first, until a pass gains < MIN_GAIN or the visit budget is spent."""
        degree = np.asarray(self.w.sum(axis=1)).ravel()
        order = np.lexsort((np.arange(degree.size), -degree))
        order = order[degree[order] > 0]
        visits = swaps = passes = 0
        cost = start_cost
        for passes in range(1, max_passes + 1):
            moved, gain = 0, 0.0
            for a in order.tolist():
                if visits >= max_visits:
                    break
                visits += 1
                p = int(self.slot_of[a])
                cand = self._candidates(a)
                cand = cand[cand != p]
                if cand.size == 0:
                    continue
                here_there = self._cost_at(a, np.concatenate([[p], cand]))
                best, best_q = -1e-9, -1
                for i, q in enumerate(cand.tolist()):
                    delta = here_there[i + 1] - here_there[0]
                    b = int(self.core_at[q])
                    if b >= 0:
                        cb = self._cost_at(b, np.array([p, q]))
                        delta += cb[0] - cb[1] + 2 * self._weight(a, b) * self._dist(np.array(p), np.array(q))
                    if delta < best:
                        best, best_q = delta, q
                if best_q >= 0:
                    b = int(self.core_at[best_q])
                    self.core_at[best_q], self.core_at[p] = a, b
                    self.slot_of[a] = best_q
                    if b >= 0:
                        self.slot_of[b] = p
                    moved += 1
                    gain -= best
            swaps += moved
            if moved == 0 or visits >= max_visits or gain < MIN_GAIN * max(cost, 1e-12):
                break
            cost -= gain
        return {"passes": passes, "visits": visits, "moves": swaps}


def backbone(w: sp.csr_matrix, fraction: float) -> sp.csr_matrix:
    """``w`` without edges lighter than ``fraction`` of the heaviest edge at either end.

    Cuthill-McKee orders by breadth-first levels; light edges (a readout fed by
    every core, a lateral link beside a feed-forward bundle) put everything
    within a few levels and erase the locality the heavy edges carry. Used here
    on the core graph and by the ``rcm`` mapper on the unit graph.
    """
    if w.nnz == 0:
        return w
    rowmax = np.asarray(w.max(axis=1).todense()).ravel()
    coo = w.tocoo()
    keep = coo.data >= fraction * np.maximum(rowmax[coo.row], rowmax[coo.col])
    return sp.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=w.shape)


# A readout hub fed by every core would otherwise put all cores two BFS levels apart.
BACKBONE_FRACTION = 0.05


def place_cores(w: sp.csr_matrix, n_cores: int, target: Target, refine: bool = True) -> tuple[np.ndarray, dict]:
    """(chip, row, col) of every core, and how the placement was found (costs of each stage)."""
    w = sp.csr_matrix(w)
    w.sum_duplicates()  # the local search looks partners up by binary search
    w.sort_indices()
    per_chip = target.chip.cores
    n_chips = max(1, math.ceil(n_cores / per_chip))
    slots = snake_positions(n_chips * per_chip, target)
    snake = np.arange(n_cores)
    info = {"method": "snake", "cost_snake": placement_cost(w, slots[snake], target) if n_cores else 0.0}
    slot_of, best = snake, info["cost_snake"]
    if n_cores > 2 and w.nnz:
        perm = reverse_cuthill_mckee(backbone(w, BACKBONE_FRACTION), symmetric_mode=True)
        rcm = np.empty(n_cores, np.int64)
        rcm[perm] = np.arange(n_cores)
        info["cost_rcm"] = placement_cost(w, slots[rcm], target)
        if info["cost_rcm"] < best:
            slot_of, best, info["method"] = rcm, info["cost_rcm"], "rcm"
    info["cost_start"] = best
    if refine and n_cores > 1 and w.nnz:
        search = _LocalSearch(w, slots, slot_of, target)
        info.update(search.run(best))
        slot_of = search.slot_of
        info["method"] += "+swaps"
    positions = slots[slot_of]
    info["cost"] = placement_cost(w, positions, target) if n_cores else 0.0
    return positions, info


def placement(demand: NetworkDemand, core_of_unit: np.ndarray, target: Target) -> dict:
    """Positions of the cores of a unit -> core assignment, cached on the demand (``auto`` scores candidates)."""
    key = ("placement",) + assignment_key(core_of_unit, target)[1:] + (target.chip,)
    if key not in demand.cache:
        stats = unit_core_usage(demand, core_of_unit, target)
        n_cores = int(core_of_unit.max()) + 1 if core_of_unit.size else 0
        w = traffic_matrix(stats, n_cores)
        positions, info = place_cores(w, n_cores, target)
        info["intercore"] = float(w.sum() / 2)
        demand.cache[key] = {"positions": positions, "info": info, "cost": info["cost"],
                             "intercore": info["intercore"]}
    return demand.cache[key]


def _slices(demand: NetworkDemand, cores: np.ndarray, n_cores: int) -> list[list]:
    """Runs of consecutive neurons per core, as [population, local start, local stop]."""
    out = [[] for _ in range(n_cores)]
    if cores.size == 0:
        return out
    change = np.flatnonzero((np.diff(cores) != 0) | (np.diff(demand.population_of) != 0)) + 1
    starts = np.concatenate([[0], change])
    stops = np.concatenate([change, [cores.size]])
    names = [p.name for p in demand.populations]
    offsets = [demand.lif_slices[n][0] for n in names]
    pops = demand.population_of[starts].tolist()
    for lo, hi, c, k in zip(starts.tolist(), stops.tolist(), cores[starts].tolist(), pops):
        out[c].append([names[k], lo - offsets[k], hi - offsets[k]])
    return out


def build_core_graph(demand: NetworkDemand, mapping: MappingResult, target: Target) -> nx.DiGraph:
    """The core graph of ``mapping``: contents, position and resource use of every core, traffic between them."""
    core_of_unit = np.asarray(mapping.core_of_unit, np.int64)
    core_of_neuron = np.repeat(core_of_unit, np.diff(demand.unit_bounds))
    n_cores = int(core_of_unit.max()) + 1 if core_of_unit.size else 0
    stats = unit_core_usage(demand, core_of_unit, target)
    placed = placement(demand, core_of_unit, target)
    positions = placed["positions"]
    units_per_core = np.bincount(core_of_unit, minlength=n_cores)
    g = nx.DiGraph()
    slices = _slices(demand, core_of_neuron, n_cores)
    usage = {r: v.tolist() for r, v in stats["usage"].items()}
    pos = positions.tolist()
    g.add_nodes_from((c, {"chip": pos[c][0], "position": [pos[c][1], pos[c][2]], "slices": slices[c],
                          "units": int(units_per_core[c]), "used": {r: usage[r][c] for r in usage}})
                     for c in range(n_cores))
    src, dst, count = stats["traffic"]
    axons = stats["axon_traffic"][2]
    off = src != dst
    hops = hop_distance(positions[src[off]], positions[dst[off]], target) if n_cores else np.zeros(0, np.int64)
    edge_attrs = {"synapses": count[off].tolist(), "axons": axons[off].tolist(), "hops": hops.tolist()}
    if "spike_traffic" in stats:
        edge_attrs["spikes"] = stats["spike_traffic"][2][off].tolist()
    keys = list(edge_attrs)
    g.add_edges_from((s, d, dict(zip(keys, vals)))
                     for s, d, *vals in zip(src[off].tolist(), dst[off].tolist(), *edge_attrs.values()))
    lb = lower_bound(demand, target)
    crossing = int(count[off].sum())
    info = dict(placed["info"])
    info.pop("intercore", None)
    g.graph.update(target=target.name, mapper=mapping.mapper, n_cores=n_cores, lower_bound=lb,
                   cores_over_lb=(n_cores / lb["cores"]) if lb["cores"] else 1.0,
                   chips_used=int(positions[:, 0].max()) + 1 if n_cores else 0,
                   intercore_synapses=crossing,
                   hop_weighted_synapses=int(np.sum(count[off] * hops)),
                   intercore_axons=int(axons[off].sum()),
                   placement=info, resources=list(RESOURCES))
    if "spike_traffic" in stats:
        g.graph["hop_weighted_spikes"] = float(np.sum(stats["spike_traffic"][2][off] * hops))
    if mapping.candidates is not None:
        g.graph["mapper_chosen"] = mapping.chosen
        g.graph["mapper_cost_order"] = list(mapping.cost_order)
        g.graph["mapper_candidates"] = mapping.candidates
    return g


def core_of_neuron(core_graph: nx.DiGraph, lif_slices: dict[str, tuple[int, int]], n_lif: int) -> np.ndarray:
    """Inverse of the stored slices: the core of every global LIF neuron."""
    out = np.full(n_lif, -1, np.int64)
    for c, data in core_graph.nodes(data=True):
        for pop, lo, hi in data["slices"]:
            base = lif_slices[pop][0]
            out[base + lo:base + hi] = c
    return out
