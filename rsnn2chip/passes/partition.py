"""Partitioning: assign atomic units (motifs, neurons of non-motif populations) to cores.

Mappers are registered by name in :data:`MAPPERS` and chosen with ``--mapper``.
Each takes the network's demand and a target and returns a
:class:`~rsnn2chip.passes.mapping.MappingResult`: the core index of every unit
(a motif is one unit, so no mapper can split it) and how it was chosen.

* ``greedy``: fills cores with consecutive units in IR order, as many as fit
  exactly (every per-core limit but output axons, which depend on where the
  targets go and are repaired afterwards). Consecutive motifs are lateral
  neighbours in an SC-ML layer, so this keeps most lateral synapses on-core.
* ``metis``: METIS k-way partition of the unit graph (edges weighted by
  synapse count, or by spikes sent when spike counts are given; vertices by
  load), made exact by packing each part with the same packer and placing
  what does not fit, so every core fits.
* ``rcm``: the same exact packer on units in reverse Cuthill-McKee order of
  the unit graph's heavy edges (interleaves stacked, topographically joined
  layers, so feed-forward bundles stay on-core at greedy's core count).
* ``auto``: runs the others and keeps the cheapest by :func:`choose`
  (violations, chips, cores within 1% of the fewest, then hop-weighted
  inter-core traffic after placement); the cost of every candidate is
  recorded in the core graph.

See docs/mapping.md.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
from typing import Callable

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import reverse_cuthill_mckee

from rsnn2chip.errors import ModelError
from rsnn2chip.passes.mapping import MappingResult
from rsnn2chip.passes.place import backbone, placement
from rsnn2chip.passes.resources import NetworkDemand, gather_ranges, lower_bound, over_limit, unit_core_usage
from rsnn2chip.targets import Target

MAPPERS: dict[str, Callable[[NetworkDemand, Target], MappingResult]] = {}


def register_mapper(name: str):
    def wrap(fn):
        MAPPERS[name] = fn
        return fn
    return wrap


# --------------------------------------------------------------------------- exact sequential packer

def _first_occurrence_prefix(values: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Number of distinct values in ``values[:cut]`` for every cut (cuts ascending, within [0, len])."""
    n = values.size
    if n == 0:
        return np.zeros(cuts.size, np.int64)
    # Sorting (value, position) pairs packed in one int64 finds each value's first position; numpy's
    # vectorised sort makes this several times faster than np.unique(..., return_index=True).
    key = values.astype(np.int64) << 32
    key |= np.arange(n, dtype=np.int64)
    key.sort()
    head = np.empty(n, bool)
    head[0] = True
    np.not_equal(key[1:] >> 32, key[:-1] >> 32, out=head[1:])
    flags = np.zeros(n + 1, np.int32)
    flags[(key[head] & 0xFFFFFFFF) + 1] = 1
    return np.cumsum(flags)[cuts]


class Packer:
    """Packs a sequence of units into cores, each core as many consecutive units as fit exactly.

    Per core it looks only at a window of candidate units (bounded by the
    neuron limit and by synapse memory without headers, and grown geometrically
    from the previous core's size), and evaluates every limit at every cut of
    that window at once, so no synapse is scanned more than about twice.
    """

    def __init__(self, demand: NetworkDemand, target: Target):
        self.demand, self.target = demand, target
        core = target.core
        self.cap = {r: core.limit(r) for r in ("neurons", "synapse_memory_bits", "input_axons", "neuron_profiles",
                                               "threshold_profiles")}
        self.bps = target.synapse_encoding.bits_per_synapse
        self.header = target.synapse_encoding.header_bits_per_axon
        self.state = core.neuron_state_bits if core.shared_memory else 0
        self.u_neurons = demand.unit_neurons()
        self.u_state = demand.unit_state()
        self.u_synapses = demand.unit_synapses()
        # Profile limits only bind when the network has more distinct profiles than a core allows.
        self.check_profiles = int(demand.profile_key.max(initial=-1)) + 1 > self.cap["neuron_profiles"]
        self.check_thresholds = int(demand.threshold_key.max(initial=-1)) + 1 > self.cap["threshold_profiles"]

    def _fit(self, units: np.ndarray, contiguous: bool) -> int:
        """How many leading units of ``units`` fit on one core together."""
        d = self.demand
        inc = d.incoming
        b = d.unit_bounds
        n_cut = np.concatenate([[0], np.cumsum(self.u_neurons[units])])
        s_cut = np.concatenate([[0], np.cumsum(self.u_synapses[units])])
        if contiguous:
            lo, hi = b[units[0]], b[units[-1] + 1]
            src = inc.indices[inc.indptr[lo]:inc.indptr[hi]]
            neurons = slice(lo, hi)
        else:
            src = inc.indices[gather_ranges(inc.indptr[b[units]], inc.indptr[b[units + 1]])]
            neurons = gather_ranges(b[units], b[units + 1])
        axons = _first_occurrence_prefix(src, s_cut)
        state_cut = np.concatenate([[0], np.cumsum(self.u_state[units])])
        memory = s_cut * self.bps + axons * self.header + state_cut * self.state
        ok = (n_cut <= self.cap["neurons"]) & (memory <= self.cap["synapse_memory_bits"]) & \
             (axons <= self.cap["input_axons"])
        if self.check_profiles:
            ok &= _first_occurrence_prefix(d.profile_key[neurons], n_cut) <= self.cap["neuron_profiles"]
        if self.check_thresholds:
            ok &= _first_occurrence_prefix(d.threshold_key[neurons], n_cut) <= self.cap["threshold_profiles"]
        ok = ok[1:]
        return int(ok.size if ok.all() else np.argmin(ok))

    def pack(self, order: np.ndarray | None = None, breaks: np.ndarray | None = None) -> np.ndarray:
        """Core of every unit when packing ``order`` (default: IR order); no core spans a position in ``breaks``.

        ``order`` may list only some units; the others get core -1. A unit that
        does not fit an empty core is placed alone; the design-rule checks then
        report it with a fix.
        """
        order = np.arange(self.demand.n_units) if order is None else np.asarray(order, np.int64)
        n = order.size
        identity = bool(np.array_equal(order, np.arange(self.demand.n_units)))
        cum_n = np.concatenate([[0], np.cumsum(self.u_neurons[order])])
        mem_lb = np.concatenate([[0], np.cumsum(self.u_synapses[order] * self.bps + self.u_state[order] * self.state)])
        breaks = np.unique(np.concatenate([np.asarray(breaks if breaks is not None else [], np.int64), [n]]))
        core_of_pos = np.empty(n, np.int64)
        p, core, est = 0, 0, 16
        while p < n:
            q_cap = min(int(np.searchsorted(cum_n, cum_n[p] + self.cap["neurons"], side="right")) - 1,
                        int(np.searchsorted(mem_lb, mem_lb[p] + self.cap["synapse_memory_bits"], side="right")) - 1,
                        int(breaks[np.searchsorted(breaks, p, side="right")]))
            if q_cap <= p:
                k = 1
            else:
                q_try = min(q_cap, p + est)
                while True:
                    window = order[p:q_try]
                    k = self._fit(window, identity)
                    if k < q_try - p or q_try == q_cap:
                        break
                    q_try = min(q_cap, p + 2 * (q_try - p))
                k = max(k, 1)
            core_of_pos[p:p + k] = core
            est = max(int(k * 1.25) + 2, 4)
            p, core = p + k, core + 1
        out = np.full(self.demand.n_units, -1, np.int64)
        out[order] = core_of_pos
        return out

    def fits_together(self, units: np.ndarray) -> bool:
        """Whether these units (any order, not necessarily contiguous) fit one core."""
        units = np.sort(np.asarray(units, np.int64))
        if self.u_neurons[units].sum() > self.cap["neurons"] or \
                (self.u_synapses[units] * self.bps + self.u_state[units] * self.state).sum() > \
                self.cap["synapse_memory_bits"]:
            return False
        return self._fit(units, False) == units.size

    def load(self, units: np.ndarray) -> float:
        """Fraction of a core the units fill by neurons or header-free synapse memory, whichever is more."""
        mem = (self.u_synapses[units] * self.bps + self.u_state[units] * self.state).sum()
        return max(self.u_neurons[units].sum() / max(self.cap["neurons"], 1),
                   mem / max(self.cap["synapse_memory_bits"], 1))


def renumber(core_of_unit: np.ndarray) -> np.ndarray:
    """Cores numbered in the order of their first unit, so core order follows IR order (snake locality)."""
    if core_of_unit.size == 0:
        return core_of_unit
    _, first = np.unique(core_of_unit, return_index=True)
    ranked = np.argsort(first, kind="stable")
    new_id = np.empty(ranked.size, np.int64)
    new_id[ranked] = np.arange(ranked.size)
    _, inverse = np.unique(core_of_unit, return_inverse=True)
    return new_id[inverse.ravel()]


def repair(demand: NetworkDemand, target: Target, core_of_unit: np.ndarray, max_rounds: int = 12) -> np.ndarray:
    """Split every core that breaks a limit (in practice: output axons) until all fit or hold one unit.

    Output axons depend on where each neuron's targets went, so no packer can
    check them while packing; splitting an over-full core into ``ceil(ratio)``
    contiguous pieces divides its output axons roughly by as much.
    """
    core_of_unit = renumber(np.asarray(core_of_unit, np.int64))
    for _ in range(max_rounds):
        usage = unit_core_usage(demand, core_of_unit, target)["usage"]
        worst = over_limit(usage, target)
        units_per_core = np.bincount(core_of_unit, minlength=worst.size)
        bad = np.flatnonzero((worst > 1) & (units_per_core > 1))
        if bad.size == 0:
            break
        next_id = worst.size
        order = np.argsort(core_of_unit, kind="stable")
        ptr = np.concatenate([[0], np.cumsum(units_per_core)])
        for c in bad:
            units = order[ptr[c]:ptr[c + 1]]
            pieces = min(units.size, max(2, math.ceil(worst[c] * 1.05)))
            for chunk in np.array_split(units, pieces)[1:]:
                core_of_unit[chunk] = next_id
                next_id += 1
        core_of_unit = renumber(core_of_unit)
    return core_of_unit


@register_mapper("greedy")
def greedy_contiguous(demand: NetworkDemand, target: Target) -> MappingResult:
    """Fill cores with consecutive units, as many as fit (locality from IR order)."""
    return MappingResult.single("greedy", repair(demand, target, greedy_packing(demand, target)))


# --------------------------------------------------------------------------- METIS

MAX_METIS_VERTICES = 200_000
METIS_UFACTOR = 10  # allowed imbalance in 1/1000: parts must be close to one core each


def _blocks(demand: NetworkDemand, target: Target) -> np.ndarray:
    """Unit boundaries of METIS vertices: units, coarsened where there are very many.

    Non-motif populations have one unit per neuron; at a million neurons METIS
    on that graph would dominate compile time, so consecutive units of one
    population are merged into blocks of at most 1/16 of a core's neurons
    (a core is then still balanced to within a few percent). Motifs stay
    whole because blocks are whole units.
    """
    n_units = demand.n_units
    group = max(1, math.ceil(n_units / MAX_METIS_VERTICES))
    if group == 1:
        return np.arange(n_units + 1)
    cut = [np.zeros(1, np.int64)]
    pop_change = np.flatnonzero(np.diff(demand.unit_population) != 0) + 1
    starts = np.concatenate([[0], pop_change])
    stops = np.concatenate([pop_change, [n_units]])
    max_neurons = max(1, target.core.neurons // 16)
    for lo, hi in zip(starts, stops):
        size = int(np.max(demand.unit_neurons()[lo:hi]))
        g = max(1, min(group, max_neurons // max(size, 1)))
        cut.append(np.append(np.arange(lo + g, hi, g), hi))
    return np.concatenate(cut)


def unit_graph(demand: NetworkDemand, block_units: np.ndarray) -> sp.csr_matrix:
    """Symmetric block x block matrix of synapses (or spikes, when given) between blocks, diagonal removed.

    Cached on the demand: ``rcm`` and ``metis`` (both run by ``auto``) use the same one.
    """
    key = ("unit_graph", hashlib.blake2b(np.ascontiguousarray(block_units, np.int64).tobytes(),
                                         digest_size=16).hexdigest())
    if key not in demand.cache:
        demand.cache[key] = _unit_graph(demand, block_units)
    return demand.cache[key]


def _unit_graph(demand: NetworkDemand, block_units: np.ndarray) -> sp.csr_matrix:
    inc = demand.incoming
    block_neurons = demand.unit_bounds[block_units]
    n_blocks = block_units.size - 1
    block_of_neuron = np.repeat(np.arange(n_blocks), np.diff(block_neurons))
    # Rows of a block are consecutive, so the block-row matrix is the CSR itself with fewer row pointers.
    if demand.source_weight is not None:
        data = demand.source_weight.astype(np.float32)[inc.indices]
    else:
        data = np.ones(inc.nnz, np.float32)
    rows = sp.csr_matrix((data, inc.indices, inc.indptr[block_neurons]), shape=(n_blocks, demand.n_sources))
    to_block = sp.csr_matrix((np.ones(demand.n_lif, np.float32), block_of_neuron, np.arange(demand.n_lif + 1)),
                             shape=(demand.n_lif, n_blocks))
    to_block.resize((demand.n_sources, n_blocks))  # input channels belong to no block
    w = (rows @ to_block).tocsr()
    w = (w + w.T).tocsr()
    w.setdiag(0)
    w.eliminate_zeros()
    # Canonical order: METIS's result depends on adjacency order, and scipy sorts lazily (w.max() would
    # sort in place), so an unsorted matrix would partition differently depending on who touched it first.
    w.sum_duplicates()
    w.sort_indices()
    return w


def _metis_parts(w: sp.csr_matrix, vweights: np.ndarray, n_parts: int, seed: int = 0) -> np.ndarray:
    import pymetis

    n = w.shape[0]
    if n_parts <= 1 or n <= 1:
        return np.zeros(n, np.int64)
    weights = w.data.astype(np.float64)
    # METIS wants positive integer edge weights; scale so the lightest edge is >= 1 and the total fits int32.
    scale = min(1.0 / weights.min(), 2e9 / max(weights.sum(), 1.0)) if weights.size else 1.0
    eweights = np.maximum(1, np.rint(weights * scale)).astype(np.int64)
    opts = pymetis.Options(seed=seed, ufactor=METIS_UFACTOR, ncuts=1)
    _, parts = pymetis.part_graph(n_parts, xadj=w.indptr.astype(np.int64), adjncy=w.indices.astype(np.int64),
                                  vweights=vweights.ravel(), eweights=eweights, options=opts)
    return np.asarray(parts, np.int64)


def greedy_packing(demand: NetworkDemand, target: Target) -> np.ndarray:
    """The plain sequential packing of IR order, cached (``metis`` and ``auto`` both need it)."""
    key = ("greedy_pack", target.limits_key())
    if key not in demand.cache:
        demand.cache[key] = Packer(demand, target).pack()
    return demand.cache[key]


@register_mapper("metis")
def metis(demand: NetworkDemand, target: Target) -> MappingResult:
    """METIS k-way partition made to fit exactly; see :func:`_metis_assignment`."""
    return MappingResult.single("metis", _metis_assignment(demand, target))


def _metis_assignment(demand: NetworkDemand, target: Target) -> np.ndarray:
    """METIS k-way partition of the unit graph, made to fit exactly, then repaired.

    METIS decides which units belong together: minimum edge cut, balanced by
    load, into as many parts as sequential packing needs cores. The exact
    packer then fills one core per part in unit order; whatever of a part does
    not fit (headers and axons are not in METIS's balance) is a leftover,
    placed into the core it talks to most that still has room, else packed
    onto new cores.
    """
    n_units = demand.n_units
    if n_units == 0:
        return np.zeros(0, np.int64)
    packer = Packer(demand, target)
    n_parts = int(greedy_packing(demand, target).max()) + 1
    block_units = _blocks(demand, target)
    n_blocks = block_units.size - 1
    if n_parts <= 1 or n_blocks <= 1:
        return repair(demand, target, greedy_packing(demand, target))
    w = unit_graph(demand, block_units)
    block_neurons = np.diff(demand.unit_bounds[block_units])
    syn = np.add.reduceat(demand.unit_synapses(), block_units[:-1])
    memory = syn * packer.bps + np.add.reduceat(packer.u_state, block_units[:-1]) * packer.state
    # One balance constraint: METIS's multi-constraint mode balanced neurons and memory together so poorly
    # here (one part 39x the mean at ufactor 10) that the cut was useless. A block's load is its share of
    # whichever of a core's neurons or synapse memory it fills more; scaled so the total fits int32.
    load = np.maximum(block_neurons / target.core.neurons, memory / target.core.synapse_memory_bits)
    vweights = np.maximum(1, np.rint(load * (1e9 / max(load.sum(), 1e-12)))).astype(np.int64)
    parts = _metis_parts(w, vweights, min(n_parts, n_blocks))
    block_of_unit = np.repeat(np.arange(n_blocks), np.diff(block_units))
    part_of_unit = parts[block_of_unit]
    order = np.lexsort((np.arange(n_units), part_of_unit))
    starts = np.flatnonzero(np.diff(part_of_unit[order], prepend=-1) != 0)
    packed = packer.pack(order, breaks=starts)
    # The first core of every part keeps its units; the rest are leftovers.
    first_core = packed[order][starts]
    kept = np.isin(packed, first_core)
    core_of_unit = np.full(n_units, -1, np.int64)
    core_of_unit[kept] = packed[kept]
    core_of_unit = _place_leftovers(demand, packer, w, block_of_unit, core_of_unit, packed)
    return repair(demand, target, core_of_unit)


def _place_leftovers(demand: NetworkDemand, packer: Packer, w: sp.csr_matrix, block_of_unit: np.ndarray,
                     core_of_unit: np.ndarray, packed: np.ndarray, candidates: int = 8) -> np.ndarray:
    """Put every leftover chunk (units -1 in ``core_of_unit``, grouped by their ``packed`` core) somewhere."""
    left = np.flatnonzero(core_of_unit < 0)
    if left.size == 0:
        return core_of_unit
    used = np.unique(core_of_unit[core_of_unit >= 0])
    remap = np.full(int(packed.max()) + 1, -1, np.int64)
    remap[used] = np.arange(used.size)
    core_of_unit[core_of_unit >= 0] = remap[core_of_unit[core_of_unit >= 0]]
    n_cores = used.size
    placed_units = np.flatnonzero(core_of_unit >= 0)
    by_core = placed_units[np.argsort(core_of_unit[placed_units], kind="stable")]
    members = np.split(by_core, np.cumsum(np.bincount(core_of_unit[placed_units], minlength=n_cores))[:-1])
    loads = np.array([packer.load(m) for m in members])
    unplaced = []
    left_sorted = left[np.argsort(packed[left], kind="stable")]
    chunks = np.split(left_sorted, np.flatnonzero(np.diff(packed[left_sorted]) != 0) + 1)
    for chunk in chunks:
        need = packer.load(chunk)
        blocks = np.unique(block_of_unit[chunk])
        nb = w[blocks]
        # Affinity: synapses between the chunk and each core (through the block graph).
        unit_of_block_first = np.searchsorted(block_of_unit, nb.indices)
        target_cores = core_of_unit[unit_of_block_first]
        ok = target_cores >= 0
        affinity = np.bincount(target_cores[ok], weights=nb.data[ok], minlength=n_cores)
        room = loads + need <= 1.0
        by_affinity = np.flatnonzero(room & (affinity > 0))
        by_affinity = by_affinity[np.argsort(-affinity[by_affinity], kind="stable")][:candidates]
        by_room = np.flatnonzero(room)
        by_room = by_room[np.argsort(loads[by_room], kind="stable")][:candidates]
        for c in dict.fromkeys([*by_affinity.tolist(), *by_room.tolist()]):
            units = np.concatenate([members[c], chunk])
            if packer.fits_together(units):
                core_of_unit[chunk] = c
                members[c] = units
                loads[c] = packer.load(units)
                break
        else:
            unplaced.append(chunk)
    if unplaced:
        rest = np.concatenate(unplaced)
        core_of_unit[rest] = packer.pack(rest)[rest] + n_cores
    return core_of_unit


RCM_BACKBONE = 0.3


@register_mapper("rcm")
def rcm(demand: NetworkDemand, target: Target) -> MappingResult:
    """The exact packer over a reverse Cuthill-McKee order; see :func:`_rcm_assignment`."""
    return MappingResult.single("rcm", _rcm_assignment(demand, target))


def _rcm_assignment(demand: NetworkDemand, target: Target) -> np.ndarray:
    """Units in reverse Cuthill-McKee order of the unit graph's heavy edges, then the exact packer.

    A locality order from the graph instead of from the IR: with stacked layers
    joined topographically it interleaves each layer's chunks with the chunks
    they feed, so feed-forward bundles stay on-core, while packing stays as
    tight as greedy's. On a single ring it folds the ring (cores hold two arcs),
    where greedy is better; ``auto`` compares.
    """
    if demand.n_units == 0:
        return np.zeros(0, np.int64)
    block_units = _blocks(demand, target)
    w = unit_graph(demand, block_units)
    if w.nnz == 0:
        return repair(demand, target, greedy_packing(demand, target))
    blocks = reverse_cuthill_mckee(backbone(w, RCM_BACKBONE), symmetric_mode=True).astype(np.int64)
    order = gather_ranges(block_units[blocks], block_units[blocks + 1])
    return repair(demand, target, Packer(demand, target).pack(order))


# --------------------------------------------------------------------------- auto

AUTO_CANDIDATES = ("greedy", "rcm", "metis")
# Cores within this fraction of the fewest (rounded down, so below 100 cores only equal counts tie) count as
# equal, so traffic decides: a core more on the same number of chips costs nothing measurable, while
# hop-weighted traffic is spike energy and latency on every time step.
AUTO_CORE_SLACK = 0.01


def mapping_cost(demand: NetworkDemand, core_of_unit: np.ndarray, target: Target) -> dict:
    """What ``auto`` compares: violating cores, chips, cores, hop-weighted inter-core traffic after placement.

    Traffic is synapses (or spikes sent, when spike counts were given) times
    mesh hops, after :func:`rsnn2chip.passes.place.placement`.
    """
    placed = placement(demand, core_of_unit, target)
    usage = unit_core_usage(demand, core_of_unit, target)["usage"]
    violations = int(np.count_nonzero(over_limit(usage, target) > 1))
    cores = int(core_of_unit.max()) + 1 if core_of_unit.size else 0
    return {"violating_cores": violations, "chips": -(-cores // target.chip.cores), "cores": cores,
            "hop_weighted_traffic": placed["cost"], "intercore_traffic": placed["intercore"]}


def choose(costs: dict[str, dict]) -> str:
    """The candidate ``auto`` keeps; see docs/mapping.md ("cost").

    Fewest violating cores, then fewest chips, then, among candidates within
    floor(AUTO_CORE_SLACK x fewest) cores of the fewest, least hop-weighted
    traffic, then fewest cores, then candidate order.
    """
    names = list(costs)
    for key in ("violating_cores", "chips"):
        best = min(costs[n][key] for n in names)
        names = [n for n in names if costs[n][key] == best]
    fewest = min(costs[n]["cores"] for n in names)
    names = [n for n in names if costs[n]["cores"] <= fewest + math.floor(AUTO_CORE_SLACK * fewest)]
    return min(names, key=lambda n: (costs[n]["hop_weighted_traffic"], costs[n]["cores"]))


@register_mapper("auto")
def auto(demand: NetworkDemand, target: Target) -> MappingResult:
    """Runs every candidate mapper and keeps the cheapest by :func:`choose`; all costs go into the result."""
    results = {name: MAPPERS[name](demand, target).core_of_unit for name in AUTO_CANDIDATES}
    costs = {name: mapping_cost(demand, a, target) for name, a in results.items()}
    best = choose(costs)
    return MappingResult("auto", results[best], best, candidates=costs,
                         cost_order=("violating_cores", "chips",
                                     f"cores (within {AUTO_CORE_SLACK:.0%} of the fewest, rounded down)",
                                     "hop_weighted_traffic", "cores"))


def partition(demand: NetworkDemand, target: Target, mapper: str = "greedy") -> MappingResult:
    if mapper not in MAPPERS:
        raise ModelError("unknown mapper", found=mapper, allowed=", ".join(sorted(MAPPERS)),
                         fix="pass --mapper with one of the listed names")
    lower_bound(demand, target)  # cached for the core graph
    result = MAPPERS[mapper](demand, target)
    return dataclasses.replace(result, mapper=mapper, core_of_unit=np.asarray(result.core_of_unit, np.int64))
