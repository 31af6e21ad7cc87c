"""rsnn2chip.fixedpoint against values worked out by hand from Lava's fixed-point models.

The reference backend and QAT both call these functions, so comparing those two cannot find an error here;
the expected values below come from the lines of lava/proc/lif/models.py (AbstractPyLifModelFixed) and
lava/utils/weightutils.py that each function mirrors, evaluated by hand.
"""
import numpy as np
import pytest
import scipy.sparse as sp

from rsnn2chip import fixedpoint as fx

M = 1 << 23  # 2^23, the 24-bit state's half range


def test_trunc_shift_rounds_toward_zero():
    x = np.array([5, -5, 7, -7, 8, -8, 0, -1, 1])
    np.testing.assert_array_equal(fx.trunc_shift(x, 1), [2, -2, 3, -3, 4, -4, 0, 0, 0])


def test_decay_multiplies_then_truncates():
    # u * (4096 - d) >> 12, toward zero: -100 * 3072 / 4096 = -75 exactly; -101 * 3072 / 4096 = -75.75 -> -75
    np.testing.assert_array_equal(fx.decay(np.array([-100, -101, 101, 4095]), np.array(1024)), [-75, -75, 75, 3071])
    np.testing.assert_array_equal(fx.decay(np.array([-3]), np.array(4096)), [0])  # full decay
    np.testing.assert_array_equal(fx.decay(np.array([-3]), np.array(0)), [-3])  # no decay


def test_current_wraps_once_with_lavas_asymmetry():
    u = np.array([M, M + 1, M + 5, -M, -M + 1, -M - 3, 2 * M + 10])
    # > 2^23 wraps down by 2^24 (2^23 itself is kept); <= -2^23 wraps up, from the unwrapped value.
    np.testing.assert_array_equal(fx.wrap_current(u), [M, -M + 1, -M + 5, M, -M + 1, M - 3, 10])


def test_voltage_saturates_and_fires_strictly_above_threshold():
    u, v = fx.lif_integrate(np.array([0, 0, 0]), np.array([M - 10, -M + 10, 0]), np.array([1, -1, 0]),
                            du=np.array(4095), dv=np.array(0), bias_eff=np.array([0, 0, 7]))
    # a_in << 6 enters u; v = v + u + bias, clipped to +-(2^23 - 1)
    np.testing.assert_array_equal(u, [64, -64, 0])
    np.testing.assert_array_equal(v, [M - 1, -M + 1, 7])
    v_after, spikes = fx.lif_fire(np.array([100, 101, 99]), np.array(100))
    np.testing.assert_array_equal(spikes, [False, True, False])  # v == vth does not fire
    np.testing.assert_array_equal(v_after, [100, 0, 99])


def test_bias_exponent_shifts_left():
    np.testing.assert_array_equal(fx.effective_bias(np.array([3, -3, 4095]), np.array([0, 2, 7])),
                                  [3, -12, 4095 * 128])


def test_accumulated_weights_are_shifted_after_summing_with_floor():
    acc = np.array([3, -3, 5, -5, 0])
    np.testing.assert_array_equal(fx.shift_accumulated(acc, 2), [12, -12, 20, -20, 0])
    np.testing.assert_array_equal(fx.shift_accumulated(acc, -1), [1, -2, 2, -3, 0])  # floor, not toward zero
    np.testing.assert_array_equal(fx.shift_accumulated(acc, 0), acc)


@pytest.mark.parametrize("mode, given, expected", [
    ("excitatory", [0, 3, 255, 300], [0, 3, 255, 255]),
    ("inhibitory", [-3, -255, -300], [-3, -255, -255]),
    # mixed: clipped to -256..255, then floored to even (one bit holds the sign)
    ("mixed", [3, -3, 255, -256, 300, -300, 1, -1], [2, -4, 254, -256, 254, -256, 0, -2]),
])
def test_lava_weights_clip_and_truncate_per_sign_mode(mode, given, expected):
    m = sp.csr_matrix(np.array([given]))
    got = fx.lava_weights(m, mode).toarray()[0]
    np.testing.assert_array_equal(got, expected)


def test_sign_mode_follows_lava():
    assert fx.sign_mode_of(np.array([0, 1])) == "excitatory"
    assert fx.sign_mode_of(np.array([0, -1])) == "inhibitory"
    assert fx.sign_mode_of(np.array([-1, 1])) == "mixed"
    assert fx.sign_mode_of(np.array([])) == "excitatory"


@pytest.mark.parametrize("model_name", ["cuba_lif", "atrlif"])
def test_compiled_step_equals_the_integer_arithmetic_qat_runs(model_name):
    """Each model's compiled ``step_kernel`` (the reference backend) computes what its NumPy integer helpers
    (QAT's forward) compute, over the full range of every parameter and of the state, wraps included."""
    from rsnn2chip import neurons

    model = neurons.get(model_name)
    rng = np.random.default_rng(7)
    n, batch = 400, 5
    fixed = {name: rng.integers(lo, hi + 1, n) for name, (lo, hi) in model.fixed_ranges.items()}
    consts = model.integer_constants(fixed)
    state = {name: rng.integers(-(1 << 26), 1 << 26, (batch, n)) for name in model.state}
    a_in = rng.integers(-(1 << 24), 1 << 24, (batch, n))
    new_state, spikes = model.reference_step(state, a_in, consts)
    if model_name == "cuba_lif":
        u, v = fx.lif_integrate(state["u"], state["v"], a_in, consts["du"], consts["dv"], consts["bias_eff"])
        v, fired = fx.lif_fire(v, consts["vth_eff"])
        expected = {"u": u, "v": v}
    else:
        u, v, theta, r = model._subthreshold(state, a_in, consts)
        fired, theta, r = model._fire(v, theta, r, consts)
        expected = {"u": u, "v": v, "theta": theta, "r": r}
    assert 0 < fired.sum() < fired.size
    np.testing.assert_array_equal(spikes, fired)
    for name, values in expected.items():
        np.testing.assert_array_equal(new_state[name], values, err_msg=name)
