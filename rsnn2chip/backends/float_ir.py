"""A float simulator of the IR itself (``CubaLIF`` parameters, float weights), in NumPy.

It runs the dynamics documented on :class:`rsnn2chip.ir.CubaLIF` with the
IR's delay semantics: every projection delivers at step ``t`` what its
presynaptic population (or input channel) emitted at ``t - 1``. That is the
float model ``rsnn2chip.nn.RSNN`` trains, so a network that went out to
another format and came back (NIR) can be checked against the original
without any quantization in between. It needs no compile step and ignores
``pop.fixed``.
"""
from __future__ import annotations

import networkx as nx
import numpy as np

from rsnn2chip import ir
from rsnn2chip.errors import InputError


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
    params = {p.name: {k: getattr(p.neuron, k).astype(dtype) for k in ir.CubaLIF.PARAMS} for p in pops}
    weights = [(proj.pre, proj.post, proj.weight.astype(dtype).T.tocsr()) for proj in ir.projections(graph)]
    state = {p.name: {"u": np.zeros((batch, p.size), dtype), "v": np.zeros((batch, p.size), dtype)} for p in pops}
    prev = {p.name: np.zeros((batch, p.size), dtype) for p in pops}
    prev.update({name: np.zeros((batch, hi - lo), dtype) for name, (lo, hi) in in_slices.items()})
    spikes = {p.name: np.zeros((batch, steps, p.size), bool) for p in pops}
    recorded = {var: {p.name: np.zeros((batch, steps, p.size), dtype) for p in pops} for var in probes}
    for t in range(steps):
        current = {p.name: np.zeros((batch, p.size), dtype) for p in pops}
        for pre, post, w_t in weights:
            current[post] += np.asarray(prev[pre] @ w_t)
        for p in pops:
            n, s = params[p.name], state[p.name]
            s["u"] = s["u"] * (1 - n["current_decay"]) + current[p.name]
            s["v"] = s["v"] * (1 - n["voltage_decay"]) + s["u"] + n["bias"]
            fired = s["v"] > n["threshold"]
            s["v"] = np.where(fired, 0.0, s["v"])
            spikes[p.name][:, t] = fired
            for var in probes:
                recorded[var][p.name][:, t] = s[var]
        for p in pops:
            prev[p.name] = spikes[p.name][:, t].astype(dtype)
        for name, (lo, hi) in in_slices.items():
            prev[name] = x[:, t, lo:hi] if t < x.shape[1] else np.zeros((batch, hi - lo), dtype)
    return spikes, recorded
