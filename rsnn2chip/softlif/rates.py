"""Rate functions of LIF neurons: the soft-LIF that training differentiates, the LIF it smooths, and the
rate the deployed Loihi neuron really has.

Units follow Hunsberger & Eliasmith (2015): the input current ``j`` is in units of the firing threshold
(a neuron fires for ``j > 1``), time constants are in seconds and rates in spikes per second (Hz)::

    LIF       r(j) = 1 / (tau_ref + tau_RC * log(1 + 1 / max(j - 1, 0)))
    soft-LIF  the same with max(x, 0) replaced by rho(x) = gamma * log(1 + exp(x / gamma))

The *Loihi* rate is that of the discrete neuron the converter deploys (rsnn2chip.softlif.convert):
``v[t] = a v[t-1] + drive``, ``a = 1 - voltage_decay``, spike when ``v > 1``, reset to 0, no refractory
period. For a constant drive ``j * voltage_decay`` the membrane after ``n`` steps is ``j (1 - a**n)``, so the
inter-spike interval is the least ``n >= 1`` with ``a**n < 1 - 1/j``. That whole number of steps replaces
``tau_ref + tau_RC log(...)``: rounding up costs half a step on average, which makes the deployed neuron
behave like a LIF with ``tau_ref ~ dt / 2`` (docs/softlif.md).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# Below this z = (j - 1) / gamma, log(softplus(z)) equals z to float precision; the cut keeps exp(z)
# out of the denormal range, where flush-to-zero would turn log(rho) into -inf and its gradient into NaN.
LOG_SOFTPLUS_CUT = -15.0


@dataclass(frozen=True)
class SoftLIFParams:
    """Neuron constants of the rate network (the paper's values by default).

    ``amplitude`` (seconds) scales a rate into the activation the next layer sees, ``h = amplitude * r``:
    with 0.01 s, 100 Hz is 1.0, which keeps weights of order one. It changes nothing the network can
    express (the next layer's weights absorb it); the converter undoes it exactly.
    """

    tau_rc: float = 0.05
    tau_ref: float = 0.001
    gamma: float = 0.02
    amplitude: float = 0.01

    def to_dict(self) -> dict:
        return asdict(self)


def log_rho(x: torch.Tensor, gamma: float) -> torch.Tensor:
    """``log(gamma * log(1 + exp(x / gamma)))``, finite for every x."""
    z = x / gamma
    exact = torch.log(F.softplus(z.clamp(min=LOG_SOFTPLUS_CUT)))
    return math.log(gamma) + torch.where(z > LOG_SOFTPLUS_CUT, exact, z)


def softlif_rate(j: torch.Tensor, tau_rc: float, tau_ref: float, gamma: float) -> torch.Tensor:
    """Soft-LIF rate in Hz; smooth in ``j`` with a bounded derivative."""
    # log(1 + 1/rho) = softplus(-log rho): no 1/rho to overflow when rho is tiny.
    return 1.0 / (tau_ref + tau_rc * F.softplus(-log_rho(j - 1.0, gamma)))


def lif_rate(j: torch.Tensor, tau_rc: float, tau_ref: float) -> torch.Tensor:
    """The LIF rate in Hz (zero for ``j <= 1``); not for training: its slope is infinite at threshold."""
    above = j > 1.0
    safe = torch.where(above, j, torch.full_like(j, 2.0))
    return torch.where(above, 1.0 / (tau_ref + tau_rc * torch.log1p(1.0 / (safe - 1.0))), torch.zeros_like(j))


def loihi_steps_per_spike(j, voltage_decay: float) -> np.ndarray:
    """Inter-spike interval in steps of the deployed neuron for a constant drive ``j`` (inf if silent)."""
    j = np.asarray(j, dtype=np.float64)
    a = 1.0 - voltage_decay
    out = np.full(j.shape, np.inf)
    fires = j > 1.0
    if a <= 0.0:
        out[fires] = 1.0
        return out
    # The least integer n >= 1 with n > log(1 - 1/j) / log(a); nextafter keeps an exact integer strict.
    x = np.log1p(-1.0 / j[fires]) / math.log(a)
    out[fires] = np.maximum(np.floor(np.nextafter(x, np.inf)) + 1.0, 1.0)
    return out


def loihi_rate(j, voltage_decay: float, dt: float) -> np.ndarray:
    """Rate in Hz of the deployed neuron for a constant drive ``j`` (threshold units)."""
    return 1.0 / (loihi_steps_per_spike(j, voltage_decay) * dt)


class RateNeuron(nn.Module):
    """Activation of a rate layer: ``amplitude * rate(j)``, with the paper's training noise.

    ``kind``: ``softlif`` (training), ``lif`` (the hard LIF, evaluation only), ``loihi`` (the deployed
    neuron's rate for a constant drive, evaluation only; needs ``voltage_decay`` and ``dt``). ``noise``
    is sigma in Hz: during training a Gaussian of that sigma is added to the rate where the neuron would
    fire (``j > 1``) and nowhere else, modelling the variability of a spike train around its rate.
    """

    KINDS = ("softlif", "lif", "loihi")

    def __init__(self, params: SoftLIFParams, noise: float = 0.0):
        super().__init__()
        self.params = params
        self.noise = float(noise)
        self.kind = "softlif"
        self.loihi = (None, None)  # (voltage_decay, dt) when kind == "loihi"

    def rate(self, j: torch.Tensor) -> torch.Tensor:
        p = self.params
        if self.kind == "softlif":
            return softlif_rate(j, p.tau_rc, p.tau_ref, p.gamma)
        if self.kind == "lif":
            return lif_rate(j, p.tau_rc, p.tau_ref)
        if self.kind == "loihi":
            decay, dt = self.loihi
            return torch.as_tensor(loihi_rate(j.detach().cpu().double().numpy(), decay, dt), dtype=j.dtype)
        raise ValueError(f"unknown rate kind {self.kind!r}; one of {self.KINDS}")

    def forward(self, j: torch.Tensor) -> torch.Tensor:
        r = self.rate(j)
        if self.training and self.noise > 0:
            r = r + torch.where(j > 1.0, torch.randn_like(r) * self.noise, torch.zeros_like(r))
        return self.params.amplitude * r
