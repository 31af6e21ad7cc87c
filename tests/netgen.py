"""Random :class:`LoweredNetwork`s that exercise every corner of the fixed-point arithmetic.

Built directly (not through the IR) so backend tests do not depend on the
frontends or passes. Reusable: ``random_lowered_network(rng)`` and
``random_inputs(rng, net, batch, steps)``.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from rsnn2chip import fixedpoint as fx
from rsnn2chip.backends.plan import LoweredNetwork, LoweredProjection, single_group
from rsnn2chip.neurons import cuba_lif

SIGN_MODES = ("mixed", "excitatory", "inhibitory")


def random_lowered_network(rng: np.random.Generator, n_pops: int = 3, n_input_pops: int = 2,
                           size_range: tuple[int, int] = (3, 12), n_projections: int = 8,
                           density: float = 0.5, exp_range: tuple[int, int] = (-4, 4),
                           strong: float = 0.3) -> LoweredNetwork:
    """A network of ``n_pops`` LIF and ``n_input_pops`` input populations.

    Each population gets a random parameter regime (see :func:`_population_params`);
    ``strong`` is the fraction of projections with full-scale weights and a
    high exponent, which drive u into its 24-bit wrap and v into saturation.
    """
    lif_slices = _slices(rng, "pop", n_pops, size_range)
    input_slices = _slices(rng, "in", n_input_pops, size_range)
    n_lif = _total(lif_slices)
    parts = [_population_params(rng, hi - lo) for lo, hi in lif_slices.values()]
    params = {k: np.concatenate([p[k] for p in parts]).astype(np.int64) for k in parts[0]}
    projections = [_random_projection(rng, i, lif_slices, input_slices, density, exp_range, strong)
                   for i in range(n_projections)]
    return LoweredNetwork(_total(input_slices), n_lif, input_slices, lif_slices,
                          single_group(cuba_lif.MODEL, params), projections)


def random_inputs(rng: np.random.Generator, net: LoweredNetwork, batch: int, steps: int,
                  rate: float = 0.3) -> np.ndarray:
    return (rng.random((batch, steps, net.n_input)) < rate).astype(np.int8)


def _slices(rng, prefix, count, size_range):
    slices, lo = {}, 0
    for i in range(count):
        hi = lo + int(rng.integers(size_range[0], size_range[1] + 1))
        slices[f"{prefix}{i}"] = (lo, hi)
        lo = hi
    return slices


def _total(slices):
    return max((hi for _, hi in slices.values()), default=0)


def _integrator(rng, n, p):  # du = -1 holds u exactly, so strong input walks it to the wrap
    p["du"][:] = -1
    p["dv"] = rng.integers(0, 8, n)


def _saturating(rng, n, p):  # threshold near its maximum: v clips before it can spike
    p["du"] = rng.choice([-1, 0, 1], n)
    p["dv"][:] = 0
    p["vth"] = rng.integers(fx.VTH_RANGE[1] - 16, fx.VTH_RANGE[1] + 1, n)


def _leaky(rng, n, p):
    p["du"] = rng.integers(2000, 4096, n)
    p["dv"] = rng.integers(2000, 4096, n)


def _biased(rng, n, p):  # large biases of either sign, high threshold: v saturates from the bias alone
    p["dv"] = rng.integers(0, 4, n)
    p["vth"] = rng.integers(fx.VTH_RANGE[1] // 2, fx.VTH_RANGE[1] + 1, n)
    p["bias_mant"] = rng.choice([fx.BIAS_MANT_RANGE[0], fx.BIAS_MANT_RANGE[1]], n)
    p["bias_exp"] = rng.integers(5, fx.BIAS_EXP_RANGE[1] + 1, n)


REGIMES = {"random": lambda rng, n, p: None, "integrator": _integrator, "saturating": _saturating,
           "leaky": _leaky, "biased": _biased}


def population_params(rng, n, regime: str) -> dict:
    """Per-neuron parameters in a named regime, so every code path (wrap, saturation, leak) is hit."""
    params = {"du": rng.integers(fx.DU_RANGE[0], fx.DU_RANGE[1] + 1, n),
              "dv": rng.integers(fx.DV_RANGE[0], fx.DV_RANGE[1] + 1, n),
              "vth": rng.integers(0, 400, n),
              "bias_mant": rng.integers(fx.BIAS_MANT_RANGE[0], fx.BIAS_MANT_RANGE[1] + 1, n) * (rng.random(n) < 0.5),
              "bias_exp": rng.integers(fx.BIAS_EXP_RANGE[0], fx.BIAS_EXP_RANGE[1] + 1, n)}
    REGIMES[regime](rng, n, params)
    return params


def _population_params(rng, n):
    return population_params(rng, n, rng.choice(["random", "integrator", "saturating", "leaky"]))


def _random_projection(rng, i, lif_slices, input_slices, density, exp_range, strong):
    source = "input" if input_slices and rng.random() < 0.4 else "lif"
    pre_slices = input_slices if source == "input" else lif_slices
    cols = list(pre_slices.values())[rng.integers(len(pre_slices))]
    rows = list(lif_slices.values())[rng.integers(len(lif_slices))]
    sign_mode = str(rng.choice(SIGN_MODES))
    is_strong = rng.random() < strong
    weight_exp = int(rng.integers(2, exp_range[1] + 1) if is_strong
                     else rng.integers(exp_range[0], exp_range[1] + 1))
    mantissa = _mantissa(rng, (rows[1] - rows[0], cols[1] - cols[0]), sign_mode, density, is_strong)
    return LoweredProjection(f"proj{i}", source, rows, cols, fx.lava_weights(mantissa, sign_mode),
                             weight_exp, sign_mode)


def _mantissa(rng, shape, sign_mode, density, is_strong):
    lo, hi = fx.WEIGHT_RANGE[sign_mode]
    if is_strong:  # mostly extreme values, beyond the clip range on purpose
        values = rng.choice([lo - 3, lo, hi, hi + 3], size=shape)
    else:
        values = rng.integers(lo, hi + 1, size=shape)
    return sp.csr_matrix(values * (rng.random(shape) < density))
