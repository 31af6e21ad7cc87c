"""Lowering of a quantized IR into flat arrays that both backends execute.

Neurons of all LIF populations are numbered globally in population order, as
are the channels of all input populations. Both backends build from the same
:class:`LoweredNetwork`, so they cannot disagree about layout.
"""
from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np
import scipy.sparse as sp

from rsnn2chip import fixedpoint as fx
from rsnn2chip import ir
from rsnn2chip.errors import ModelError


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
    params: dict[str, np.ndarray]  # du, dv, vth, bias_mant, bias_exp; each (n_lif,) int64
    projections: list[LoweredProjection]
    # Per input channel: the graded payload format, None for 0/1 spikes.
    input_graded: dict[str, ir.GradedInput | None] = None

    @property
    def graded(self) -> bool:
        return any(g is not None for g in (self.input_graded or {}).values())

    @property
    def vth_eff(self) -> np.ndarray:
        return np.left_shift(self.params["vth"], fx.VTH_SHIFT)

    @property
    def bias_eff(self) -> np.ndarray:
        return fx.effective_bias(self.params["bias_mant"], self.params["bias_exp"])


def lower(graph: nx.DiGraph) -> LoweredNetwork:
    input_slices = ir.neuron_offsets(graph, "input")
    lif_slices = ir.neuron_offsets(graph, "lif")
    params = {name: [] for name in ir.LoihiLIF.PARAMS}
    for pop in ir.populations(graph, "lif"):
        if pop.fixed is None:
            raise ModelError("population has no fixed-point parameters; run the quantize pass first",
                             where=pop.name)
        for name, arr in pop.fixed.expanded(pop.size).items():
            params[name].append(arr)
    n_lif = sum(hi - lo for lo, hi in lif_slices.values())
    params = {k: (np.concatenate(v) if v else np.zeros(0, np.int64)).astype(np.int64) for k, v in params.items()}
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
                          params, projections, graded)
