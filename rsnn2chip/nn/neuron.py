"""Current-based LIF neuron in torch, with exactly the IR's (and Lava's) update order.

Per step ``t`` and per neuron::

    u[t] = u[t-1] * (1 - current_decay) + input_gain * I[t]
    v[t] = v[t-1] * (1 - voltage_decay) + u[t] + bias
    spike = v[t] > threshold  (strict);  v[t] = 0 where it spiked;  u is not reset

``I[t]`` is the summed synaptic input the layer computed (already delayed one
step). ``input_gain`` and ``voltage_decay`` are per-neuron tensors because the
intrinsic-plasticity step adapts them neuron by neuron; the compiler folds
``input_gain`` into the rows of every incoming weight matrix.

Surrogate gradient: the derivative of a *fast sigmoid* (SuperSpike,
Zenke & Ganguli 2018), ``1 / (1 + slope * |x|)**2`` with
``x = (v - threshold) / threshold``. Chosen because its tails never reach
zero, so a silent neuron still receives a gradient (a triangle would cut it
off), and it needs no ``exp``. Measuring the distance in units of the
threshold keeps the surrogate's width independent of the float scale the
model happens to use.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

DEFAULT_SURROGATE_SLOPE = 5.0
NEURON_PARAMS = ("current_decay", "voltage_decay", "threshold", "bias")


class NeuronState(NamedTuple):
    u: torch.Tensor  # synaptic current, (B, size)
    v: torch.Tensor  # membrane voltage, (B, size)


class FastSigmoidSpike(torch.autograd.Function):
    """Heaviside ``v > threshold`` forward, fast-sigmoid derivative backward."""

    @staticmethod
    def forward(ctx, v, threshold, slope: float):
        ctx.save_for_backward(v, threshold)
        ctx.slope = slope
        # Compare v to the threshold directly (not v - threshold > 0) so the
        # spike decision is exactly the strict comparison Lava makes.
        return (v > threshold).to(v.dtype)

    @staticmethod
    def backward(ctx, grad_spikes):
        v, threshold = ctx.saved_tensors
        distance = (v - threshold) / threshold
        grad_v = grad_spikes / (threshold * (1.0 + ctx.slope * distance.abs()) ** 2)
        return grad_v, None, None


def spike_fn(v: torch.Tensor, threshold: torch.Tensor, slope: float = DEFAULT_SURROGATE_SLOPE) -> torch.Tensor:
    return FastSigmoidSpike.apply(v, threshold, slope)


def per_neuron(value, size: int, name: str) -> torch.Tensor:
    """A scalar or length-``size`` sequence as a float32 tensor of shape ``(size,)``."""
    tensor = torch.as_tensor(value, dtype=torch.float32).flatten()
    if tensor.numel() == 1:
        return tensor.expand(size).clone()
    if tensor.numel() != size:
        raise ValueError(f"{name}: {tensor.numel()} values for {size} neurons")
    return tensor.clone()


class CubaLIFNeuron(nn.Module):
    """A population of CUBA-LIF neurons; holds parameters, not state.

    All parameters are buffers (saved in ``state_dict``) except
    ``voltage_decay``, which becomes a trainable ``nn.Parameter`` when
    ``learn_voltage_decay`` is set; the ``state_dict`` keys are the same
    either way, so a checkpoint does not depend on that training choice.
    Keeping a learned decay inside ``[0, 1]`` is the optimiser's job.
    """

    def __init__(self, size: int, current_decay, voltage_decay, threshold, bias,
                 learn_voltage_decay: bool = False, surrogate_slope: float = DEFAULT_SURROGATE_SLOPE):
        super().__init__()
        self.size = int(size)
        self.surrogate_slope = float(surrogate_slope)
        self.register_buffer("current_decay", per_neuron(current_decay, size, "current_decay"))
        decay = per_neuron(voltage_decay, size, "voltage_decay")
        if learn_voltage_decay:
            self.voltage_decay = nn.Parameter(decay)
        else:
            self.register_buffer("voltage_decay", decay)
        self.register_buffer("threshold", per_neuron(threshold, size, "threshold"))
        self.register_buffer("bias", per_neuron(bias, size, "bias"))
        self.register_buffer("input_gain", torch.ones(size))

    def initial_state(self, batch: int) -> NeuronState:
        zeros = self.threshold.new_zeros((batch, self.size))
        return NeuronState(zeros, zeros.clone())

    def step(self, state: NeuronState, current: torch.Tensor, fire: bool = True) -> tuple[torch.Tensor, NeuronState]:
        """Advance one time step; ``current`` is the summed synaptic input ``(B, size)``.

        ``fire=False`` makes a leaky integrator (a membrane-potential readout): no threshold, no reset.
        """
        u = state.u * (1 - self.current_decay) + self.input_gain * current
        v = state.v * (1 - self.voltage_decay) + u + self.bias
        if not fire:
            return v.new_zeros(v.shape), NeuronState(u, v)
        spikes = spike_fn(v, self.threshold, self.surrogate_slope)
        # The reset is kept out of the gradient: differentiating through it
        # couples each spike to the next and destabilises BPTT for little gain.
        v = v * (1 - spikes.detach())
        return spikes, NeuronState(u, v)

    def float_params(self) -> dict:
        """Parameters as float64 NumPy arrays, keyed like ``ir.CubaLIF``."""
        return {name: getattr(self, name).detach().cpu().double().numpy() for name in NEURON_PARAMS}
