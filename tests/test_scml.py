"""SC-ML motif layers and the sparse baselines: wiring, signs, IR, validation, checkpoints."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from rsnn2chip import ir
from rsnn2chip.checkpoint import model_from_checkpoint, save_checkpoint
from rsnn2chip.errors import ModelError
from rsnn2chip.nn import RSNN, example_arch, matching_random_sparse, scml_synapse_count

K = 4
INTRA = [[1, 0, -1, 0],
         [0, 1, 0, 0],
         [1, 1, 0, -1],
         [0, 0, -1, 1]]  # 8 synapses per motif, self-loops included
INTER = [[1, 0, -1, 0],  # neuron i of motif m -> neuron i of motif m + 1
         [0, 1, 1, 0]]  # neuron i of motif m -> neuron i of motif m - 1
PER_MOTIF = 8 + 2 + 2


pytestmark = pytest.mark.usefixtures("torch_settings")


def scml_cfg(size: int = 12, motif_size: int = K, intra=INTRA, inter=INTER, name: str = "hidden0") -> dict:
    neuron = {"current_decay": 0.5, "voltage_decay": 0.2, "threshold": 1.0, "bias": 0.0}
    return {"type": "scml", "name": name, "size": size, "neuron": neuron, "motif_size": motif_size,
            "intra_types": copy.deepcopy(intra), "inter_types": copy.deepcopy(inter)}


def arch_with(layer: dict, input_size: int = 6) -> dict:
    arch = example_arch("sparse", input_size=input_size, sizes=(layer["size"], 3))
    arch["layers"][0] = layer
    return arch


def recurrent_matrix(model: RSNN, name: str = "hidden0") -> np.ndarray:
    return model.to_ir().edges[name, name]["proj"].weight.toarray()


def expected_types(size: int, k: int, intra, inter) -> np.ndarray:
    """The wiring rule written out neuron by neuron: types[post, pre]."""
    types = np.zeros((size, size), int)
    n_motifs = size // k
    for m in range(n_motifs):
        for post in range(k):
            for pre in range(k):
                types[m * k + post, m * k + pre] = intra[post][pre]
    for m in range(n_motifs):
        for row, step in ((1, -1), (0, 1)):  # forward last: on a ring of two it is the one that stays
            neighbour = (m + step) % n_motifs
            if neighbour != m:
                for i in range(k):
                    types[neighbour * k + i, m * k + i] = inter[row][i]
    return types


# --------------------------------------------------------------------------- SC-ML structure

@pytest.mark.parametrize("size", [12, 24, 48])
def test_wiring_and_signs_follow_the_types(size):
    torch.manual_seed(size)
    weights = recurrent_matrix(RSNN(arch_with(scml_cfg(size))))
    np.testing.assert_array_equal(np.sign(weights).astype(int), expected_types(size, K, INTRA, INTER))


def test_synapse_count_is_linear_in_size():
    counts = {n: scml_synapse_count(scml_cfg(n)) for n in (12, 24, 48, 96)}
    assert counts == {n: n // K * PER_MOTIF for n in counts}
    model = RSNN(arch_with(scml_cfg(48)))
    assert model.to_ir().edges["hidden0", "hidden0"]["proj"].n_synapses == counts[48]
    assert model.layers["hidden0"].n_recurrent_synapses == counts[48]


@pytest.mark.parametrize("size,lateral", [(4, 0), (8, 2)])
def test_small_rings_do_not_duplicate_lateral_links(size, lateral):
    """One motif has no neighbour; two motifs are linked once each way, by the forward row."""
    torch.manual_seed(0)
    weights = recurrent_matrix(RSNN(arch_with(scml_cfg(size))))
    n_motifs = size // K
    assert np.count_nonzero(weights) == n_motifs * (8 + lateral)
    np.testing.assert_array_equal(np.sign(weights).astype(int), expected_types(size, K, INTRA, INTER))


def test_all_none_types_give_an_empty_recurrent_projection():
    cfg = scml_cfg(8, intra=[[0] * K] * K, inter=[[0] * K] * 2)
    model = RSNN(arch_with(cfg))
    assert model.to_ir().edges["hidden0", "hidden0"]["proj"].n_synapses == 0
    model(torch.ones(1, 3, 6))  # runs with no recurrent synapse at all


def test_magnitudes_stay_non_negative_after_an_optimizer_step():
    torch.manual_seed(1)
    model = RSNN(arch_with(scml_cfg(12)))
    layer = model.layers["hidden0"]
    before = recurrent_matrix(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=100.0)
    # Push every magnitude hard toward (and past) zero: the sign must still hold.
    (layer.synapse_weights() * layer.syn_sign).sum().backward()
    optimizer.step()
    after = recurrent_matrix(model)
    assert not np.allclose(after, before)
    np.testing.assert_array_equal(np.sign(after), np.sign(before))
    assert (layer.synapse_weights() * layer.syn_sign >= 0).all()


def test_float_forward_equals_dense_recurrence():
    torch.manual_seed(2)
    model = RSNN(arch_with(scml_cfg(12))).double()
    layer = model.layers["hidden0"]
    with torch.no_grad():
        layer.w_in.mul_(3.0)
    x = (torch.rand(3, 20, 6, dtype=torch.float64) < 0.4).double()
    with torch.no_grad():
        got = layer(x)
        dense = layer.effective_recurrent_weights()
        layer.recurrent_current = lambda prev: torch.nn.functional.linear(prev, dense)
        want = layer(x)
    assert 0.05 < got.mean() < 0.9
    assert torch.equal(got, want)


def test_ir_records_motif_membership():
    g = RSNN(arch_with(scml_cfg(12))).to_ir()
    pop = ir.population(g, "hidden0")
    assert pop.motif_size == K and pop.n_motifs == 3
    assert ir.population(ir.from_serializable(*ir.to_serializable(g)), "hidden0").motif_size == K
    assert ir.population(g, "output").motif_size is None


def test_arch_round_trips_and_checkpoint_restores_identical_outputs(tmp_path):
    torch.manual_seed(3)
    arch = arch_with(scml_cfg(12))
    arch["layers"].insert(1, matching_random_sparse(scml_cfg(12, name="hidden1"), mask_seed=5))
    arch["layers"][1]["init_scale"] = 1.0
    model = RSNN(arch)
    assert RSNN(model.arch()).arch() == model.arch()
    loaded = model_from_checkpoint(save_checkpoint(tmp_path / "model.pt", model))
    assert loaded.arch() == model.arch()
    x = (torch.rand(2, 15, 6) < 0.5).float()
    with torch.no_grad():
        want, got = model(x), loaded(x)
    for key in want:
        assert torch.equal(want[key], got[key]), key


def test_tuples_are_stored_as_lists_in_the_arch():
    cfg = scml_cfg(8, intra=tuple(map(tuple, INTRA)), inter=tuple(map(tuple, INTER)))
    layer_arch = RSNN(arch_with(cfg)).arch()["layers"][0]
    assert layer_arch["intra_types"] == INTRA and layer_arch["inter_types"] == INTER


# --------------------------------------------------------------------------- baselines

def test_random_sparse_has_exactly_the_requested_synapses():
    cfg = matching_random_sparse(scml_cfg(24))
    assert cfg["type"] == "random_sparse" and cfg["n_synapses"] == 24 // K * PER_MOTIF
    model = RSNN(arch_with(cfg))
    weights = recurrent_matrix(model)
    assert np.count_nonzero(weights) == cfg["n_synapses"]
    assert (weights < 0).any() and (weights > 0).any(), "baseline weights are free in sign"
    again = recurrent_matrix(RSNN(arch_with(cfg)))
    np.testing.assert_array_equal(weights != 0, again != 0)  # the mask comes from mask_seed
    other = recurrent_matrix(RSNN(arch_with({**cfg, "mask_seed": 1})))
    assert not np.array_equal(weights != 0, other != 0)


def test_random_sparse_structure_travels_in_the_checkpoint(tmp_path):
    model = RSNN(arch_with({**matching_random_sparse(scml_cfg(12)), "n_synapses": 30}))
    state = model.state_dict()
    assert state["layers.hidden0.syn_post"].shape == (30,)
    loaded = model_from_checkpoint(save_checkpoint(tmp_path / "model.pt", model))
    np.testing.assert_array_equal(recurrent_matrix(loaded), recurrent_matrix(model))


def test_self_recurrent_is_the_diagonal():
    cfg = {**scml_cfg(10), "type": "self_recurrent"}
    for key in ("motif_size", "intra_types", "inter_types"):
        del cfg[key]
    weights = recurrent_matrix(RSNN(arch_with(cfg)))
    assert np.count_nonzero(weights) == 10
    assert np.count_nonzero(np.diag(weights)) == 10


# --------------------------------------------------------------------------- arch validation

def model_error(layer: dict) -> str:
    with pytest.raises(ModelError) as info:
        RSNN(arch_with(layer))
    return str(info.value)


def test_motif_size_must_divide_size():
    message = model_error(scml_cfg(10))
    assert "motif_size must divide the layer size" in message and "layer 0 ('hidden0')" in message
    assert "size 10, motif_size 4" in message and "[1, 2, 5, 10]" in message


def test_missing_scml_keys_are_listed():
    cfg = scml_cfg()
    del cfg["intra_types"], cfg["inter_types"]
    message = model_error(cfg)
    assert "scml layer keys missing" in message and "intra_types" in message and "inter_types" in message


@pytest.mark.parametrize("key,value,text", [
    ("motif_size", 0, "motif_size must be a positive integer"),
    ("motif_size", 2.0, "motif_size must be a positive integer"),
    ("intra_types", INTRA[:3], "intra_types has the wrong shape"),
    ("intra_types", [row[:3] for row in INTRA], "intra_types has the wrong shape"),
    ("intra_types", [[1, 0, 2, 0]] + INTRA[1:], "2 at [0][2]"),
    ("intra_types", [[True, 0, 0, 0]] + INTRA[1:], "True at [0][0]"),
    ("inter_types", INTER[:1], "inter_types has the wrong shape"),
    ("inter_types", "exc", "inter_types has the wrong shape"),
    ("inter_types", [[1, 0, -1, 0], [0, 1, 0.5, 0]], "0.5 at [1][2]"),
])
def test_bad_type_specs_are_explained(key, value, text):
    message = model_error({**scml_cfg(), key: value})
    assert text in message and "layer 0 ('hidden0')" in message


def test_random_sparse_validation():
    base = matching_random_sparse(scml_cfg(12))
    assert "n_synapses exceeds" in model_error({**base, "n_synapses": 145})
    assert "n_synapses must be an integer >= 0" in model_error({**base, "n_synapses": -1})
    del base["n_synapses"]
    assert "random_sparse needs n_synapses" in model_error(base)


def test_matching_random_sparse_rejects_an_invalid_scml_config():
    with pytest.raises(ModelError, match="motif_size must divide"):
        matching_random_sparse(scml_cfg(10))


def test_options_of_another_type_are_unknown_keys():
    message = model_error({**scml_cfg(), "n_synapses": 3})
    assert "unknown keys for layer type 'scml'" in message and "n_synapses" in message
