"""The reference backend: a simulator of Lava's fixed-point neurons + Dense/Sparse, bit for bit.

Each neuron group steps with its model's ``step_kernel`` (for CUBA-LIF, ``PyLifModelBitAcc``; for
ATRLIF, ``PyATRLIFModelFixed``); with ``PySparseModelBitAcc`` the whole network is reproduced bit for bit,
including the one-step delay each synapse process adds (it sends the previous step's accumulation before
it reads this step's spikes). It runs a batch of inputs at once, which Lava cannot.

The synaptic sums are integer sums (int32 where no sum can overflow it, else int64) of the sending sources'
rows of mantissas, so they are exact by construction; Lava shifts the *sum* by ``weight_exp`` (an arithmetic right shift floors, as Lava's does).
The projections reading one source are stacked into one matrix, so a step costs one pass per source.
Both the sums and the neuron steps are loops that :mod:`rsnn2chip.jit` compiles: per step the Python loop
below makes one call per source and one per neuron group, so a small network runs at tens of thousands of
steps per second, and the work of a step grows with the spikes sent, not with the matrix (docs/backends.md).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from rsnn2chip.backends import Backend, Session
from rsnn2chip.backends.plan import LoweredNetwork
from rsnn2chip.jit import compiled

# Stacked matrices denser than this are kept dense (a sending source adds its whole row, which vectorises);
# sparser ones as CSR rows (only the stored weights, one indirection each). Measured, 1,034 x 1,034, 5 % of
# sources sending, one sample: density 0.05 dense 7.8 / CSR 6.7 us, 0.1: 6.4 / 12.9 us, 0.3: 11.1 / 37.1 us.
DENSE_ABOVE = 0.06


def accumulate(spikes, dense, indptr, indices, data, parts, senders, acc, acc16, block, a_in):
    """Add each sample's synaptic sums to ``a_in`` ``(B, n_lif)`` int64.

    The ``(n_source, stacked rows)`` matrix is ``dense`` or, where that is empty, the CSR arrays ``indptr``,
    ``indices``, ``data``. A source with ``spikes[b, i] != 0`` (0/1 or a payload) adds its row times the
    payload into ``acc`` (one sample's stacked rows: int32 where no sum can overflow it, else int64); then each
    part ``(offset, lo, hi, weight_exp)`` adds its stacked rows, shifted, to ``a_in[b, lo:hi]``.
    The senders are listed in ``senders`` (scratch, ``(n_source,)``) without a branch: at 5 % sending a test
    per source mispredicts, and listing them took twice as long (1,034 sources, 16 samples: 15.9 against 8.1 us).
    Dense rows of binary senders are added four at a time: a quarter of the loads and stores of the sum, which
    bound it (1,034 x 1,034, 5 % sending: 5.2 against 3.3 us a sample). They are summed in ``acc16`` (int16
    scratch) ``block`` rows at a time, then added to ``acc``: twice the lanes of an int32 vector (2.6 against
    3.7 us a sample). ``block`` is a multiple of four with ``block * max|w|`` within int16, so every partial sum
    is exact (:func:`int16_block`).
    One function for both layouts: a compiled kernel cannot call an uncompiled helper.
    """
    n_rows = acc.shape[0]
    for b in range(spikes.shape[0]):
        sample = spikes[b]
        n_sent = 0
        for i in range(sample.shape[0]):  # lists the senders without a branch, which sparse spikes mispredict
            senders[n_sent] = i
            n_sent += sample[i] != 0
        if n_sent == 0:
            continue
        acc[:] = 0
        n_binary = 0
        for q in range(n_sent):
            i = senders[q]
            s = sample[i]
            if dense.shape[0] == 0:
                for k in range(indptr[i], indptr[i + 1]):
                    acc[indices[k]] += s * data[k]
            elif s == 1:
                senders[n_binary] = i  # n_binary <= q: the binary senders overwrite the list's read part
                n_binary += 1
            else:
                row = dense[i]
                for k in range(n_rows):
                    acc[k] += s * row[k]
        q = 0
        while q < n_binary:
            end = min(q + block, n_binary)
            acc16[:] = 0
            while q + 4 <= end:
                r0, r1, r2, r3 = dense[senders[q]], dense[senders[q + 1]], dense[senders[q + 2]], dense[senders[q + 3]]
                for k in range(n_rows):
                    acc16[k] += (np.int16(r0[k]) + np.int16(r1[k])) + (np.int16(r2[k]) + np.int16(r3[k]))
                q += 4
            for q in range(q, end):
                row = dense[senders[q]]
                for k in range(n_rows):
                    acc16[k] += row[k]
            for k in range(n_rows):
                acc[k] += acc16[k]
            q = end
        for p in range(parts.shape[0]):
            offset, lo, n, exp = parts[p, 0], parts[p, 1], parts[p, 2] - parts[p, 1], parts[p, 3]
            # 1-D views and the shift's direction decided outside the loop, which then vectorises (1,034
            # rows: 0.3 against 1.9 us, indexed 2-D with the direction tested per element).
            sums, target = acc[offset:offset + n], a_in[b, lo:lo + n]
            if exp >= 0:
                for k in range(n):
                    target[k] += np.int64(sums[k]) << exp
            else:
                for k in range(n):
                    target[k] += np.int64(sums[k]) >> -exp  # >> floors, as Lava's shift


def int16_block(weights: np.ndarray) -> int:
    """The most binary senders' dense rows that :func:`accumulate` may sum in int16, four at a time: a multiple
    of four whose sum of largest magnitudes stays within int16 (252 rows of int8, 124 of 9-bit mantissas)."""
    largest = max(1, -int(weights.min(initial=0)), int(weights.max(initial=0)))  # np.abs(int8 -128) is -128
    return 32767 // largest // 4 * 4


def transpose_into(indptr, indices, data, col0, row0, out):
    """``out[col0 + j, row0 + i] = m[i, j]`` for a CSR matrix ``m``: a projection's rows become columns of the
    by-source matrix in one pass (1,024 x 1,024: 2.5 ms; SciPy's toarray, int16 cast and transposed copy 3.8 ms,
    the transposed int64 copy alone 6.3 ms)."""
    for i in range(indptr.shape[0] - 1):
        for k in range(indptr[i], indptr[i + 1]):
            out[col0 + indices[k], row0 + i] = data[k]


def narrowest_rows(weights: np.ndarray) -> tuple[np.ndarray, int]:
    """``(weights >> shift, shift)`` in int8 where a common power-of-two factor brings every int16 mantissa
    into int8 (8-bit mixed-sign weights are even, -256..254), else ``(weights, 0)``. A step reads the sending
    rows: int8 halves the bytes (1,034 x 1,034, 16 samples, 5 % sending: 3.3 against 2.6 us a sample)."""
    nonzero = weights[weights != 0]
    shift = 0
    while nonzero.size and shift < 8 and not (nonzero & ((2 << shift) - 1)).any():
        shift += 1  # every mantissa is divisible by 2**(shift + 1)
    narrowed = weights >> shift
    if nonzero.size and -128 <= narrowed.min() and narrowed.max() <= 127:
        return narrowed.astype(np.int8), shift
    return weights, 0


@dataclass
class _Stack:
    """All projections that read one source, stacked: ``(n_source, stacked rows)`` weights and their parts."""
    source: str
    weights: np.ndarray | sp.csr_matrix
    parts: np.ndarray  # (n_parts, 4) int64: first stacked row, global LIF rows [lo, hi), weight_exp
    acc: np.ndarray  # scratch for one sample's sums: int32 (twice as many per vector instruction) where exact
    senders: np.ndarray  # scratch for one sample's senders, then its binary ones

    def __post_init__(self):
        self.acc16 = np.zeros(self.acc.shape, np.int16)  # scratch: a block of binary senders' dense rows
        self.block = int16_block(self.weights) if isinstance(self.weights, np.ndarray) else 0

    def add_to(self, spikes: np.ndarray, a_in: np.ndarray) -> None:
        """Add the sums of ``spikes`` ``(B, n_source)`` (0/1 or payloads) to ``a_in`` ``(B, n_lif)``."""
        compiled(accumulate)(spikes, *self.arrays, self.parts, self.senders, self.acc, self.acc16, self.block, a_in)

    @property
    def arrays(self) -> tuple[np.ndarray, ...]:
        if isinstance(self.weights, np.ndarray):
            return self.weights, _NONE, _NONE, _NONE
        return _EMPTY, self.weights.indptr, self.weights.indices, self.weights.data


_NONE = np.zeros(0, np.int64)
_EMPTY = np.zeros((0, 0), np.int64)


def stacks(net: LoweredNetwork) -> list[_Stack]:
    out = []
    for source, width in (("input", net.n_input), ("lif", net.n_lif)):
        projs = [p for p in net.projections if p.source == source and p.weights.nnz]
        if not projs:
            continue
        offsets = np.cumsum([0] + [p.weights.shape[0] for p in projs])
        parts = np.array([(offset, *p.rows, p.weight_exp) for offset, p in zip(offsets, projs)], np.int64)
        if sum(p.weights.nnz for p in projs) > DENSE_ABOVE * width * offsets[-1]:
            weights = np.zeros((width, offsets[-1]), np.int16)  # mantissas are at most 256 in magnitude
            for offset, p in zip(offsets, projs):
                w = p.weights
                compiled(transpose_into)(w.indptr, w.indices, w.data, p.cols[0], offset, weights)
            weights, shift = narrowest_rows(weights)
            parts[:, 3] += shift  # sum(w) * 2**exp == sum(w >> shift) * 2**(exp + shift), w divisible by 2**shift
        else:
            blocks = [p.weights.tocoo() for p in projs]
            weights = sp.csr_matrix((np.concatenate([b.data for b in blocks]).astype(np.int64),
                                     (np.concatenate([b.col + p.cols[0] for b, p in zip(blocks, projs)]),
                                      np.concatenate([b.row + o for b, o in zip(blocks, offsets)]))),
                                    shape=(width, offsets[-1]))
        # A bound on the largest sum a row can reach: mantissas are at most 256 in magnitude (fx.WEIGHT_RANGE).
        largest = 256 * max(np.diff(p.weights.indptr).max() for p in projs) * net.largest_message(source)
        out.append(_Stack(source, weights, parts, np.zeros(offsets[-1], np.int32 if largest < 2 ** 31 else np.int64),
                          np.zeros(width, np.int64)))
    return out


def simulate(net: LoweredNetwork, inputs: np.ndarray, steps: int, probes=()) -> tuple[np.ndarray, dict]:
    """Run ``steps`` steps for a batch.

    ``inputs`` is ``(B, steps, n_input)`` of 0/1 spikes or integer graded payloads. Returns spikes
    ``(B, steps, n_lif)`` and the requested probes (``"u"``, ``"v"``) as ``(B, steps, n_lif)`` int32.
    """
    batch, n = inputs.shape[0], net.n_lif
    out = np.zeros((batch, steps, n), bool)
    recorded = {name: np.zeros((batch, steps, n), np.int32) for name in probes}
    groups = [_GroupRun(g, batch) for g in net.groups]
    plan = stacks(net)
    # Contiguous per-step arrays: the kernels vectorise over them (views into `out` are strided).
    a_in = np.zeros((batch, n), np.int64)
    spikes = np.zeros((batch, n), bool)
    previous = {"input": None, "lif": None}  # what each synapse read last step (None: nothing yet)
    for t in range(steps):
        a_in.fill(0)
        for stack in plan:
            if previous[stack.source] is not None:
                stack.add_to(previous[stack.source], a_in)
        for group in groups:
            group.step(a_in, spikes)
            for name, values in recorded.items():
                values[:, t, group.selector] = group.state[name]
        out[:, t] = spikes
        # The LIF synapses read this step's spikes before the groups overwrite them next step.
        previous = {"input": inputs[:, t], "lif": spikes}
    return out, recorded


class _GroupRun:
    """One neuron group's state and compiled step, in place on preallocated arrays."""

    def __init__(self, group, batch: int):
        consts = group.constants()
        self.selector = group.selector
        self.state = group.model.initial_state(consts, batch)
        self.kernel = compiled(group.model.step_kernel)
        self.arguments = [*self.state.values(), *group.model.kernel_arrays(consts, group.size)]
        # Neurons scattered over the global order (models interleaved) step on gathered copies.
        self.start = self.selector.start if isinstance(self.selector, slice) else None
        self.a_in = np.zeros((batch, group.size), np.int64)
        self.spikes = np.zeros((batch, group.size), bool)

    def step(self, a_in: np.ndarray, spikes: np.ndarray) -> None:
        """Step on ``a_in`` ``(B, n_lif)``; write the group's spikes into its columns of ``spikes``."""
        if self.start is not None:
            self.kernel(a_in, spikes, self.start, *self.arguments)
        else:
            self.a_in[:] = a_in[:, self.selector]
            self.kernel(self.a_in, self.spikes, 0, *self.arguments)
            spikes[:, self.selector] = self.spikes


class ReferenceSession(Session):
    def simulate(self, inputs, steps, probes):
        return simulate(self.network, inputs, steps, probes)


class ReferenceBackend(Backend):
    name = "reference"
    summary = "compiled bit-exact simulator of Lava's fixed-point neurons and synapses; batched"
    session_type = ReferenceSession


BACKEND = ReferenceBackend()
