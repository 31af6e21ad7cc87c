"""Quantization pass: float IR -> Loihi fixed point, recording what precision was lost.

Scaling. Each LIF population gets a *state scale* S (a power of two): a float
value x of its state (u, v, ...) is the integer ``x * S``. S is the largest
power of two that keeps the threshold mantissa ``vth * S / 64`` (the model's
``scale_magnitude``) at or below ``threshold_mantissa_target``; powers of two
keep float <-> integer conversions exact, which the quantization-aware
training path relies on. The neuron model converts its own parameters
(``NeuronModel.quantize``).

Graded inputs send the integer ``value * 2**frac_bits`` instead of a 0/1 spike, so the weights of their
projections are quantized as if the post scale were ``S / 2**frac_bits``.

Weights. Lava adds ``(sum of mantissas) * 2**weight_exp`` to ``a_in`` and
shifts ``a_in`` left by 6 into u, so a float weight w becomes the effective
integer ``w * S_post / 64 = mantissa * 2**weight_exp``. Each projection gets one
exponent: the smallest that fits its largest magnitude (or the given
percentile of magnitudes) into the mantissa of its sign mode, on the grid the
target's ``synapse_encoding.weight_bits`` can hold (``fixedpoint.weight_grid``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import networkx as nx
import numpy as np
import scipy.sparse as sp

from rsnn2chip import fixedpoint as fx
from rsnn2chip import ir, neurons
from rsnn2chip.errors import ModelError, Problem
from rsnn2chip.neurons.base import ParamArrays
from rsnn2chip.targets import Target


@dataclass(frozen=True)
class QuantizationConfig:
    # Larger targets give finer weight and bias resolution but less headroom
    # before u wraps (24 bits) and before a_in leaves 16 bits.
    threshold_mantissa_target: int = 2048
    # Magnitudes above this percentile are clipped; 100 never clips.
    weight_clip_percentile: float = 100.0


# Key in ``Population.quant_stats`` / ``WeightQuant.stats`` set by frontends
# that read formats holding Loihi's integers already (lava-dl netx): their
# values are the deployed ones, and re-deriving them from floats could only
# change them.
PREQUANTIZED = "prequantized"

# Trained float weights are of order one. Far beyond, the quantizer's arithmetic breaks down: the sums of
# squares behind its error statistics (and the report's) overflow float64 (1.8e308), turning them into NaN.
MAX_WEIGHT_MAGNITUDE = 1e100


def is_prequantized(stats: dict | None) -> bool:
    return bool(stats and stats.get(PREQUANTIZED))


def state_scale_for(magnitude: np.ndarray, cfg: QuantizationConfig) -> float:
    vmax = float(np.max(magnitude))
    return 2.0 ** math.floor(math.log2(cfg.threshold_mantissa_target * (1 << fx.VTH_SHIFT) / vmax))


def check_neuron(pop: ir.Population) -> list[Problem]:
    """Float parameters the population's neuron model cannot represent at any scale."""
    problems = []
    for spec in pop.model.float_params:
        values = getattr(pop.neuron, spec.name)
        bad = ~np.isfinite(values) | ~spec.valid(np.nan_to_num(values))
        if bad.any():
            idx = int(np.flatnonzero(bad)[0])
            problems.append(Problem(f"neuron parameter {spec.name} out of range", where=f"population {pop.name}",
                                    resource=spec.name,
                                    found=f"{values[idx]!r} (neuron {idx}, {int(bad.sum())} bad)",
                                    allowed=f"{spec.allowed} ({pop.model.name})",
                                    fix=f"constrain {spec.name} to {spec.allowed} during training"))
        if spec.uniform and values.size > 1:
            problems.append(Problem(f"neuron parameter {spec.name} must be one value for the whole population",
                                    where=f"population {pop.name}", resource=spec.name,
                                    found=f"{np.unique(values).size} different values",
                                    allowed=f"one value ({pop.model.name})", fix=f"give {spec.name} a single value"))
    return problems


def check_weights(proj: ir.Projection) -> list[Problem]:
    """Float weights too large for the quantizer's float arithmetic (see MAX_WEIGHT_MAGNITUDE)."""
    largest = float(np.abs(proj.weight.data).max(initial=0.0))
    if largest <= MAX_WEIGHT_MAGNITUDE:
        return []
    return [Problem("weights too large to quantize", where=f"projection {proj.name}", resource="weight",
                    found=f"largest |weight| {largest:.3g}", allowed=f"|weight| <= {MAX_WEIGHT_MAGNITUDE:g}",
                    fix="the weights diverged in training or are in other units than the thresholds: retrain, "
                        "or rescale weights and thresholds together")]


def quantize_neuron(neuron: ParamArrays, scale: float) -> tuple[ParamArrays, list[dict]]:
    """Fixed-point parameters of any neuron model at state scale ``scale``, and the precision lost."""
    return neurons.model_of(neuron).quantize(neuron, scale)


def _magnitude_at(values: np.ndarray, percentile: float) -> float:
    # The default (100) is the maximum; np.percentile would copy and partition ~100M values for it.
    if values.size == 0:
        return 0.0
    return float(values.max()) if percentile >= 100 else float(np.percentile(values, percentile))


def weight_exponent(w_eff: np.ndarray, sign_mode: str, percentile: float, exp_range: tuple[int, int],
                    weight_bits: int = 8) -> int:
    lo, hi, _ = fx.weight_grid(sign_mode, weight_bits)
    pos = _magnitude_at(w_eff[w_eff > 0], percentile) / hi if hi > 0 else 0.0
    neg = _magnitude_at(-w_eff[w_eff < 0], percentile) / -lo if lo < 0 else 0.0
    need = max(pos, neg)
    return int(np.clip(math.ceil(math.log2(need)), *exp_range)) if need > 0 else 0


def quantize_weights(weight: sp.csr_matrix, post_scale: float, exp_range: tuple[int, int],
                     percentile: float = 100.0, weight_bits: int = 8) -> ir.WeightQuant:
    weight = sp.csr_matrix(weight)
    to_int = post_scale / (1 << fx.ACT_SHIFT)  # float weight -> effective integer weight
    w_eff = weight.data * to_int
    sign_mode = fx.sign_mode_of(weight.data)
    exp = weight_exponent(w_eff, sign_mode, percentile, exp_range, weight_bits)
    lo, hi, step = fx.weight_grid(sign_mode, weight_bits)  # e.g. 8 bits: mixed mantissas are even on Loihi
    exact = np.multiply(w_eff, 2.0 ** -exp, out=w_eff)  # w_eff is not needed after this
    clipped = int(np.count_nonzero((exact > hi + step / 2) | (exact < lo - step / 2)))
    mant = np.divide(exact, step)
    np.rint(mant, out=mant)
    mant *= step
    np.clip(mant, lo, hi, out=mant)
    mantissa = sp.csr_matrix((mant.astype(np.int32), weight.indices.copy(), weight.indptr.copy()), shape=weight.shape)
    mantissa.eliminate_zeros()
    err = np.multiply(mant, 2.0 ** exp / to_int, out=exact)  # represented float weight ...
    err -= weight.data  # ... minus the trained one
    norm = float(np.linalg.norm(weight.data))
    n = max(weight.data.size, 1)
    stats = {
        "n_synapses": int(weight.data.size), "n_synapses_after": int(mantissa.nnz), "weight_exp": exp,
        "sign_mode": sign_mode, "clipped_fraction": clipped / n,
        "zeroed_fraction": float(np.count_nonzero((mant == 0) & (weight.data != 0)) / n),
        "mantissa_min": int(mant.min()) if mant.size else 0, "mantissa_max": int(mant.max()) if mant.size else 0,
        "mantissa_range_used": float(np.abs(mant).max(initial=0) / max(hi, -lo)),
        "rms_rel_error": float(np.linalg.norm(err) / norm) if norm > 0 else 0.0,
        "max_abs_error": float(np.abs(err).max(initial=0.0)),
    }
    return ir.WeightQuant(mantissa, exp, sign_mode, stats)


def quantize(graph: nx.DiGraph, target: Target, cfg: QuantizationConfig = QuantizationConfig()) -> nx.DiGraph:
    """Quantize every LIF population and projection in place, keeping pre-quantized ones (see PREQUANTIZED);
    raises with all bad parameters at once."""
    problems = [p for pop in ir.populations(graph, "lif") for p in check_neuron(pop)]
    problems += [p for proj in ir.projections(graph) if proj.quant is None or not is_prequantized(proj.quant.stats)
                 for p in check_weights(proj)]
    if problems:
        raise ModelError(problems=problems)
    for pop in ir.populations(graph, "lif"):
        if pop.fixed is not None and pop.state_scale and is_prequantized(pop.quant_stats):
            continue
        pop.state_scale = state_scale_for(np.array([pop.model.scale_magnitude(pop.neuron)]), cfg)
        pop.fixed, losses = quantize_neuron(pop.neuron, pop.state_scale)
        if not pop.fires:
            # A membrane readout (CUBA-LIF: vth << 6 = 2**23 - 64 while v saturates at 2**23 - 1).
            pop.fixed = pop.model.without_firing(pop.fixed)
            losses = [loss for loss in losses if loss["param"] != "threshold"]
        pop.quant_stats = {"state_scale": pop.state_scale, "params": losses}
    exp_range = (target.quantization.weight_exp_min, target.quantization.weight_exp_max)
    for proj in ir.projections(graph):
        if proj.quant is not None and is_prequantized(proj.quant.stats):
            continue
        post, pre = ir.population(graph, proj.post), ir.population(graph, proj.pre)
        # A graded input sends payload = value * 2**frac_bits, so its weights carry 2**-frac_bits.
        payload_scale = pre.graded.scale if pre.graded is not None else 1.0
        proj.quant = quantize_weights(proj.weight, post.state_scale / payload_scale, exp_range,
                                      cfg.weight_clip_percentile, target.synapse_encoding.weight_bits)
    return graph

