"""The reference backend: a vectorised NumPy simulator of Lava's fixed-point neurons + Dense/Sparse.

Each neuron group steps with its model's ``reference_step`` (for CUBA-LIF, ``PyLifModelBitAcc``; for
ATRLIF, ``PyATRLIFModelFixed``); with ``PySparseModelBitAcc`` the whole network is reproduced bit for bit,
including the one-step delay each synapse process adds (it sends the previous step's accumulation before
it reads this step's spikes). It runs a batch of inputs at once, which Lava cannot.

The synaptic sums run in floating point on BLAS, and are still exact: each is a sum of integer mantissas
(|m| <= 256) times 0/1 spikes or graded payloads (|p| <= the payload's maximum), so it is an integer below
``256 * max|p| * fan_in``, which float32 holds exactly up to 2**24 and float64 up to 2**53
(:func:`_exact_dtype` picks the narrowest that holds every row's largest possible sum). Scaling by
``2**weight_exp`` and flooring are exact in floating point too. The projections reading one source are
stacked into one matrix, so a step costs one matrix product per source.

Those products are small, one per step, so BLAS runs them on one thread unless a step's product is large
(:data:`THREADED_ABOVE`): at 1,034 neurons OpenBLAS's threads made a run 17x slower single-sample and 11x slower
at batch 16 while other processes kept the cores busy.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp

from rsnn2chip.backends import Backend, Session
from rsnn2chip.backends.plan import LoweredNetwork

DENSE_ABOVE = 0.02  # stacked matrices denser than this run as dense BLAS products, sparser ones as CSR
# Sources wider than this gather a single sample's sending rows; narrower ones multiply the whole matrix, which
# costs less than finding the senders. Measured, one thread, square float32 matrix, 20 % of sources sending,
# gather against full product: 64 sources 9.8 / 2.6 us, 512: 31.8 / 27.9 us, 768: 35.3 / 37.9 us,
# 1,034: 59.8 / 72.9 us, 2,048: 202 / 450 us.
GATHER_ABOVE = 640
# Multiply-adds per step above which BLAS may use its threads (batch 64 through a 1,034-neuron recurrent matrix).
THREADED_ABOVE = 64 * 1034 * 1034


@lru_cache(maxsize=1)
def _blas_threads():
    # Created once: inspecting the loaded libraries costs about 1 ms, a limit on a known controller 20 us.
    from threadpoolctl import ThreadpoolController
    return ThreadpoolController()


def step_multiply_adds(plan: list, batch: int) -> int:
    return sum(batch * int(np.prod(stack.weights.shape)) for stack in plan)


@dataclass
class _Part:
    offset: int  # first row of this projection in the stacked matrix
    rows: tuple[int, int]  # global LIF rows it feeds
    scale: float  # 2 ** weight_exp
    floor: bool  # negative exponents floor, as Lava's right shift does


@dataclass
class _Stack:
    """All projections that read one source, stacked row-wise: ``acc = spikes @ weights_t``."""
    source: str
    weights: np.ndarray | sp.csr_matrix  # dense: (n_source, total rows); sparse: (total rows, n_source)
    parts: list[_Part]

    def accumulate(self, spikes: np.ndarray) -> np.ndarray:
        """``(B, n_source)`` 0/1 or payloads -> ``(B, total rows)`` exact integer sums (as floats)."""
        if isinstance(self.weights, np.ndarray):
            if spikes.shape[0] == 1 and self.weights.shape[0] > GATHER_ABOVE:
                # One sample: only the rows of the sending sources (few) take part.
                sending = np.flatnonzero(spikes[0])
                return spikes[:, sending].astype(self.weights.dtype) @ self.weights[sending]
            return spikes.astype(self.weights.dtype) @ self.weights
        return (self.weights @ spikes.T.astype(self.weights.dtype)).T


def _exact_dtype(matrix: sp.csr_matrix, largest_message: int):
    largest = abs(matrix).sum(axis=1).max() * largest_message if matrix.nnz else 0
    return np.float32 if largest < (1 << 24) else np.float64


def largest_message(net: LoweredNetwork, source: str) -> int:
    """The largest magnitude a source sends: 1 for spikes, the payload maximum for graded inputs."""
    if source != "input":
        return 1
    return max([1] + [g.max_payload for g in net.input_graded.values() if g is not None])


def stacks(net: LoweredNetwork) -> list[_Stack]:
    out = []
    for source, width in (("input", net.n_input), ("lif", net.n_lif)):
        projs = [p for p in net.projections if p.source == source and p.weights.nnz]
        if not projs:
            continue
        blocks, parts, offset = [], [], 0
        for p in projs:
            block = sp.hstack([sp.csr_matrix((p.weights.shape[0], p.cols[0])), p.weights,
                               sp.csr_matrix((p.weights.shape[0], width - p.cols[1]))], format="csr")
            blocks.append(block)
            parts.append(_Part(offset, p.rows, 2.0 ** p.weight_exp, p.weight_exp < 0))
            offset += p.weights.shape[0]
        stacked = sp.vstack(blocks, format="csr")
        dtype = _exact_dtype(stacked, largest_message(net, source))
        density = stacked.nnz / max(stacked.shape[0] * stacked.shape[1], 1)
        weights = (np.ascontiguousarray(stacked.T.toarray(), dtype=dtype) if density > DENSE_ABOVE
                   else sp.csr_matrix(stacked, dtype=dtype))
        out.append(_Stack(source, weights, parts))
    return out


def simulate(net: LoweredNetwork, inputs: np.ndarray, steps: int, probes=()) -> tuple[np.ndarray, dict]:
    """Run ``steps`` steps for a batch.

    ``inputs`` is ``(B, steps, n_input)`` of 0/1 spikes or integer graded payloads. Returns spikes
    ``(B, steps, n_lif)`` and the requested probes (``"u"``, ``"v"``) as ``(B, steps, n_lif)`` int32.
    """
    batch = inputs.shape[0]
    n = net.n_lif
    consts = [g.constants() for g in net.groups]
    states = [g.model.initial_state(c, batch) for g, c in zip(net.groups, consts)]
    out = np.zeros((batch, steps, n), bool)
    recorded = {name: np.zeros((batch, steps, n), np.int32) for name in probes}
    plan = stacks(net)
    threads = None if step_multiply_adds(plan, batch) > THREADED_ABOVE else 1
    with _blas_threads().limit(limits=threads, user_api="blas"):
        _run_steps(net, plan, inputs, steps, states, consts, out, recorded)
    return out, recorded


def _run_steps(net, plan, inputs, steps, states, consts, out, recorded) -> None:
    batch, n = out.shape[0], net.n_lif
    selectors = [g.selector for g in net.groups]
    previous = {"input": None, "lif": None}  # spikes a synapse read last step (None: none yet)
    a_in = np.zeros((batch, n), np.float64)
    for t in range(steps):
        a_in.fill(0.0)
        for stack in plan:
            src = previous[stack.source]
            if src is None or not src.any():
                continue
            acc = stack.accumulate(src)
            for part in stack.parts:
                lo, hi = part.rows
                block = acc[:, part.offset:part.offset + hi - lo]
                if part.scale != 1.0:  # exponent 0 needs neither the product nor the floor
                    block = block * part.scale
                    if part.floor:
                        np.floor(block, out=block)
                a_in[:, lo:hi] += block
        a_int = a_in.astype(np.int64)
        for k, group in enumerate(net.groups):
            states[k], s = group.model.reference_step(states[k], a_int[:, selectors[k]], consts[k])
            out[:, t, selectors[k]] = s
            for name, values in recorded.items():
                values[:, t, selectors[k]] = states[k][name]
        previous = {"input": inputs[:, t], "lif": out[:, t]}


class ReferenceSession(Session):
    def simulate(self, inputs, steps, probes):
        return simulate(self.network, inputs, steps, probes)


class ReferenceBackend(Backend):
    name = "reference"
    summary = "NumPy bit-exact simulator of Lava's fixed-point neurons and synapses; batched"
    session_type = ReferenceSession


BACKEND = ReferenceBackend()
