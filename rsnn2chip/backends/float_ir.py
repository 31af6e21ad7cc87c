"""A float simulator of the IR itself (float neuron parameters, float weights).

Each population steps with its neuron model's float ``torch_step`` (run on CPU
tensors, without gradients, so the float dynamics are written once per model)
with the IR's delay semantics: every projection delivers at step ``t`` what its
presynaptic population (or input channel) emitted at ``t - 1``. That is the
float model ``rsnn2chip.nn.RSNN`` trains, so a network that went out to
another format and came back (NIR) can be checked against the original
without any quantization in between. It needs no compile step and ignores
``pop.fixed``.
"""
from __future__ import annotations

import networkx as nx
import numpy as np
import torch

from rsnn2chip import ir
from rsnn2chip.errors import InputError


def heaviside(x: torch.Tensor, threshold: torch.Tensor, inclusive: bool) -> torch.Tensor:
    return (x >= threshold if inclusive else x > threshold).to(x.dtype)


def simulate(graph: nx.DiGraph, inputs: np.ndarray, steps: int | None = None, probes=(),
             dtype=np.float64) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
    """Run a batch; ``inputs`` is ``(B, T, n_input)`` (or ``(T, n_input)``), input populations in graph order.

    Returns ``(spikes, probes)``: ``spikes[pop]`` is ``(B, steps, size)`` bool for
    every LIF population; ``probes[var][pop]`` (``var`` in ``"u"``, ``"v"``) the
    state after each step.
    """
    x = np.asarray(inputs, dtype=dtype)
    x = x[None] if x.ndim == 2 else x
    in_slices = ir.neuron_offsets(graph, "input")
    n_in = sum(hi - lo for lo, hi in in_slices.values())
    if x.ndim != 3 or x.shape[2] != n_in:
        raise InputError("inputs must be (batch, steps, n_input)", found=x.shape, allowed=f"(B, T, {n_in})")
    steps = x.shape[1] if steps is None else steps
    batch = x.shape[0]
    pops = list(ir.populations(graph, "lif"))
    params = {p.name: {k: torch.from_numpy(np.broadcast_to(getattr(p.neuron, k), (p.size,)).astype(dtype))
                       for k in p.neuron.names()} for p in pops}
    weights = [(proj.pre, proj.post, proj.weight.astype(dtype).T.tocsr()) for proj in ir.projections(graph)]
    state = {p.name: p.model.torch_initial_state(params[p.name], batch) for p in pops}
    prev = {p.name: np.zeros((batch, p.size), dtype) for p in pops}
    prev.update({name: np.zeros((batch, hi - lo), dtype) for name, (lo, hi) in in_slices.items()})
    spikes = {p.name: np.zeros((batch, steps, p.size), bool) for p in pops}
    recorded = {var: {p.name: np.zeros((batch, steps, p.size), dtype) for p in pops} for var in probes}
    for t in range(steps):
        current = {p.name: np.zeros((batch, p.size), dtype) for p in pops}
        for pre, post, w_t in weights:
            current[post] += np.asarray(prev[pre] @ w_t)
        for p in pops:
            fired, state[p.name] = p.model.torch_step(params[p.name], state[p.name],
                                                      torch.from_numpy(current[p.name]), heaviside)
            spikes[p.name][:, t] = fired.numpy() > 0
            for var in probes:
                recorded[var][p.name][:, t] = state[p.name][p.model.state.index(var)].numpy()
        for p in pops:
            prev[p.name] = spikes[p.name][:, t].astype(dtype)
        for name, (lo, hi) in in_slices.items():
            prev[name] = x[:, t, lo:hi] if t < x.shape[1] else np.zeros((batch, hi - lo), dtype)
    return spikes, recorded
