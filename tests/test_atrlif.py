"""ATRLIF (adaptive threshold and refractoriness) end to end, and networks that mix neuron models.

* Lava's own ``ATRLIF`` fixed_pt model and the NumPy reference agree bit for bit
  (spikes, ``u`` and ``v``) on random networks mixing ATRLIF and CUBA-LIF
  populations (hypothesis, like ``test_property_lava.py``);
* quantization-aware training runs exactly the reference's integers;
* archs select the model per layer and are validated against its ranges;
* artifacts, reports, exporters and design rules name the model.
"""
from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import yaml

import rsnn2chip  # noqa: F401 - must precede any lava import
from conftest import spread_parameters
from rsnn2chip import backends, exporters, ir, neurons
from rsnn2chip import fixedpoint as fx
from rsnn2chip import artifact
from rsnn2chip.backends import lava as lava_backend
from rsnn2chip.backends import reference
from rsnn2chip.backends.watchdog import run_with_watchdog
from rsnn2chip.backends.plan import LoweredNetwork, LoweredProjection, NeuronGroup, lower
from rsnn2chip.cli import main
from rsnn2chip.compiler import compile_graph
from rsnn2chip.errors import ModelError
from rsnn2chip.neurons import atrlif, cuba_lif
from rsnn2chip.nn import RSNN, check_arch, example_arch, prepare_torch
from rsnn2chip.nn.qat import enable_qat
from rsnn2chip.report import build as build_report
from rsnn2chip.passes.resources import network_demand, range_demand
from rsnn2chip.targets import load_target

from netgen import population_params

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

INPUT = 8
STEPS = 30
ATRLIF_NEURON = {"model": "atrlif", "current_decay": 0.5, "voltage_decay": 0.2, "threshold": 1.0, "bias": 0.0,
                 "threshold_step": 0.3}
LIF_NEURON = {"current_decay": 0.5, "voltage_decay": 0.2, "threshold": 1.0, "bias": 0.0}
ARCH_FILE = "examples/arch/fc_atrlif_fsdd.yaml"


@pytest.fixture(autouse=True, scope="module")
def torch_settings():
    prepare_torch()


@pytest.fixture(scope="module")
def target():
    return load_target("loihi2-sim")


# --------------------------------------------------------------------------- Lava == reference

SIGN_MODES = ("mixed", "excitatory", "inhibitory")
ATRLIF_REGIMES = ("random", "integrator", "adaptive", "refractory", "biased")
STATS: dict[str, int] = {}


def atrlif_params(rng: np.random.Generator, n: int, regime: str) -> dict[str, np.ndarray]:
    """Fixed-point ATRLIF parameters in one regime; theta_step is one value (Lava holds it as a scalar)."""
    hi = fx.DECAY_UNITY - 1
    p = {"delta_i": rng.integers(0, hi + 1, n), "delta_v": rng.integers(0, hi + 1, n),
         "delta_theta": rng.integers(0, hi + 1, n), "delta_r": rng.integers(0, hi + 1, n),
         "theta_0": rng.integers(1, hi + 1, n), "theta_step": np.full(n, rng.integers(0, hi + 1)),
         "bias_mant": rng.integers(-100, 101, n), "bias_exp": rng.integers(0, 3, n)}
    if regime == "integrator":  # the current barely decays: strong input walks it to the 24-bit wrap
        p["delta_i"][:] = 0
        p["delta_v"] = rng.integers(0, 8, n)
    elif regime == "adaptive":  # a slow, large threshold rise: spikes thin out as theta climbs
        p["delta_theta"] = rng.integers(0, 16, n)
        p["theta_step"][:] = rng.integers(hi // 2, hi + 1)
        p["theta_0"] = rng.integers(1, 64, n)
    elif regime == "refractory":  # low threshold, slow refractory decay
        p["theta_0"] = rng.integers(1, 16, n)
        p["delta_r"] = rng.integers(0, 64, n)
    elif regime == "biased":  # v saturates from the bias alone
        p["delta_v"] = rng.integers(0, 4, n)
        p["bias_mant"] = rng.choice([fx.BIAS_MANT_RANGE[0], fx.BIAS_MANT_RANGE[1]], n)
        p["bias_exp"] = rng.integers(5, fx.BIAS_EXP_RANGE[1] + 1, n)
    return {k: np.asarray(v, np.int64) for k, v in p.items()}


def wraps(u: np.ndarray) -> bool:
    return bool((np.abs(np.diff(u.astype(np.int64), axis=1)) > fx.MAX_UV).any())


def saturates(v: np.ndarray) -> bool:
    return bool((np.abs(v.astype(np.int64)) == fx.MAX_UV - 1).any())


@st.composite
def mixed_networks(draw):
    """A random :class:`LoweredNetwork` whose populations are ATRLIF or CUBA-LIF in any order."""
    n_pops = draw(st.integers(1, 4))
    models = [draw(st.sampled_from(("atrlif", "atrlif", "cuba_lif"))) for _ in range(n_pops)]
    sizes = [draw(st.one_of(st.integers(1, 8), st.integers(9, 60))) for _ in range(n_pops)]
    regimes = [draw(st.sampled_from(ATRLIF_REGIMES)) for _ in range(n_pops)]
    n_in = draw(st.integers(1, 30))
    projs = [dict(source=draw(st.sampled_from(("input", "lif"))), pre=draw(st.integers(0, n_pops - 1)),
                  post=draw(st.integers(0, n_pops - 1)), sign=draw(st.sampled_from(SIGN_MODES)),
                  density=draw(st.sampled_from((0.1, 0.5, 1.0))), exp=draw(st.integers(-4, 5)),
                  strong=draw(st.booleans()))
             for _ in range(draw(st.integers(1, 6)))]
    rate = draw(st.sampled_from((0.1, 0.4, 0.8)))
    steps = draw(st.integers(8, 48))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))

    lif_slices, lo = {}, 0
    for i, n in enumerate(sizes):
        lif_slices[f"pop{i}"] = (lo, lo + n)
        lo += n
    # As plan.lower does: all CUBA-LIF neurons in one group, ATRLIF neurons by theta_step (one per population here).
    groups, lif_parts = [], []
    for i, (model, n, regime) in enumerate(zip(models, sizes, regimes)):
        index = np.arange(*lif_slices[f"pop{i}"], dtype=np.int64)
        if model == "cuba_lif":
            lif_parts.append((index, population_params(rng, n, rng.choice(["random", "integrator", "leaky"]))))
        else:
            groups.append(NeuronGroup(atrlif.MODEL, index, atrlif_params(rng, n, regime)))
    if lif_parts:
        groups.append(NeuronGroup(cuba_lif.MODEL, np.concatenate([i for i, _ in lif_parts]),
                                  {k: np.concatenate([p[k] for _, p in lif_parts]).astype(np.int64)
                                   for k in lif_parts[0][1]}))
    projections = []
    for k, p in enumerate(projs):
        cols = (0, n_in) if p["source"] == "input" else lif_slices[f"pop{p['pre']}"]
        rows = lif_slices[f"pop{p['post']}"]
        shape = (rows[1] - rows[0], cols[1] - cols[0])
        wlo, whi = fx.WEIGHT_RANGE[p["sign"]]
        values = (rng.choice([wlo, whi], size=shape) if p["strong"] else rng.integers(wlo, whi + 1, size=shape))
        mantissa = sp.csr_matrix(values * (rng.random(shape) < p["density"]))
        projections.append(LoweredProjection(f"proj{k}", p["source"], rows, cols,
                                             fx.lava_weights(mantissa, p["sign"]),
                                             max(p["exp"], 3) if p["strong"] else p["exp"], p["sign"]))
    net = LoweredNetwork(n_in, lo, {"in": (0, n_in)}, lif_slices, groups, projections)
    inputs = (rng.random((1, steps, n_in)) < rate).astype(np.int8)
    return net, inputs, steps, models


def assert_backends_agree(net: LoweredNetwork, inputs: np.ndarray, steps: int) -> dict[str, np.ndarray]:
    spikes, probes = lava_backend.simulate(net, inputs, steps, probes=("u", "v"))
    ref_spikes, ref_probes = reference.simulate(net, inputs, steps, probes=("u", "v"))
    np.testing.assert_array_equal(spikes, ref_spikes, err_msg="spikes")
    for name in ("u", "v"):
        np.testing.assert_array_equal(probes[name], ref_probes[name], err_msg=name)
    return {"spikes": ref_spikes, **ref_probes}


def check_random_network(case):
    net, inputs, steps, models = case
    out = assert_backends_agree(net, inputs, steps)
    atr = np.concatenate([g.index for g in net.groups if g.model is atrlif.MODEL] or [np.zeros(0, np.int64)])
    mixed = len(set(models)) > 1
    event(f"mixed models: {mixed}")
    STATS["examples"] = STATS.get("examples", 0) + 1
    STATS["mixed"] = STATS.get("mixed", 0) + int(mixed)
    STATS["atrlif_spiking"] = STATS.get("atrlif_spiking", 0) + int(out["spikes"][..., atr].any())
    STATS["wrap"] = STATS.get("wrap", 0) + int(wraps(out["u"][..., atr]))
    STATS["saturation"] = STATS.get("saturation", 0) + int(saturates(out["v"][..., atr]))


def run_property(max_examples: int):
    @settings(max_examples=max_examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(mixed_networks())
    def prop(case):
        check_random_network(case)

    STATS.clear()
    prop()
    assert STATS["examples"] >= max_examples // 2, STATS
    assert STATS["mixed"] >= 1 and STATS["atrlif_spiking"] >= 1, STATS
    return dict(STATS)


@pytest.mark.lava
def test_lava_atrlif_matches_reference_on_random_mixed_networks():
    run_property(8)


@pytest.mark.lava
@pytest.mark.slow
def test_lava_atrlif_matches_reference_on_many_random_mixed_networks():
    stats = run_property(60)
    assert stats["wrap"] >= 1 and stats["saturation"] >= 1, stats


@pytest.mark.lava
def test_hand_built_atrlif_network_wraps_saturates_adapts_and_matches_lava():
    """Strong excitation into a near-integrator: u wraps, v saturates, theta climbs; Lava agrees."""
    n, n_in, steps = 6, 8, 40
    params = atrlif_params(np.random.default_rng(0), n, "random")
    params.update(delta_i=np.zeros(n, np.int64), delta_v=np.zeros(n, np.int64), delta_theta=np.full(n, 8),
                  delta_r=np.full(n, 2048), theta_0=np.full(n, 4095), theta_step=np.full(n, 4095),
                  bias_mant=np.zeros(n, np.int64), bias_exp=np.zeros(n, np.int64))
    exc = fx.lava_weights(sp.csr_matrix(np.full((n, n_in), 255)), "excitatory")
    net = LoweredNetwork(n_in, n, {"in": (0, n_in)}, {"a": (0, n)},
                         [NeuronGroup(atrlif.MODEL, np.arange(n), params)],
                         [LoweredProjection("exc", "input", (0, n), (0, n_in), exc, 5, "excitatory")])
    out = assert_backends_agree(net, np.ones((1, steps, n_in), np.int8), steps)
    assert wraps(out["u"]) and saturates(out["v"])
    # theta rises by 4095 * 64 per spike and decays slowly: spikes thin out instead of firing every step.
    fired = out["spikes"][0, :, 0]
    assert 1 < fired.sum() < steps // 2


@pytest.mark.lava
def test_atrlif_state_resets_between_rounds_of_one_lava_build():
    """Three samples one after another in one build: theta, r, u and v return to their reset values between
    them (a theta left high would silence the next sample), so each matches the reference's fresh run."""
    n, n_in, steps = 6, 8, 30
    params = atrlif_params(np.random.default_rng(3), n, "random")
    params.update(delta_theta=np.full(n, 8), theta_step=np.full(n, 4095), bias_mant=np.zeros(n, np.int64))
    exc = fx.lava_weights(sp.csr_matrix(np.full((n, n_in), 255)), "excitatory")
    net = LoweredNetwork(n_in, n, {"in": (0, n_in)}, {"a": (0, n)},
                         [NeuronGroup(atrlif.MODEL, np.arange(n), params)],
                         [LoweredProjection("exc", "input", (0, n), (0, n_in), exc, 3, "excitatory")])
    inputs = (np.random.default_rng(4).random((3, steps, n_in)) < 0.6).astype(np.int8)
    spikes, probes = run_with_watchdog(lava_backend.run_build, (net, inputs, steps, ("u", "v"), "fixed_pt", 1),
                                       120, "Lava rounds")
    ref, ref_probes = reference.simulate(net, inputs, steps, probes=("u", "v"))
    assert ref[:, :3].any() and ref[:, -1].any()
    np.testing.assert_array_equal(spikes, ref)
    for name in ("u", "v"):
        np.testing.assert_array_equal(probes[name], ref_probes[name], err_msg=name)


@pytest.mark.lava
def test_a_neuron_group_nothing_connects_to_still_runs_in_lava():
    """A bias-driven ATRLIF population with no synapses at all: Lava runs only processes connected to the
    one run() is called on, so the backend links it with an empty Sparse."""
    n_in, steps = 3, 12
    lif = population_params(np.random.default_rng(1), 4, "random")
    adaptive = atrlif_params(np.random.default_rng(2), 3, "random")
    adaptive.update(bias_mant=np.full(3, 1000), bias_exp=np.full(3, 4), theta_0=np.full(3, 200),
                    delta_v=np.zeros(3, np.int64))
    exc = fx.lava_weights(sp.csr_matrix(np.full((4, n_in), 200)), "excitatory")
    net = LoweredNetwork(n_in, 7, {"in": (0, n_in)}, {"a": (0, 4), "b": (4, 7)},
                         [NeuronGroup(cuba_lif.MODEL, np.arange(4), {k: np.asarray(v, np.int64)
                                                                     for k, v in lif.items()}),
                          NeuronGroup(atrlif.MODEL, np.arange(4, 7), adaptive)],
                         [LoweredProjection("in->a", "input", (0, 4), (0, n_in), exc, 0, "excitatory")])
    layout = lava_backend.layout(net)
    [link] = [g for g in layout.synapse_groups if not g.projections]
    assert link.target == layout.neuron_group_of("a").name  # linked to the readout "b"
    out = assert_backends_agree(net, np.ones((1, steps, n_in), np.int8), steps)
    assert out["spikes"][..., 4:].any()


@pytest.mark.lava
def test_spiking_exactly_at_the_threshold_matches_lava():
    """ATRLIF fires at v - r == theta (>=, unlike LIF's >): memoryless decays make v equal the threshold."""
    n_in, steps = 3, 10
    full = np.full(2, fx.DECAY_UNITY - 1)
    params = {"delta_i": full, "delta_v": full, "delta_theta": full, "delta_r": full, "theta_0": np.array([3, 4]),
              "theta_step": np.zeros(2, np.int64), "bias_mant": np.zeros(2, np.int64), "bias_exp": np.zeros(2, np.int64)}
    ones = fx.lava_weights(sp.csr_matrix(np.ones((2, n_in))), "excitatory")
    net = LoweredNetwork(n_in, 2, {"in": (0, n_in)}, {"a": (0, 2)}, [NeuronGroup(atrlif.MODEL, np.arange(2), params)],
                         [LoweredProjection("in->a", "input", (0, 2), (0, n_in), ones, 0, "excitatory")])
    out = assert_backends_agree(net, np.ones((1, steps, n_in), np.int8), steps)
    # From step 1 on, a_in = 3 each step, so v = 3 * 64: exactly neuron 0's threshold, below neuron 1's.
    assert out["spikes"][0, 1:, 0].all() and not out["spikes"][0, :, 1].any()
    assert (out["v"][0, 1:, 0] == 3 << fx.VTH_SHIFT).all()


# --------------------------------------------------------------------------- the integer step itself

def test_reference_step_follows_lavas_order():
    """One neuron by hand: decay, integrate, compare v - r >= theta, then r += 2 theta, theta += step."""
    m = atrlif.MODEL
    fixed = {"delta_i": np.array([4095]), "delta_v": np.array([0]), "delta_theta": np.array([2048]),
             "delta_r": np.array([2048]), "theta_0": np.array([10]), "theta_step": np.array([5]),
             "bias_mant": np.array([0]), "bias_exp": np.array([0])}
    c = m.integer_constants(fixed)
    state = m.initial_state(c, 1)
    assert state["theta"][0, 0] == 640
    state, s = m.reference_step(state, np.array([[10]]), c)  # u = 640, v = 640 >= theta 640: fires (>=)
    assert s[0, 0] and state["v"][0, 0] == 640 and state["r"][0, 0] == 1280 and state["theta"][0, 0] == 960
    state, s = m.reference_step(state, np.array([[0]]), c)  # full current decay: u = 0; r halves, theta relaxes
    assert not s[0, 0] and state["u"][0, 0] == 0 and state["r"][0, 0] == 640 and state["theta"][0, 0] == 800


# --------------------------------------------------------------------------- training, QAT and compile

def arch(hidden_neuron=ATRLIF_NEURON, output_neuron=LIF_NEURON) -> dict:
    a = example_arch("atr", input_size=INPUT, sizes=(12, 4))
    a["layers"][0]["neuron"] = copy.deepcopy(hidden_neuron)
    a["layers"][1]["neuron"] = copy.deepcopy(output_neuron)
    return a


def build(seed: int = 0, dtype=torch.float64, drive: float = 3.0, **arch_kwargs) -> RSNN:
    torch.manual_seed(seed)
    return spread_parameters(RSNN(arch(**arch_kwargs)).to(dtype), seed, drive)


def spikes_in(seed: int = 1, batch: int = 3, steps: int = STEPS, rate: float = 0.3) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy((rng.random((batch, steps, INPUT)) < rate).astype(np.float64))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_qat_spikes_equal_the_reference_backend(dtype, target):
    model = build(seed=3, dtype=dtype)
    x = spikes_in()
    enable_qat(model, target)
    with torch.no_grad():
        got = model(x.to(dtype))
    art = compile_graph(model.to_ir(), target)
    assert ir.population(art.graph, "hidden0").model is atrlif.MODEL
    want = backends.run(art, x.numpy(), STEPS, backend="reference")
    for name in model.layers:
        rate = want.spikes[name].mean()
        assert 0.02 < rate < 0.95, f"{name} fires at {rate:.3f}; the comparison would be vacuous"
        np.testing.assert_array_equal(got[name].numpy().astype(bool), want.spikes[name], err_msg=name)


def test_qat_gradients_reach_weights_and_adaptation(target):
    model = build(seed=4, dtype=torch.float32)
    model.layers["hidden0"].neuron.threshold_step.requires_grad_(True)
    enable_qat(model, target)
    out = model(spikes_in(seed=5).float())
    out["logits"].sum().backward()
    hidden = model.layers["hidden0"]
    for grad in (hidden.w_in.grad, hidden.w_rec.grad, hidden.neuron.threshold_step.grad):
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_threshold_adaptation_changes_the_float_and_the_deployed_network(target):
    """The same network with and without a threshold step: adaptation must cut spikes in both."""
    x = spikes_in(seed=6, steps=60, rate=0.5)
    counts = {}
    for step in (0.0, 0.5):
        model = build(seed=7, hidden_neuron={**ATRLIF_NEURON, "threshold_step": step})
        with torch.no_grad():
            float_spikes = model(x)["hidden0"].sum().item()
        ref = backends.run(compile_graph(model.to_ir(), target), x.numpy(), 60, backend="reference")
        counts[step] = (float_spikes, int(ref.spikes["hidden0"].sum()))
    assert counts[0.5][0] < counts[0.0][0] and counts[0.5][1] < counts[0.0][1], counts


@pytest.mark.lava
def test_compiled_atrlif_network_runs_identically_in_lava(target):
    model = build(seed=8)
    art = compile_graph(model.to_ir(), target)
    x = spikes_in(seed=9, batch=1).numpy()
    ref = backends.run(art, x, STEPS, backend="reference", probes=("u", "v"))
    lava = backends.run(art, x, STEPS, backend="lava", probes=("u", "v"))
    assert ref.spikes["hidden0"].any()
    for name in model.layers:
        np.testing.assert_array_equal(lava.spikes[name], ref.spikes[name], err_msg=name)
        for var in ("u", "v"):
            np.testing.assert_array_equal(lava.probes[var][name], ref.probes[var][name], err_msg=f"{name} {var}")


def test_lowering_groups_neurons_by_model_and_theta_step(target):
    a = arch()
    a["layers"].insert(1, {"type": "lif_dense", "name": "mid", "size": 5, "neuron": copy.deepcopy(LIF_NEURON)})
    a["layers"].insert(2, {"type": "lif_dense", "name": "late", "size": 3,
                           "neuron": {**ATRLIF_NEURON, "threshold_step": 0.7}})
    net = lower(compile_graph(RSNN(a).to_ir(), target).graph)
    described = [(g.model.name, g.index.tolist()) for g in net.groups]
    # hidden0 (12 ATRLIF), mid (5 LIF), late (3 ATRLIF, another theta_step), output (4 LIF)
    assert described == [("atrlif", list(range(0, 12))), ("cuba_lif", list(range(12, 17)) + list(range(20, 24))),
                         ("atrlif", list(range(17, 20)))]


# --------------------------------------------------------------------------- arch validation

def test_archs_select_the_model_per_layer_and_old_archs_default_to_cuba_lif():
    model = RSNN(arch())
    assert model.layers["hidden0"].neuron.model is atrlif.MODEL
    assert model.layers["output"].neuron.model is cuba_lif.MODEL
    # Defaults are written into the arch, so the checkpoint records the values trained with.
    saved = model.arch()["layers"][0]["neuron"]
    assert saved["threshold_decay"] == atrlif.MODEL.defaults()["threshold_decay"]
    assert "model" not in model.arch()["layers"][1]["neuron"]
    assert RSNN(model.arch()).arch() == model.arch()


@pytest.mark.parametrize("neuron, message", [
    ({**ATRLIF_NEURON, "model": "izhikevich"}, "unknown neuron model"),
    ({**ATRLIF_NEURON, "current_decay": 0.0}, "neuron.current_decay must lie in [1/4096, 1]"),
    ({**ATRLIF_NEURON, "threshold_step": [0.1] * 12}, "neuron.threshold_step is one value for the whole layer"),
    ({**ATRLIF_NEURON, "threshold_decay": 1.5}, "neuron.threshold_decay must lie in [0, 1]"),
    ({k: v for k, v in ATRLIF_NEURON.items() if k != "threshold"}, "neuron parameters missing for model atrlif"),
    ({**LIF_NEURON, "threshold_step": 0.1}, "unknown neuron parameters for model cuba_lif"),
])
def test_bad_neuron_settings_are_named(neuron, message):
    problems = check_arch(arch(hidden_neuron=neuron))
    text = "\n".join(p.render() for p in problems)
    assert message in text, text


def test_example_arch_is_valid_and_adaptive():
    data = yaml.safe_load(open(ARCH_FILE))
    data["input_size"], data["layers"][1]["size"] = 78, 10
    assert check_arch(data) == []
    model = RSNN(data)
    assert model.layers["hidden"].neuron.model is atrlif.MODEL
    assert float(model.layers["hidden"].neuron.threshold_step[0]) > 0


def test_example_arch_trains_compiles_and_reports_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "a.pt"
    code = main(["train", "--arch", ARCH_FILE, "--data", "fsdd", "--epochs", "1", "--limit", "40",
                 "--batch-size", "20", "-o", str(out)])
    assert code == 0, capsys.readouterr()
    metrics = json.loads(out.with_name("a.metrics.json").read_text())
    last = metrics["evaluations"][-1]
    assert np.isfinite(last["train_loss"]) and last["spike_rate"]["hidden"] > 0
    # The checkpoint compiles, and the report names each layer's model.
    net = tmp_path / "a.r2c"
    assert main(["compile", str(out), "-o", str(net)]) == 0
    capsys.readouterr()
    assert main(["report", str(net), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert {p["name"]: p["neuron_model"] for p in rep["populations"]} == {
        "input": None, "hidden": "atrlif", "output": "cuba_lif"}


# --------------------------------------------------------------------------- artifact, report, export, DRC

@pytest.fixture(scope="module")
def compiled(target):
    return compile_graph(build(seed=10).to_ir(), target)


def test_artifact_round_trip_keeps_each_populations_model(compiled, tmp_path):
    path = tmp_path / "net.r2c"
    artifact.save(compiled, path)
    loaded = artifact.load(path)
    for pop in ir.populations(compiled.graph, "lif"):
        again = ir.population(loaded.graph, pop.name)
        assert again.model is pop.model and type(again.fixed) is type(pop.fixed)
        for name in pop.fixed.names():
            np.testing.assert_array_equal(getattr(again.fixed, name), getattr(pop.fixed, name))


def test_artifacts_written_before_neuron_models_still_load(compiled):
    meta, arrays = ir.to_serializable(compiled.graph)
    meta = copy.deepcopy(meta)
    for entry in meta["populations"]:
        if entry["neuron"] == "cuba_lif":  # what the serializer wrote before models had names
            entry["neuron"], entry["fixed"] = "CubaLIF", "LoihiLIF"
    graph = ir.from_serializable(meta, arrays)
    assert ir.population(graph, "output").model is cuba_lif.MODEL
    meta["populations"][1]["neuron"] = "Hodgkin-Huxley"
    with pytest.raises(ModelError, match="unknown neuron model"):
        ir.from_serializable(meta, arrays)


def test_report_names_each_populations_model(compiled):
    rep = build_report(compiled)
    models = {p["name"]: p.get("neuron_model") for p in rep["populations"]}
    assert models == {"input": None, "hidden0": "atrlif", "output": "cuba_lif"}
    row = next(p for p in rep["populations"] if p["name"] == "hidden0")
    assert row["lava_process"] == "lava.proc.atrlif.process:ATRLIF"


@pytest.mark.parametrize("fmt", sorted(exporters.EXPORTERS))
def test_export_refuses_atrlif_by_name(compiled, fmt, tmp_path):
    with pytest.raises(ModelError) as err:
        exporters.export(compiled.graph, tmp_path / "net.out", fmt)
    text = err.value.render()
    assert "population hidden0" in text and "neuron model atrlif" in text and "output" not in text
    assert not (tmp_path / "net.out").exists()


def test_atrlif_neurons_cost_twice_the_state_memory(compiled, target):
    demand = network_demand(compiled.graph)
    hidden, output = compiled.graph.nodes["hidden0"]["pop"], compiled.graph.nodes["output"]["pop"]
    state = target.core.neuron_state_bits
    for pop, size in ((hidden, 2), (output, 1)):
        lo, hi = demand.lif_slices[pop.name]
        with_state = range_demand(demand, lo, hi, target)["synapse_memory_bits"]
        assert demand.state_between(lo, hi) == size * pop.size
        assert with_state - (hi - lo) * size * state == range_demand(
            demand, lo, hi, dataclasses.replace(target, core=dataclasses.replace(target.core, shared_memory=False))
        )["synapse_memory_bits"]


def test_registry_lists_both_models():
    assert set(neurons.NEURON_MODELS) == {"cuba_lif", "atrlif"}
    assert all(neurons.get(name).name == name for name in neurons.NEURON_MODELS)
