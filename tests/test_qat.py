"""Quantization-aware mode against the reference backend: same spikes, bit for bit, and gradients that flow."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from conftest import busy, spread_parameters
from rsnn2chip import backends, ir
from rsnn2chip import fixedpoint as fx
from rsnn2chip.compiler import compile_graph
from rsnn2chip.errors import InputError, ModelError
from rsnn2chip.neurons.cuba_lif import LoihiLIF
from rsnn2chip.nn import RSNN, example_arch, matching_random_sparse
from rsnn2chip.nn.qat import disable_qat, enable_qat, qat_enabled, straight_through
from rsnn2chip.passes.quantize import QuantizationConfig
from rsnn2chip.targets import load_target

STEPS = 25
INPUT = 8
NEURON = {"current_decay": 0.5, "voltage_decay": 0.2, "threshold": 1.0, "bias": 0.0}
INTRA = [[1, -1, 0, 1], [1, 1, 0, 0], [0, -1, 1, 1], [-1, 0, 1, 1]]
INTER = [[1, -1, 0, 1], [0, 1, -1, 1]]


pytestmark = pytest.mark.usefixtures("torch_settings")


@pytest.fixture(scope="module")
def target():
    return load_target("loihi2-sim")


def layer(kind: str, name: str, size: int, **options) -> dict:
    return {"type": kind, "name": name, "size": size, "neuron": copy.deepcopy(NEURON), **options}


def scml(name: str, size: int, intra=INTRA, inter=INTER) -> dict:
    return layer("scml", name, size, motif_size=4, intra_types=intra, inter_types=inter)


ARCHS = {
    "lif_recurrent": [layer("lif_recurrent", "hidden", 12), layer("lif_dense", "output", 4)],
    "scml": [scml("hidden", 16), layer("lif_dense", "output", 4)],
    "scml_excitatory": [scml("hidden", 12, [[1] * 4] * 4, [[1] * 4] * 2), layer("lif_dense", "output", 4)],
    "random_sparse": [matching_random_sparse(scml("hidden", 16), mask_seed=2), layer("lif_dense", "output", 4)],
    "self_recurrent": [layer("self_recurrent", "hidden", 10), layer("lif_dense", "output", 4)],
    "multi_layer": [scml("hidden0", 12), layer("random_sparse", "hidden1", 10, n_synapses=25),
                    layer("self_recurrent", "hidden2", 8), layer("lif_recurrent", "hidden3", 8, recurrent_density=0.5),
                    layer("lif_dense", "output", 4)],
}


def build(layers: list[dict], seed: int = 0, dtype=torch.float64, drive: float = 3.0, **kwargs) -> RSNN:
    """Per-neuron parameters (input_gain included) and weights spread over several scales."""
    arch = busy({**example_arch("qat", input_size=INPUT), "layers": copy.deepcopy(layers)})
    torch.manual_seed(seed)
    return spread_parameters(RSNN(arch, **kwargs).to(dtype), seed, drive)


def spikes_in(seed: int = 1, batch: int = 3, steps: int = STEPS, rate: float = 0.3) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy((rng.random((batch, steps, INPUT)) < rate).astype(np.float64))


def reference(model: RSNN, x: torch.Tensor, target, qcfg=QuantizationConfig(), probes=()):
    artifact = compile_graph(model.to_ir(), target, qcfg=qcfg)
    return artifact, backends.run(artifact, x.numpy(), x.shape[1], backend="reference", probes=probes)


def assert_same_spikes(model: RSNN, x: torch.Tensor, target, qcfg=QuantizationConfig(), min_rate: float = 0.02):
    enable_qat(model, target, qcfg)
    with torch.no_grad():
        got = model(x.to(next(model.parameters()).dtype))
    artifact, want = reference(model, x, target, qcfg)
    for name in model.layers:
        rate = want.spikes[name].mean()
        assert min_rate < rate < 0.95, f"{name} fires at {rate:.3f}; the comparison would be vacuous"
        np.testing.assert_array_equal(got[name].numpy().astype(bool), want.spikes[name], err_msg=name)
    return artifact


# --------------------------------------------------------------------------- exactness

@pytest.mark.parametrize("kind", ARCHS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_qat_spikes_equal_the_reference_backend(kind, dtype, target):
    assert_same_spikes(build(ARCHS[kind], seed=3, dtype=dtype), spikes_in(), target)


def test_excitatory_inhibitory_and_mixed_projections_and_both_exponent_signs(target):
    model = build(ARCHS["multi_layer"], seed=4)
    with torch.no_grad():
        model.layers["hidden1"].w_in.abs_().mul_(0.01)  # small, all excitatory: a negative exponent
        model.layers["hidden1"].neuron.bias.fill_(0.2)
        model.layers["hidden2"].w_rec.copy_(-model.layers["hidden2"].w_rec.abs())  # all inhibitory
    artifact = assert_same_spikes(model, spikes_in(seed=5), target)
    quants = [proj.quant for proj in ir.projections(artifact.graph)]
    assert {q.sign_mode for q in quants} == {"excitatory", "inhibitory", "mixed"}
    exps = [q.weight_exp for q in quants]
    assert min(exps) < 0 < max(exps)


def test_wrap_of_u_and_saturation_of_v_are_exact(target):
    """No current decay and strong excitatory input drive u past 2**23, where it wraps."""
    model = build([layer("lif_recurrent", "hidden", 8), layer("lif_dense", "output", 4)], seed=6)
    hidden = model.layers["hidden"]
    with torch.no_grad():
        hidden.neuron.current_decay.zero_()
        hidden.w_in.abs_().mul_(20.0)
    x = spikes_in(seed=7, steps=40, rate=0.6)
    assert_same_spikes(model, x, target, min_rate=0.0)
    _, run = reference(model, x, target, probes=("u", "v"))
    u, v = run.probes["u"]["hidden"].astype(np.int64), run.probes["v"]["hidden"]
    assert (np.abs(np.diff(u, axis=1)) > fx.MAX_UV).any(), "u never wrapped; the test is vacuous"
    assert (np.abs(v) == fx.MAX_UV - 1).any(), "v never saturated; the test is vacuous"


def test_quantization_config_is_honoured(target):
    qcfg = QuantizationConfig(threshold_mantissa_target=300, weight_clip_percentile=80.0)
    assert_same_spikes(build(ARCHS["multi_layer"], seed=8), spikes_in(seed=9), target, qcfg)


def test_still_exact_after_training_steps(target):
    """Quantization is redone every forward pass, so it follows the weights."""
    model = build(ARCHS["multi_layer"], seed=10, dtype=torch.float32, learn_voltage_decay=True)
    enable_qat(model, target)
    x = spikes_in(seed=11).float()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(2):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x)["logits"], torch.tensor([0, 1, 2])).backward()
        optimizer.step()
        with torch.no_grad():  # the training loop's job: the compiler rejects decays outside [0, 1]
            for lay in model.layers.values():
                lay.neuron.voltage_decay.clamp_(0.0, 1.0)
    assert_same_spikes(model, spikes_in(seed=12), target)


# --------------------------------------------------------------------------- gradients

def test_gradients_reach_every_parameter_in_qat_mode(target):
    model = build(ARCHS["multi_layer"], seed=13, dtype=torch.float32, learn_voltage_decay=True)
    enable_qat(model, target)
    logits = model(spikes_in(seed=14).float())["logits"]
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2])).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, f"no gradient reaches {name}"
    masked = model.layers["hidden3"]
    assert (masked.w_rec.grad[masked.recurrent_mask == 0] == 0).all()


def test_straight_through_keeps_the_exact_value_and_passes_the_gradient():
    shadow = torch.tensor([0.1, 0.2, 0.3], requires_grad=True)
    exact = np.array([0.125, 0.25, 0.25])
    out = straight_through(shadow * 2, exact)
    assert out.tolist() == exact.tolist()
    (out * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert shadow.grad.tolist() == [2.0, 4.0, 6.0]


def test_gradient_matches_float_mode_where_quantization_is_invisible(target):
    """With the exactly representable parameters and drive, QAT and float training are the same model."""
    model = build([layer("lif_dense", "output", 1)], seed=15, drive=1.0)
    with torch.no_grad():
        neuron = model.layers["output"].neuron
        neuron.current_decay.fill_(0.5)
        neuron.voltage_decay.fill_(0.25)
        neuron.threshold.fill_(1.0)
        neuron.bias.zero_()
        neuron.input_gain.fill_(1.0)
        model.layers["output"].w_in.copy_(torch.tensor([[0.5, 0.25, 0.75, 0.5, 1.0, 0.125, 0.5, 0.25]]))
    x = spikes_in(seed=16, steps=12, rate=0.5)
    grads = []
    for qat in (False, True):
        if qat:
            enable_qat(model, target)
        model.zero_grad()
        out = model(x)
        out["logits"].sum().backward()
        grads.append((out["output"].detach().clone(), model.layers["output"].w_in.grad.clone()))
    assert grads[0][0].sum() > 0 and torch.equal(grads[0][0], grads[1][0])
    torch.testing.assert_close(grads[0][1], grads[1][1])


# --------------------------------------------------------------------------- switching and errors

def test_disable_restores_the_float_forward_pass(target):
    model = build(ARCHS["scml"], seed=17)
    x = spikes_in(seed=18)
    with torch.no_grad():
        before = model(x)
        assert not qat_enabled(model)
        enable_qat(model, "loihi2-sim")
        assert qat_enabled(model)
        disable_qat(model)
        assert not qat_enabled(model)
        after = model(x)
    for key in before:
        assert torch.equal(before[key], after[key]), key
    assert set(model.state_dict()) == set(build(ARCHS["scml"]).state_dict())


def test_non_binary_input_is_refused(target):
    model = enable_qat(build(ARCHS["scml"]), target)
    with pytest.raises(InputError, match="0/1 input spikes"):
        model(spikes_in() * 0.5)


def test_unquantizable_parameters_fail_when_qat_is_enabled(target):
    model = build(ARCHS["scml"])
    with torch.no_grad():
        model.layers["hidden"].neuron.voltage_decay[3] = 1.5
    with pytest.raises(ModelError, match="voltage_decay out of range"):
        enable_qat(model, target)


# --------------------------------------------------------------------------- membrane readout, graded input

GRADED = ir.GradedInput(8, 5)


def graded_in(seed: int = 12, batch: int = 3, steps: int = STEPS) -> torch.Tensor:
    """Values payload / 32 over the whole signed 8-bit range, zero (no message) in a third of the slots."""
    rng = np.random.default_rng(seed)
    payload = rng.integers(-GRADED.max_payload, GRADED.max_payload + 1, (batch, steps, INPUT))
    payload[rng.random(payload.shape) < 0.3] = 0
    return torch.from_numpy(payload / GRADED.scale)


@pytest.mark.parametrize("kind", ["lif_recurrent", "scml", "multi_layer"])
def test_graded_input_and_membrane_readout_equal_the_reference_bit_for_bit(kind, target):
    arch_layers = ARCHS[kind]
    model = build(arch_layers, seed=13, drive=1.0)
    model.readout_name = "membrane"
    model.set_output_firing()
    x = graded_in()
    enable_qat(model, target, input_graded=GRADED)
    with torch.no_grad():
        got = model(x)
    graph = model.to_ir()
    ir.population(graph, "input").graded = GRADED  # what the checkpoint frontend records for graded input
    artifact = compile_graph(graph, target)
    want = backends.run(artifact, x.numpy(), STEPS, backend="reference", probes=("v",))
    out = model.output_layer
    assert not want.spikes[out].any(), "a membrane readout must never fire"
    v_int = want.probes["v"][out]
    assert np.abs(v_int).max() > 1000, "the readout voltage stayed near zero; the comparison would be vacuous"
    scale = ir.population(artifact.graph, out).state_scale
    np.testing.assert_array_equal(got["output_v"].numpy() * scale, v_int)
    for name in model.layers:
        if name != out:
            assert 0.02 < want.spikes[name].mean() < 0.95, name
            np.testing.assert_array_equal(got[name].numpy().astype(bool), want.spikes[name], err_msg=name)
    # off-grid values are refused, not rounded silently
    with pytest.raises(InputError, match="graded input values"):
        backends.run(artifact, x.numpy() + 1e-3, STEPS, backend="reference")
# --------------------------------------------------------------------------- against hand-computed steps

def _trunc(x: int, shift: int) -> int:
    """Right shift toward zero, written out: Lava's decay truncates, it does not floor."""
    return x >> shift if x >= 0 else -((-x) >> shift)


def _hand_lif(fixed: dict, a_in: list[list[int]], steps: int) -> np.ndarray:
    """Loihi's fixed-point CUBA LIF (lava/proc/lif/models.py, AbstractPyLifModelFixed) in plain Python integers,
    independent of rsnn2chip.fixedpoint: u decays with du + 1 and wraps once at 24 bits, v decays with dv,
    adds u and the bias, saturates at +-(2^23 - 1), fires when strictly above vth << 6 and resets to 0."""
    n = len(fixed["du"])
    u, v, out = [0] * n, [0] * n, np.zeros((steps, n), bool)
    for t in range(steps):
        for i in range(n):
            x = _trunc(u[i] * (4096 - (fixed["du"][i] + 1)), 12) + (a_in[t][i] << 6)
            if x > 2 ** 23:
                x -= 2 ** 24
            elif x <= -2 ** 23:
                x += 2 ** 24
            u[i] = x
            bias = fixed["bias_mant"][i] << fixed["bias_exp"][i]
            y = _trunc(v[i] * (4096 - fixed["dv"][i]), 12) + u[i] + bias
            y = max(-(2 ** 23 - 1), min(2 ** 23 - 1, y))
            if y > fixed["vth"][i] << 6:
                out[t, i], y = True, 0
            v[i] = y
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_qat_spikes_match_hand_computed_fixed_point_steps(target, seed):
    """QAT and the reference backend share rsnn2chip.fixedpoint, so comparing them cannot catch an error in it;
    this compares QAT with the chip's arithmetic written out independently. A threshold mantissa of 2 makes one
    unit of state matter, and negative weights and bias keep u and v negative half of the time, where truncation
    toward zero and flooring differ."""
    n_in, n, steps = 6, 12, 120
    rng = np.random.default_rng(seed)
    arch = example_arch("hand", input_size=n_in)
    arch["layers"] = [{"type": "lif_dense", "name": "out", "size": n,
                       "neuron": {"current_decay": 0.3, "voltage_decay": 0.15, "threshold": 1.0, "bias": -0.04}}]
    model = RSNN(arch).double()
    with torch.no_grad():
        model.layers["out"].w_in.copy_(torch.as_tensor(rng.normal(0.1, 0.6, (n, n_in))))
    x = (rng.random((steps, n_in)) < 0.4).astype(np.int8)
    qcfg = QuantizationConfig(threshold_mantissa_target=2)
    compiled = compile_graph(model.to_ir(), target, qcfg=qcfg)
    pop = ir.population(compiled.graph, "out")
    fixed = {name: [int(v) for v in pop.fixed.expanded(n)[name]] for name in LoihiLIF.names()}
    [proj] = list(ir.projections(compiled.graph))
    m, exp = proj.quant.mantissa.toarray().astype(int), proj.quant.weight_exp
    assert proj.quant.sign_mode == "mixed" and not (m % 2).any()  # Lava's mixed mantissas: even, as stored
    # Input spikes reach the layer one step later (Sparse's delay); Lava shifts the summed mantissas (floor).
    a_in = [[0] * n] + [[int(sum(int(m[i, j]) * int(x[t, j]) for j in range(n_in))) for i in range(n)]
                        for t in range(steps - 1)]
    a_in = [[(a << exp) if exp >= 0 else (a >> -exp) for a in row] for row in a_in]
    expected = _hand_lif(fixed, a_in, steps)
    assert 0.05 < expected.mean() < 0.95, "the case must both spike and stay silent"
    enable_qat(model, target, qcfg)
    with torch.no_grad():
        got = model(torch.as_tensor(x[None], dtype=torch.float64))["out"][0].numpy() > 0.5
    np.testing.assert_array_equal(got, expected)
