"""Backends run a compiled network: ``run(artifact, inputs, steps) -> RunResult``.

``reference`` is the NumPy bit-exact simulator, ``lava`` builds Lava processes
and runs them with ``Loihi2SimCfg(select_tag="fixed_pt")``. Both execute the
same lowering (``backends/plan.py``), so they agree on layout by construction
and must agree on every spike by testing.
"""
from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field

import numpy as np

from rsnn2chip.artifact import CompiledNetwork
from rsnn2chip.backends.plan import LoweredNetwork, lower
from rsnn2chip.errors import InputError
from rsnn2chip.preflight import check_run_fits

BACKENDS = {"reference": "rsnn2chip.backends.reference", "lava": "rsnn2chip.backends.lava"}
PROBES = ("u", "v")


@dataclass
class RunResult:
    backend: str
    steps: int
    spikes: dict[str, np.ndarray]  # population -> (B, steps, size) bool
    probes: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # var -> population -> (B, steps, size)
    wall_s: float = 0.0

    def spike_counts(self) -> dict[str, int]:
        return {name: int(s.sum()) for name, s in self.spikes.items()}


def prepare_inputs(net: LoweredNetwork, inputs: np.ndarray, steps: int) -> np.ndarray:
    """Validate spike inputs and shape them to ``(B, steps, n_input)``, zero-padded in time."""
    x = np.asarray(inputs)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise InputError("input spikes must have shape (T, channels) or (batch, T, channels)",
                         found=f"shape {x.shape}", allowed=f"(T, {net.n_input}) or (B, T, {net.n_input})")
    if x.shape[0] == 0:
        raise InputError("input holds no samples (an empty batch)", found=f"shape {x.shape}",
                         allowed=f"at least one sample: (T, {net.n_input}) or (B >= 1, T, {net.n_input})")
    if x.shape[2] != net.n_input:
        raise InputError("input has the wrong number of channels", resource="input channels",
                         found=x.shape[2], allowed=net.n_input,
                         fix=f"give one column per input channel ({net.n_input}), time along axis -2")
    if not np.all(np.isin(x, (0, 1))):
        bad = np.unique(x[~np.isin(x, (0, 1))])[:5]
        raise InputError("input spikes must be 0 or 1", found=f"values {bad.tolist()}", allowed="0/1",
                         fix="encode analog inputs as spikes first (see docs/data.md)")
    if steps < 1:
        raise InputError("steps must be >= 1", found=steps, allowed=">= 1")
    check_run_fits(x.shape[0], steps, net.n_input, net.n_lif)
    out = np.zeros((x.shape[0], steps, net.n_input), np.int8)
    t = min(steps, x.shape[1])
    out[:, :t] = x[:, :t]
    return out


def split_by_population(net: LoweredNetwork, array: np.ndarray) -> dict[str, np.ndarray]:
    return {name: array[..., lo:hi] for name, (lo, hi) in net.lif_slices.items()}


def run(artifact: CompiledNetwork, inputs: np.ndarray, steps: int, backend: str = "reference",
        probes=(), **options) -> RunResult:
    if backend not in BACKENDS:
        raise InputError("unknown backend", found=backend, allowed=", ".join(BACKENDS))
    bad = [p for p in probes if p not in PROBES]
    if bad:
        raise InputError("unknown probe", found=bad, allowed=", ".join(PROBES))
    net = lower(artifact.graph)
    x = prepare_inputs(net, inputs, steps)
    simulate = importlib.import_module(BACKENDS[backend]).simulate
    start = time.perf_counter()
    spikes, recorded = simulate(net, x, steps, probes=tuple(probes), **options)
    wall = time.perf_counter() - start
    return RunResult(backend, steps, split_by_population(net, spikes),
                     {name: split_by_population(net, arr) for name, arr in recorded.items()}, wall)


@dataclass
class Divergence:
    population: str
    neuron: int
    step: int
    sample: int
    a: bool
    b: bool


def first_divergence(a: RunResult, b: RunResult) -> Divergence | None:
    """The earliest step (then population order, then neuron) where two runs' spikes differ."""
    best = None
    for name, sa in a.spikes.items():
        diff = np.argwhere(sa != b.spikes[name])  # (sample, step, neuron)
        if diff.size == 0:
            continue
        order = np.lexsort((diff[:, 2], diff[:, 0], diff[:, 1]))
        s, t, n = (int(v) for v in diff[order[0]])
        if best is None or t < best.step:
            best = Divergence(name, n, t, s, bool(sa[s, t, n]), bool(b.spikes[name][s, t, n]))
    return best
