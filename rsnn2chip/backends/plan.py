"""Lowering of a quantized IR into flat arrays that both backends execute.

Neurons of all LIF populations are numbered globally in population order, as
are the channels of all input populations. Neurons are grouped by neuron model
(:class:`NeuronGroup`): each backend runs one group per model, whatever order
the populations come in. Both backends build from the same
:class:`LoweredNetwork`, so they cannot disagree about layout.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
import numpy as np
import scipy.sparse as sp

from rsnn2chip import fixedpoint as fx
from rsnn2chip import ir
from rsnn2chip.errors import ModelError
from rsnn2chip.neurons.base import NeuronModel


@dataclass
class NeuronGroup:
    """Neurons that run in one process of one model: global LIF indices (ascending) and fixed-point parameters."""

    model: NeuronModel
    index: np.ndarray  # (n,) int64 global LIF indices
    params: dict[str, np.ndarray]  # the model's fixed-point parameters, each (n,) int64

    @property
    def size(self) -> int:
        return int(self.index.size)

    @property
    def selector(self) -> slice | np.ndarray:
        """Indexes the group's neurons in a global ``(..., n_lif)`` array: a slice where they are contiguous."""
        if self.size and self.index[-1] - self.index[0] + 1 == self.size:
            return slice(int(self.index[0]), int(self.index[-1]) + 1)
        return self.index

    def constants(self) -> dict[str, np.ndarray]:
        return self.model.integer_constants(self.params)


def single_group(model: NeuronModel, params: dict[str, np.ndarray]) -> list[NeuronGroup]:
    """One group holding every neuron, numbered 0..n-1 (networks of one model built by hand)."""
    params = {k: np.asarray(v, np.int64) for k, v in params.items()}
    n = next(iter(params.values())).size
    return [NeuronGroup(model, np.arange(n, dtype=np.int64), params)]


@dataclass
class LoweredProjection:
    name: str
    source: str  # "input" or "lif": which global spike vector it reads
    rows: tuple[int, int]  # global LIF index range of the post population
    cols: tuple[int, int]  # global index range of the pre population in `source`
    weights: sp.csr_matrix  # int64 (rows, cols), already as Lava will use them
    weight_exp: int
    sign_mode: str
    # Graded source: bits of the integer payload each presynaptic channel sends (Lava's num_message_bits);
    # 0 for 0/1 spikes.
    payload_bits: int = 0


@dataclass
class LoweredNetwork:
    n_input: int
    n_lif: int
    input_slices: dict[str, tuple[int, int]]
    lif_slices: dict[str, tuple[int, int]]
    groups: list[NeuronGroup]  # one per neuron model and process key, in order of first appearance
    projections: list[LoweredProjection]
    # Per input channel: the graded payload format, None for 0/1 spikes.
    input_graded: dict[str, ir.GradedInput | None] = field(default_factory=dict)

    @property
    def graded(self) -> bool:
        return any(g is not None for g in self.input_graded.values())

    def largest_message(self, source: str) -> int:
        """The largest magnitude ``source`` ("input" or "lif") sends: 1 for spikes, the payload maximum for
        graded inputs."""
        if source != "input":
            return 1
        return max([1] + [g.max_payload for g in self.input_graded.values() if g is not None])

    def population_params(self, name: str) -> tuple[NeuronModel, dict[str, np.ndarray]]:
        """The model and fixed-point parameters of one population's neurons."""
        lo, hi = self.lif_slices[name]
        for group in self.groups:
            at = np.searchsorted(group.index, lo)
            if at < group.size and group.index[at] == lo:
                return group.model, {k: v[at:at + hi - lo] for k, v in group.params.items()}
        raise KeyError(name)


def lower(graph: nx.DiGraph) -> LoweredNetwork:
    input_slices = ir.neuron_offsets(graph, "input")
    lif_slices = ir.neuron_offsets(graph, "lif")
    members: dict[tuple, list[ir.Population]] = {}
    for pop in ir.populations(graph, "lif"):
        if pop.fixed is None:
            raise ModelError("population has no fixed-point parameters; run the quantize pass first",
                             where=pop.name)
        varying = [name for name in pop.model.process_params if getattr(pop.fixed, name).size > 1]
        if varying:
            raise ModelError(f"{', '.join(varying)} must be one value for the whole population", where=pop.name,
                             found="one value per neuron", allowed=f"one value ({pop.model.lava_class} holds a scalar)",
                             fix="give the layer a single value")
        members.setdefault((pop.model.name, *pop.model.process_key(pop.fixed)), []).append(pop)
    groups = []
    for pops in members.values():
        index = np.concatenate([np.arange(*lif_slices[p.name], dtype=np.int64) for p in pops])
        parts = [p.fixed.expanded(p.size) for p in pops]
        groups.append(NeuronGroup(pops[0].model, index,
                                  {k: np.concatenate([part[k] for part in parts]).astype(np.int64) for k in parts[0]}))
    n_lif = sum(hi - lo for lo, hi in lif_slices.values())
    projections = []
    for proj in ir.projections(graph):
        if proj.quant is None:
            raise ModelError("projection has no quantized weights; run the quantize pass first", where=proj.name)
        if proj.delay != 1:
            raise ModelError("only the one-step synaptic delay of Lava's Sparse is supported",
                             where=proj.name, resource="synaptic delay", found=proj.delay, allowed=1,
                             fix="fold longer delays into the network, or set delay=1")
        pre = ir.population(graph, proj.pre)
        if ir.population(graph, proj.post).kind != "lif":
            raise ModelError("projections must end on a LIF population", where=proj.name)
        source = pre.kind
        cols = (input_slices if source == "input" else lif_slices)[proj.pre]
        projections.append(LoweredProjection(
            proj.name, source, lif_slices[proj.post], cols,
            fx.lava_weights(proj.quant.mantissa, proj.quant.sign_mode),
            int(proj.quant.weight_exp), proj.quant.sign_mode, pre.graded.bits if pre.graded else 0))
    graded = {pop.name: pop.graded for pop in ir.populations(graph, "input")}
    return LoweredNetwork(sum(hi - lo for lo, hi in input_slices.values()), n_lif, input_slices, lif_slices,
                          groups, projections, graded)
