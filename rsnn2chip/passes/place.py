"""Placement and the per-core graph.

Cores are laid on each chip's mesh in boustrophedon (snake) order, so cores
with consecutive indices, which the contiguous packer fills with neighbouring
motifs, are one hop apart. The result is the *core graph* stored in the
artifact: one node per core with its contents and resource use, one edge per
pair of cores that exchange spikes, weighted by synapse count.
"""
from __future__ import annotations

import networkx as nx
import numpy as np

from rsnn2chip.passes.resources import (RESOURCES, NetworkDemand, bits_per_synapse, lower_bound)
from rsnn2chip.targets import Target


def snake_positions(n_cores: int, target: Target) -> np.ndarray:
    """(chip, row, col) of each core index."""
    rows, cols = target["chip"]["mesh"]
    per_chip = target["chip"]["cores"]
    k = np.arange(n_cores)
    chip, local = k // per_chip, k % per_chip
    row = local // cols
    col = np.where(row % 2 == 0, local % cols, cols - 1 - local % cols)
    return np.stack([chip, row, col], axis=1)


def hop_distance(pos_a: np.ndarray, pos_b: np.ndarray, target: Target) -> np.ndarray:
    """Mesh hops between cores; crossing chips costs a full mesh span per chip step."""
    rows, cols = target["chip"]["mesh"]
    within = np.abs(pos_a[..., 1] - pos_b[..., 1]) + np.abs(pos_a[..., 2] - pos_b[..., 2])
    return within + np.abs(pos_a[..., 0] - pos_b[..., 0]) * (rows + cols)


def _count_pairs(a: np.ndarray, b: np.ndarray, nb: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    keys, counts = np.unique(a.astype(np.int64) * nb + b, return_counts=True)
    return keys // nb, keys % nb, counts


def core_usage(demand: NetworkDemand, core_of_neuron: np.ndarray, n_cores: int, target: Target) -> dict:
    """Per-core demand of every resource for an arbitrary neuron -> core assignment."""
    inc = demand.incoming
    row_core = np.repeat(core_of_neuron, np.diff(inc.indptr))
    n_sources = inc.shape[1]
    synapses = np.bincount(row_core, minlength=n_cores)
    in_core, _, _ = _count_pairs(row_core, inc.indices, n_sources)
    input_axons = np.bincount(in_core, minlength=n_cores)
    # Output axons: each LIF neuron needs one per distinct destination core.
    lif_mask = inc.indices < demand.n_lif
    src = inc.indices[lif_mask]
    src_neuron, _, _ = _count_pairs(src, row_core[lif_mask], n_cores)
    output_axons = np.bincount(core_of_neuron[src_neuron], minlength=n_cores)
    profiles = np.bincount(_count_pairs(core_of_neuron, demand.profile_key, demand.profile_key.max(initial=0) + 1)[0],
                           minlength=n_cores)
    thresholds = np.bincount(
        _count_pairs(core_of_neuron, demand.threshold_key, demand.threshold_key.max(initial=0) + 1)[0],
        minlength=n_cores)
    neurons = np.bincount(core_of_neuron, minlength=n_cores)
    memory = synapses * bits_per_synapse(target) + input_axons * target["synapse_encoding"]["header_bits_per_axon"]
    if target.core["shared_memory"]:
        memory = memory + neurons * target.core["neuron_state_bits"]
    usage = {"neurons": neurons, "synapses": synapses, "synapse_memory_bits": memory, "input_axons": input_axons,
             "output_axons": output_axons, "neuron_profiles": profiles, "threshold_profiles": thresholds}
    traffic = _count_pairs(core_of_neuron[src], row_core[lif_mask], n_cores)
    return {"usage": usage, "traffic": traffic}


def _slices(demand: NetworkDemand, cores: np.ndarray, n_cores: int) -> list[list]:
    """Runs of consecutive neurons per core, as [population, local start, local stop]."""
    out = [[] for _ in range(n_cores)]
    if cores.size == 0:
        return out
    change = np.flatnonzero((np.diff(cores) != 0) | (np.diff(demand.population_of) != 0)) + 1
    starts = np.concatenate([[0], change])
    stops = np.concatenate([change, [cores.size]])
    for lo, hi in zip(starts, stops):
        pop = demand.populations[demand.population_of[lo]]
        offset = demand.lif_slices[pop.name][0]
        out[cores[lo]].append([pop.name, int(lo - offset), int(hi - offset)])
    return out


def build_core_graph(demand: NetworkDemand, core_of_unit: np.ndarray, target: Target, mapper: str) -> nx.DiGraph:
    core_of_neuron = np.repeat(core_of_unit, np.diff(demand.unit_bounds))
    n_cores = int(core_of_unit.max()) + 1 if core_of_unit.size else 0
    stats = core_usage(demand, core_of_neuron, n_cores, target)
    positions = snake_positions(n_cores, target)
    units_per_core = np.bincount(core_of_unit, minlength=n_cores)
    g = nx.DiGraph()
    slices = _slices(demand, core_of_neuron, n_cores)
    for c in range(n_cores):
        used = {r: int(stats["usage"][r][c]) for r in stats["usage"]}
        g.add_node(c, chip=int(positions[c, 0]), position=[int(positions[c, 1]), int(positions[c, 2])],
                   slices=slices[c], units=int(units_per_core[c]), used=used)
    src, dst, count = stats["traffic"]
    hops = hop_distance(positions[src], positions[dst], target) if src.size else np.zeros(0, np.int64)
    for s, d, n, h in zip(src.tolist(), dst.tolist(), count.tolist(), hops.tolist()):
        if s != d:
            g.add_edge(s, d, synapses=n, hops=h)
    lb = lower_bound(demand, target)
    crossing = int(sum(n for s, d, n in zip(src.tolist(), dst.tolist(), count.tolist()) if s != d))
    g.graph.update(target=target.name, mapper=mapper, n_cores=n_cores, lower_bound=lb,
                   cores_over_lb=(n_cores / lb["cores"]) if lb["cores"] else 1.0,
                   chips_used=int(positions[:, 0].max()) + 1 if n_cores else 0,
                   intercore_synapses=crossing,
                   hop_weighted_synapses=int(sum(d["synapses"] * d["hops"] for _, _, d in g.edges(data=True))),
                   resources=list(RESOURCES))
    return g


def core_of_neuron(core_graph: nx.DiGraph, lif_slices: dict[str, tuple[int, int]], n_lif: int) -> np.ndarray:
    """Inverse of the stored slices: the core of every global LIF neuron."""
    out = np.full(n_lif, -1, np.int64)
    for c, data in core_graph.nodes(data=True):
        for pop, lo, hi in data["slices"]:
            base = lif_slices[pop][0]
            out[base + lo:base + hi] = c
    return out
