"""The :class:`NeuronModel` interface every neuron model implements.

Modelled on Lava's Process / ProcessModel split: one model object describes a
neuron type once (its parameters, their fixed-point form, its state) and
carries one implementation per execution substrate, all of which must agree:

* ``step_kernel``: the integer step, bit for bit Lava's ``fixed_pt`` model, as a loop that
  :mod:`rsnn2chip.jit` compiles (``reference_step`` runs it on arrays);
* ``torch_step``: the float step trained with a surrogate gradient;
* ``qat_step``: the integer step and its float shadow side by side (the forward
  value is the integer one, the gradient flows through the shadow);
* ``lava_process``: the Lava process the population lowers to.

Passes, backends and exporters ask the model of a population (``pop.model``)
and never branch on its type, so a new neuron model is one module registered
in :mod:`rsnn2chip.neurons` (as lava-dl's netx picks a neuron type per layer).
Parameters are arrays of shape ``(1,)`` when every neuron shares them and
``(size,)`` where they differ (see :func:`param_array`).
"""
from __future__ import annotations

import abc

from dataclasses import dataclass, fields
from typing import Callable, ClassVar

import numpy as np

from rsnn2chip import fixedpoint as fx


def param_array(value, dtype=np.float64) -> np.ndarray:
    """A parameter as a 1-d array, collapsed to shape (1,) when all entries agree."""
    arr = np.atleast_1d(np.asarray(value, dtype=dtype)).ravel()
    if arr.size > 1 and np.all(arr == arr[0]):
        arr = arr[:1].copy()
    return arr


@dataclass
class ParamArrays:
    """Base of a model's parameter records: every field is a 1-d array (see :func:`param_array`)."""

    MODEL: ClassVar[str] = ""  # registry key of the neuron model these parameters belong to
    DTYPE: ClassVar[type] = np.float64

    def __post_init__(self):
        for name in self.names():
            setattr(self, name, param_array(getattr(self, name), self.DTYPE))

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def expanded(self, size: int) -> dict[str, np.ndarray]:
        """Every parameter as a ``(size,)`` array."""
        return {name: np.broadcast_to(getattr(self, name), (size,)).copy() for name in self.names()}


@dataclass(frozen=True)
class FloatParam:
    """One float parameter of a model as an arch and the IR give it."""

    name: str
    valid: Callable[[np.ndarray], np.ndarray]  # elementwise: True where the value is representable
    allowed: str  # the valid range in words, for error messages
    default: float | None = None  # None: an arch must give it
    # One value for the whole population: the Lava process holds it as a scalar (see ``process_params``).
    uniform: bool = False


def in_range(lo: float, hi: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: (x >= lo) & (x <= hi)


def above(lo: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: x > lo


def at_least(lo: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: x >= lo


def any_finite(x: np.ndarray) -> np.ndarray:
    return np.ones_like(x, bool)


def quant_loss(name: str, exact: np.ndarray, represented: np.ndarray, clipped: np.ndarray) -> dict:
    """Precision lost converting one parameter (the entries of ``Population.quant_stats["params"]``)."""
    err = np.abs(represented - exact)
    return {"param": name, "max_abs_error": float(err.max(initial=0.0)),
            "max_rel_error": float((err / np.maximum(np.abs(exact), 1e-12)).max(initial=0.0)),
            "n_clipped": int(np.count_nonzero(clipped)), "lost_precision": bool(err.max(initial=0.0) > 0)}


def quantize_decay(decay: np.ndarray, offset: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """A decay fraction as the integer ``d`` with ``decay = (d + offset) / 4096``; returns (d, represented, loss)."""
    exact = decay * fx.DECAY_UNITY - offset
    d = np.clip(np.rint(exact), lo, hi)
    return d, (d + offset) / fx.DECAY_UNITY, np.asarray(d != np.rint(exact))


def quantize_bias(bias_int: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smallest exponent in 0..7 whose 13-bit mantissa holds each bias; returns (mantissa, exponent, clipped)."""
    lo, hi = fx.BIAS_MANT_RANGE
    need = np.maximum(np.abs(bias_int) / hi, 1.0)
    exp = np.clip(np.ceil(np.log2(need)), *fx.BIAS_EXP_RANGE).astype(np.int64)
    mant_exact = np.rint(bias_int / 2.0 ** exp)
    mant = np.clip(mant_exact, lo, hi)
    return mant.astype(np.int64), exp, mant != mant_exact


class NeuronModel(abc.ABC):
    """One neuron model; subclasses fill in the class attributes and the methods below.

    Integer state is a dict ``name -> (batch, n) int64`` in the order of
    ``state``; float state is a tuple of ``(batch, n)`` tensors in the same
    order. ``consts`` is what :meth:`integer_constants` derives once from the
    fixed-point parameters (effective threshold, bias, ...).
    """

    name: str = ""  # registry key, as archs write it (neuron: {model: ...})
    description: str = ""
    float_type: type[ParamArrays]  # float parameters (``Population.neuron``)
    fixed_type: type[ParamArrays]  # fixed-point parameters (``Population.fixed``)
    float_params: tuple[FloatParam, ...] = ()
    fixed_ranges: dict[str, tuple[int, int]] = {}
    state: tuple[str, ...] = ()  # integer state variables; every model has "u" (current) and "v" (voltage)
    lava_vars: dict[str, str] = {}  # probe name -> the Lava process Var holding it
    # Every state Var of the Lava process -> the entry of ``initial_state`` it resets to (None: zeros); the
    # Lava backend sets them between samples that share one build.
    lava_state: dict[str, str | None] = {}
    # Whether Lava's ``Reset`` process may reset the model's state Vars inside a run (``Network(reset_interval=...)``).
    # A Reset writes one value to a whole Var, so each Var must reset to one value; and its RefPort write
    # replaces the Var with an int64 array, so the model's Lava arithmetic must give the same values on int64
    # state as on its own int32.
    lava_reset_in_run: bool = False
    lava_class: str = ""  # "module:Process" of the Lava process it lowers to (reports, docs)
    # Interchange formats that can hold this model (exporters refuse the others by name).
    interchange: tuple[str, ...] = ()
    # Per-neuron state memory in units of a CUBA-LIF neuron's (u and v: the target's neuron_state_bits).
    state_size: int = 1
    # Fixed-point parameters that make up a neuron profile / a threshold profile of a core.
    profile_params: tuple[str, ...] = ()
    threshold_params: tuple[str, ...] = ()
    # Fixed-point parameters the Lava process holds as one scalar: neurons that differ in them
    # run in separate processes (backends group neurons by model and these values).
    process_params: tuple[str, ...] = ()

    # ---- parameters
    def defaults(self) -> dict[str, float]:
        return {p.name: p.default for p in self.float_params if p.default is not None}

    def required(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.float_params if p.default is None)

    def process_key(self, fixed: ParamArrays) -> tuple:
        """What neurons must share to run in one process of this model (their ``process_params``)."""
        return tuple(int(getattr(fixed, name)[0]) for name in self.process_params)

    # ---- quantization
    @abc.abstractmethod
    def scale_magnitude(self, params: ParamArrays) -> float:
        """The float magnitude the quantizer maps to the target threshold mantissa."""

    @abc.abstractmethod
    def quantize(self, params: ParamArrays, scale: float) -> tuple[ParamArrays, list[dict]]:
        """Fixed-point parameters at state scale ``scale`` (integer = float * scale), and the precision lost."""

    def without_firing(self, fixed: ParamArrays) -> ParamArrays:
        """``fixed`` with the largest threshold the model has: a membrane readout, whose v is read instead of
        its spikes. It could still fire near saturation; every backend models that exactly."""
        values = {name: getattr(fixed, name) for name in fixed.names()}
        for name in self.threshold_params:
            values[name] = np.array([self.fixed_ranges[name][1]], np.int64)
        return type(fixed)(**values)

    @abc.abstractmethod
    def dequantize(self, fixed: dict[str, np.ndarray], scale: float) -> dict[str, np.ndarray]:
        """The float parameters the (expanded) fixed-point ones stand for, keyed like ``float_type``."""

    # ---- integer execution (reference backend and QAT forward)
    @abc.abstractmethod
    def integer_constants(self, fixed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """What the integer steps need, derived once from the (expanded) fixed-point parameters."""

    @abc.abstractmethod
    def initial_state(self, consts: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
        """The reset integer state: each variable of ``state`` as ``(batch, n)`` int64."""

    # Names in ``integer_constants`` that ``step_kernel`` takes, in its order (after the state).
    kernel_constants: tuple[str, ...] = ()

    @staticmethod
    @abc.abstractmethod
    def step_kernel(a_in, spikes, lo, *state_then_constants) -> None:
        """One step of Lava's fixed-point model, in place, for ``n`` neurons that sit in columns ``lo:lo + n`` of
        ``a_in`` ``(batch, N)`` int64 (their input) and ``spikes`` ``(batch, N)`` bool (written); then each
        variable of ``state`` ``(batch, n)`` int64 (updated) and each of ``kernel_constants`` ``(n,)`` int64.
        Plain loops over scalars, for :func:`rsnn2chip.jit.compiled`."""

    def reference_step(self, state: dict[str, np.ndarray], a_in: np.ndarray,
                       consts: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """One step on new arrays: ``state`` and ``a_in`` ``(batch, n)``; returns ``(state, spikes)``."""
        from rsnn2chip.jit import compiled

        a_in = np.ascontiguousarray(a_in, dtype=np.int64)
        state = {name: np.array(np.broadcast_to(state[name], a_in.shape), dtype=np.int64) for name in self.state}
        spikes = np.zeros(a_in.shape, bool)
        compiled(self.step_kernel)(a_in, spikes, 0, *state.values(), *self.kernel_arrays(consts, a_in.shape[1]))
        return state, spikes

    def kernel_arrays(self, consts: dict[str, np.ndarray], n: int) -> list[np.ndarray]:
        """``kernel_constants`` as contiguous ``(n,)`` int64 arrays."""
        return [np.ascontiguousarray(np.broadcast_to(consts[name], (n,)), dtype=np.int64)
                for name in self.kernel_constants]

    # ---- torch
    @abc.abstractmethod
    def torch_initial_state(self, params: dict, batch: int) -> tuple:
        """The reset float state: a tuple of ``(batch, size)`` tensors in the order of ``state``."""

    @abc.abstractmethod
    def torch_step(self, params: dict, state: tuple, current, spike: Callable) -> tuple:
        """Float step: ``params`` name -> ``(size,)`` tensor; ``spike(x, threshold, inclusive)`` is the
        surrogate spike function. Returns ``(spikes, state)``."""

    @abc.abstractmethod
    def qat_step(self, consts: dict, shadow: dict, state_int: dict, state: tuple, a_in, current,
                 exact, spike: Callable) -> tuple:
        """Integer step and float shadow together: ``exact.state(shadow, ints)`` / ``exact.spikes(shadow,
        fired)`` give the shadow value whose forward is the integer one. Returns
        ``(fired, spikes, state_int, state)``."""

    # ---- Lava
    @abc.abstractmethod
    def lava_process(self, fixed: dict[str, np.ndarray], n: int, name: str):
        """The Lava process running ``n`` neurons with the (expanded) fixed-point parameters."""

    def lava_reset(self, fixed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The value of each state Var of the Lava process (``lava_state``) at reset, for the (expanded)
        fixed-point parameters ``fixed``: the reference backend's ``initial_state``."""
        initial = self.initial_state(self.integer_constants(fixed), 1)
        n = next(iter(fixed.values())).size
        return {var: initial[name][0] if name else np.zeros(n, np.int64) for var, name in self.lava_state.items()}

    # ---- reports
    def report_fields(self, fixed: ParamArrays | None) -> dict:
        """What a report shows about a population of this model."""
        return {"neuron_model": self.name, "lava_process": self.lava_class}
