"""Loihi fixed-point arithmetic, exactly as Lava's bit-accurate CPU models compute it.

These functions are shared by the reference simulator and the quantization-aware
training path so that "the model we train is the model we deploy". Each mirrors
a line of ``lava/proc/lif/models.py`` (``AbstractPyLifModelFixed``) or
``lava/utils/weightutils.py``; comments say where Lava deviates from what one
might expect.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

DECAY_SHIFT = 12
DECAY_UNITY = 1 << DECAY_SHIFT  # 4096
VTH_SHIFT = 6  # threshold is MSB-aligned by 6 bits
ACT_SHIFT = 6  # so is synaptic input
UV_BITS = 24
MAX_UV = 1 << (UV_BITS - 1)  # 2**23

# Ranges of the parameters Lava's fixed-point LIF accepts.
DU_RANGE = (-1, 4095)  # du = -1 means "no current decay" (Lava adds 1 internally)
DV_RANGE = (0, 4095)
VTH_RANGE = (0, (1 << 17) - 1)
BIAS_MANT_RANGE = (-(1 << 12), (1 << 12) - 1)
BIAS_EXP_RANGE = (0, 7)
# The shared weight exponent of a synapse group on Loihi (nengo-loihi's range; Lava itself shifts by any
# amount, so artifacts are held to the chip's range when read).
WEIGHT_EXP_RANGE = (-8, 7)

# Weight mantissa ranges after Lava's clip_weights for each sign mode; mixed
# matrices are additionally truncated to even values (1 bit goes to the sign).
WEIGHT_RANGE = {"excitatory": (0, 255), "inhibitory": (-255, 0), "mixed": (-256, 254)}


def weight_grid(sign_mode: str, weight_bits: int = 8) -> tuple[int, int, int]:
    """``(lo, hi, step)``: the mantissas a ``weight_bits``-bit synapse holds exactly, for a sign mode.

    Lava's ``truncate_weights`` keeps ``weight_bits`` bits of the 8-bit
    mantissa (one fewer for mixed signs, whose sign takes a bit), rounding
    magnitudes down (mixed: toward -inf) to multiples of
    ``step = 2**(8 - weight_bits + mixed)``;
    multiples of ``step`` inside the clip range of :data:`WEIGHT_RANGE` pass
    through unchanged, so a mantissa on this grid means the same at every
    ``num_weight_bits >= weight_bits``. At 8 bits the grid is ``WEIGHT_RANGE``.
    """
    step = 1 << (8 - weight_bits + (sign_mode == "mixed"))
    lo, hi = WEIGHT_RANGE[sign_mode]
    return -((-lo) // step) * step, (hi // step) * step, step


def trunc_shift(x: np.ndarray, shift: int) -> np.ndarray:
    """``sign(x) * (|x| >> shift)``: a right shift that truncates toward zero."""
    return np.sign(x) * np.right_shift(np.abs(x), shift)


def decay(x: np.ndarray, d_eff: np.ndarray) -> np.ndarray:
    """Decay a 24-bit state by ``d_eff/4096`` with Lava's truncation toward zero."""
    return trunc_shift(x.astype(np.int64) * (DECAY_UNITY - d_eff), DECAY_SHIFT)


def wrap_current(u: np.ndarray) -> np.ndarray:
    """Lava's 24-bit wrap of u: one conditional wrap, not a modulo.

    Note the asymmetry copied from Lava: +2**23 itself is kept, and the
    negative branch adds to the unwrapped value.
    """
    wrapped = np.where(u > MAX_UV, u - 2 * MAX_UV, u)
    return np.where(wrapped <= -MAX_UV, u + 2 * MAX_UV, wrapped)


def effective_bias(bias_mant: np.ndarray, bias_exp: np.ndarray) -> np.ndarray:
    bias_mant = bias_mant.astype(np.int64)
    return np.where(bias_exp >= 0, np.left_shift(bias_mant, np.maximum(bias_exp, 0)),
                    np.right_shift(bias_mant, np.maximum(-bias_exp, 0)))


def lif_integrate(u, v, a_in, du, dv, bias_eff):
    """The sub-threshold half of a LIF update: ``(u, v)`` before the threshold test."""
    u = wrap_current(decay(u, du + 1) + np.left_shift(a_in, ACT_SHIFT))
    v = np.clip(decay(v, dv) + u + bias_eff, -MAX_UV + 1, MAX_UV - 1)
    return u, v


def lif_fire(v, vth_eff):
    """The threshold half: ``(v after reset, spikes)``; the comparison is strict."""
    spikes = v > vth_eff
    return np.where(spikes, 0, v), spikes


def shift_accumulated(acc: np.ndarray, weight_exp: int) -> np.ndarray:
    """Lava shifts the *sum* of mantissas, not each weight (floor for negative exponents)."""
    return np.left_shift(acc, weight_exp) if weight_exp > 0 else np.right_shift(acc, -weight_exp)


def sign_mode_of(values: np.ndarray) -> str:
    """Lava's ``determine_sign_mode``: all >= 0 excitatory, all <= 0 inhibitory, else mixed."""
    if values.size == 0 or values.min() >= 0:
        return "excitatory"
    if values.max() <= 0:
        return "inhibitory"
    return "mixed"


def lava_weights(mantissa: sp.csr_matrix, sign_mode: str) -> sp.csr_matrix:
    """The weights Lava's Sparse actually uses: ``clip_weights`` then ``truncate_weights``."""
    lo, hi = WEIGHT_RANGE[sign_mode]
    m = sp.csr_matrix(mantissa, dtype=np.int64, copy=True)
    m.data = np.clip(m.data, -256 if sign_mode == "mixed" else lo, 255 if sign_mode == "mixed" else hi)
    if sign_mode == "mixed":
        m.data = np.left_shift(np.right_shift(m.data, 1), 1)  # floor to even, as Lava does
    m.eliminate_zeros()
    return m
