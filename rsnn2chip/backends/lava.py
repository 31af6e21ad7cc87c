"""The Lava backend: runs a :class:`LoweredNetwork` in Lava's bit-accurate CPU simulator.

Lava's speed is set by its process count (each process is an OS process,
synchronised every step), not by neuron count, so the network is built from
as few processes as the arithmetic allows: one neuron process per neuron
model (``NeuronModel.lava_process``: ``LIF`` for all CUBA-LIF neurons,
``ATRLIF`` for all ATRLIF neurons, ...), one source for all input channels, one
sink and one Monitor per probed variable for each neuron process, and one
Sparse per group of projections (see :func:`group_projections`).
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
    by one sign mode, so a group shares source, exponent and sign mode; it
    reads one process and drives one, so also source and target neuron group. Rows
    must be disjoint: the floor after the shift is taken per row, and two
    projections summed into the same row before it would round differently.
    Greedy first fit in projection order; projections without synapses are
    dropped since they add nothing.
    """
    groups: list[list[LoweredProjection]] = []
    where = NeuronLayout(net)
    for proj in net.projections:
        if proj.weights.nnz == 0:
            continue
        key = where.group_key(proj)
        home = next((g for g in groups if where.group_key(g[0]) == key
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
    n_neuron = len(net.groups)
    return n_neuron * (2 + len(probes)) + int(has_source) + len(groups) + len(_unreached(net, groups))


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

    neurons, sinks, monitors = _build(net, groups, x, steps, probes)
    # The runtime's INFO report of a model's traceback is not needed: the
    # watchdog records it in the failing process itself, also when Lava hangs.
    neurons[0].run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
    spikes = np.zeros((steps, net.n_lif), bool)
    recorded = {name: np.zeros((steps, net.n_lif), np.int32) for name in probes}
    for k, group in enumerate(net.groups):
        spikes[:, group.selector] = sinks[k].data.get().T.astype(bool)
        for name, monitor in monitors[k].items():
            recorded[name][:, group.selector] = _monitored(monitor, neurons[k], group.model.lava_vars[name])
    # Not in a finally: after a model error stop() waits forever for the dead
    # process; the watchdog kills what is left instead.
    neurons[0].stop()
    return spikes, recorded


def _monitored(monitor, process, var: str) -> np.ndarray:
    # Monitor stores floats; the state is 24-bit, so the float64 values are exact.
    return np.asarray(monitor.get_data()[process.name][var]).astype(np.int64).astype(np.int32)


class NeuronLayout:
    """Where each global LIF neuron lives among the neuron processes: group and local index."""

    def __init__(self, net: LoweredNetwork):
        self.group_of = np.zeros(net.n_lif, np.int64)
        self.local = np.zeros(net.n_lif, np.int64)
        for k, group in enumerate(net.groups):
            self.group_of[group.index] = k
            self.local[group.index] = np.arange(group.size)

    def post_group(self, proj: LoweredProjection) -> int:
        return int(self.group_of[proj.rows[0]])

    def source_group(self, proj: LoweredProjection) -> int | None:
        """The neuron group a projection reads, ``None`` for the input source."""
        return None if proj.source == "input" else int(self.group_of[proj.cols[0]])

    def group_key(self, proj: LoweredProjection):
        return self.source_group(proj), self.post_group(proj), proj.weight_exp, proj.sign_mode, proj.payload_bits

    def local_rows(self, proj: LoweredProjection) -> int:
        """Offset of the projection's rows in its post group (a population is contiguous in its group)."""
        return int(self.local[proj.rows[0]])

    def local_cols(self, proj: LoweredProjection) -> int:
        return proj.cols[0] if proj.source == "input" else int(self.local[proj.cols[0]])


def _unreached(net: LoweredNetwork, groups) -> list[int]:
    """Neuron groups no Sparse links to group 0 (directly or through the input source).

    ``run`` executes the processes connected to the one it is called on, so
    each of these gets an all-zero Sparse from group 0, which adds nothing.
    """
    where = NeuronLayout(net)
    edges = [("input" if where.source_group(g[0]) is None else where.source_group(g[0]), where.post_group(g[0]))
             for g in groups]
    reached, changed = {0}, True
    while changed:
        changed = False
        for a, b in edges:
            if (a in reached) != (b in reached):
                reached |= {a, b}
                changed = True
    return [k for k in range(len(net.groups)) if k not in reached]


def _build(net, groups, x, steps, probes):
    from lava.proc import io
    from lava.proc.monitor.process import Monitor
    from lava.proc.sparse.process import Sparse

    where = NeuronLayout(net)
    neurons = [g.model.lava_process(g.params, g.size, f"rsnn2chip_{g.model.name}_{k}")
               for k, g in enumerate(net.groups)]
    source = None
    if any(g[0].source == "input" for g in groups):
        source = io.source.RingBuffer(data=np.ascontiguousarray(x.T, dtype=np.int32))
    for group in groups:
        sparse = _sparse_for(group, net, where)
        src = where.source_group(group[0])
        (source.s_out if src is None else neurons[src].s_out).connect(sparse.s_in)
        sparse.a_out.connect(neurons[where.post_group(group[0])].a_in)
    for k in _unreached(net, groups):
        empty = Sparse(weights=sp.csr_matrix((net.groups[k].size, net.groups[0].size), dtype=np.int64))
        neurons[0].s_out.connect(empty.s_in)
        empty.a_out.connect(neurons[k].a_in)
    sinks, monitors = [], []
    for k, group in enumerate(net.groups):
        sinks.append(io.sink.RingBuffer(shape=(group.size,), buffer=steps))
        neurons[k].s_out.connect(sinks[k].a_in)
        monitors.append({})
        for name in probes:
            # One Monitor per variable: Monitor's bookkeeping supports one probe only.
            monitors[k][name] = Monitor()
            monitors[k][name].probe(getattr(neurons[k], group.model.lava_vars[name]), steps)
    return neurons, sinks, monitors


def _sparse_for(group, net: LoweredNetwork, where: NeuronLayout):
    from lava.proc.sparse.process import Sparse
    from lava.utils.weightutils import SignMode

    first = group[0]
    src = where.source_group(first)
    n_source = net.n_input if src is None else net.groups[src].size
    weights = block_matrix(group, (net.groups[where.post_group(first)].size, n_source),
                           [where.local_rows(p) for p in group], [where.local_cols(p) for p in group])
    return Sparse(weights=weights, weight_exp=first.weight_exp, num_weight_bits=8,
                  sign_mode=SignMode[first.sign_mode.upper()], num_message_bits=first.payload_bits)


def block_matrix(group: list[LoweredProjection], shape: tuple[int, int], row_offsets: list[int],
                 col_offsets: list[int]) -> sp.csr_matrix:
    """The projections of one group placed at the given (row, column) offsets in one matrix."""
    blocks = [p.weights.tocoo() for p in group]
    rows = np.concatenate([b.row + r for b, r in zip(blocks, row_offsets)])
    cols = np.concatenate([b.col + c for b, c in zip(blocks, col_offsets)])
    data = np.concatenate([b.data for b in blocks]).astype(np.int64)
    return sp.csr_matrix((data, (rows, cols)), shape=shape)


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]
