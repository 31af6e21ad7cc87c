"""Partitioning: assign atomic units (motifs, neurons of non-motif populations) to cores.

Mappers are registered by name and chosen with ``--mapper``. Each takes the
network's demand and a target and returns the core index of every unit.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from rsnn2chip.passes.resources import NetworkDemand, bits_per_synapse, fits, range_demand
from rsnn2chip.targets import Target

MAPPERS: dict[str, Callable[[NetworkDemand, Target], np.ndarray]] = {}


def register_mapper(name: str):
    def wrap(fn):
        MAPPERS[name] = fn
        return fn
    return wrap


def _additive_cost(demand: NetworkDemand, target: Target) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative neurons and a lower bound on memory at every unit boundary (for fast prefix search)."""
    bounds = demand.unit_bounds
    core = target.core
    memory = demand.incoming.indptr[bounds].astype(np.int64) * bits_per_synapse(target)
    if core["shared_memory"]:
        memory = memory + bounds * core["neuron_state_bits"]
    return bounds, memory


@register_mapper("greedy")
def greedy_contiguous(demand: NetworkDemand, target: Target) -> np.ndarray:
    """Fill cores with consecutive units, as many as fit.

    Consecutive motifs are neighbours in an SC-ML layer (lateral links go to
    m-1 and m+1), so contiguous packing keeps most lateral synapses on-core.
    A unit that does not fit an empty core is placed alone; the design-rule
    checks then report it.
    """
    bounds, memory = _additive_cost(demand, target)
    core = target.core
    assignment = np.zeros(demand.n_units, np.int64)
    start, core_index = 0, 0
    while start < demand.n_units:
        by_neurons = np.searchsorted(bounds, bounds[start] + core["neurons"], side="right") - 1
        by_memory = np.searchsorted(memory, memory[start] + core["synapse_memory_bits"], side="right") - 1
        stop = max(min(by_neurons, by_memory, demand.n_units), start + 1)
        stop = _largest_fitting_stop(demand, target, start, stop)
        assignment[start:stop] = core_index
        start, core_index = stop, core_index + 1
    return assignment


def _largest_fitting_stop(demand: NetworkDemand, target: Target, start: int, stop: int) -> int:
    """Binary search for the largest stop in (start, stop] whose exact demand fits one core."""
    bounds = demand.unit_bounds

    def ok(s: int) -> bool:
        return fits(range_demand(demand, int(bounds[start]), int(bounds[s]), target), target)

    if ok(stop):
        return stop
    lo, hi = start + 1, stop  # invariant: hi does not fit
    if not ok(lo):
        return lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


def partition(demand: NetworkDemand, target: Target, mapper: str = "greedy") -> np.ndarray:
    return MAPPERS[mapper](demand, target)
