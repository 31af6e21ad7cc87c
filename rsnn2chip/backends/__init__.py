"""Backends run a compiled network: one interface, one registry.

A backend sees the whole compiled network (graph, core mapping, target):
``session = get_backend(name).open(compiled)``, then ``session.run(inputs,
steps, probes)`` as often as needed (every call starts from the reset
state), then ``session.close()`` (or ``with ... as session``). ``run()``
below does all three for one call. ``reference`` is the compiled bit-exact
simulator, ``lava`` Lava's fixed-point CPU simulator through
:class:`rsnn2chip.lava.Network`. Both execute the same lowering
(``backends/plan.py``), so they agree on layout by construction and must
agree on every spike by testing. Adding a backend (e.g. a board) is one
module plus one line in :data:`BACKENDS`; see docs/backends.md.
"""
from __future__ import annotations

import importlib
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from rsnn2chip.artifact import CompiledNetwork
from rsnn2chip.backends.plan import LoweredNetwork, lower
from rsnn2chip.errors import InputError
from rsnn2chip.preflight import check_run_fits

# name -> module defining ``BACKEND``, imported on first use (so `reference` never imports Lava).
BACKENDS = {"reference": "rsnn2chip.backends.reference", "lava": "rsnn2chip.backends.lava"}
PROBES = ("u", "v")


class Session(ABC):
    """An opened compiled network on one backend. ``run`` may be called many times."""

    def __init__(self, backend: str, compiled: CompiledNetwork, options: dict):
        self.name = backend
        self.compiled = compiled
        self.network: LoweredNetwork = lower(compiled.graph)
        self.options = options

    @abstractmethod
    def simulate(self, inputs: np.ndarray, steps: int, probes: tuple[str, ...]) -> tuple[np.ndarray, dict]:
        """``(B, steps, n_input)`` 0/1 -> spikes ``(B, steps, n_lif)`` bool, probes ``(B, steps, n_lif)`` int32."""

    def run(self, inputs: np.ndarray, steps: int, probes=()) -> RunResult:
        """Run every sample of ``inputs`` for ``steps`` steps from the reset state, probing ``probes``."""
        probes = tuple(probes)
        bad = [p for p in probes if p not in PROBES]
        if bad:
            raise InputError("unknown probe", found=bad, allowed=", ".join(PROBES))
        x = prepare_inputs(self.network, inputs, steps)
        start = time.perf_counter()
        spikes, recorded = self.simulate(x, steps, probes)
        wall = time.perf_counter() - start
        return RunResult(self.name, steps, split_by_population(self.network, spikes),
                         {name: split_by_population(self.network, arr) for name, arr in recorded.items()}, wall)

    def close(self) -> None:
        """Release what ``open`` took (processes, a board); the base session holds nothing."""

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False


class Backend(ABC):
    """A way to run compiled networks. Subclasses set ``name``, ``summary`` and ``options``."""
    name: str = ""
    summary: str = ""
    options: tuple[str, ...] = ()  # keyword options ``open`` accepts, e.g. ("timeout",)
    preferred_batch: int = 64  # samples per ``run`` that use it well (``eval``'s default batch)

    def open(self, compiled: CompiledNetwork, **options) -> Session:
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise InputError(f"backend {self.name!r} takes no option {', '.join(unknown)}",
                             allowed=", ".join(self.options) or "none")
        return self.session_type(self.name, compiled, options)

    @property
    @abstractmethod
    def session_type(self) -> type[Session]:
        """The :class:`Session` subclass ``open`` creates."""


def backend_names() -> list[str]:
    return list(BACKENDS)


def get_backend(name: str) -> Backend:
    if name not in BACKENDS:
        raise InputError("unknown backend", found=name, allowed=", ".join(BACKENDS))
    return importlib.import_module(BACKENDS[name]).BACKEND


@dataclass
class RunResult:
    backend: str
    steps: int
    spikes: dict[str, np.ndarray]  # population -> (B, steps, size) bool
    probes: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # var -> population -> (B, steps, size)
    wall_s: float = 0.0

    def spike_counts(self) -> dict[str, int]:
        return {name: int(s.sum()) for name, s in self.spikes.items()}


def check_input_shape(inputs: np.ndarray, n_input: int, file: str | None = None) -> np.ndarray:
    """Spike inputs as ``(B, T, n_input)`` after checking their shape against the network's inputs."""
    x = np.asarray(inputs)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise InputError("input spikes must have shape (T, channels) or (batch, T, channels)", file=file,
                         found=f"shape {x.shape}", allowed=f"(T, {n_input}) or (B, T, {n_input})")
    if x.shape[0] == 0:
        raise InputError("input holds no samples (an empty batch)", file=file, found=f"shape {x.shape}",
                         allowed=f"at least one sample: (T, {n_input}) or (B >= 1, T, {n_input})")
    if x.shape[2] != n_input:
        raise InputError("input has the wrong number of channels", file=file, resource="input channels",
                         found=x.shape[2], allowed=n_input,
                         fix=f"give one column per input channel ({n_input}), time along axis -2")
    return x


def prepare_inputs(net: LoweredNetwork, inputs: np.ndarray, steps: int) -> np.ndarray:
    """Validate spike inputs and shape them to ``(B, steps, n_input)``, zero-padded in time."""
    x = check_input_shape(inputs, net.n_input)
    if steps < 1:
        raise InputError("steps must be >= 1", found=steps, allowed=">= 1")
    check_run_fits(x.shape[0], steps, net.n_input, net.n_lif)
    out = np.zeros((x.shape[0], steps, net.n_input), np.int32 if net.graded else np.int8)
    t = min(steps, x.shape[1])
    for name, (lo, hi) in net.input_slices.items():
        out[:, :t, lo:hi] = input_payloads(x[:, :t, lo:hi], net.input_graded.get(name), name)
    return out


def input_payloads(x: np.ndarray, graded, population: str) -> np.ndarray:
    """One input population's values as the integers the chip receives: 0/1 spikes or graded payloads."""
    if graded is None:
        if not np.all(np.isin(x, (0, 1))):
            bad = np.unique(x[~np.isin(x, (0, 1))])[:5]
            raise InputError("input spikes must be 0 or 1", where=f"input population {population!r}",
                             found=f"values {bad.tolist()}", allowed="0/1",
                             fix="encode analog inputs as spikes first (see docs/data.md)")
        return x
    payload = np.asarray(x, np.float64) * graded.scale
    exact = np.isfinite(payload) & (payload == np.rint(payload)) & (np.abs(payload) <= graded.max_payload)
    if not exact.all():
        bad = np.asarray(x)[~exact][:5]
        raise InputError("graded input values must be payloads / 2**frac_bits within the payload range",
                         where=f"input population {population!r}", found=f"values {bad.tolist()}",
                         allowed=f"multiples of 1/{int(graded.scale)} in [-{graded.max_payload / graded.scale:g}, "
                                 f"{graded.max_payload / graded.scale:g}] ({graded.bits}-bit payloads)",
                         fix="encode the features with the encoding recorded in the artifact (docs/data.md)")
    return np.rint(payload).astype(np.int32)


def split_by_population(net: LoweredNetwork, array: np.ndarray) -> dict[str, np.ndarray]:
    return {name: array[..., lo:hi] for name, (lo, hi) in net.lif_slices.items()}


def run(artifact: CompiledNetwork, inputs: np.ndarray, steps: int, backend: str = "reference",
        probes=(), **options) -> RunResult:
    """Open ``artifact`` on ``backend``, run ``inputs`` for ``steps`` steps, close."""
    with get_backend(backend).open(artifact, **options) as session:
        return session.run(inputs, steps, probes)


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
