"""Quantization-aware mode: train on exactly the integer arithmetic the chip will run.

:func:`enable_qat` makes every layer of an :class:`~rsnn2chip.nn.RSNN` run, in its
forward pass, the integer simulation of the reference backend for that layer:

* quantization: the layer is turned into a one-layer IR (its population, its
  incoming projections with ``input_gain`` folded in, exactly as ``to_ir`` does)
  and passed through ``passes.quantize.quantize`` and ``backends.plan.lower``,
  the same functions ``compile_graph`` and ``backends.run`` use. It is redone on
  every forward pass, so it follows the weights as they train.
* dynamics: ``fixedpoint.shift_accumulated`` per projection (Lava shifts each
  projection's integer sum by its own ``weight_exp``, flooring, and adds the
  projections afterwards) and the neuron model's ``qat_step`` (for CUBA-LIF
  ``fixedpoint.lif_integrate`` / ``lif_fire``: 24-bit wrap of u, saturation of v, strict
  threshold, reset), on NumPy int64 arrays.

Gradients come from a float *shadow* of the same dynamics, built from the
dequantized parameters (``NeuronModel.dequantize``): every value the shadow
computes (weights, decays, bias, threshold, u, v, every other state variable,
spikes) is replaced in the forward pass by the exact integer
result divided by the population's power-of-two state scale, and its gradient is
passed straight through (identity) to the float parameters. Flooring, wrapping,
saturation and clipping are therefore invisible to the gradient; the spike
keeps its surrogate derivative. The forward spikes are bit for bit those of
``backends.run(compile_graph(model.to_ir(), target), x, T, backend="reference")``.
"""
from __future__ import annotations

import dataclasses
import types
from dataclasses import dataclass

import networkx as nx
import numpy as np
import torch
import torch.nn.functional as F

from rsnn2chip import fixedpoint as fx
from rsnn2chip import ir
from rsnn2chip.backends import input_payloads
from rsnn2chip.backends.plan import LoweredNetwork, LoweredProjection, lower
from rsnn2chip.errors import InputError
from rsnn2chip.nn.layers import SpikingLayer, delayed_one_step
from rsnn2chip.nn.network import RSNN
from rsnn2chip.passes.quantize import QuantizationConfig, quantize
from rsnn2chip.targets import Target, load_target

# Placeholder name of a layer's presynaptic population in its one-layer IR; layers
# may not be called "input", so it never collides with the layer itself.
PRE = "input"


class StraightThrough(torch.autograd.Function):
    """Forward: ``exact``. Backward: the gradient goes unchanged to ``shadow``.

    Unlike ``shadow + (exact - shadow).detach()``, the forward value is ``exact``
    itself, not a float sum that may round away from it.
    """

    @staticmethod
    def forward(ctx, shadow: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
        return exact.to(shadow.dtype).clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


def straight_through(shadow: torch.Tensor, exact) -> torch.Tensor:
    exact = torch.as_tensor(exact).to(device=shadow.device, dtype=shadow.dtype)
    return StraightThrough.apply(shadow, exact.broadcast_to(shadow.shape))


@dataclass
class QATSettings:
    target: Target
    qcfg: QuantizationConfig
    # The payload format of the layer's input when it is the network's graded input, else None (0/1 spikes).
    input_graded: ir.GradedInput | None = None


@dataclass
class QuantizedLayer:
    """One layer as the reference backend runs it, plus the float weights each projection came from."""

    net: LoweredNetwork
    state_scale: float
    feedforward: list[tuple[LoweredProjection, torch.Tensor]]
    recurrent: list[tuple[LoweredProjection, torch.Tensor]]


# --------------------------------------------------------------------------- public API

def enable_qat(model: RSNN, target: Target | str, qcfg: QuantizationConfig = QuantizationConfig(),
               input_graded: ir.GradedInput | None = None) -> RSNN:
    """Switch every layer of ``model`` to the exact fixed-point forward pass for ``target``.

    ``input_graded``: the payload format when the network's input is graded (rsnn2chip.data.encoding).
    Raises the compiler's ``ModelError`` at once if a parameter cannot be quantized.
    """
    shared = QATSettings(load_target(target) if isinstance(target, str) else target, qcfg)
    first = next(iter(model.layers))
    settings = {name: dataclasses.replace(shared, input_graded=input_graded if name == first else None)
                for name in model.layers}
    for name, layer in model.layers.items():
        quantize_layer(layer, settings[name])  # fail before switching any layer
    for name, layer in model.layers.items():
        layer.qat = settings[name]
        layer.forward = types.MethodType(qat_forward, layer)
    return model


def disable_qat(model: RSNN) -> RSNN:
    """Back to the float forward pass."""
    for layer in model.layers.values():
        if qat_enabled(layer):
            del layer.forward
            del layer.qat
    return model


def qat_enabled(module: RSNN | SpikingLayer) -> bool:
    layers = module.layers.values() if isinstance(module, RSNN) else [module]
    return all("qat" in vars(layer) for layer in layers)


# --------------------------------------------------------------------------- quantization

def layer_graph(layer: SpikingLayer, input_graded: ir.GradedInput | None = None) -> nx.DiGraph:
    """The layer alone as an IR: a stand-in presynaptic input, the layer, its incoming projections."""
    graph = ir.new_graph(layer.name)
    ir.add_population(graph, ir.Population(PRE, layer.in_features, layer=PRE, graded=input_graded))
    ir.add_population(graph, layer.ir_population())
    for projection in layer.ir_projections(PRE):
        ir.add_projection(graph, projection)
    return graph


def quantize_layer(layer: SpikingLayer, settings: QATSettings) -> QuantizedLayer:
    graph = quantize(layer_graph(layer, settings.input_graded), settings.target, settings.qcfg)
    net = lower(graph)
    scale = ir.population(graph, layer.name).state_scale
    float_weights = {f"{pre}->{layer.name}": weight for pre, weight in layer.folded_weights(PRE)}
    feedforward, recurrent = [], []
    payload_scale = settings.input_graded.scale if settings.input_graded is not None else 1.0
    for proj in net.projections:
        # A graded input's integer weights act on payload = value * 2**frac_bits.
        value_scale = scale / payload_scale if proj.source == "input" else scale
        shadow = straight_through(float_weights[proj.name], dequantized(proj, value_scale))
        (feedforward if proj.source == "input" else recurrent).append((proj, shadow))
    return QuantizedLayer(net, scale, feedforward, recurrent)


def dequantized(proj: LoweredProjection, scale: float) -> np.ndarray:
    """The float weights the integer ones stand for: ``mantissa * 2**exp * 64 / scale``."""
    return proj.weights.toarray() * (2.0 ** proj.weight_exp * (1 << fx.ACT_SHIFT) / scale)


# --------------------------------------------------------------------------- forward pass

def integer_drive(proj: LoweredProjection, spikes: np.ndarray) -> np.ndarray:
    """One projection's contribution to ``a_in`` for spikes ``(..., pre)``, as Lava's Sparse computes it."""
    flat = spikes.reshape(-1, spikes.shape[-1])
    acc = np.asarray((proj.weights @ flat.T).T, dtype=np.int64)
    return fx.shift_accumulated(acc, proj.weight_exp).reshape(*spikes.shape[:-1], -1)


def binary_spikes(x: torch.Tensor, where: str) -> np.ndarray:
    spikes = x.detach().cpu().numpy()
    if ((spikes != 0) & (spikes != 1)).any():
        raise InputError("quantization-aware mode needs 0/1 input spikes", where=where,
                         found=f"values {np.unique(spikes[(spikes != 0) & (spikes != 1)])[:5].tolist()}",
                         allowed="0/1", fix="encode analog inputs as spikes first (see docs/data.md)")
    return spikes.astype(np.int64)


def delayed_int(drive: np.ndarray) -> np.ndarray:
    out = np.zeros_like(drive)
    out[:, 1:] = drive[:, :-1]
    return out


class Exact:
    """What a neuron model's ``qat_step`` uses to give each shadow value its integer twin's forward value."""

    def __init__(self, scale: float):
        self.scale = scale

    def state(self, shadow: torch.Tensor, ints: np.ndarray) -> torch.Tensor:
        return straight_through(shadow, ints / self.scale)

    def spikes(self, shadow: torch.Tensor, fired: np.ndarray) -> torch.Tensor:
        return straight_through(shadow, fired)


def shadow_params(layer: SpikingLayer, q: QuantizedLayer) -> dict[str, torch.Tensor]:
    """The layer's neuron parameters, forward-exact as quantized, gradient-transparent to the floats."""
    group = q.net.groups[0]
    represented = group.model.dequantize(group.params, q.state_scale)
    return {name: straight_through(tensor, represented[name]) for name, tensor in layer.neuron.params().items()}


def qat_forward(self: SpikingLayer, x: torch.Tensor) -> torch.Tensor:
    """``x`` ``(B, T, in_features)`` -> spikes ``(B, T, size)`` (v when the layer never fires), exactly as the
    reference backend; ``x`` is 0/1, or graded values for the network's graded input."""
    q = quantize_layer(self, self.qat)
    if self.qat.input_graded is None:
        x_int = binary_spikes(x, f"layer {self.name!r}")
    else:
        x_int = input_payloads(x.detach().cpu().numpy(), self.qat.input_graded, f"input of layer {self.name!r}")
        x_int = x_int.astype(np.int64)
    drive_int = delayed_int(sum(integer_drive(p, x_int) for p, _ in q.feedforward))
    drive = delayed_one_step(sum(F.linear(x.to(w.dtype), w) for _, w in q.feedforward))
    return run_steps(q, shadow_params(self, q), self.neuron.spike if self.fires else self.neuron.never_spike,
                     drive, drive_int, self.fires)


def run_steps(q: QuantizedLayer, shadow: dict[str, torch.Tensor], spike, drive: torch.Tensor,
              drive_int: np.ndarray, fires: bool = True) -> torch.Tensor:
    """Integer and shadow dynamics side by side; each shadow value is replaced by its integer twin.

    Returns the spikes, or for a layer that never fires (a membrane readout) its voltage after each step.
    """
    batch, steps, size = drive.shape
    group = q.net.groups[0]
    model, consts, exact = group.model, group.constants(), Exact(q.state_scale)
    state_int = model.initial_state(consts, batch)
    state = model.torch_initial_state(shadow, batch)
    spikes_int = np.zeros((batch, size), np.int64)
    spikes = drive.new_zeros((batch, size))
    outputs = []
    for t in range(steps):
        a_in = drive_int[:, t] + sum((integer_drive(p, spikes_int) for p, _ in q.recurrent), np.int64(0))
        current = drive[:, t] + sum((F.linear(spikes, w) for _, w in q.recurrent), drive.new_zeros(()))
        fired, spikes, state_int, state = model.qat_step(consts, shadow, state_int, state, a_in, current, exact,
                                                         spike)
        spikes_int = fired.astype(np.int64)
        # v after the reset: what Lava's v probe and the reference record.
        outputs.append(spikes if fires else exact.state(state[model.state.index("v")], state_int["v"]))
    return torch.stack(outputs, dim=1)
