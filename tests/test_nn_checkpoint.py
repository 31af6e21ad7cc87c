"""The torch model against an independent NumPy model of the IR's CubaLIF, and checkpoint I/O."""
from __future__ import annotations

import copy
import os

import numpy as np
import pytest
import torch

from rsnn2chip import ir
from rsnn2chip.checkpoint import (CHECKPOINT_FORMAT, load_checkpoint, model_from_checkpoint, save_checkpoint)
from rsnn2chip.errors import CheckpointError, ModelError
from rsnn2chip.frontends import checkpoint as checkpoint_frontend
from rsnn2chip.frontends import load_network
from rsnn2chip.neurons.cuba_lif import CubaLIF
from rsnn2chip.nn import LAYER_TYPES, RSNN, SpikingLayer, example_arch, register_layer

STEPS = 30


pytestmark = pytest.mark.usefixtures("torch_settings")


def mixed_arch() -> dict:
    """Recurrent (dense and masked) and feed-forward layers, so every layer type is exercised."""
    arch = example_arch("mixed", input_size=12, sizes=(20, 16, 6))
    arch["layers"][1]["recurrent_density"] = 0.4
    arch["layers"][1]["mask_seed"] = 3
    return arch


def randomize_neurons(model: RSNN, rng: np.random.Generator) -> None:
    """Per-neuron parameters everywhere, input_gain included, so folding and broadcasting are tested."""
    ranges = {"current_decay": (0.1, 0.9), "voltage_decay": (0.05, 0.5), "threshold": (0.5, 1.5),
              "bias": (-0.05, 0.1), "input_gain": (0.5, 2.0)}
    with torch.no_grad():
        for layer in model.layers.values():
            for name, (lo, hi) in ranges.items():
                getattr(layer.neuron, name).copy_(torch.from_numpy(rng.uniform(lo, hi, layer.size)))


def random_model(seed: int = 0) -> RSNN:
    torch.manual_seed(seed)
    model = RSNN(mixed_arch()).double()
    randomize_neurons(model, np.random.default_rng(seed))
    with torch.no_grad():
        for layer in model.layers.values():
            layer.w_in.mul_(2.0)  # enough drive that every layer fires
    return model


def random_input(model: RSNN, batch: int = 4, steps: int = STEPS, seed: int = 1) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy((rng.random((batch, steps, model.input_size)) < 0.3).astype(np.float64))


# --------------------------------------------------------------------------- independent reference

def layer_params(layer) -> dict:
    as_np = lambda t: t.detach().double().numpy().copy()  # noqa: E731
    w_rec = getattr(layer, "w_rec", None)
    mask = getattr(layer, "recurrent_mask", None)
    if w_rec is not None:
        w_rec = as_np(w_rec) * (as_np(mask) if mask is not None else 1.0)
    params = {name: as_np(getattr(layer.neuron, name))
              for name in ("current_decay", "voltage_decay", "threshold", "bias", "input_gain")}
    return {"w_in": as_np(layer.w_in), "w_rec": w_rec, **params}


def reference_layer(pre_spikes: np.ndarray, p: dict) -> np.ndarray:
    """The CubaLIF equations, written out step by step; every projection delays by one step."""
    batch, steps, _ = pre_spikes.shape
    size = p["w_in"].shape[0]
    u = np.zeros((batch, size))
    v = np.zeros((batch, size))
    own_prev = np.zeros((batch, size))
    pre_prev = np.zeros((batch, pre_spikes.shape[2]))
    out = np.zeros((batch, steps, size))
    for t in range(steps):
        current = pre_prev @ p["w_in"].T
        if p["w_rec"] is not None:
            current = current + own_prev @ p["w_rec"].T
        u = u * (1 - p["current_decay"]) + p["input_gain"] * current
        v = v * (1 - p["voltage_decay"]) + u + p["bias"]
        spikes = v > p["threshold"]
        v = np.where(spikes, 0.0, v)
        out[:, t] = spikes
        own_prev, pre_prev = spikes.astype(float), pre_spikes[:, t]
    return out


def reference_network(model: RSNN, x: np.ndarray) -> dict[str, np.ndarray]:
    outputs, spikes = {}, x
    for name, layer in model.layers.items():
        spikes = reference_layer(spikes, layer_params(layer))
        outputs[name] = spikes
    return outputs


# --------------------------------------------------------------------------- dynamics

def test_forward_equals_numpy_reference_spike_for_spike():
    model = random_model()
    x = random_input(model)
    with torch.no_grad():
        got = model(x)
    want = reference_network(model, x.numpy())
    for name, spikes in want.items():
        rate = spikes.mean()
        assert 0.02 < rate < 0.9, f"{name} fires at {rate:.3f}; the comparison would be vacuous"
        np.testing.assert_array_equal(got[name].numpy(), spikes, err_msg=name)
    np.testing.assert_array_equal(got["logits"].numpy(), want["output"].sum(axis=1))


def test_input_reaches_the_first_layer_one_step_later():
    arch = example_arch("delay", input_size=1, sizes=(1,))
    arch["layers"][0]["neuron"].update(current_decay=1.0, voltage_decay=1.0, threshold=0.5)
    model = RSNN(arch)
    with torch.no_grad():
        model.layers["output"].w_in.fill_(1.0)
    x = torch.zeros(1, 4, 1)
    x[0, 0, 0] = 1.0
    assert model(x)["output"][0, :, 0].tolist() == [0.0, 1.0, 0.0, 0.0]


def test_surrogate_gradient_reaches_every_weight():
    model = random_model()
    x = random_input(model)
    logits = model(x)["logits"]
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3]))
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, f"no gradient reaches {name}"
    masked = model.layers["hidden1"]
    assert (masked.w_rec.grad[masked.recurrent_mask == 0] == 0).all()


def test_learned_voltage_decay_gets_a_gradient_and_keeps_state_dict_keys():
    arch = example_arch()
    learned = RSNN(arch, learn_voltage_decay=True)
    assert set(learned.state_dict()) == set(RSNN(arch).state_dict())
    x = (torch.rand(2, STEPS, arch["input_size"]) < 0.5).float()
    learned(x)["hidden0"].sum().backward()
    grad = learned.layers["hidden0"].neuron.voltage_decay.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    fixed_names = {name for name, _ in RSNN(arch).named_parameters()}
    learned_names = {name for name, _ in learned.named_parameters()}
    assert not any("voltage_decay" in name for name in fixed_names)
    assert {name for name in learned_names - fixed_names} == {f"layers.{layer}.neuron.voltage_decay"
                                                              for layer in learned.layers}


# --------------------------------------------------------------------------- IR

def test_to_ir_folds_input_gain_and_masks_into_weights():
    model = random_model()
    g = model.to_ir()
    assert list(g.nodes) == ["input", "hidden0", "hidden1", "output"]
    assert set(g.edges) == {("input", "hidden0"), ("hidden0", "hidden0"), ("hidden0", "hidden1"),
                            ("hidden1", "hidden1"), ("hidden1", "output")}
    assert g.graph["output"] == "output"
    assert ir.population(g, "input").neuron is None and ir.population(g, "input").size == 12
    for name, layer in model.layers.items():
        p = layer_params(layer)
        gain = p["input_gain"][:, None]
        np.testing.assert_allclose(g.edges[_pre(model, name), name]["proj"].weight.toarray(), p["w_in"] * gain)
        if p["w_rec"] is not None:
            np.testing.assert_allclose(g.edges[name, name]["proj"].weight.toarray(), p["w_rec"] * gain)
        pop = ir.population(g, name)
        assert pop.motif_size is None and pop.layer == name and pop.size == layer.size
        for key in CubaLIF.names():
            np.testing.assert_array_equal(getattr(pop.neuron, key), p[key])
    assert all(proj.delay == 1 for proj in ir.projections(g))
    masked = g.edges["hidden1", "hidden1"]["proj"]
    assert masked.n_synapses == int(model.layers["hidden1"].recurrent_mask.sum())


def _pre(model: RSNN, name: str) -> str:
    names = ["input", *model.layers]
    return names[names.index(name) - 1]


def test_to_ir_serializes_round_trip():
    g = random_model().to_ir()
    back = ir.from_serializable(*ir.to_serializable(g))
    assert list(back.nodes) == list(g.nodes) and set(back.edges) == set(g.edges)


# --------------------------------------------------------------------------- checkpoint round trip

def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    model = random_model()
    path = save_checkpoint(tmp_path / "model.pt", model, meta={"dataset": "toy", "accuracy": 0.5})
    assert os.listdir(tmp_path) == ["model.pt"], "the temporary file must be renamed, not left behind"
    loaded = model_from_checkpoint(path).double()
    x = random_input(model)
    with torch.no_grad():
        want, got = model(x), loaded(x)
    for key in want:
        assert torch.equal(want[key], got[key]), key
    payload = load_checkpoint(path)
    assert payload["format"] == CHECKPOINT_FORMAT and payload["version"] == 1
    assert payload["arch"] == model.arch()
    assert payload["meta"]["dataset"] == "toy" and payload["meta"]["tool"] == "rsnn2chip"
    assert {"tool_version", "torch_version", "created"} <= set(payload["meta"])


def test_save_replaces_an_existing_checkpoint(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(path, RSNN(example_arch("first")))
    save_checkpoint(path, RSNN(example_arch("second")))
    assert load_checkpoint(path)["arch"]["name"] == "second"
    assert os.listdir(tmp_path) == ["model.pt"]


def test_save_rejects_meta_that_is_not_json_safe(tmp_path):
    with pytest.raises(TypeError, match="JSON-safe"):
        save_checkpoint(tmp_path / "model.pt", RSNN(example_arch()), meta={"when": object()})
    assert os.listdir(tmp_path) == []


def test_frontend_sniffs_and_loads_ir(tmp_path):
    model = random_model()
    path = save_checkpoint(tmp_path / "model.pt", model)
    assert checkpoint_frontend.sniff(path)
    (tmp_path / "notes.txt").write_text("hello")
    assert not checkpoint_frontend.sniff(tmp_path / "notes.txt")
    g = load_network(path)
    assert g.graph["source"] == str(path) and g.graph["name"] == "mixed"
    np.testing.assert_allclose(g.edges["input", "hidden0"]["proj"].weight.toarray(),
                               model.to_ir().edges["input", "hidden0"]["proj"].weight.toarray())


# --------------------------------------------------------------------------- checkpoint errors

def checkpoint_error(path) -> str:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message, "every checkpoint error names the file"
    return message


@pytest.fixture
def good_checkpoint(tmp_path):
    return save_checkpoint(tmp_path / "model.pt", random_model())


def resave(tmp_path, payload) -> str:
    path = tmp_path / "edited.pt"
    torch.save(payload, path)
    return path


def test_missing_file(tmp_path):
    assert "not found" in checkpoint_error(tmp_path / "absent.pt")


def test_directory_instead_of_file(tmp_path):
    assert "not a file" in checkpoint_error(tmp_path)


def test_truncated_file(tmp_path, good_checkpoint):
    data = good_checkpoint.read_bytes()
    path = tmp_path / "truncated.pt"
    path.write_bytes(data[: len(data) // 2])
    assert "truncated or corrupt" in checkpoint_error(path)


def test_random_bytes(tmp_path):
    path = tmp_path / "random.pt"
    path.write_bytes(np.random.default_rng(0).bytes(1000))
    assert "not a zip archive" in checkpoint_error(path)


def test_random_bytes_behind_a_zip_header(tmp_path):
    path = tmp_path / "fake.pt"
    path.write_bytes(b"PK\x03\x04" + np.random.default_rng(0).bytes(1000))
    assert "truncated or corrupt" in checkpoint_error(path)


class RunsShellOnLoad:
    """Unpickling this runs a shell command: what a malicious model file would contain."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickled_code_is_refused_not_run(tmp_path):
    marker = tmp_path / "code_ran"
    path = resave(tmp_path, {"format": CHECKPOINT_FORMAT, "version": 1, "payload": RunsShellOnLoad(marker)})
    message = checkpoint_error(path)
    assert not marker.exists(), "loading a checkpoint executed code from it"
    assert "nothing in the file was executed" in message and "system" in message
    with pytest.raises(CheckpointError):
        model_from_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_by_name(tmp_path, good_checkpoint, value):
    payload = torch.load(good_checkpoint, weights_only=True)
    key = sorted(k for k, v in payload["state_dict"].items() if v.is_floating_point() and v.numel())[0]
    payload["state_dict"][key] = payload["state_dict"][key].clone()
    payload["state_dict"][key].view(-1)[0] = value
    path = resave(tmp_path, payload)
    with pytest.raises(CheckpointError, match="NaN or infinity") as info:
        model_from_checkpoint(path)
    assert info.value.problems[0].where == key and info.value.problems[0].file == str(path)


def test_torch_file_that_is_not_ours(tmp_path):
    path = resave(tmp_path, {"weight": torch.zeros(3)})
    message = checkpoint_error(path)
    assert "not an rsnn2chip checkpoint" in message and "weight" in message
    path = resave(tmp_path, torch.zeros(3))
    assert "not an rsnn2chip checkpoint" in checkpoint_error(path)
    path = resave(tmp_path, {"format": "someone.else", "version": 1})
    assert "someone.else" in checkpoint_error(path)


def test_unsupported_version(tmp_path, good_checkpoint):
    payload = load_checkpoint(good_checkpoint)
    payload["version"] = 99
    message = checkpoint_error(resave(tmp_path, payload))
    assert "unsupported checkpoint version" in message and "99" in message


def test_state_dict_that_does_not_fit_the_arch(tmp_path, good_checkpoint):
    payload = load_checkpoint(good_checkpoint)
    state = payload["state_dict"]
    state["layers.hidden0.w_in"] = torch.zeros(3, 3)
    del state["layers.output.neuron.threshold"]
    state["layers.output.w_rec"] = torch.zeros(6, 6)
    message = checkpoint_error(resave(tmp_path, payload))
    assert "3 problems" in message
    assert "layers.hidden0.w_in" in message and "(3, 3)" in message and "(20, 12)" in message
    assert "layers.output.neuron.threshold" in message and "lacks" in message
    assert "layers.output.w_rec" in message and "does not use" in message


def test_invalid_arch_inside_a_checkpoint(tmp_path, good_checkpoint):
    payload = load_checkpoint(good_checkpoint)
    payload["arch"]["layers"][0]["type"] = "lif_mystery"
    message = checkpoint_error(resave(tmp_path, payload))
    assert "unknown layer type" in message and "lif_recurrent" in message and "hidden0" in message


# --------------------------------------------------------------------------- arch validation and registry

def model_error(arch) -> str:
    with pytest.raises(ModelError) as info:
        RSNN(arch)
    return str(info.value)


def test_unknown_layer_type_lists_known_types():
    arch = example_arch()
    arch["layers"][1]["type"] = "lif_mystery"
    message = model_error(arch)
    assert "'lif_mystery'" in message and "layer 1 ('output')" in message
    for known in LAYER_TYPES:
        assert known in message


def test_arch_errors_name_the_layer_and_key():
    arch = example_arch()
    del arch["layers"][0]["neuron"]["threshold"]
    arch["layers"][0]["neuron"]["voltage_decay"] = 1.5
    arch["layers"][1]["recurent_density"] = 0.5
    arch["layers"][1]["name"] = "hidden0"
    message = model_error(arch)
    assert "threshold" in message and "layer 0 ('hidden0')" in message
    assert "neuron.voltage_decay must lie in [0, 1]" in message
    assert "recurent_density" in message and "duplicate layer name" in message


def test_per_neuron_list_must_match_size():
    arch = example_arch()
    arch["layers"][0]["neuron"]["bias"] = [0.0, 0.1]
    assert "length must equal size" in model_error(arch)


def test_per_neuron_lists_are_accepted_and_kept_in_arch():
    arch = example_arch(sizes=(3, 2))
    arch["layers"][1]["neuron"]["threshold"] = [1.0, 2.0]
    model = RSNN(arch)
    assert model.layers["output"].neuron.threshold.tolist() == [1.0, 2.0]
    assert model.arch()["layers"][1]["neuron"]["threshold"] == [1.0, 2.0]


def test_header_errors():
    arch = example_arch()
    arch.update(format="other", version=2, input_size=0, readout="max")
    message = model_error(arch)
    for text in ("arch.format", "arch.version", "arch.input_size", "arch.readout"):
        assert text in message


def test_register_layer_adds_a_type_without_other_changes():
    @register_layer("lif_test_only")
    class TestOnlyLayer(SpikingLayer):
        pass

    try:
        arch = example_arch()
        arch["layers"][0]["type"] = "lif_test_only"
        model = RSNN(arch)
        assert isinstance(model.layers["hidden0"], TestOnlyLayer)
        assert model.arch()["layers"][0]["type"] == "lif_test_only"
        with pytest.raises(ValueError, match="registered twice"):
            register_layer("lif_test_only")(TestOnlyLayer)
    finally:
        del LAYER_TYPES["lif_test_only"]


def test_arch_round_trips_through_rsnn():
    arch = mixed_arch()
    rebuilt = RSNN(arch).arch()
    expected = copy.deepcopy(arch)
    for layer in expected["layers"]:
        for key, (default, _) in LAYER_TYPES[layer["type"]].OPTIONS.items():
            layer.setdefault(key, default)
    assert rebuilt == expected
    assert RSNN(rebuilt).arch() == rebuilt
