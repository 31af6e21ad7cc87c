"""A population of neurons in torch, of any :mod:`rsnn2chip.neurons` model, with exactly its update order.

The dynamics are the model's ``torch_step`` (for CUBA-LIF: ``u = u * (1 -
current_decay) + input_gain * I``, ``v = v * (1 - voltage_decay) + u + bias``,
spike when ``v > threshold``, reset v). ``I[t]`` is the summed synaptic input
the layer computed (already delayed one step). ``input_gain`` and
``voltage_decay`` are per-neuron tensors because the intrinsic-plasticity step
adapts them neuron by neuron; the compiler folds ``input_gain`` into the rows
of every incoming weight matrix.

Surrogate gradient: the derivative of a *fast sigmoid* (SuperSpike,
Zenke & Ganguli 2018), ``1 / (1 + slope * |x|)**2`` with
``x = (v - threshold) / threshold``. Chosen because its tails never reach
zero, so a silent neuron still receives a gradient (a triangle would cut it
off), and it needs no ``exp``. Measuring the distance in units of the
threshold keeps the surrogate's width independent of the float scale the
model happens to use.
"""
from __future__ import annotations

import torch
from torch import nn

from rsnn2chip import neurons
from rsnn2chip.neurons.base import ParamArrays

DEFAULT_SURROGATE_SLOPE = 5.0


class FastSigmoidSpike(torch.autograd.Function):
    """Heaviside ``v > threshold`` (``>=`` when inclusive) forward, fast-sigmoid derivative backward."""

    @staticmethod
    def forward(ctx, v, threshold, slope: float, inclusive: bool):
        ctx.save_for_backward(v, threshold)
        ctx.slope = slope
        # Compare v to the threshold directly (not v - threshold > 0) so the
        # spike decision is exactly the comparison Lava makes.
        return (v >= threshold if inclusive else v > threshold).to(v.dtype)

    @staticmethod
    def backward(ctx, grad_spikes):
        v, threshold = ctx.saved_tensors
        distance = (v - threshold) / threshold
        grad_v = grad_spikes / (threshold * (1.0 + ctx.slope * distance.abs()) ** 2)
        grad_threshold = None
        if ctx.needs_input_grad[1]:  # an adaptive threshold is state the gradient must reach
            grad_threshold = (-grad_v).sum_to_size(threshold.shape)
        return grad_v, grad_threshold, None, None


def spike_fn(v: torch.Tensor, threshold: torch.Tensor, slope: float = DEFAULT_SURROGATE_SLOPE,
             inclusive: bool = False) -> torch.Tensor:
    return FastSigmoidSpike.apply(v, threshold, slope, inclusive)


def per_neuron(value, size: int, name: str) -> torch.Tensor:
    """A scalar or length-``size`` sequence as a float32 tensor of shape ``(size,)``."""
    tensor = torch.as_tensor(value, dtype=torch.float32).flatten()
    if tensor.numel() == 1:
        return tensor.expand(size).clone()
    if tensor.numel() != size:
        raise ValueError(f"{name}: {tensor.numel()} values for {size} neurons")
    return tensor.clone()


class Neuron(nn.Module):
    """A population of ``size`` neurons of one model; holds parameters, not state.

    Every float parameter of the model is a buffer (saved in ``state_dict``
    under its name) except ``voltage_decay``, which becomes a trainable
    ``nn.Parameter`` when ``learn_voltage_decay`` is set; the ``state_dict``
    keys are the same either way, so a checkpoint does not depend on that
    training choice. Keeping a learned decay inside ``[0, 1]`` is the
    optimiser's job. Parameters the arch omits take the model's defaults.
    """

    def __init__(self, size: int, model: str = neurons.DEFAULT_MODEL, learn_voltage_decay: bool = False,
                 surrogate_slope: float = DEFAULT_SURROGATE_SLOPE, **params):
        super().__init__()
        self.size = int(size)
        self.model = neurons.get(model)
        self.surrogate_slope = float(surrogate_slope)
        values = {**self.model.defaults(), **params}
        self.param_names = tuple(spec.name for spec in self.model.float_params)
        for name in self.param_names:
            tensor = per_neuron(values[name], size, name)
            if name == "voltage_decay" and learn_voltage_decay:
                self.voltage_decay = nn.Parameter(tensor)
            else:
                self.register_buffer(name, tensor)
        self.register_buffer("input_gain", torch.ones(size))

    def params(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name) for name in self.param_names}

    def spike(self, x: torch.Tensor, threshold: torch.Tensor, inclusive: bool) -> torch.Tensor:
        return spike_fn(x, threshold, self.surrogate_slope, inclusive)

    @staticmethod
    def never_spike(x: torch.Tensor, threshold: torch.Tensor, inclusive: bool) -> torch.Tensor:
        return torch.zeros_like(x)

    def initial_state(self, batch: int) -> tuple:
        return self.model.torch_initial_state(self.params(), batch)

    def step(self, state: tuple, current: torch.Tensor, fire: bool = True) -> tuple[torch.Tensor, tuple]:
        """Advance one time step; ``current`` is the summed synaptic input ``(B, size)``.

        ``fire=False`` makes a leaky integrator (a membrane-potential readout): the model never spikes, so it
        never resets either.
        """
        return self.model.torch_step(self.params(), state, self.input_gain * current,
                                     self.spike if fire else self.never_spike)

    def voltage(self, state: tuple) -> torch.Tensor:
        """``v`` out of a float state tuple (every model has one)."""
        return state[self.model.state.index("v")]

    def float_params(self) -> ParamArrays:
        """The parameters as the IR holds them (the model's float record, float64)."""
        return self.model.float_type(**{name: getattr(self, name).detach().cpu().double().numpy()
                                        for name in self.param_names})
