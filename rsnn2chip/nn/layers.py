"""Spiking layer types, looked up by name in :data:`LAYER_TYPES`.

A layer owns its neurons and every projection *into* it (feed-forward input and,
where it has one, its recurrence). Each type declares its type-specific arch
keys in ``OPTIONS`` (key -> default and check), so validation, defaults and
``arch()`` need no per-type branching; adding a type is one decorated class.

Every incoming projection has a one-step synaptic delay, as Lava's ``Sparse``
does: the spikes a layer receives at step ``t`` were emitted at ``t - 1``.
"""
from __future__ import annotations

import copy
import math
import re
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

import numpy as np

from rsnn2chip import ir, neurons
from rsnn2chip.errors import ModelError, Problem
from rsnn2chip.neurons.base import FloatParam
from rsnn2chip.nn.neuron import Neuron

LAYER_TYPES: dict[str, type["SpikingLayer"]] = {}
COMMON_KEYS = ("type", "name", "size", "neuron")
MODEL_KEY = "model"  # in a layer's neuron mapping: which neuron model (absent: cuba_lif)
# Module names end up as state_dict key segments, so no dots; "input" and
# "logits" are taken by the network's input population and readout output.
LAYER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
RESERVED_NAMES = ("input", "logits")


def register_layer(type_name: str):
    """Class decorator: make a layer type available to archs under ``type_name``."""
    def register(cls):
        if type_name in LAYER_TYPES:
            raise ValueError(f"layer type {type_name!r} registered twice")
        cls.TYPE = type_name
        LAYER_TYPES[type_name] = cls
        return cls
    return register


# --------------------------------------------------------------------------- validation

def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def positive(value) -> str | None:
    return None if value > 0 else "must be > 0"


def check_number(where: str, key: str, value, check: Callable[[float], str | None]) -> list[Problem]:
    if not is_number(value):
        return [Problem(f"{key} must be a finite number", where=where, found=repr(value))]
    reason = check(value)
    return [] if reason is None else [Problem(f"{key} {reason}", where=where, found=value)]


def model_range(spec: FloatParam) -> Callable[[float], str | None]:
    """A neuron model's range for one parameter as a number check."""
    verb = "lie in" if spec.allowed[0] in "[(" else "be"
    return lambda value: None if spec.valid(np.asarray([value]))[0] else f"must {verb} {spec.allowed}"


def check_neuron_param(where: str, key: str, value, size, check: Callable[[float], str | None]) -> list[Problem]:
    """A neuron parameter is one number for the whole layer or one per neuron."""
    if not isinstance(value, (list, tuple)):
        return check_number(where, f"neuron.{key}", value, check)
    if is_positive_int(size) and len(value) != size:
        return [Problem(f"neuron.{key} has one value per neuron, so its length must equal size", where=where,
                        found=len(value), allowed=size)]
    problems = []
    for item in value:
        problems += check_number(where, f"neuron.{key}", item, check)
        if problems:
            break  # one bad entry says enough; a list of 1000 copies would not help
    return problems


def check_neuron(where: str, neuron, size) -> list[Problem]:
    """The layer's ``neuron`` mapping: ``model`` (a key of ``NEURON_MODELS``, default cuba_lif) and its parameters."""
    if not isinstance(neuron, dict):
        return [Problem("neuron must be a mapping of neuron parameters", where=where, found=type(neuron).__name__,
                        allowed=f"'model' (one of {sorted(neurons.NEURON_MODELS)}) and the model's parameters")]
    try:
        model = neurons.get(neuron.get(MODEL_KEY, neurons.DEFAULT_MODEL), where=f"{where} neuron.model")
    except ModelError as err:
        return err.problems
    names = [spec.name for spec in model.float_params]
    problems = []
    missing = [k for k in model.required() if k not in neuron]
    unknown = sorted(set(neuron) - set(names) - {MODEL_KEY}, key=str)
    if missing:
        problems.append(Problem(f"neuron parameters missing for model {model.name}", where=where, found=missing,
                                allowed=names))
    if unknown:
        problems.append(Problem(f"unknown neuron parameters for model {model.name}", where=where, found=unknown,
                                allowed=names, fix="check the spelling"))
    for spec in model.float_params:
        if spec.name in neuron:
            if spec.uniform and isinstance(neuron[spec.name], (list, tuple)):
                problems.append(Problem(f"neuron.{spec.name} is one value for the whole layer in model {model.name}",
                                        where=where, found="a list", allowed="one number"))
                continue
            problems += check_neuron_param(where, spec.name, neuron[spec.name], size, model_range(spec))
    return problems


def neuron_with_defaults(neuron: dict) -> dict:
    """The arch's neuron mapping with the model's defaults filled in (unchanged for CUBA-LIF, which has none)."""
    model = neurons.get(neuron.get(MODEL_KEY, neurons.DEFAULT_MODEL))
    return {**model.defaults(), **neuron}


def layer_label(cfg, index: int) -> str:
    name = cfg.get("name") if isinstance(cfg, dict) else None
    return f"layer {index} ({name!r})" if isinstance(name, str) else f"layer {index}"


def check_layer_cfg(cfg, index: int = 0) -> list[Problem]:
    """Every problem with one layer's arch entry (empty when it is valid)."""
    where = layer_label(cfg, index)
    if not isinstance(cfg, dict):
        return [Problem("a layer must be a mapping", where=where, found=type(cfg).__name__)]
    layer_type = cfg.get("type")
    if not isinstance(layer_type, str) or layer_type not in LAYER_TYPES:
        return [Problem("unknown layer type", where=where, found=repr(layer_type), allowed=sorted(LAYER_TYPES),
                        fix="set 'type' to one of the allowed layer types")]
    cls = LAYER_TYPES[layer_type]
    problems = []
    name = cfg.get("name")
    if not isinstance(name, str) or not LAYER_NAME.match(name) or name in RESERVED_NAMES:
        problems.append(Problem("bad layer name", where=where, found=repr(name),
                                allowed=f"letters, digits, '_' or '-', starting with a letter; not {RESERVED_NAMES}"))
    size = cfg.get("size")
    if not is_positive_int(size):
        problems.append(Problem("size must be a positive integer", where=where, found=repr(size)))
    problems += check_neuron(where, cfg.get("neuron"), size)
    known = set(COMMON_KEYS) | set(cls.OPTIONS)
    unknown = sorted(set(cfg) - known, key=str)
    if unknown:
        problems.append(Problem(f"unknown keys for layer type {layer_type!r}", where=where, found=unknown,
                                allowed=sorted(known), fix="check the spelling"))
    problems += cls.check_options(cfg, where)
    return problems


def check_numeric_options(where: str, cfg: dict, options: dict) -> list[Problem]:
    return [p for key, (_, check) in options.items() if key in cfg for p in check_number(where, key, cfg[key], check)]


def with_defaults(cfg: dict, options: dict) -> dict:
    full = copy.deepcopy(cfg)
    for key, (default, _) in options.items():
        full.setdefault(key, default)
    return full


# --------------------------------------------------------------------------- layers

# Initial weight scale: each layer's summed drive starts at about init_scale * threshold. 0.5 was
# measured against 1 (3 seeds) and 2 (1 seed) on four data sets by bench/accuracy.py (docs/training.md).
DEFAULT_INIT_SCALE = 0.5


class SpikingLayer(nn.Module):
    """A population of neurons (of the model its arch names) and the projections into it.

    Subclasses add incoming weights: they list them in :meth:`incoming_weights`
    and, if they read the layer's own previous spikes, override
    :meth:`recurrent_current`.
    """

    TYPE = ""
    # key -> (default, check(value) -> reason or None). The default check_options
    # treats every option as a number; a type with structured options overrides it.
    OPTIONS: dict[str, tuple[Any, Callable]] = {"init_scale": (DEFAULT_INIT_SCALE, positive)}

    @classmethod
    def check_options(cls, cfg: dict, where: str) -> list[Problem]:
        """Problems with this type's own keys in ``cfg`` (which may also hold invalid common keys)."""
        return check_numeric_options(where, cfg, cls.OPTIONS)

    def __init__(self, cfg: dict, in_features: int, learn_voltage_decay: bool = False):
        super().__init__()
        self.cfg = cfg
        self.name = cfg["name"]
        self.size = cfg["size"]
        self.in_features = in_features
        # False for the output layer of a membrane-potential readout (set by the network): it never fires,
        # and forward() returns its voltage instead of spikes.
        self.fires = True
        self.neuron = Neuron(self.size, **cfg["neuron"], learn_voltage_decay=learn_voltage_decay)
        self.w_in = nn.Parameter(self.init_weights(self.size, in_features, fan_in=in_features))

    @classmethod
    def from_arch(cls, cfg: dict, in_features: int, learn_voltage_decay: bool = False) -> "SpikingLayer":
        if cfg.get("type", cls.TYPE) != cls.TYPE:
            raise ModelError("layer config is for another layer type", where=layer_label(cfg, 0),
                             found=repr(cfg["type"]), allowed=repr(cls.TYPE),
                             fix=f"build it with LAYER_TYPES[{cfg['type']!r}].from_arch")
        problems = check_layer_cfg({"type": cls.TYPE, **cfg})
        if problems:
            raise ModelError(problems=problems)
        full = with_defaults({"type": cls.TYPE, **cfg}, cls.OPTIONS)
        full["neuron"] = neuron_with_defaults(full["neuron"])
        return cls(full, in_features, learn_voltage_decay)

    def arch(self) -> dict:
        return copy.deepcopy(self.cfg)

    def init_weights(self, rows: int, cols: int, fan_in: float) -> torch.Tensor:
        """Gaussian weights whose summed drive is of the order of the threshold."""
        scale = self.cfg["init_scale"] * float(self.neuron.threshold.mean()) / math.sqrt(max(fan_in, 1.0))
        return torch.randn(rows, cols) * scale

    # ---- dynamics
    def recurrent_current(self, prev_spikes: torch.Tensor) -> torch.Tensor | None:
        return None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, T, in_features)`` -> spikes ``(B, T, size)``; the voltage ``v`` when the layer never fires."""
        batch, steps, _ = x.shape
        drive = delayed_one_step(F.linear(x, self.w_in))
        state = self.neuron.initial_state(batch)
        spikes = drive.new_zeros((batch, self.size))
        outputs = []
        for t in range(steps):
            current = drive[:, t]
            feedback = self.recurrent_current(spikes)
            if feedback is not None:
                current = current + feedback
            spikes, state = self.neuron.step(state, current, fire=self.fires)
            outputs.append(spikes if self.fires else self.neuron.voltage(state))
        return torch.stack(outputs, dim=1)

    # ---- IR
    def incoming_weights(self, pre_name: str) -> list[tuple[str, torch.Tensor]]:
        """``(pre population, effective (size, pre.size) weight)`` for each projection into this layer."""
        return [(pre_name, self.w_in)]

    def folded_weights(self, pre_name: str, dtype: torch.dtype | None = None) -> list[tuple[str, torch.Tensor]]:
        """:meth:`incoming_weights` with ``input_gain`` folded into the rows, differentiable.

        The IR and the quantization-aware path both take weights from here, so they fold identically.
        """
        folded = []
        for pre, weight in self.incoming_weights(pre_name):
            weight = weight if dtype is None else weight.to(dtype)
            folded.append((pre, weight * self.neuron.input_gain.to(weight.dtype)[:, None]))
        return folded

    def ir_projections(self, pre_name: str) -> list[ir.Projection]:
        """Float projections with ``input_gain`` folded into the rows, as the IR's neuron models have no gain."""
        with torch.no_grad():
            return [ir.Projection(pre, self.name, weight.cpu().numpy(), delay=1)
                    for pre, weight in self.folded_weights(pre_name, torch.float64)]

    def ir_population(self) -> ir.Population:
        return ir.Population(self.name, self.size, layer=self.name, neuron=self.neuron.float_params(),
                             motif_size=None, fires=self.fires)


def delayed_one_step(drive: torch.Tensor) -> torch.Tensor:
    """Shift ``(B, T, n)`` one step later in time: step 0 receives nothing."""
    return F.pad(drive, (0, 0, 1, 0))[:, :-1]


@register_layer("lif_dense")
class DenseLIFLayer(SpikingLayer):
    """Feed-forward: dense input weights, no recurrence."""


@register_layer("lif_recurrent")
class RecurrentLIFLayer(SpikingLayer):
    """Dense input weights plus recurrent weights ``(size, size)``.

    With ``recurrent_density < 1`` a fixed random 0/1 mask (drawn from
    ``mask_seed``) keeps that fraction of recurrent synapses; it is a buffer,
    so a checkpoint carries the exact mask it was trained with.
    """

    OPTIONS = {
        **SpikingLayer.OPTIONS,
        "recurrent_density": (1.0, lambda d: None if 0.0 < d <= 1.0 else "must lie in (0, 1]"),
        "mask_seed": (0, lambda s: None if float(s).is_integer() and s >= 0 else "must be an integer >= 0"),
    }

    def __init__(self, cfg: dict, in_features: int, learn_voltage_decay: bool = False):
        super().__init__(cfg, in_features, learn_voltage_decay)
        density = float(cfg["recurrent_density"])
        self.register_buffer("recurrent_mask", self.draw_mask(density, int(cfg["mask_seed"])) if density < 1 else None)
        self.w_rec = nn.Parameter(self.init_weights(self.size, self.size, fan_in=self.size * density))

    def draw_mask(self, density: float, seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        return (torch.rand(self.size, self.size, generator=generator) < density).float()

    def effective_recurrent_weights(self) -> torch.Tensor:
        if self.recurrent_mask is None:
            return self.w_rec
        return self.w_rec * self.recurrent_mask

    def recurrent_current(self, prev_spikes: torch.Tensor) -> torch.Tensor:
        return F.linear(prev_spikes, self.effective_recurrent_weights())

    def incoming_weights(self, pre_name: str) -> list[tuple[str, torch.Tensor]]:
        return super().incoming_weights(pre_name) + [(self.name, self.effective_recurrent_weights())]
