"""Which Lava processes a compiled network becomes: a pure NumPy plan, no Lava import.

Lava runs every process as an OS process synchronised at every step, so a
process costs ~0.3 ms per step on a small CPU, whatever it computes; a
synapse process costs its kernel on top (``weights[:, spiking].sum(axis=1)``,
which for ``Dense`` reads every row of every spiking column and for
``Sparse`` slices a CSR matrix by column). :func:`plan` therefore builds the
candidate layouts below and keeps the cheapest by :func:`step_cost`:

* **neuron groups**: the populations that share one neuron process. Either
  every hidden population in one process (few processes: best for small
  networks) or one process per population (narrow synapse matrices: best for
  large ones). The readout population always has a process of its own, so that
  it can be the hierarchical process's ``out`` port (Lava ports cannot be
  sliced).
* **synapse groups**: the projections that share one ``Dense`` or ``Sparse``
  process. A group shares source process, target process, weight exponent and
  sign mode (one process has one of each). It may feed the same neuron from
  several projections only where the sum is still exact: the process floors
  ``sum * 2**weight_exp`` once per neuron, which equals the sum of the
  per-projection floors when at most one of the projections meeting there has
  mantissas that a negative exponent does not divide (see :func:`shift_exact`).
  netx files always qualify: netx stores weights pre-shifted by minus their
  exponent.
* **Dense or Sparse** per synapse group, by the kernel's cost.

Replicas (independent copies of the network side by side, for batched
evaluation) multiply every process's width, not the process count; each
synapse matrix becomes block diagonal.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from rsnn2chip.backends.plan import LoweredNetwork, LoweredProjection
from rsnn2chip.errors import InputError

INPUT = "input"  # the source name of synapse groups fed by the network's input port

# Step-cost model (seconds), measured with lava-nc 0.10 on 2 shared CPU cores
# (see docs/lava.md, "Choosing the layout"): per process and step; Dense per
# (row x spiking column); Sparse per call and per stored weight in a spiking column.
COST_PROCESS_S = 3e-4
COST_DENSE_ELEMENT_S = 8e-9
COST_SPARSE_CALL_S = 1.5e-4
COST_SPARSE_NONZERO_S = 3.5e-8
ASSUMED_SPIKE_RATE = 0.15  # fraction of source neurons spiking per step, for the kernel costs

SYNAPSE_KINDS = ("auto", "dense", "sparse")
MERGE_MODES = ("auto", "merged", "split")


@dataclass(frozen=True)
class NeuronGroup:
    """Populations (contiguous in the global LIF order) that one neuron process runs."""
    name: str
    populations: tuple[str, ...]
    lo: int
    hi: int
    model: str = "lif"

    @property
    def size(self) -> int:
        return self.hi - self.lo


@dataclass
class SynapseGroup:
    """Projections that one Dense or Sparse process runs, with its matrix (replicas included)."""
    source: str  # INPUT or the name of a NeuronGroup
    target: str  # the name of a NeuronGroup
    projections: list[LoweredProjection]
    weight_exp: int
    sign_mode: str
    kind: str = "dense"
    weights: sp.csr_matrix | None = None  # (replicas * target size, replicas * source size), int64

    def kernel_cost(self, kind: str | None = None) -> float:
        kind = kind or self.kind
        rows, cols = self.weights.shape
        if kind == "dense":
            return rows * cols * ASSUMED_SPIKE_RATE * COST_DENSE_ELEMENT_S
        return COST_SPARSE_CALL_S + self.weights.nnz * ASSUMED_SPIKE_RATE * COST_SPARSE_NONZERO_S


@dataclass
class Layout:
    lowered: LoweredNetwork
    readout: str
    replicas: int
    neuron_groups: list[NeuronGroup]
    synapse_groups: list[SynapseGroup] = field(default_factory=list)

    def neuron_group_of(self, population: str) -> NeuronGroup:
        return next(g for g in self.neuron_groups if population in g.populations)

    def local_slice(self, population: str) -> tuple[int, int]:
        """``[start, stop)`` of ``population`` inside its neuron process (replica 0)."""
        group = self.neuron_group_of(population)
        lo, hi = self.lowered.lif_slices[population]
        return lo - group.lo, hi - group.lo

    @property
    def process_count(self) -> int:
        """Processes inside the hierarchical process (sources, sinks and monitors not counted)."""
        return len(self.neuron_groups) + len(self.synapse_groups)

    def step_cost(self) -> float:
        return (COST_PROCESS_S * self.process_count
                + sum(g.kernel_cost() for g in self.synapse_groups))


def default_readout(net: LoweredNetwork) -> str:
    return list(net.lif_slices)[-1]


def plan(net: LoweredNetwork, readout: str | None = None, replicas: int = 1, merge: str = "auto",
         synapses: str = "auto") -> Layout:
    """The cheapest exact layout of ``net`` (see the module docstring)."""
    if not net.lif_slices:
        raise InputError("the network has no LIF population to build Lava processes for")
    readout = readout or default_readout(net)
    if readout not in net.lif_slices:
        raise InputError("unknown readout population", found=readout, allowed=", ".join(net.lif_slices))
    if replicas < 1:
        raise InputError("replicas must be >= 1", found=replicas, allowed=">= 1")
    if merge not in MERGE_MODES:
        raise InputError("unknown neuron grouping", found=merge, allowed=", ".join(MERGE_MODES))
    if synapses not in SYNAPSE_KINDS:
        raise InputError("unknown synapse process kind", found=synapses, allowed=", ".join(SYNAPSE_KINDS))
    modes = ("merged", "split") if merge == "auto" else (merge,)
    candidates = []
    for mode in modes:
        layout = Layout(net, readout, replicas, neuron_groups(net, readout, merged=mode == "merged"))
        layout.synapse_groups = synapse_groups(layout, synapses)
        candidates.append(layout)
    return min(candidates, key=Layout.step_cost)


def population_model(net: LoweredNetwork, population: str) -> str:
    """The neuron model of a population: the hook where per-population models plug in."""
    return "lif"


def neuron_groups(net: LoweredNetwork, readout: str, merged: bool) -> list[NeuronGroup]:
    """Runs of consecutive hidden populations of one model (``merged``), or one group per population."""
    runs: list[list[str]] = []
    for name in net.lif_slices:
        previous = runs[-1][-1] if runs else None
        joins = (merged and previous is not None and readout not in (name, previous)
                 and population_model(net, name) == population_model(net, previous))
        if joins:
            runs[-1].append(name)
        else:
            runs.append([name])
    groups = []
    for run in runs:
        lo, hi = net.lif_slices[run[0]][0], net.lif_slices[run[-1]][1]
        name = run[0] if len(run) == 1 else f"{run[0]}..{run[-1]}"
        groups.append(NeuronGroup(name, tuple(run), lo, hi, population_model(net, run[0])))
    return groups


def shift_exact(proj: LoweredProjection) -> bool:
    """True when ``floor(mantissa_sum * 2**weight_exp)`` never rounds for this projection.

    A non-negative exponent shifts left; a negative one divides exactly when
    every mantissa is a multiple of ``2**-weight_exp``.
    """
    if proj.weight_exp >= 0:
        return True
    return not np.any(np.asarray(proj.weights.data) % (1 << -proj.weight_exp))


def synapse_groups(layout: Layout, synapses: str = "auto") -> list[SynapseGroup]:
    """Greedy first fit of the projections into exact synapse groups, in projection order.

    Projections without synapses are dropped since they add nothing.
    """
    net = layout.lowered
    groups: list[SynapseGroup] = []
    for proj in net.projections:
        if proj.weights.nnz == 0:
            continue
        source = INPUT if proj.source == "input" else _group_at(layout, proj.cols[0]).name
        target = _group_at(layout, proj.rows[0]).name
        home = next((g for g in groups if (g.source, g.target, g.weight_exp, g.sign_mode)
                     == (source, target, proj.weight_exp, proj.sign_mode) and _fits(g, proj)), None)
        if home is None:
            groups.append(SynapseGroup(source, target, [proj], proj.weight_exp, proj.sign_mode))
        else:
            home.projections.append(proj)
    for group in groups:
        group.weights = group_matrix(layout, group)
        group.kind = synapses if synapses != "auto" else min(("dense", "sparse"), key=group.kernel_cost)
    return groups


def _fits(group: SynapseGroup, proj: LoweredProjection) -> bool:
    # Two projections on the same synapse would add mantissas, which Lava then clips.
    if any(_overlap(proj.rows, o.rows) and _overlap(proj.cols, o.cols) for o in group.projections):
        return False
    if shift_exact(proj):
        return True
    return not any(_overlap(proj.rows, o.rows) for o in group.projections if not shift_exact(o))


def _group_at(layout: Layout, lif_index: int) -> NeuronGroup:
    return next(g for g in layout.neuron_groups if g.lo <= lif_index < g.hi)


def group_matrix(layout: Layout, group: SynapseGroup) -> sp.csr_matrix:
    """The group's projections at their place in (target process x source process), tiled per replica."""
    target = next(g for g in layout.neuron_groups if g.name == group.target)
    if group.source == INPUT:
        col0, n_cols = 0, layout.lowered.n_input
    else:
        source = next(g for g in layout.neuron_groups if g.name == group.source)
        col0, n_cols = source.lo, source.size
    blocks = [p.weights.tocoo() for p in group.projections]
    rows = np.concatenate([b.row + p.rows[0] - target.lo for b, p in zip(blocks, group.projections)])
    cols = np.concatenate([b.col + p.cols[0] - col0 for b, p in zip(blocks, group.projections)])
    data = np.concatenate([b.data for b in blocks]).astype(np.int64)
    one = sp.csr_matrix((data, (rows, cols)), shape=(target.size, n_cols))
    if layout.replicas == 1:
        return one
    return sp.kron(sp.identity(layout.replicas, dtype=np.int64, format="csr"), one, format="csr")


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]
