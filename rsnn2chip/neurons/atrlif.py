"""ATRLIF: LIF with adaptive threshold and refractoriness (Lava ``lava.proc.atrlif`` ``ATRLIF``).

Float dynamics, in Lava's update order (``PyATRLIFModelFixed``)::

    u[t]     = u[t-1] * (1 - current_decay) + I[t]
    v[t]     = v[t-1] * (1 - voltage_decay) + u[t] + bias
    theta[t] = (theta[t-1] - threshold) * (1 - threshold_decay) + threshold
    r[t]     = r[t-1] * (1 - refractory_decay)
    spike when v[t] - r[t] >= theta[t] (not strict, unlike CUBA-LIF); then
    r[t] += 2 * theta[t] and theta[t] += threshold_step. v is never reset.

``u`` is Lava's ``i``; ``theta`` starts at ``threshold``. Each spike raises the
threshold, which relaxes back with ``threshold_decay``: the neuron's recent
activity is remembered for about ``1 / threshold_decay`` steps (the LSNN
mechanism of Bellec et al., NeurIPS 2018). The refractory state ``r`` plays
the part of the reset.

Fixed point, as ``PyATRLIFModelFixed`` computes it (lava-nc 0.10):

* The decays are Lava's ``delta_*`` times 4096, stored here as integers
  ``delta_* in 0..4095`` (lowering divides by 4096 again; k/4096 is exact in
  float64, so Lava's float multiplications give the same integers). The current
  decays by ``(delta_i + 1) / 4096``: Lava adds one, so it always decays by at
  least 1/4096 and ``current_decay`` must be >= 1/4096. The others decay by
  ``delta / 4096`` with no offset.
* ``theta_0`` and ``theta_step`` are 12-bit (0..4095) and shifted left by 6,
  like LIF's ``vth``. ``theta_step`` must be one value per population: Lava's
  ``post_spike`` adds it to the spiking neurons only, which works for a scalar
  alone; ``i`` wraps at 24 bits like LIF's ``u``, ``v`` saturates
  at +-(2**23 - 1); ``theta`` and ``r`` are plain int32 (neither clipped nor
  wrapped at 24 bits, so they wrap at 32 bits as NumPy's int32 does).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rsnn2chip import fixedpoint as fx
from rsnn2chip.neurons.base import (FloatParam, NeuronModel, ParamArrays, above, any_finite, at_least, in_range,
                                    quant_loss, quantize_bias, quantize_decay)

UNIT_RANGE = (0, fx.DECAY_UNITY - 1)  # 12-bit unsigned
THETA_0_RANGE = (1, fx.DECAY_UNITY - 1)


@dataclass
class ATRLIF(ParamArrays):
    """Float ATRLIF parameters (see the module docstring for the dynamics)."""

    current_decay: np.ndarray
    voltage_decay: np.ndarray
    threshold: np.ndarray
    bias: np.ndarray
    threshold_step: np.ndarray
    threshold_decay: np.ndarray
    refractory_decay: np.ndarray

    MODEL = "atrlif"


@dataclass
class LoihiATRLIF(ParamArrays):
    """Fixed-point ATRLIF parameters: Lava's, with each ``delta_*`` times 4096 (see the module docstring)."""

    delta_i: np.ndarray
    delta_v: np.ndarray
    delta_theta: np.ndarray
    delta_r: np.ndarray
    theta_0: np.ndarray
    theta_step: np.ndarray
    bias_mant: np.ndarray
    bias_exp: np.ndarray

    MODEL = "atrlif"
    DTYPE = np.int64


def wrap32(x: np.ndarray) -> np.ndarray:
    """int64 values as NumPy's int32 arithmetic leaves them (two's complement wrap)."""
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


class ATRLIFModel(NeuronModel):
    name = "atrlif"
    description = "LIF with adaptive threshold and refractoriness"
    float_type = ATRLIF
    fixed_type = LoihiATRLIF
    # Defaults give slow adaptation, i.e. long memory: with threshold_decay 1/128
    # a spike's trace lasts ~128 steps (the length of a short utterance at the
    # shipped encodings), and a step of 1/16 (for thresholds of order 1, as every
    # shipped arch uses) raises the threshold by ~80% only at a sustained rate of
    # one spike in ten steps (1/16 * 0.1 * 128), so adaptation shapes the rate
    # over an utterance without silencing the neuron. refractory_decay 0.5 halves
    # r each step: one step after a spike the neuron needs twice its threshold,
    # two steps after about 1.5 times, a short refractory period like a reset's.
    # The decays are exact in Loihi's 1/4096 units and the step is exact at any
    # power-of-two threshold, so quantization loses nothing on the defaults.
    float_params = (
        FloatParam("current_decay", in_range(1.0 / fx.DECAY_UNITY, 1.0), "[1/4096, 1]"),
        FloatParam("voltage_decay", in_range(0.0, 1.0), "[0, 1]"),
        FloatParam("threshold", above(0.0), "> 0"),
        FloatParam("bias", any_finite, "finite"),
        FloatParam("threshold_step", at_least(0.0), ">= 0", default=1.0 / 16, uniform=True),
        FloatParam("threshold_decay", in_range(0.0, 1.0), "[0, 1]", default=1.0 / 128),
        FloatParam("refractory_decay", in_range(0.0, 1.0), "[0, 1]", default=0.5),
    )
    fixed_ranges = {"delta_i": UNIT_RANGE, "delta_v": UNIT_RANGE, "delta_theta": UNIT_RANGE, "delta_r": UNIT_RANGE,
                    "theta_0": THETA_0_RANGE, "theta_step": UNIT_RANGE, "bias_mant": fx.BIAS_MANT_RANGE,
                    "bias_exp": fx.BIAS_EXP_RANGE}
    state = ("u", "v", "theta", "r")
    lava_vars = {"u": "i", "v": "v"}
    # Lava scales theta to theta_0 << 6 at its first step; at a reset it takes that scaled value directly.
    lava_state = {"i": "u", "v": "v", "theta": "theta", "r": "r", "s": None}
    # Not lava_reset_in_run: Lava's ATRLIF computes i * (decay) in i's own dtype, where int32 wraps and int64
    # would not, and indexes with s, where int64 0/1 would select neurons 0 and 1.
    lava_class = "lava.proc.atrlif.process:ATRLIF"
    interchange = ()  # neither NIR nor lava-dl netx has an adaptive-threshold-and-refractoriness neuron
    # i, v, theta, r: twice LIF's 24-bit registers. No Loihi 2 figure is published for ATRLIF's
    # state; this assumes it is laid out like LIF's.
    state_size = 2
    profile_params = ("delta_i", "delta_v", "delta_theta", "delta_r", "theta_step", "bias_exp")
    threshold_params = ("theta_0",)
    process_params = ("theta_step",)  # post_spike adds theta_step to the spiking neurons only: a scalar

    def scale_magnitude(self, params: ATRLIF) -> float:
        # theta_step shares theta_0's 12-bit field, so whichever is larger sets the scale.
        return float(max(np.max(params.threshold), np.max(params.threshold_step)))

    def quantize(self, params: ATRLIF, scale: float) -> tuple[LoihiATRLIF, list[dict]]:
        delta_i, cd, i_clipped = quantize_decay(params.current_decay, 1, *UNIT_RANGE)
        delta_v, vd, v_clipped = quantize_decay(params.voltage_decay, 0, *UNIT_RANGE)
        delta_theta, td, t_clipped = quantize_decay(params.threshold_decay, 0, *UNIT_RANGE)
        delta_r, rd, r_clipped = quantize_decay(params.refractory_decay, 0, *UNIT_RANGE)
        to_int = scale / (1 << fx.VTH_SHIFT)
        theta_0 = np.clip(np.rint(params.threshold * to_int), *THETA_0_RANGE)
        theta_step = np.clip(np.rint(params.threshold_step * to_int), *UNIT_RANGE)
        bias_mant, bias_exp, bias_clipped = quantize_bias(params.bias * scale)
        losses = [
            quant_loss("current_decay", params.current_decay, cd, i_clipped),
            quant_loss("voltage_decay", params.voltage_decay, vd, v_clipped),
            quant_loss("threshold", params.threshold, theta_0 / to_int,
                       theta_0 != np.rint(params.threshold * to_int)),
            quant_loss("bias", params.bias, bias_mant * 2.0 ** bias_exp / scale, bias_clipped),
            quant_loss("threshold_step", params.threshold_step, theta_step / to_int,
                       theta_step != np.rint(params.threshold_step * to_int)),
            quant_loss("threshold_decay", params.threshold_decay, td, t_clipped),
            quant_loss("refractory_decay", params.refractory_decay, rd, r_clipped),
        ]
        return LoihiATRLIF(delta_i, delta_v, delta_theta, delta_r, theta_0, theta_step, bias_mant, bias_exp), losses

    def dequantize(self, fixed: dict[str, np.ndarray], scale: float) -> dict[str, np.ndarray]:
        c = self.integer_constants(fixed)
        return {"current_decay": (fixed["delta_i"] + 1) / fx.DECAY_UNITY,
                "voltage_decay": fixed["delta_v"] / fx.DECAY_UNITY, "threshold": c["theta_0_eff"] / scale,
                "bias": c["bias_eff"] / scale, "threshold_step": c["theta_step_eff"] / scale,
                "threshold_decay": fixed["delta_theta"] / fx.DECAY_UNITY,
                "refractory_decay": fixed["delta_r"] / fx.DECAY_UNITY}

    # ---- integer execution
    def integer_constants(self, fixed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"delta_i": fixed["delta_i"], "delta_v": fixed["delta_v"], "delta_theta": fixed["delta_theta"],
                "delta_r": fixed["delta_r"], "theta_0_eff": np.left_shift(fixed["theta_0"], fx.VTH_SHIFT),
                "theta_step_eff": np.left_shift(fixed["theta_step"], fx.VTH_SHIFT),
                "bias_eff": fx.effective_bias(fixed["bias_mant"], fixed["bias_exp"])}

    def initial_state(self, consts, batch):
        n = consts["delta_i"].size
        zeros = np.zeros((batch, n), np.int64)
        # Lava sets theta to theta_0 (scaled) before the first step, whatever theta was initialised to.
        return {"u": zeros, "v": zeros.copy(), "theta": np.broadcast_to(consts["theta_0_eff"], (batch, n)).copy(),
                "r": zeros.copy()}

    @staticmethod
    def _subthreshold(state, a_in, c):
        """``subthr_dynamics``; each line notes the int32 arithmetic NumPy does in Lava's model."""
        u = wrap32(fx.decay(state["u"], c["delta_i"] + 1) + wrap32(np.left_shift(a_in, fx.ACT_SHIFT)))
        u = wrap32(fx.wrap_current(u))  # the +-2**24 correction is int32 arithmetic too
        v = np.clip(wrap32(fx.decay(state["v"], c["delta_v"]) + u + c["bias_eff"]), -fx.MAX_UV + 1, fx.MAX_UV - 1)
        theta = wrap32(fx.decay(wrap32(state["theta"] - c["theta_0_eff"]), c["delta_theta"]) + c["theta_0_eff"])
        r = wrap32(fx.decay(state["r"], c["delta_r"]))
        return u, v, theta, r

    @staticmethod
    def _fire(v, theta, r, c):
        """Spike test and ``post_spike``: returns ``(spikes, theta, r)``."""
        spikes = wrap32(v - r) >= theta
        r = np.where(spikes, wrap32(r + wrap32(2 * theta)), r)
        theta = np.where(spikes, wrap32(theta + c["theta_step_eff"]), theta)
        return spikes, theta, r

    kernel_constants = ("delta_i", "delta_v", "delta_theta", "delta_r", "theta_0_eff", "theta_step_eff", "bias_eff")

    @staticmethod
    def step_kernel(a_in, spikes, lo, u, v, theta, r, delta_i, delta_v, delta_theta, delta_r, theta_0_eff,
                    theta_step_eff, bias_eff):
        """:meth:`_subthreshold` and :meth:`_fire` for the neurons in columns ``lo:lo + n`` of ``a_in`` and
        ``spikes``, state ``(batch, n)`` in place (inline arithmetic, as in CUBA-LIF's kernel);
        ``((x + 2**31) & 0xFFFFFFFF) - 2**31`` is :func:`wrap32`, as is ``np.int32(x)`` widened back. The inner
        loop runs on one sample's rows (1-D contiguous views), which the compiler vectorises better than 2-D
        indexing. The decays multiply int32 operands (each state is a wrap32 result), which AVX2 can (see
        CUBA-LIF's kernel)."""
        n = u.shape[1]
        for b in range(u.shape[0]):
            a_b, spikes_b = a_in[b, lo:lo + n], spikes[b, lo:lo + n]
            u_b, v_b, theta_b, r_b = u[b], v[b], theta[b], r[b]
            for j in range(n):
                x = np.int64(np.int32(u_b[j])) * np.int64(np.int32(4095 - delta_i[j]))
                x = (x + ((x >> 63) & 4095)) >> 12  # x / 4096 truncated toward zero
                x = ((x + ((((a_b[j] << 6) + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)) + (1 << 31))
                     & 0xFFFFFFFF) - (1 << 31)
                wrapped = x - (1 << 24) if x > (1 << 23) else x
                x = x + (1 << 24) if wrapped <= -(1 << 23) else wrapped
                cur = ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
                x = np.int64(np.int32(v_b[j])) * np.int64(np.int32(4096 - delta_v[j]))
                x = (x + ((x >> 63) & 4095)) >> 12
                x = ((x + cur + bias_eff[j] + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
                volt = min(max(x, 1 - (1 << 23)), (1 << 23) - 1)
                x = np.int64(np.int32(theta_b[j] - theta_0_eff[j])) * np.int64(np.int32(4096 - delta_theta[j]))
                x = (x + ((x >> 63) & 4095)) >> 12
                th = ((x + theta_0_eff[j] + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
                x = np.int64(np.int32(r_b[j])) * np.int64(np.int32(4096 - delta_r[j]))
                x = (x + ((x >> 63) & 4095)) >> 12
                ref = ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
                fired = ((volt - ref + (1 << 31)) & 0xFFFFFFFF) - (1 << 31) >= th
                if fired:
                    ref = ((ref + (((2 * th + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)) + (1 << 31)) & 0xFFFFFFFF) - (
                        1 << 31)
                    th = ((th + theta_step_eff[j] + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
                u_b[j], v_b[j], theta_b[j], r_b[j], spikes_b[j] = cur, volt, th, ref, fired

    # ---- torch
    def torch_initial_state(self, params, batch):
        threshold = params["threshold"]
        zeros = threshold.new_zeros((batch, threshold.shape[0]))
        return zeros, zeros.clone(), threshold.expand(batch, -1).clone(), zeros.clone()

    def torch_step(self, params, state, current, spike):
        u, v, theta, r = state
        u = u * (1 - params["current_decay"]) + current
        v = v * (1 - params["voltage_decay"]) + u + params["bias"]
        theta = (theta - params["threshold"]) * (1 - params["threshold_decay"]) + params["threshold"]
        r = r * (1 - params["refractory_decay"])
        spikes = spike(v - r, theta, True)
        # As LIF keeps its reset out of the gradient, r's jump is; the threshold's
        # rise keeps it, because adaptation is the memory that BPTT must see.
        return spikes, (u, v, theta + params["threshold_step"] * spikes, r + 2 * theta * spikes.detach())

    def qat_step(self, consts, shadow, state_int, state, a_in, current, exact, spike):
        u_int, v_int, theta_int, r_int = self._subthreshold(state_int, a_in, consts)
        fired, theta_new, r_new = self._fire(v_int, theta_int, r_int, consts)
        u, v, theta, r = state
        u = exact.state(u * (1 - shadow["current_decay"]) + current, u_int)
        v = exact.state(v * (1 - shadow["voltage_decay"]) + u + shadow["bias"], v_int)
        theta = exact.state((theta - shadow["threshold"]) * (1 - shadow["threshold_decay"]) + shadow["threshold"],
                            theta_int)
        r = exact.state(r * (1 - shadow["refractory_decay"]), r_int)
        spikes = exact.spikes(spike(v - r, theta, True), fired)
        r = exact.state(r + 2 * theta * spikes.detach(), r_new)
        theta = exact.state(theta + shadow["threshold_step"] * spikes, theta_new)
        return fired, spikes, {"u": u_int, "v": v_int, "theta": theta_new, "r": r_new}, (u, v, theta, r)

    # ---- Lava
    def lava_process(self, fixed, n, name):
        from lava.proc.atrlif.process import ATRLIF as LavaATRLIF

        # Lava multiplies each delta by 4096 (and adds 1 for i); k / 4096 is exact in float64.
        deltas = {f"delta_{k}": fixed[f"delta_{k}"] / fx.DECAY_UNITY for k in ("i", "v", "theta", "r")}
        # theta_step is one of process_params: equal across the process, and Lava needs it scalar.
        return LavaATRLIF(shape=(n,), **deltas, theta_0=fixed["theta_0"].copy(), theta_step=int(fixed["theta_step"][0]),
                          theta=fixed["theta_0"].copy(), bias_mant=fixed["bias_mant"].copy(),
                          bias_exp=fixed["bias_exp"].copy(), name=name)


MODEL = ATRLIFModel()

