"""Resource model: what each neuron, motif and core of a quantized IR demands of a target.

Neurons of all LIF populations are numbered globally (as in the backends'
lowering); presynaptic *sources* are numbered LIF neurons first, then input
channels. One input axon of a core serves one distinct source; one output axon
of a neuron serves one distinct destination core (nengo-loihi's model).
Synapse memory follows the target's encoding: every synapse costs
``weight_bits + index_bits + delay_bits`` and every input axon a header.
"""
from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np
import scipy.sparse as sp

from rsnn2chip import ir
from rsnn2chip.targets import Target

RESOURCES = ("neurons", "synapse_memory_bits", "input_axons", "output_axons", "neuron_profiles",
             "threshold_profiles")


@dataclass
class Unit:
    """An atomic placement unit: a motif, or one neuron of a non-motif population."""

    population: str
    start: int  # global LIF index range
    stop: int


@dataclass
class NetworkDemand:
    n_lif: int
    n_input: int
    incoming: sp.csr_matrix  # (n_lif, n_lif + n_input) 0/1 structure of every synapse
    profile_key: np.ndarray  # (n_lif,) id of each neuron's (du, dv, bias_exp) profile
    threshold_key: np.ndarray  # (n_lif,) id of each neuron's vth
    population_of: np.ndarray  # (n_lif,) index into populations
    populations: list[ir.Population]
    lif_slices: dict[str, tuple[int, int]]
    unit_bounds: np.ndarray  # (n_units + 1,) global neuron boundaries of atomic units
    unit_population: np.ndarray  # (n_units,) index into populations

    @property
    def n_units(self) -> int:
        return len(self.unit_bounds) - 1

    def units(self):
        for k in range(self.n_units):
            yield Unit(self.populations[self.unit_population[k]].name, int(self.unit_bounds[k]),
                       int(self.unit_bounds[k + 1]))


def bits_per_synapse(target: Target) -> int:
    enc = target["synapse_encoding"]
    return enc["weight_bits"] + enc["index_bits"] + enc["delay_bits"]


def _synapse_structure(proj: ir.Projection) -> sp.csr_matrix:
    # Synapses whose weight quantized to zero are not stored on the chip.
    m = proj.quant.mantissa if proj.quant is not None else proj.weight
    m = sp.csr_matrix(m)
    m.eliminate_zeros()
    return m


def network_demand(graph: nx.DiGraph) -> NetworkDemand:
    lif_slices = ir.neuron_offsets(graph, "lif")
    input_slices = ir.neuron_offsets(graph, "input")
    pops = list(ir.populations(graph, "lif"))
    n_lif = sum(p.size for p in pops)
    n_input = sum(hi - lo for lo, hi in input_slices.values())
    rows, cols = [], []
    for proj in ir.projections(graph):
        coo = _synapse_structure(proj).tocoo()
        pre = ir.population(graph, proj.pre)
        col_offset = lif_slices[proj.pre][0] if pre.kind == "lif" else n_lif + input_slices[proj.pre][0]
        rows.append(coo.row.astype(np.int64) + lif_slices[proj.post][0])
        cols.append(coo.col.astype(np.int64) + col_offset)
    row = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    col = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    incoming = sp.csr_matrix((np.ones(row.size, np.int8), (row, col)), shape=(n_lif, n_lif + n_input))
    incoming.sum_duplicates()
    profile_key, threshold_key = _profile_keys(pops, n_lif)
    bounds, unit_pop = _unit_bounds(pops)
    population_of = np.repeat(np.arange(len(pops)), [p.size for p in pops])
    return NetworkDemand(n_lif, n_input, incoming, profile_key, threshold_key, population_of, pops, lif_slices,
                         bounds, unit_pop)


def _profile_keys(pops: list[ir.Population], n_lif: int) -> tuple[np.ndarray, np.ndarray]:
    if n_lif == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    params = {name: [] for name in ("du", "dv", "bias_exp", "vth")}
    for pop in pops:
        fixed = pop.fixed.expanded(pop.size)
        for name in params:
            params[name].append(fixed[name])
    stacked = np.stack([np.concatenate(params[n]) for n in ("du", "dv", "bias_exp")], axis=1)
    _, profile_key = np.unique(stacked, axis=0, return_inverse=True)
    _, threshold_key = np.unique(np.concatenate(params["vth"]), return_inverse=True)
    return profile_key.ravel(), threshold_key.ravel()


def _unit_bounds(pops: list[ir.Population]) -> tuple[np.ndarray, np.ndarray]:
    bounds, owners, start = [np.zeros(1, np.int64)], [], 0
    for k, pop in enumerate(pops):
        step = pop.motif_size or 1
        edges = start + np.arange(step, pop.size + 1, step, dtype=np.int64)
        bounds.append(edges)
        owners.append(np.full(edges.size, k))
        start += pop.size
    return np.concatenate(bounds), (np.concatenate(owners) if owners else np.zeros(0, np.int64))


def range_demand(demand: NetworkDemand, lo: int, hi: int, target: Target) -> dict[str, int]:
    """Exact demand of global neurons ``[lo, hi)`` placed together on one core (output axons excluded)."""
    enc = target["synapse_encoding"]
    core = target.core
    indptr = demand.incoming.indptr
    sources = demand.incoming.indices[indptr[lo]:indptr[hi]]
    n_syn = int(indptr[hi] - indptr[lo])
    in_axons = int(np.unique(sources).size)
    memory = n_syn * bits_per_synapse(target) + in_axons * enc["header_bits_per_axon"]
    if core["shared_memory"]:
        memory += (hi - lo) * core["neuron_state_bits"]
    return {
        "neurons": hi - lo,
        "synapses": n_syn,
        "synapse_memory_bits": memory,
        "input_axons": in_axons,
        "neuron_profiles": int(np.unique(demand.profile_key[lo:hi]).size),
        "threshold_profiles": int(np.unique(demand.threshold_key[lo:hi]).size),
    }


def fits(used: dict[str, int], target: Target) -> bool:
    core = target.core
    return all(used[r] <= core[r] for r in RESOURCES if r in used)


def lower_bound(demand: NetworkDemand, target: Target) -> dict[str, int]:
    """LB on cores: max over additive resources of ceil(total demand / per-core capacity)."""
    core = target.core
    n_syn = int(demand.incoming.nnz)
    # Every synapse and every neuron's state must live somewhere; headers need >= one axon per source used.
    n_sources = int(np.unique(demand.incoming.indices).size)
    memory = n_syn * bits_per_synapse(target) + n_sources * target["synapse_encoding"]["header_bits_per_axon"]
    if core["shared_memory"]:
        memory += demand.n_lif * core["neuron_state_bits"]
    per_resource = {
        "neurons": -(-demand.n_lif // core["neurons"]),
        "synapse_memory_bits": -(-memory // core["synapse_memory_bits"]),
        "input_axons": -(-n_sources // core["input_axons"]),
    }
    per_resource["cores"] = max(per_resource.values(), default=0)
    return per_resource
