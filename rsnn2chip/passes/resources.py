"""Resource model: what each neuron, motif and core of a quantized IR demands of a target.

Neurons of all LIF populations are numbered globally (as in the backends'
lowering); presynaptic *sources* are numbered LIF neurons first, then input
channels. One input axon of a core serves one distinct source; one output axon
of a neuron serves one distinct destination core (nengo-loihi's model).
Synapse memory follows the target's encoding: every synapse costs
``weight_bits + index_bits + delay_bits`` and every input axon a header; on a
target with ``shared_memory`` every neuron's state is counted there too.

Everything here is vectorised: a network of 1M neurons and 100M synapses is
about 500 MB of structure (int32 source indices, int8 ones) and never becomes a
Python loop over neurons or synapses. See docs/mapping.md.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import networkx as nx
import numpy as np
import scipy.sparse as sp

from rsnn2chip import ir
from rsnn2chip.errors import SpikeCountsError
from rsnn2chip.targets import CORE_RESOURCES, Target

# The per-core resources every core's usage reports and every target limits (``target.core.limit``).
RESOURCES = CORE_RESOURCES


@dataclass
class NetworkDemand:
    n_lif: int
    n_input: int
    incoming: sp.csr_matrix  # (n_lif, n_lif + n_input) 0/1 structure of every synapse
    profile_key: np.ndarray  # (n_lif,) id of each neuron's profile (model and its profile_params)
    threshold_key: np.ndarray  # (n_lif,) id of each neuron's threshold (model and its threshold_params)
    population_of: np.ndarray  # (n_lif,) index into populations
    state_size: np.ndarray  # (n_lif,) state memory of each neuron in units of neuron_state_bits (its model's)
    populations: list[ir.Population]
    lif_slices: dict[str, tuple[int, int]]
    unit_bounds: np.ndarray  # (n_units + 1,) global neuron boundaries of atomic units
    unit_population: np.ndarray  # (n_units,) index into populations
    # Measured spikes per source (LIF neurons, then input channels), when given: mappers then weigh
    # traffic by spikes sent instead of by synapse count.
    source_weight: np.ndarray | None = None
    # Memoised results over this demand (per-assignment core usage, packings, placements), keyed by their
    # inputs, so the placement pass does not recount what a mapper already counted. Results that passes hand
    # on to each other go through the compile state (see compiler.py), never through here.
    cache: dict = field(default_factory=dict, repr=False)

    @property
    def n_units(self) -> int:
        return len(self.unit_bounds) - 1

    @property
    def n_sources(self) -> int:
        return self.n_lif + self.n_input

    def unit_synapses(self) -> np.ndarray:
        """Synapses onto each unit."""
        indptr = self.incoming.indptr
        return (indptr[self.unit_bounds[1:]] - indptr[self.unit_bounds[:-1]]).astype(np.int64)

    def unit_neurons(self) -> np.ndarray:
        return np.diff(self.unit_bounds)

    def unit_state(self) -> np.ndarray:
        """State memory of each unit in units of neuron_state_bits (see ``NeuronModel.state_size``)."""
        return self.state_between(self.unit_bounds[:-1], self.unit_bounds[1:])

    def state_between(self, lo, hi):
        """State memory (units of neuron_state_bits) of global neurons ``[lo, hi)``; works on arrays of bounds."""
        if "state_prefix" not in self.cache:
            self.cache["state_prefix"] = np.concatenate([[0], np.cumsum(self.state_size, dtype=np.int64)])
        prefix = self.cache["state_prefix"]
        return prefix[hi] - prefix[lo]


def _synapse_structure(proj: ir.Projection) -> sp.csr_matrix:
    # Synapses whose weight quantized to zero are not stored on the chip.
    m = proj.quant.mantissa if proj.quant is not None else proj.weight
    m = sp.csr_matrix(m)
    if not m.has_canonical_format:
        m = m.copy()
        m.sum_duplicates()
    m.eliminate_zeros()
    return m


def _stack_rows(blocks: list[tuple[sp.csr_matrix, int]], n_rows: int, out: np.ndarray) -> np.ndarray:
    """Write the column indices of side-by-side CSR blocks (each shifted by its offset) into ``out``.

    Returns the per-row synapse counts. Blocks are sorted by offset, so every
    row's indices come out sorted when each block's are.
    """
    counts = np.zeros(n_rows, np.int64)
    for m, _ in blocks:
        counts += np.diff(m.indptr)
    if len(blocks) == 1:
        m, offset = blocks[0]
        np.add(m.indices, offset, out=out, casting="unsafe")
        return counts
    row_start = np.zeros(n_rows, np.int64)
    row_start[1:] = np.cumsum(counts)[:-1]
    for m, offset in blocks:
        c = np.diff(m.indptr)
        dest = np.arange(m.nnz, dtype=np.int64)
        dest += np.repeat(row_start - m.indptr[:-1], c)
        out[dest] = m.indices + offset
        row_start += c
    return counts


def spike_weights(demand_like: tuple[dict, dict, int, int], spike_counts) -> np.ndarray:
    """Per-source spike counts (LIF neurons, then input channels) from a flat array or a dict by population."""
    lif_slices, input_slices, n_lif, n_input = demand_like
    out = np.zeros(n_lif + n_input)
    if isinstance(spike_counts, dict):
        for name, counts in spike_counts.items():
            if name in lif_slices:
                lo, hi = lif_slices[name]
            elif name in input_slices:
                lo, hi = (n_lif + s for s in input_slices[name])
            else:
                raise SpikeCountsError("spike counts name an unknown population", found=name,
                                       allowed=", ".join([*lif_slices, *input_slices]),
                                       fix="key spike counts by population name")
            counts = np.asarray(counts, np.float64).ravel()
            if counts.size != hi - lo:
                raise SpikeCountsError("spike counts have the wrong length", where=f"population {name}",
                                       found=counts.size, allowed=hi - lo, fix="give one count per neuron")
            out[lo:hi] = counts
    else:
        counts = np.asarray(spike_counts, np.float64).ravel()
        if counts.size not in (n_lif, n_lif + n_input):
            raise SpikeCountsError("spike counts have the wrong length", where="all LIF neurons in population order",
                                   found=counts.size, allowed=f"{n_lif} (LIF neurons) or {n_lif + n_input} (+ inputs)",
                                   fix="give one count per neuron, LIF populations first in IR order")
        out[:counts.size] = counts
    bad = np.flatnonzero(~np.isfinite(out) | (out < 0))
    if bad.size:
        raise SpikeCountsError("spike counts must be finite and >= 0",
                               where=f"source {bad[0]} (LIF neurons, then inputs)",
                               found=float(out[bad[0]]), fix="pass counts of spikes per neuron")
    return out


def network_demand(graph: nx.DiGraph, spike_counts=None) -> NetworkDemand:
    """The 0/1 synapse structure of the whole network as one CSR matrix, plus neuron profiles and units.

    ``spike_counts`` (optional): measured spikes per neuron, a flat array over
    LIF neurons in IR order (optionally followed by input channels) or a dict
    population name -> array. Mappers then weigh traffic by spikes.
    """
    lif_slices = ir.neuron_offsets(graph, "lif")
    input_slices = ir.neuron_offsets(graph, "input")
    pops = list(ir.populations(graph, "lif"))
    n_lif = sum(p.size for p in pops)
    n_input = sum(hi - lo for lo, hi in input_slices.values())
    by_post: dict[str, list[tuple[sp.csr_matrix, int]]] = {p.name: [] for p in pops}
    for proj in ir.projections(graph):
        pre = ir.population(graph, proj.pre)
        offset = lif_slices[proj.pre][0] if pre.kind == "lif" else n_lif + input_slices[proj.pre][0]
        by_post[proj.post].append((_synapse_structure(proj), offset))
    nnz = sum(m.nnz for blocks in by_post.values() for m, _ in blocks)
    idx_dtype = np.int32 if max(nnz, n_lif + n_input) < np.iinfo(np.int32).max else np.int64
    indices = np.empty(nnz, idx_dtype)
    counts = np.zeros(n_lif, np.int64)
    pos = 0
    for pop in pops:
        lo, hi = lif_slices[pop.name]
        blocks = sorted(by_post[pop.name], key=lambda b: b[1])
        n = sum(m.nnz for m, _ in blocks)
        if blocks:
            counts[lo:hi] = _stack_rows(blocks, hi - lo, indices[pos:pos + n])
        pos += n
    indptr = np.zeros(n_lif + 1, idx_dtype)
    np.cumsum(counts, out=indptr[1:])
    incoming = sp.csr_matrix((np.ones(nnz, np.int8), indices, indptr), shape=(n_lif, n_lif + n_input), copy=False)
    profile_key, threshold_key = _profile_keys(pops, n_lif)
    bounds, unit_pop = _unit_bounds(pops)
    population_of = np.repeat(np.arange(len(pops)), [p.size for p in pops])
    state_size = np.repeat([p.model.state_size for p in pops], [p.size for p in pops]).astype(np.int64)
    weights = None
    if spike_counts is not None:
        weights = spike_weights((lif_slices, input_slices, n_lif, n_input), spike_counts)
    return NetworkDemand(n_lif, n_input, incoming, profile_key, threshold_key, population_of, state_size, pops,
                         lif_slices,
                         bounds, unit_pop, weights)


def _dense_ids(values: list[np.ndarray]) -> tuple[np.ndarray, int]:
    _, inverse = np.unique(np.concatenate(values), return_inverse=True)
    return inverse.ravel(), int(inverse.max(initial=-1)) + 1


def _profile_keys(pops: list[ir.Population], n_lif: int) -> tuple[np.ndarray, np.ndarray]:
    if n_lif == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    # One small integer per parameter, then one per combination: sorting 1-d int64 keys is far
    # cheaper than np.unique(axis=0) on an (n, k) array at a million neurons. The neuron model is
    # one more parameter: neurons of different models never share a profile.
    names = sorted({p.model.name for p in pops})
    model_ids = [np.full(p.size, names.index(p.model.name), np.int64) for p in pops]
    return _combined_key(model_ids, pops, "profile_params"), _combined_key(model_ids, pops, "threshold_params")


def _combined_key(model_ids: list[np.ndarray], pops: list[ir.Population], which: str) -> np.ndarray:
    """Dense id of each neuron's (model, the model's ``which`` parameters) combination."""
    key, _ = _dense_ids(model_ids)
    width = max(len(getattr(p.model, which)) for p in pops)
    for k in range(width):
        # Parameter k of each model (models with fewer parameters contribute a constant); the key
        # is made dense again after each one so that it cannot overflow int64.
        ids, count = _dense_ids([np.broadcast_to(getattr(p.fixed, getattr(p.model, which)[k]), (p.size,))
                                 if k < len(getattr(p.model, which)) else np.full(p.size, -1) for p in pops])
        key, _ = _dense_ids([key.astype(np.int64) * count + ids])
    return key


def _unit_bounds(pops: list[ir.Population]) -> tuple[np.ndarray, np.ndarray]:
    bounds, owners, start = [np.zeros(1, np.int64)], [], 0
    for k, pop in enumerate(pops):
        step = pop.motif_size or 1
        edges = start + np.arange(step, pop.size + 1, step, dtype=np.int64)
        if pop.size % step:  # a trailing partial motif is still one unit
            edges = np.append(edges, start + pop.size)
        bounds.append(edges)
        owners.append(np.full(edges.size, k))
        start += pop.size
    return np.concatenate(bounds), (np.concatenate(owners) if owners else np.zeros(0, np.int64))


def range_demand(demand: NetworkDemand, lo: int, hi: int, target: Target) -> dict[str, int]:
    """Exact demand of global neurons ``[lo, hi)`` placed together on one core (output axons excluded)."""
    enc, core = target.synapse_encoding, target.core
    indptr = demand.incoming.indptr
    sources = demand.incoming.indices[indptr[lo]:indptr[hi]]
    n_syn = int(indptr[hi] - indptr[lo])
    in_axons = int(np.unique(sources).size)
    memory = n_syn * enc.bits_per_synapse + in_axons * enc.header_bits_per_axon
    if core.shared_memory:
        memory += int(demand.state_between(lo, hi)) * core.neuron_state_bits
    return {
        "neurons": hi - lo,
        "synapses": n_syn,
        "synapse_memory_bits": memory,
        "input_axons": in_axons,
        "neuron_profiles": int(np.unique(demand.profile_key[lo:hi]).size),
        "threshold_profiles": int(np.unique(demand.threshold_key[lo:hi]).size),
    }


def _ceil_div(a: int, b: int) -> int:
    return -(-int(a) // int(b))


def lower_bound(demand: NetworkDemand, target: Target) -> dict[str, int]:
    """LB on cores: max over resources of ceil(total demand / per-core capacity).

    Axons are not additive, but each has a floor: a source whose synapses land
    on ``f`` distinct neurons reaches at least ``ceil(f / core.neurons)`` cores,
    so it needs that many input axons (each with a header in synapse memory)
    and, for a LIF source, that many output axons. Profiles: every distinct
    profile lives on at least one core. Targets guarantee every capacity is >= 1.
    """
    key = ("lower_bound", target.limits_key())
    if key in demand.cache:
        return dict(demand.cache[key])
    core, enc = target.core, target.synapse_encoding
    inc = demand.incoming
    n_syn = int(inc.nnz)
    fanout = np.bincount(inc.indices, minlength=demand.n_sources)
    reach = -(-fanout // core.neurons)  # cores each source must reach at least
    min_in_axons = int(reach.sum())
    min_out_axons = int(reach[:demand.n_lif].sum())
    memory = n_syn * enc.bits_per_synapse + min_in_axons * enc.header_bits_per_axon
    if core.shared_memory:
        memory += int(demand.state_size.sum()) * core.neuron_state_bits
    n_profiles = int(demand.profile_key.max(initial=-1)) + 1
    n_thresholds = int(demand.threshold_key.max(initial=-1)) + 1
    per_resource = {
        "neurons": _ceil_div(demand.n_lif, core.neurons),
        "synapse_memory_bits": _ceil_div(memory, core.synapse_memory_bits),
        "input_axons": _ceil_div(min_in_axons, core.input_axons),
        "output_axons": _ceil_div(min_out_axons, core.output_axons),
        "neuron_profiles": _ceil_div(n_profiles, core.neuron_profiles),
        "threshold_profiles": _ceil_div(n_thresholds, core.threshold_profiles),
    }
    per_resource["cores"] = max(per_resource.values(), default=0)
    demand.cache[key] = dict(per_resource)
    return per_resource


# --------------------------------------------------------------------------- per-core usage

def gather_ranges(starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(start, stop)`` of every range, without a Python loop."""
    starts = np.asarray(starts, np.int64)
    lengths = np.asarray(stops, np.int64) - starts
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    out = np.ones(total, np.int64)
    ends = np.cumsum(lengths)
    nonempty = lengths > 0
    first = np.concatenate([[0], ends[:-1]])[nonempty]
    s = starts[nonempty]
    out[0] = s[0]
    # Each range begins with a jump from the previous range's last element to its own start.
    prev_last = (s + lengths[nonempty] - 1)[:-1]
    out[first[1:]] = s[1:] - prev_last
    return np.cumsum(out)


def _runs(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximal runs of consecutive integers in a sorted array, as [start, stop) pairs."""
    if rows.size == 0:
        return rows, rows
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    starts = rows[np.concatenate([[0], breaks])]
    stops = rows[np.concatenate([breaks - 1, [rows.size - 1]])] + 1
    return starts, stops


def core_sources(demand: NetworkDemand, rows: np.ndarray) -> np.ndarray:
    """Source index of every synapse onto the given (sorted) LIF neurons; a view when they are contiguous."""
    inc = demand.incoming
    starts, stops = _runs(rows)
    if starts.size == 1:
        return inc.indices[inc.indptr[starts[0]]:inc.indptr[stops[0]]]
    return inc.indices[gather_ranges(inc.indptr[starts], inc.indptr[stops])]


def _distinct_pairs(a: np.ndarray, b: np.ndarray, nb: int, na: int) -> np.ndarray:
    """Number of distinct b values for every a value."""
    keys = np.unique(a.astype(np.int64) * max(nb, 1) + b)
    return np.bincount(keys // max(nb, 1), minlength=na)


def _triplets(src: list[np.ndarray], dst: list[np.ndarray], val: list[np.ndarray], dtype=np.int64):
    if not src:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, dtype)
    return np.concatenate(src), np.concatenate(dst), np.concatenate(val).astype(dtype)


def core_usage(demand: NetworkDemand, core_of_neuron: np.ndarray, n_cores: int, target: Target) -> dict:
    """Per-core demand of every resource, and core-to-core traffic, for any neuron -> core assignment.

    One pass per core over the synapses onto it: sorting its source indices
    gives its input axons (distinct sources), the synapses it receives from
    every other core, and the (neuron, destination core) pairs that are
    output axons. Cost O(synapses * log(synapses per core)); memory O(synapses
    per core) beyond the demand itself.

    ``traffic``: (src core, dst core, synapses); ``axon_traffic``: (src, dst,
    distinct presynaptic neurons), i.e. spike messages per step if all fire;
    ``spike_traffic``: (src, dst, spikes sent), only when spike counts were given.
    """
    core_of_neuron = np.asarray(core_of_neuron, np.int64)
    n_lif = demand.n_lif
    order = np.argsort(core_of_neuron, kind="stable")
    neurons = np.bincount(core_of_neuron, minlength=n_cores)
    ptr = np.concatenate([[0], np.cumsum(neurons)])
    synapses = np.zeros(n_cores, np.int64)
    input_axons = np.zeros(n_cores, np.int64)
    output_axons = np.zeros(n_cores, np.int64)
    t_src, t_dst, t_syn, t_axon, t_spike = [], [], [], [], []
    weights = demand.source_weight
    for c in range(n_cores):
        rows = order[ptr[c]:ptr[c + 1]]
        src = core_sources(demand, rows)
        synapses[c] = src.size
        if src.size == 0:
            continue
        uniq, counts = np.unique(src, return_counts=True)
        input_axons[c] = uniq.size
        n_lif_src = int(np.searchsorted(uniq, n_lif))
        from_core = core_of_neuron[uniq[:n_lif_src]]
        axon_row = np.bincount(from_core, minlength=n_cores)
        output_axons += axon_row
        nz = np.flatnonzero(axon_row)
        t_src.append(nz)
        t_dst.append(np.full(nz.size, c, np.int64))
        t_axon.append(axon_row[nz])
        t_syn.append(np.bincount(from_core, weights=counts[:n_lif_src], minlength=n_cores)[nz])
        if weights is not None:
            t_spike.append(np.bincount(from_core, weights=weights[uniq[:n_lif_src]], minlength=n_cores)[nz])
    profiles = _distinct_pairs(core_of_neuron, demand.profile_key, int(demand.profile_key.max(initial=0)) + 1,
                               n_cores)
    thresholds = _distinct_pairs(core_of_neuron, demand.threshold_key,
                                 int(demand.threshold_key.max(initial=0)) + 1, n_cores)
    enc = target.synapse_encoding
    memory = synapses * enc.bits_per_synapse + input_axons * enc.header_bits_per_axon
    if target.core.shared_memory:
        state = np.bincount(core_of_neuron, weights=demand.state_size, minlength=n_cores).astype(np.int64)
        memory = memory + state * target.core.neuron_state_bits
    usage = {"neurons": neurons, "synapses": synapses, "synapse_memory_bits": memory, "input_axons": input_axons,
             "output_axons": output_axons, "neuron_profiles": profiles, "threshold_profiles": thresholds}
    out = {"usage": usage, "traffic": _triplets(t_src, t_dst, t_syn), "axon_traffic": _triplets(t_src, t_dst, t_axon)}
    if weights is not None:
        out["spike_traffic"] = _triplets(t_src, t_dst, t_spike, np.float64)
    return out


def assignment_key(core_of_unit: np.ndarray, target: Target) -> tuple:
    core_of_unit = np.ascontiguousarray(core_of_unit, np.int64)
    return ("usage", hashlib.blake2b(core_of_unit.tobytes(), digest_size=16).hexdigest(), target.limits_key())


def unit_core_usage(demand: NetworkDemand, core_of_unit: np.ndarray, target: Target) -> dict:
    """:func:`core_usage` for a unit -> core assignment, cached on the demand (mappers and placement share it)."""
    key = assignment_key(core_of_unit, target)
    if key not in demand.cache:
        n_cores = int(core_of_unit.max()) + 1 if core_of_unit.size else 0
        core_of_neuron = np.repeat(np.asarray(core_of_unit, np.int64), np.diff(demand.unit_bounds))
        demand.cache[key] = core_usage(demand, core_of_neuron, n_cores, target)
    return demand.cache[key]


def over_limit(usage: dict, target: Target) -> np.ndarray:
    """(n_cores,) worst ratio of used / limit over every per-core resource (> 1: violated)."""
    n = usage["neurons"].size
    worst = np.zeros(n)
    for r in RESOURCES:
        used = usage[r].astype(np.float64)
        limit = target.core.limit(r)
        worst = np.maximum(worst, used / limit)
    return worst
