"""``rsnn2chip verify``: agreement of float, quantization-aware, reference and Lava runs, and its diagnoses.

The diagnosis tests use a one-layer model ``out`` (2 neurons, 2 input
channels) with no leak (decays 0, exactly representable) and threshold 1, so
every conversion is exact except the one each test provokes; state scale is
2**17, so a float weight w is the integer w * 2048.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import rsnn2chip.backends.lava as lava_backend
from rsnn2chip import artifact
from rsnn2chip.backends import reference
from rsnn2chip.checkpoint import save_checkpoint
from rsnn2chip.cli import main
from rsnn2chip.compiler import compile_file
from rsnn2chip.nn import RSNN
from rsnn2chip.nn.network import ARCH_FORMAT, ARCH_VERSION, example_arch
from rsnn2chip.targets import load_target, load_target_file

from conftest import random_spikes

pytestmark = pytest.mark.lava
STEPS = 25


def _verify(capsys, model, art, x, *extra) -> tuple[int, dict]:
    status = main(["verify", str(model), str(art), "--input", str(x), "--json", *extra])
    return status, json.loads(capsys.readouterr().out)


def _pair(result: dict, a: str, b: str) -> dict:
    return next(p for p in result["pairs"] if (p["a"], p["b"]) == (a, b))


@pytest.fixture(scope="module")
def normal(tmp_path_factory):
    d = tmp_path_factory.mktemp("verify")
    model = d / "model.pt"
    torch.manual_seed(0)
    save_checkpoint(model, RSNN(example_arch("normal", input_size=8, sizes=(24, 5))))
    art = d / "net.r2c"
    artifact.save(compile_file(model, load_target("loihi2-sim")), art)
    x = d / "x.npy"
    np.save(x, random_spikes(3, 30, 8, rate=0.3, batch=2))
    return model, art, x


def test_normal_model_agrees_and_lava_matches_the_reference(normal, capsys):
    status, result = _verify(capsys, *normal)
    assert status == 0 and result["lava_matches_reference"] is True
    assert (result["samples"], result["steps"]) == (2, 30)
    for a, b in (("reference", "lava"), ("qat", "reference")):
        pair = _pair(result, a, b)
        assert pair["identical"] and pair["first_divergence"] is None
        assert [row["agreement"] for row in pair["layers"]] == [1.0, 1.0]
    assert sum(result["spike_counts"]["reference"].values()) > 0, "a silent network checks nothing"
    floats = _pair(result, "float", "reference")
    assert [row["layer"] for row in floats["layers"]] == ["hidden0", "output"]
    assert all(row["agreement"] > 0.8 for row in floats["layers"])
    if not floats["identical"]:
        assert floats["first_divergence"]["cause"] in ("weight_clipped", "weight_rounded_to_zero",
                                                       "parameter_lost_precision", "plain_rounding")
    assert result["warnings"] == []


def test_text_output_names_the_verdict(normal, capsys):
    model, art, x = normal
    assert main(["verify", str(model), str(art), "--input", str(x), "--steps", "12"]) == 0
    assert "Lava and the reference agree on every spike" in capsys.readouterr().out


def test_exit_1_and_the_first_spike_when_lava_differs_from_the_reference(normal, capsys, monkeypatch):
    def one_spike_off(net, inputs, steps, probes=(), **_):
        spikes, recorded = reference.simulate(net, inputs, steps, probes=probes)
        lo, _ = net.lif_slices["hidden0"]
        spikes[0, 7, lo + 3] ^= True
        return spikes, recorded

    monkeypatch.setattr(lava_backend, "simulate", one_spike_off)
    status, result = _verify(capsys, *normal)
    assert status == 1 and result["lava_matches_reference"] is False
    div = _pair(result, "reference", "lava")["first_divergence"]
    assert (div["layer"], div["neuron"], div["step"], div["sample"]) == ("hidden0", 3, 7, 0)
    # The stand-in reports the reference's u and v, so only the spike decision differs.
    assert div["cause"] == "backend_spike_decision"


def test_user_errors_exit_2(normal, tmp_path, capsys):
    model, art, _ = normal
    other = tmp_path / "other.pt"
    save_checkpoint(other, RSNN(example_arch("other", input_size=8, sizes=(24, 6, 5))))
    x = tmp_path / "x.npy"
    np.save(x, random_spikes(0, 10, 8))
    assert main(["verify", str(other), str(art), "--input", str(x)]) == 2
    err = capsys.readouterr().err
    assert "the model and the artifact are not the same network" in err and "in the model" in err
    assert main(["verify", str(model), str(art), "--input", str(tmp_path / "missing.npy")]) == 2


# --------------------------------------------------------------------------- diagnoses

def one_layer(tmp_path, weights, threshold=1.0, bias=0.0, exp_max=7):
    arch = {"format": ARCH_FORMAT, "version": ARCH_VERSION, "name": "diag", "input_size": 2, "readout": "spike_count",
            "layers": [{"type": "lif_dense", "name": "out", "size": 2,
                        "neuron": {"current_decay": 0.0, "voltage_decay": 0.0, "threshold": threshold,
                                   "bias": bias}}]}
    model = RSNN(arch)
    with torch.no_grad():
        model.layers["out"].w_in.copy_(torch.tensor(weights))
    path = tmp_path / "model.pt"
    save_checkpoint(path, model)
    text = load_target("loihi2-sim").path
    toml = tmp_path / "target.toml"
    toml.write_text(open(text).read().replace("weight_exp_max = 7", f"weight_exp_max = {exp_max}"))
    art = tmp_path / "net.r2c"
    artifact.save(compile_file(path, load_target_file(toml)), art)
    x = np.zeros((STEPS, 2), np.int8)
    x[0, 0] = 1  # neuron 0's input: one spike; with no leak its current stays
    x[:, 1] = 1  # neuron 1's input: every step
    np.save(tmp_path / "x.npy", x)
    return path, art, tmp_path / "x.npy"


def test_a_clipped_weight_is_named(tmp_path, capsys):
    # 2.0 -> 4096 needs exponent 5; the target allows 0, so it clips to 255 (0.1245). Float: u = 2 from step 1,
    # v = 2 > 1 fires at step 1; quantized: v = 0.1245 at step 1, no spike.
    status, result = _verify(capsys, *one_layer(tmp_path, [[2.0, 0.0], [0.0, 0.007]], exp_max=0))
    assert status == 0
    div = _pair(result, "float", "qat")["first_divergence"]
    assert (div["layer"], div["neuron"], div["step"], div["float"], div["qat"]) == ("out", 0, 1, True, False)
    assert div["cause"] == "weight_clipped"
    clipped = div["causes"][0]["synapses"][0]
    assert clipped["synapse"] == "input[0] -> out[0]" and clipped["float"] == pytest.approx(2.0)
    assert clipped["quantized"] == 255 / 2048
    assert _pair(result, "float", "reference")["first_divergence"]["cause"] == "weight_clipped"
    assert _pair(result, "qat", "reference")["identical"]


def test_a_weight_rounded_to_zero_is_named(tmp_path, capsys):
    # Exponent 5 for the 2.0, so 0.007 -> 14.3 / 32 rounds to 0. Float neuron 1: u = 0.007 t, v = 0.007 t (t + 1) / 2
    # first exceeds 1 at t = 17; quantized it never fires. Neuron 0 is exact (2.0 = 128 * 32 / 2048).
    status, result = _verify(capsys, *one_layer(tmp_path, [[2.0, 0.0], [0.0, 0.007]]))
    assert status == 0
    div = _pair(result, "float", "qat")["first_divergence"]
    assert (div["neuron"], div["step"], div["cause"]) == (1, 17, "weight_rounded_to_zero")
    assert div["causes"][0]["synapses"][0]["synapse"] == "input[1] -> out[1]"
    assert "rounded to zero" in div["why"]


def test_a_parameter_that_lost_precision_is_named(tmp_path, capsys):
    # Neuron 1's threshold 0.0002 is 0.41 mantissa steps at scale 2**17; the mantissa cannot go below 1, so it
    # becomes 1 * 64 / 2**17 = 0.000488. A bias of 40 / 2**17 (exact) fires it at step 0 in float but not in
    # fixed point (v = 40 <= 64).
    status, result = _verify(capsys, *one_layer(tmp_path, [[0.5, 0.0], [0.0, 0.0]], threshold=[1.0, 0.0002],
                                                bias=[0.0, 40 / 2 ** 17]))
    assert status == 0
    div = _pair(result, "float", "qat")["first_divergence"]
    assert (div["neuron"], div["step"], div["cause"]) == (1, 0, "parameter_lost_precision")
    assert [p["param"] for p in div["causes"][0]["params"]] == ["threshold"]
    assert "threshold" in div["why"]
