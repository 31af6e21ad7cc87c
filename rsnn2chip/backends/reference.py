"""The reference backend: a vectorised NumPy simulator of Lava's fixed-point neurons + Sparse.

Each neuron group steps with its model's ``reference_step`` (for CUBA-LIF,
``PyLifModelBitAcc``; for ATRLIF, ``PyATRLIFModelFixed``); with
``PySparseModelBitAcc`` the whole network is reproduced bit for bit,
including the one-step delay each Sparse adds (it sends the previous step's
accumulation before it reads this step's spikes). It runs a batch of inputs at
once, which Lava cannot.
"""
from __future__ import annotations

import numpy as np

from rsnn2chip import fixedpoint as fx
from rsnn2chip.backends.plan import LoweredNetwork


def simulate(net: LoweredNetwork, inputs: np.ndarray, steps: int, probes=()) -> tuple[np.ndarray, dict]:
    """Run ``steps`` steps for a batch.

    ``inputs`` is ``(B, steps, n_input)`` of 0/1 spikes or integer graded payloads. Returns spikes ``(B, steps, n_lif)``
    and the requested probes (``"u"``, ``"v"``) as ``(B, steps, n_lif)`` int32.
    """
    batch = inputs.shape[0]
    n = net.n_lif
    consts = [g.constants() for g in net.groups]
    states = [g.model.initial_state(c, batch) for g, c in zip(net.groups, consts)]
    selectors = [g.selector for g in net.groups]
    spikes_prev = np.zeros((batch, n), np.int64)
    input_prev = np.zeros((batch, net.n_input), np.int64)
    out = np.zeros((batch, steps, n), bool)
    recorded = {name: np.zeros((batch, steps, n), np.int32) for name in probes}
    for t in range(steps):
        a_in = np.zeros((batch, n), np.int64)
        for proj in net.projections:
            src = input_prev if proj.source == "input" else spikes_prev
            acc = np.asarray((proj.weights @ src[:, proj.cols[0]:proj.cols[1]].T).T, dtype=np.int64)
            a_in[:, proj.rows[0]:proj.rows[1]] += fx.shift_accumulated(acc, proj.weight_exp)
        for k, group in enumerate(net.groups):
            states[k], s = group.model.reference_step(states[k], a_in[:, selectors[k]], consts[k])
            out[:, t, selectors[k]] = s
            for name in probes:
                recorded[name][:, t, selectors[k]] = states[k][name]
        spikes_prev = out[:, t].astype(np.int64)
        input_prev = inputs[:, t].astype(np.int64)
    return out, recorded
