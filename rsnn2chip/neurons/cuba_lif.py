"""CUBA-LIF: Loihi's current-based leaky integrate-and-fire neuron (Lava ``lava.proc.lif`` ``LIF``).

Float dynamics (Loihi's update order)::

    u[t] = u[t-1] * (1 - current_decay) + I[t]
    v[t] = v[t-1] * (1 - voltage_decay) + u[t] + bias
    spike when v[t] > threshold (strict), then v[t] = 0; u is not reset

Fixed point: exactly ``PyLifModelBitAcc`` (see :mod:`rsnn2chip.fixedpoint`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rsnn2chip import fixedpoint as fx
from rsnn2chip.neurons.base import (FloatParam, NeuronModel, ParamArrays, above, any_finite, in_range,
                                    quant_loss, quantize_bias, quantize_decay)


@dataclass
class CubaLIF(ParamArrays):
    """Float CUBA-LIF parameters (see the module docstring for the dynamics)."""

    current_decay: np.ndarray
    voltage_decay: np.ndarray
    threshold: np.ndarray
    bias: np.ndarray

    MODEL = "cuba_lif"


@dataclass
class LoihiLIF(ParamArrays):
    """Fixed-point LIF parameters exactly as Lava's ``LIF`` process takes them."""

    du: np.ndarray
    dv: np.ndarray
    vth: np.ndarray
    bias_mant: np.ndarray
    bias_exp: np.ndarray

    MODEL = "cuba_lif"
    DTYPE = np.int64


class CubaLIFModel(NeuronModel):
    name = "cuba_lif"
    description = "current-based LIF (Loihi's default neuron)"
    float_type = CubaLIF
    fixed_type = LoihiLIF
    float_params = (
        FloatParam("current_decay", in_range(0.0, 1.0), "[0, 1]"),
        FloatParam("voltage_decay", in_range(0.0, 1.0), "[0, 1]"),
        FloatParam("threshold", above(0.0), "> 0"),
        FloatParam("bias", any_finite, "finite"),
    )
    fixed_ranges = {"du": fx.DU_RANGE, "dv": fx.DV_RANGE, "vth": fx.VTH_RANGE, "bias_mant": fx.BIAS_MANT_RANGE,
                    "bias_exp": fx.BIAS_EXP_RANGE}
    state = ("u", "v")
    lava_vars = {"u": "u", "v": "v"}
    lava_state = {"u": "u", "v": "v"}
    # Lava's LIF reads u and v through int64 casts, or in sums within 2**25: int64 state changes nothing.
    lava_reset_in_run = True
    lava_class = "lava.proc.lif.process:LIF"
    interchange = ("nir", "netx")
    state_size = 1  # u, v: the unit of a target's neuron_state_bits
    profile_params = ("du", "dv", "bias_exp")
    threshold_params = ("vth",)

    def scale_magnitude(self, params: CubaLIF) -> float:
        return float(np.max(params.threshold))

    def quantize(self, params: CubaLIF, scale: float) -> tuple[LoihiLIF, list[dict]]:
        du, cd, du_clipped = quantize_decay(params.current_decay, 1, *fx.DU_RANGE)  # Lava adds 1 to du
        dv, vd, dv_clipped = quantize_decay(params.voltage_decay, 0, *fx.DV_RANGE)
        vth_exact = params.threshold * scale / (1 << fx.VTH_SHIFT)
        vth = np.clip(np.rint(vth_exact), 1, fx.VTH_RANGE[1])
        bias_mant, bias_exp, bias_clipped = quantize_bias(params.bias * scale)
        losses = [
            quant_loss("current_decay", params.current_decay, cd, du_clipped),
            quant_loss("voltage_decay", params.voltage_decay, vd, dv_clipped),
            quant_loss("threshold", params.threshold, vth * (1 << fx.VTH_SHIFT) / scale, vth != np.rint(vth_exact)),
            quant_loss("bias", params.bias, bias_mant * 2.0 ** bias_exp / scale, bias_clipped),
        ]
        return LoihiLIF(du, dv, vth, bias_mant, bias_exp), losses

    def dequantize(self, fixed: dict[str, np.ndarray], scale: float) -> dict[str, np.ndarray]:
        return {"current_decay": (fixed["du"] + 1) / fx.DECAY_UNITY, "voltage_decay": fixed["dv"] / fx.DECAY_UNITY,
                "threshold": np.left_shift(fixed["vth"], fx.VTH_SHIFT) / scale,
                "bias": fx.effective_bias(fixed["bias_mant"], fixed["bias_exp"]) / scale}

    # ---- integer execution
    def integer_constants(self, fixed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"du": fixed["du"], "dv": fixed["dv"], "vth_eff": np.left_shift(fixed["vth"], fx.VTH_SHIFT),
                "bias_eff": fx.effective_bias(fixed["bias_mant"], fixed["bias_exp"])}

    def initial_state(self, consts, batch):
        n = consts["du"].size
        return {"u": np.zeros((batch, n), np.int64), "v": np.zeros((batch, n), np.int64)}

    kernel_constants = ("du", "dv", "vth_eff", "bias_eff")

    @staticmethod
    def step_kernel(a_in, spikes, lo, u, v, du, dv, vth_eff, bias_eff):
        """:func:`fx.lif_integrate` then :func:`fx.lif_fire` for the neurons in columns ``lo:lo + n`` of ``a_in``
        and ``spikes``, state ``(batch, n)`` in place (see :mod:`rsnn2chip.jit`: the arithmetic is inline, since a
        compiled kernel cannot call a plain Python helper). ``(x + (x >> 63 & 4095)) >> 12`` is ``x / 4096``
        truncated toward zero, as Lava's decay is, without a branch. The inner loop runs on one sample's rows
        (1-D contiguous views), which the compiler vectorises: 2.2 against 7.3 ns a neuron, indexed 2-D.
        The decays multiply int32 operands widened to int64, as Lava's does (its u and v Vars are int32): AVX2 has
        that multiply (vpmuldq) but no 64 x 64-bit one, which took 25 % of the step (16 x 1,034: 25 against 33 us)."""
        n = u.shape[1]
        for b in range(u.shape[0]):
            a_b, spikes_b, u_b, v_b = a_in[b, lo:lo + n], spikes[b, lo:lo + n], u[b], v[b]
            for j in range(n):
                x = np.int64(np.int32(u_b[j])) * np.int64(np.int32(4095 - du[j]))  # decay by (du + 1) / 4096
                x = ((x + ((x >> 63) & 4095)) >> 12) + (a_b[j] << 6)
                wrapped = x - (1 << 24) if x > (1 << 23) else x  # wrap_current, Lava's asymmetry included
                cur = x + (1 << 24) if wrapped <= -(1 << 23) else wrapped
                x = np.int64(np.int32(v_b[j])) * np.int64(np.int32(4096 - dv[j]))
                x = min(max(((x + ((x >> 63) & 4095)) >> 12) + cur + bias_eff[j], 1 - (1 << 23)), (1 << 23) - 1)
                fired = x > vth_eff[j]
                u_b[j] = cur
                v_b[j] = 0 if fired else x
                spikes_b[j] = fired

    # ---- torch
    def torch_initial_state(self, params, batch):
        zeros = params["threshold"].new_zeros((batch, params["threshold"].shape[0]))
        return zeros, zeros.clone()

    def torch_step(self, params, state, current, spike):
        u, v = state
        u = u * (1 - params["current_decay"]) + current
        v = v * (1 - params["voltage_decay"]) + u + params["bias"]
        spikes = spike(v, params["threshold"], False)
        # The reset is kept out of the gradient: differentiating through it
        # couples each spike to the next and destabilises BPTT for little gain.
        return spikes, (u, v * (1 - spikes.detach()))

    def qat_step(self, consts, shadow, state_int, state, a_in, current, exact, spike):
        u_int, v_int = fx.lif_integrate(state_int["u"], state_int["v"], a_in, consts["du"], consts["dv"],
                                        consts["bias_eff"])
        u, v = state
        u = exact.state(u * (1 - shadow["current_decay"]) + current, u_int)
        # The surrogate needs v before the reset, so integrate and fire are two calls.
        v = exact.state(v * (1 - shadow["voltage_decay"]) + u + shadow["bias"], v_int)
        v_int, fired = fx.lif_fire(v_int, consts["vth_eff"])
        spikes = exact.spikes(spike(v, shadow["threshold"], False), fired)
        return fired, spikes, {"u": u_int, "v": v_int}, (u, v * (1 - spikes.detach()))

    # ---- Lava
    def lava_process(self, fixed, n, name):
        from lava.proc.lif.process import LIF

        return LIF(shape=(n,), du=fixed["du"].copy(), dv=fixed["dv"].copy(), vth=fixed["vth"].copy(),
                   bias_mant=fixed["bias_mant"].copy(), bias_exp=fixed["bias_exp"].copy(), name=name)


MODEL = CubaLIFModel()
