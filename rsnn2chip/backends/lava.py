"""The Lava backend: runs a :class:`LoweredNetwork` in Lava's bit-accurate CPU simulator.

Lava's speed is set by its process count (each process is an OS process,
synchronised every step), not by neuron count, so the network is built from
as few processes as the arithmetic allows: one LIF for all neurons, one
source for all input channels, one sink, one Monitor per probed variable,
and one Sparse per group of projections (see :func:`group_projections`).
The run happens under :func:`~rsnn2chip.backends.watchdog.run_with_watchdog`
because a failing Lava process model can hang the run forever.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from rsnn2chip.backends.plan import LoweredNetwork, LoweredProjection
from rsnn2chip.backends.watchdog import run_with_watchdog
from rsnn2chip.errors import InputError

PROBES = ("u", "v")
_BASE_TIMEOUT_S = 60.0
_BUILD_TIMEOUT_S = 20.0  # per sample: each sample compiles a fresh Lava network
_STEP_TIMEOUT_S = 0.002  # per step and process, ~10x what Lava needs


def group_projections(net: LoweredNetwork) -> list[list[LoweredProjection]]:
    """Partition the projections into groups that one Sparse process each can run exactly.

    A Sparse shifts the *sum* of its mantissas by one ``weight_exp`` and clips
    by one sign mode, so a group shares source, exponent and sign mode. Rows
    must be disjoint: the floor after the shift is taken per row, and two
    projections summed into the same row before it would round differently.
    Greedy first fit in projection order; projections without synapses are
    dropped since they add nothing.
    """
    groups: list[list[LoweredProjection]] = []
    for proj in net.projections:
        if proj.weights.nnz == 0:
            continue
        key = _group_key(proj)
        home = next((g for g in groups if _group_key(g[0]) == key
                     and not any(_overlap(proj.rows, other.rows) for other in g)), None)
        if home is None:
            groups.append([proj])
        else:
            home.append(proj)
    return groups


def process_count(net: LoweredNetwork, probes=()) -> int:
    """Number of Lava processes :func:`simulate` builds per sample."""
    if net.n_lif == 0:
        return 0
    groups = group_projections(net)
    has_source = any(g[0].source == "input" for g in groups)
    return 1 + int(has_source) + 1 + len(groups) + len(probes)


def default_timeout(net: LoweredNetwork, steps: int, batch: int = 1, probes=()) -> float:
    """A generous limit for :func:`simulate`; a healthy run takes a small fraction of it."""
    per_sample = _BUILD_TIMEOUT_S + steps * process_count(net, probes) * _STEP_TIMEOUT_S
    return _BASE_TIMEOUT_S + batch * per_sample


def simulate(net: LoweredNetwork, inputs: np.ndarray, steps: int, probes=(),
             timeout: float | None = None) -> tuple[np.ndarray, dict]:
    """Run ``steps`` steps for each sample of ``inputs`` in Lava, one sample after another.

    Same contract as :func:`rsnn2chip.backends.reference.simulate`: ``inputs``
    is ``(B, steps, n_input)`` of 0/1; returns spikes ``(B, steps, n_lif)``
    bool and probes ``(B, steps, n_lif)`` int32. Raises
    :class:`~rsnn2chip.errors.BackendError` if Lava fails or exceeds
    ``timeout`` seconds (default :func:`default_timeout`).
    """
    probes = tuple(probes)
    inputs = _check_inputs(net, inputs, steps, probes)
    batch = inputs.shape[0]
    if net.n_lif == 0 or steps == 0 or batch == 0:
        return _empty(batch, steps, net.n_lif, probes)
    if timeout is None:
        timeout = default_timeout(net, steps, batch, probes)
    return run_with_watchdog(_run_batch, (net, inputs, steps, probes), timeout,
                             f"Lava simulation ({batch} sample(s), {steps} steps)")


def _check_inputs(net, inputs, steps, probes) -> np.ndarray:
    unknown = [p for p in probes if p not in PROBES]
    if unknown:
        raise InputError("unknown probe", found=unknown, allowed=list(PROBES))
    inputs = np.asarray(inputs)
    if inputs.ndim != 3 or inputs.shape[1] < steps or inputs.shape[2] != net.n_input:
        raise InputError("inputs must be (batch, steps, n_input)", found=inputs.shape,
                         allowed=f"(B, >= {steps}, {net.n_input})")
    return inputs


def _empty(batch, steps, n, probes):
    return (np.zeros((batch, steps, n), bool),
            {name: np.zeros((batch, steps, n), np.int32) for name in probes})


def _run_batch(net, inputs, steps, probes):
    spikes, recorded = _empty(inputs.shape[0], steps, net.n_lif, probes)
    groups = group_projections(net)
    for b in range(inputs.shape[0]):
        spikes[b], sample_probes = _run_sample(net, groups, inputs[b, :steps], steps, probes)
        for name in probes:
            recorded[name][b] = sample_probes[name]
    return spikes, recorded


def _run_sample(net, groups, x, steps, probes):
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    lif, sink, monitors = _build(net, groups, x, steps, probes)
    # The runtime's INFO report of a model's traceback is not needed: the
    # watchdog records it in the failing process itself, also when Lava hangs.
    lif.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
    spikes = sink.data.get().T.astype(bool)
    recorded = {name: _monitored(mon, lif, name) for name, mon in monitors.items()}
    # Not in a finally: after a model error stop() waits forever for the dead
    # process; the watchdog kills what is left instead.
    lif.stop()
    return spikes, recorded


def _monitored(monitor, lif, name) -> np.ndarray:
    # Monitor stores floats; u and v are 24-bit, so the float64 values are exact.
    return np.asarray(monitor.get_data()[lif.name][name]).astype(np.int64).astype(np.int32)


def _build(net, groups, x, steps, probes):
    from lava.proc import io
    from lava.proc.lif.process import LIF
    from lava.proc.monitor.process import Monitor

    p = net.params
    lif = LIF(shape=(net.n_lif,), du=p["du"].copy(), dv=p["dv"].copy(), vth=p["vth"].copy(),
              bias_mant=p["bias_mant"].copy(), bias_exp=p["bias_exp"].copy(), name="rsnn2chip_lif")
    source = None
    if any(g[0].source == "input" for g in groups):
        source = io.source.RingBuffer(data=np.ascontiguousarray(x.T, dtype=np.int32))
    for group in groups:
        sparse = _sparse_for(group, net)
        (source.s_out if group[0].source == "input" else lif.s_out).connect(sparse.s_in)
        sparse.a_out.connect(lif.a_in)
    sink = io.sink.RingBuffer(shape=(net.n_lif,), buffer=steps)
    lif.s_out.connect(sink.a_in)
    monitors = {}
    for name in probes:
        # One Monitor per variable: Monitor's bookkeeping supports one probe only.
        monitors[name] = Monitor()
        monitors[name].probe(getattr(lif, name), steps)
    return lif, sink, monitors


def _sparse_for(group, net):
    from lava.proc.sparse.process import Sparse
    from lava.utils.weightutils import SignMode

    n_source = net.n_input if group[0].source == "input" else net.n_lif
    weights = block_matrix(group, (net.n_lif, n_source))
    return Sparse(weights=weights, weight_exp=group[0].weight_exp, num_weight_bits=8,
                  sign_mode=SignMode[group[0].sign_mode.upper()], num_message_bits=group[0].payload_bits)


def block_matrix(group: list[LoweredProjection], shape: tuple[int, int]) -> sp.csr_matrix:
    """The projections of one group placed at their (rows, cols) in one matrix."""
    blocks = [p.weights.tocoo() for p in group]
    rows = np.concatenate([b.row + p.rows[0] for b, p in zip(blocks, group)])
    cols = np.concatenate([b.col + p.cols[0] for b, p in zip(blocks, group)])
    data = np.concatenate([b.data for b in blocks]).astype(np.int64)
    return sp.csr_matrix((data, (rows, cols)), shape=shape)


def _group_key(proj: LoweredProjection):
    return proj.source, proj.weight_exp, proj.sign_mode, proj.payload_bits


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]
