import math

import numpy as np
import pytest
import scipy.sparse as sp

from rsnn2chip import fixedpoint as fx
from rsnn2chip import ir
from rsnn2chip.errors import ModelError
from rsnn2chip.neurons.base import quantize_bias
from rsnn2chip.neurons.cuba_lif import CubaLIF
from rsnn2chip.passes.quantize import (QuantizationConfig, quantize, quantize_neuron,
                                       quantize_weights, state_scale_for)
from rsnn2chip.targets import load_target

from conftest import small_graph

TARGET = load_target("loihi2-sim")


@pytest.mark.parametrize("vth", [0.013, 1.0, 7.5, 300.0])
def test_state_scale_is_power_of_two_and_keeps_threshold_near_target(vth):
    cfg = QuantizationConfig(threshold_mantissa_target=2048)
    scale = state_scale_for(np.array([vth]), cfg)
    assert math.log2(scale).is_integer()
    mant = vth * scale / 64
    assert 1024 < mant <= 2048


def test_neuron_conversion_follows_lava_offsets():
    neuron = CubaLIF(current_decay=[0.0, 0.5, 1.0], voltage_decay=[0.0, 0.25, 1.0], threshold=1.0, bias=0.0)
    fixed, losses = quantize_neuron(neuron, scale=2.0 ** 17)
    # Lava adds 1 to du: du = -1 keeps current exactly, 4095 is a full decay.
    assert fixed.du.tolist() == [-1, 2047, 4095]
    # dv has no offset, so a full voltage decay (4096) is not representable: clipped and recorded.
    assert fixed.dv.tolist() == [0, 1024, 4095]
    by_name = {loss["param"]: loss for loss in losses}
    assert by_name["voltage_decay"]["n_clipped"] == 1 and by_name["voltage_decay"]["lost_precision"]
    assert by_name["current_decay"]["n_clipped"] == 0 and not by_name["current_decay"]["lost_precision"]
    assert fixed.vth.tolist() == [2048]


def test_bias_uses_smallest_exponent_that_fits():
    mant, exp, clipped = quantize_bias(np.array([100.0, 4095.0, 4096.0, 40000.0, -70000.0, 1e9]))
    assert exp.tolist() == [0, 0, 1, 4, 5, 7]
    assert np.all(np.abs(mant * 2.0 ** exp - [100, 4095, 4096, 40000, -70000, 0])[:5] <= 2.0 ** exp[:5] / 2)
    assert clipped.tolist() == [False] * 5 + [True]


def test_excitatory_weights_use_the_mantissa_range_without_clipping():
    rng = np.random.default_rng(1)
    w = sp.csr_matrix(rng.uniform(0, 0.5, (20, 30)))
    q = quantize_weights(w, post_scale=2.0 ** 17, exp_range=(-8, 7))
    assert q.sign_mode == "excitatory"
    assert 128 <= q.mantissa.data.max() <= 255
    assert q.stats["clipped_fraction"] == 0
    eff = q.mantissa.toarray() * 2.0 ** q.weight_exp * 64 / 2.0 ** 17
    assert np.abs(eff - w.toarray()).max() <= 2.0 ** q.weight_exp * 64 / 2.0 ** 17 / 2 + 1e-12
    assert q.stats["max_abs_error"] == pytest.approx(np.abs(eff - w.toarray()).max())


def test_mixed_weights_are_even_and_inside_lavas_range():
    rng = np.random.default_rng(2)
    w = sp.csr_matrix(rng.normal(0, 1, (25, 25)))
    q = quantize_weights(w, post_scale=2.0 ** 10, exp_range=(-8, 7))
    assert q.sign_mode == "mixed"
    assert np.all(q.mantissa.data % 2 == 0)
    assert q.mantissa.data.min() >= -256 and q.mantissa.data.max() <= 254
    # Lava's own clip + truncate leaves our mantissas unchanged.
    assert (fx.lava_weights(q.mantissa, "mixed") != q.mantissa).nnz == 0


def test_clip_percentile_clips_the_expected_fraction():
    w = sp.csr_matrix(np.linspace(0.01, 1.0, 100).reshape(10, 10))
    q = quantize_weights(w, post_scale=2.0 ** 12, exp_range=(-8, 7), percentile=25.0)
    # Exponents are powers of two, so a percentile bounds clipping from above only.
    assert 0 < q.stats["clipped_fraction"] <= 0.75
    assert q.stats["mantissa_max"] == 255
    full = quantize_weights(w, post_scale=2.0 ** 12, exp_range=(-8, 7))
    assert full.stats["clipped_fraction"] == 0.0


def test_tiny_weights_round_to_zero_and_are_counted():
    w = sp.csr_matrix(np.array([[1.0, 1e-6, 0.5, 1e-7]]))
    q = quantize_weights(w, post_scale=2.0 ** 12, exp_range=(-8, 7))
    assert q.stats["zeroed_fraction"] == pytest.approx(0.5)
    assert q.mantissa.nnz == 2 and q.stats["n_synapses_after"] == 2


def test_exponent_range_limits_and_records_clipping():
    w = sp.csr_matrix(np.full((2, 2), 1000.0))
    q = quantize_weights(w, post_scale=2.0 ** 12, exp_range=(-8, 7))
    assert q.weight_exp == 7 and q.stats["clipped_fraction"] == 1.0


def test_quantize_reports_every_bad_parameter_at_once():
    g = small_graph()
    ir.population(g, "rec").neuron.threshold = np.array([-1.0])
    ir.population(g, "out").neuron.voltage_decay = np.array([1.5])
    with pytest.raises(ModelError) as info:
        quantize(g, TARGET)
    text = str(info.value)
    assert "2 problems" in text and "population rec" in text and "population out" in text
    assert "threshold" in text and "voltage_decay" in text


def test_threshold_mantissa_rounds_to_nearest():
    # vth = threshold * scale / 64: 0.7 * 2^17 / 64 = 1433.6 -> 1434, 1.3 * 2^17 / 64 = 2662.4 -> 2662
    neuron = CubaLIF(current_decay=0.5, voltage_decay=0.5, threshold=[0.7, 1.3], bias=0.0)
    fixed, losses = quantize_neuron(neuron, scale=2.0 ** 17)
    np.testing.assert_array_equal(fixed.vth, [1434, 2662])
    threshold_loss = next(q for q in losses if q["param"] == "threshold")
    assert threshold_loss["max_abs_error"] == pytest.approx(0.4 * 64 / 2 ** 17)


def test_quantize_fills_every_population_and_projection():
    """Every value against the pass's contract, computed here independently (docstring of quantize.py)."""
    g = quantize(small_graph(), TARGET)
    exp_min, exp_max = TARGET.quantization.weight_exp_min, TARGET.quantization.weight_exp_max
    assert len(list(ir.populations(g, "lif"))) == 2 and g.number_of_edges() == 3
    for pop in ir.populations(g, "lif"):
        n, f, scale = pop.neuron, pop.fixed, pop.state_scale
        assert math.log2(scale).is_integer() and 1024 < n.threshold.max() * scale / 64 <= 2048
        np.testing.assert_array_equal(f.du, np.rint(n.current_decay * 4096) - 1)
        np.testing.assert_array_equal(f.dv, np.rint(n.voltage_decay * 4096))
        np.testing.assert_array_equal(f.vth, np.rint(n.threshold * scale / 64))
        assert np.all(np.abs(f.bias_mant * 2.0 ** f.bias_exp - n.bias * scale) <= 2.0 ** f.bias_exp / 2)
        assert [q["param"] for q in pop.quant_stats["params"]] == ["current_decay", "voltage_decay", "threshold",
                                                                   "bias"]
    for proj in ir.projections(g):
        q = proj.quant
        unit = 2.0 ** q.weight_exp * 64 / ir.population(g, proj.post).state_scale  # float weight of mantissa 1
        step = 2 if q.sign_mode == "mixed" else 1
        w = proj.weight.toarray()
        assert q.sign_mode == fx.sign_mode_of(proj.weight.data)
        assert np.all(np.abs(q.mantissa.toarray() * unit - w) <= step * unit / 2 + 1e-12)
        # The smallest exponent that fits: one less would overflow the mantissa range of the sign mode.
        lo, hi = fx.WEIGHT_RANGE[q.sign_mode]
        assert exp_min <= q.weight_exp <= exp_max
        overflow_pos = hi > 0 and w.max() / (unit / 2) > hi
        overflow_neg = lo < 0 and -w.min() / (unit / 2) > -lo
        assert q.weight_exp == exp_min or overflow_pos or overflow_neg
