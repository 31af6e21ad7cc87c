"""HRMAS search: supernet mixing, discretisation, SpiKL-IP, resume, outputs (tiny runs, events-digits)."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from rsnn2chip.checkpoint import load_checkpoint, model_from_checkpoint
from rsnn2chip.cli import main
from rsnn2chip.data import load_dataset
from rsnn2chip.errors import InputError
from rsnn2chip.nn import RSNN, check_arch, motif_synapses
from rsnn2chip.search import Interrupted, Supernet, run_hrmas, space_from_dict
from rsnn2chip.search.ip import from_intrinsic, ip_step, rate_stats, sample_rates, to_intrinsic
from rsnn2chip.search.space import IPConfig
from rsnn2chip.search.hrmas import temperature_at
from rsnn2chip.search.supernet import TYPE_OF_COLUMN, candidate_positions
from rsnn2chip.train import depth_of

NEURON = {"current_decay": 0.5, "voltage_decay": 0.05, "threshold": 1.0, "bias": 0.0}
LIMIT = 64


def tiny_space(**overrides) -> dict:
    space = {"format": "rsnn2chip.search-space", "version": 1, "name": "tiny", "input_size": "auto",
             "readout": "spike_count",
             "layers": [{"type": "scml_search", "name": "hidden", "size": 8, "neuron": dict(NEURON),
                         "motif_sizes": [2, 4]},
                        {"type": "lif_dense", "name": "output", "size": "auto", "neuron": dict(NEURON)}],
             "search": {"epochs": 3, "min_steps": 0, "batch_size": 16, "warmup_steps": 2, "log_every": 2, "probe_every": 3,
                        "probe_samples": 32, "checkpoint_every": 3, "alpha_lr": 0.05},
             "ip": {"enabled": True, "eta_r": 0.5, "eta_tau": 0.5},
             "retrain": {"epochs": 1, "batch_size": 32}}
    for key, value in overrides.items():
        space[key] = {**space[key], **value} if isinstance(value, dict) else value
    return space


pytestmark = pytest.mark.usefixtures("torch_settings")


@pytest.fixture(scope="module")
def data():
    train = load_dataset("events-digits", "train", limit=LIMIT)
    return (train, load_dataset("events-digits", "val", encoding=train.encoding, limit=LIMIT),
            load_dataset("events-digits", "test", encoding=train.encoding, limit=LIMIT))


def supernet(space: dict | None = None, seed: int = 0) -> Supernet:
    torch.manual_seed(seed)
    return Supernet(space_from_dict(space or tiny_space()).resolved(200, 10))


# --------------------------------------------------------------------------- supernet and discretisation

def test_candidate_positions_cover_every_motif_synapse_once():
    for size, k in ((8, 2), (8, 4), (12, 4), (16, 16)):
        post, pre, position = candidate_positions(size, k)
        all_post, all_pre, _ = motif_synapses(size, k, np.ones((k, k), int), np.ones((2, k), int))
        assert np.array_equal(post, all_post) and np.array_equal(pre, all_pre)
        intra = post // k == pre // k
        # intra pairs are labelled by (post, pre) inside the motif, lateral links by (row, neuron)
        assert np.array_equal(position[intra], (post[intra] % k) * k + pre[intra] % k)
        assert np.all(position[~intra] >= k * k) and np.all(position[~intra] % k == pre[~intra] % k)


def test_mixture_is_the_softmax_weighted_sum_of_candidates():
    net = supernet()
    layer = net.layers["hidden"]
    with torch.no_grad():
        layer.alpha_size.copy_(torch.tensor([0.3, -0.2]))
        for alpha in layer.alpha_types:
            alpha.copy_(torch.randn_like(alpha))
    p = torch.softmax(layer.alpha_size.detach(), 0)
    assert float(p.sum()) == pytest.approx(1.0)
    mixed = layer.mixed_recurrent_weights()
    expected = sum(p[j] * layer.candidate_weights(j) for j in range(2))
    assert torch.allclose(mixed, expected)
    for j, k in enumerate(layer.candidates):  # each candidate is non-zero only on its motif wiring
        support = layer.candidate_weights(j).detach() != 0
        post, pre, _ = candidate_positions(8, k)
        allowed = torch.zeros(8, 8, dtype=torch.bool)
        allowed[post, pre] = True
        assert not (support & ~allowed).any()


def test_confident_alphas_mix_to_exactly_the_discretised_scml_layer():
    net = supernet()
    layer = net.layers["hidden"]
    rng = np.random.default_rng(1)
    with torch.no_grad():
        layer.alpha_size.copy_(torch.tensor([-60.0, 60.0]))  # k = 4
        choice = rng.integers(0, 3, size=layer.alpha_types[1].shape[0])
        layer.alpha_types[1].copy_(torch.full_like(layer.alpha_types[1], -60.0))
        layer.alpha_types[1][torch.arange(len(choice)), torch.as_tensor(choice)] = 60.0
    arch = net.discretise()
    assert check_arch(arch) == []
    cfg = arch["layers"][0]
    assert cfg["type"] == "scml" and cfg["motif_size"] == 4
    types = np.asarray(TYPE_OF_COLUMN)[choice]
    assert cfg["intra_types"] == types[:16].reshape(4, 4).tolist()
    assert cfg["inter_types"] == types[16:].reshape(2, 4).tolist()
    # Give the discrete layer the candidate's magnitudes: its recurrent matrix equals the mixture.
    discrete = RSNN(arch)
    _, _, position = candidate_positions(8, 4)
    with torch.no_grad():
        discrete.layers["hidden"].w_rec_raw.copy_(layer.kept_raw(types[position], layer.raw_exc[1], layer.raw_inh[1]))
    assert torch.allclose(discrete.layers["hidden"].effective_recurrent_weights(), layer.mixed_recurrent_weights(),
                          atol=1e-6)


def test_unstructured_search_discretises_to_one_layer_sized_motif():
    space = tiny_space()
    space["layers"][0] = {"type": "unstructured_search", "name": "hidden", "size": 8, "neuron": dict(NEURON)}
    net = supernet(space)
    arch = net.discretise()
    cfg = arch["layers"][0]
    assert check_arch(arch) == [] and cfg["motif_size"] == 8 and cfg["inter_types"] == [[0] * 8, [0] * 8]
    expected = np.asarray(TYPE_OF_COLUMN)[net.layers["hidden"].alpha_types.argmax(-1).numpy()]
    assert cfg["intra_types"] == expected.tolist()


def test_alpha_and_weight_parameters_partition_the_supernet():
    net = supernet()
    alphas, weights = net.alpha_parameters(), net.weight_parameters()
    assert len(alphas) == 1 + 2 and {id(p) for p in alphas}.isdisjoint({id(p) for p in weights})
    assert len(alphas) + len(weights) == len(list(net.parameters()))


@pytest.mark.parametrize("change, text", [
    ({"layers": [{"type": "scml_search", "name": "hidden", "size": 12, "neuron": NEURON, "motif_sizes": [4, 8]}]},
     "must divide"),
    ({"search": {"epochz": 3}}, "unknown keys"),
    ({"ip": {"layers": "all"}}, "ip.layers"),
    ({"search": {"log_every": 0}}, "search.log_every"),
    ({"search": {"temperature_end": 0.0}}, "search.temperature_end must be > 0"),
    ({"search": {"temperature_start": float("inf")}}, "bad value for search.temperature_start"),
    ({"search": {"lr": float("nan")}}, "bad value for search.lr"),
    ({"search": {"lr": 0}}, "search.lr is a learning rate"),
    ({"search": {"alpha_lr": 1e6}}, "search.alpha_lr is a learning rate"),
    ({"retrain": {"lr": 0.0}}, "retrain.lr is a learning rate"),
    ({"retrain": {"init": "warm"}}, "unknown retrain.init"),
    ({"layers": [{"type": "lif_recurrent", "name": "hidden", "size": 8, "neuron": NEURON}]}, "nothing to search"),
])
def test_space_errors_name_the_problem(change, text):
    with pytest.raises(InputError) as err:
        space_from_dict(tiny_space(**change))
    assert text in err.value.render()


# --------------------------------------------------------------------------- intrinsic plasticity

def test_ip_mapping_round_trips_and_matches_the_neuron():
    gain, decay = torch.tensor([0.5, 1.0, 3.0]), torch.tensor([0.02, 0.2, 0.6])
    r, tau = to_intrinsic(gain, decay)
    g2, d2 = from_intrinsic(r, tau)
    assert torch.allclose(g2.float(), gain) and torch.allclose(d2.float(), decay)
    # Our neuron under a constant input current I relaxes to R*I with time constant tau_m, as the paper's does.
    from rsnn2chip.nn.neuron import Neuron
    neuron = Neuron(3, current_decay=1.0, voltage_decay=decay, threshold=1e9, bias=0.0)
    neuron.input_gain.copy_(gain)
    state, current = neuron.initial_state(1), torch.full((1, 3), 0.7)
    for n in range(1, 40):
        _, state = neuron.step(state, current)
        expected = (r * 0.7 * (1 - torch.exp(-n / tau))).float()
        assert torch.allclose(state[1][0], expected, rtol=1e-4)  # state is (u, v)


def test_ip_moves_rates_toward_the_target_and_only_touches_intrinsic_parameters(data):
    train, _, _ = data
    space = tiny_space(layers=[{"type": "scml_search", "name": "hidden", "size": 16, "neuron": dict(NEURON),
                                "init_scale": 3.0},  # far too active to start with
                               {"type": "lif_dense", "name": "output", "size": "auto", "neuron": dict(NEURON)}])
    net = supernet(space)
    cfg = IPConfig(eta_r=1.0, eta_tau=1.0)
    depth = depth_of(net)
    before = copy.deepcopy(net.state_dict())
    probe = train.make_batch(np.arange(LIMIT), extra_steps=depth)

    def distance() -> dict:
        with torch.no_grad():
            return rate_stats(sample_rates(net(probe.x)["hidden"], probe.lengths, depth), cfg.target_rate)

    start = distance()
    order = train.batch_order(16, shuffle=True, seed=0)
    for i in range(40):
        ip_step(net, train, [order[i % len(order)]], cfg, depth)
    end = distance()
    assert start["mean"] > 2 * cfg.target_rate
    assert abs(end["mean"] - cfg.target_rate) < 0.5 * abs(start["mean"] - cfg.target_rate)
    assert end["w1"] < 0.5 * start["w1"]
    after = net.state_dict()
    changed = {key for key in before if not torch.equal(before[key], after[key])}
    assert changed == {"layers.hidden.neuron.voltage_decay", "layers.hidden.neuron.input_gain"}


# --------------------------------------------------------------------------- the whole run

def strip_times(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


def log_of(run) -> list[dict]:
    return [json.loads(line) for line in (run / "search_log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, data):
    run = tmp_path_factory.mktemp("search") / "run"
    result = run_hrmas(space_from_dict(tiny_space()), data, run, plots=False)
    return run, result


def test_resume_after_an_interruption_gives_the_uninterrupted_result(tmp_path, data, uninterrupted):
    ref_run, ref_result = uninterrupted
    run = tmp_path / "run"

    def crash(step, total):
        if step == 7:  # after the checkpoint at step 6, before the one at 8 (end of epoch 2)
            raise Interrupted()

    with pytest.raises(Interrupted):
        run_hrmas(space_from_dict(tiny_space()), data, run, on_step=crash, plots=False)
    state = torch.load(run / "search_state.pt", weights_only=True)
    assert state["step"] == 6 and not state["done"]
    result = run_hrmas(space_from_dict(tiny_space()), data, run, resume=True, plots=False)
    assert strip_times(log_of(run)) == strip_times(log_of(ref_run))
    assert yaml.safe_load((run / "arch.yaml").read_text()) == yaml.safe_load((ref_run / "arch.yaml").read_text())
    a, b = (load_checkpoint(r / "model.pt")["state_dict"] for r in (run, ref_run))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert result["test"] == ref_result["test"]


def test_search_cli_writes_every_output(tmp_path, capsys):
    space_file = tmp_path / "space.yaml"
    space_file.write_text(yaml.safe_dump(tiny_space(search={"epochs": 2})))
    run = tmp_path / "run"
    capsys.readouterr()
    assert main(["search", "--space", str(space_file), "--data", "events-digits", "-o", str(run),
                 "--limit", str(LIMIT), "--seed", "3", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["searched_layers"]["hidden"]["motif_size"] in (2, 4)
    for name in ("arch.yaml", "model.pt", "model.metrics.json", "search_log.jsonl", "search_state.pt",
                 "result.json", "alpha_hidden.png", "motif_hidden.png", "rates.png"):
        assert (run / name).stat().st_size > 0, name
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], "the working directory was left"
    # The reported test accuracy is the written model's, as `rsnn2chip eval` measures it on the same split.
    assert main(["eval", str(run / "model.pt"), "--data", "events-digits", "--split", "test",
                 "--limit", str(LIMIT), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == summary["test_accuracy"]
    for png in run.glob("*.png"):
        assert png.read_bytes()[:4] == b"\x89PNG"
    records = log_of(run)
    steps = [r for r in records if r["kind"] == "step"]
    assert steps and {"alpha", "rates", "intrinsic", "train_loss", "val_loss"} <= set(steps[-1])
    assert set(steps[-1]["rates"]["hidden"]) >= {"mean", "sd", "silent", "w1", "ks"}
    assert any(r["kind"] == "probe" for r in records)
    state = torch.load(run / "search_state.pt", weights_only=True)  # tensors and plain data only
    assert state["done"] and state["space"]["search"]["seed"] == 3
    model = model_from_checkpoint(run / "model.pt")
    assert model.layers["hidden"].cfg["type"] == "scml"
    # The arch file is a plain arch that `rsnn2chip train` accepts.
    arch = yaml.safe_load((run / "arch.yaml").read_text())
    assert check_arch(arch) == []
    assert main(["train", "--arch", str(run / "arch.yaml"), "--data", "events-digits", "--epochs", "1",
                 "--limit", "32", "-o", str(tmp_path / "again.pt"), "--json"]) == 0


@pytest.mark.lava
def test_searched_model_compiles_and_runs_identically_in_lava(tmp_path, data, capsys):
    """search (tiny) -> model.pt -> compile for loihi2-sim -> run in Lava with --compare."""
    run = tmp_path / "run"
    run_hrmas(space_from_dict(tiny_space(search={"epochs": 2})), data, run, plots=False)
    net = tmp_path / "net.r2c"
    assert main(["compile", str(run / "model.pt"), "--target", "loihi2-sim", "-o", str(net), "--json"]) == 0
    _, _, test = data
    x = test.make_batch(np.arange(2)).x.numpy().astype(np.int8)  # (2, 12, 200) real test samples
    np.save(tmp_path / "x.npy", x)
    capsys.readouterr()
    code = main(["run", str(net), "--input", str(tmp_path / "x.npy"), "--steps", "16", "--compare", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["comparison"] == "identical"
    assert sum(result["lava"]["spike_counts"].values()) > 0


def test_inherited_model_equals_a_confident_supernet():
    """With one-hot alphas the argmax network carrying the supernet's weights computes the same spikes."""
    for layer_cfg in ({"type": "scml_search", "name": "hidden", "size": 8, "neuron": dict(NEURON),
                       "motif_sizes": [2, 4]},
                      {"type": "unstructured_search", "name": "hidden", "size": 8, "neuron": dict(NEURON)}):
        net = supernet(tiny_space(layers=[layer_cfg, tiny_space()["layers"][1]]), seed=2)
        with torch.no_grad():
            for alpha in net.alpha_parameters():  # argmax unchanged, softmax one-hot
                one_hot = F.one_hot(alpha.argmax(-1), alpha.shape[-1]).to(alpha)
                alpha.copy_(60.0 * (2 * one_hot - 1))
            net.layers["hidden"].neuron.input_gain.mul_(1.5)
        x = (torch.rand(3, 12, 200) < 0.2).float()
        model = net.inherited_model()
        assert torch.allclose(model.layers["hidden"].effective_recurrent_weights(),
                              net.layers["hidden"].mixed_recurrent_weights(), atol=1e-6)
        assert torch.equal(model(x)["hidden"], net(x)["hidden"])
        assert torch.equal(model.layers["hidden"].neuron.input_gain, net.layers["hidden"].neuron.input_gain)


def test_uniform_alphas_still_give_the_supernet_recurrence():
    """Each signed type has its own magnitude, so a mixture at uniform alphas is not (q_exc - q_inh) * m = 0."""
    for layer_cfg in tiny_space()["layers"][0], {"type": "unstructured_search", "name": "hidden", "size": 8,
                                                  "neuron": dict(NEURON)}:
        net = supernet(tiny_space(layers=[layer_cfg, tiny_space()["layers"][1]]))
        with torch.no_grad():
            for alpha in net.alpha_parameters():
                alpha.zero_()
        mixed = net.layers["hidden"].mixed_recurrent_weights()
        assert mixed.abs().mean() > 0.01 and (mixed > 0).any() and (mixed < 0).any()


def test_a_cold_supernet_is_its_own_argmax_network():
    """At a low temperature the mixture computes what discretisation keeps, with the alphas left as they are."""
    net = supernet(seed=4)
    with torch.no_grad():
        for alpha in net.alpha_parameters():
            alpha.normal_(0, 0.5)
    x = (torch.rand(2, 12, 200) < 0.2).float()
    warm = net.layers["hidden"].mixed_recurrent_weights()
    net.set_temperature(1e-4)
    model = net.inherited_model()
    assert not torch.allclose(warm, model.layers["hidden"].effective_recurrent_weights(), atol=1e-3)
    assert torch.allclose(model.layers["hidden"].effective_recurrent_weights(),
                          net.layers["hidden"].mixed_recurrent_weights(), atol=1e-6)
    assert torch.equal(model(x)["hidden"], net(x)["hidden"])
    assert net.entropy() < 1e-3 and supernet(seed=4).entropy() > 0.999


def test_temperature_anneals_geometrically_over_the_alpha_steps():
    cfg = space_from_dict(tiny_space(search={"temperature_start": 2.0, "temperature_end": 0.02,
                                             "warmup_steps": 10})).search
    assert temperature_at(cfg, 0, 111) == temperature_at(cfg, 10, 111) == 2.0
    assert temperature_at(cfg, 60, 111) == pytest.approx(0.2)
    assert temperature_at(cfg, 110, 111) == pytest.approx(0.02)


def test_a_decisive_search_ends_decided_and_can_warm_start_the_retraining(tmp_path, data):
    """Entropy term + annealing end near one-hot with a small discretisation drop, both reported; with
    ``retrain.init: inherit`` the retraining starts from the supernet's weights (lr ~ 0 keeps them)."""
    results = {}
    for name, search, retrain in (("plain", {"temperature_end": 1.0, "entropy_weight": 0.0}, {}),
                                  ("decisive", {"entropy_weight": 1.0, "temperature_end": 0.05},
                                   {"init": "inherit", "lr": 1e-12})):
        space = space_from_dict(tiny_space(search={**search, "epochs": 2}, retrain=retrain))
        results[name] = run_hrmas(space, data, tmp_path / name, plots=False)
        assert set(results[name]["discretisation"]) == {"supernet_val_accuracy", "argmax_val_accuracy", "drop"}
    plain, decisive = (results[n]["entropy"]["hidden"] for n in ("plain", "decisive"))
    assert decisive["types"] < 0.5 * plain["types"] and decisive["size"] < plain["size"]
    assert decisive["types"] <= decisive["types_max"] <= 1 and plain["types_max"] > decisive["types_max"]
    assert abs(results["decisive"]["discretisation"]["drop"]) <= abs(results["plain"]["discretisation"]["drop"])
    state = load_checkpoint(tmp_path / "decisive" / "model.pt")["state_dict"]
    searched = torch.load(tmp_path / "decisive" / "search_state.pt", weights_only=True)["model"]
    assert torch.allclose(state["layers.output.w_in"], searched["layers.output.w_in"], atol=1e-6)
    fresh = load_checkpoint(tmp_path / "plain" / "model.pt")["state_dict"]
    plain_searched = torch.load(tmp_path / "plain" / "search_state.pt", weights_only=True)["model"]
    assert not torch.allclose(fresh["layers.output.w_in"], plain_searched["layers.output.w_in"], atol=1e-2)


def test_search_on_a_file_with_only_train_and_test_carves_a_validation_split(tmp_path, capsys):
    """UCR/UEA-style files split train/test only; the search's alpha steps and the retraining need val."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(8, 16, 48)
    labels = np.arange(48) % 2
    t = [np.arange(n) for n in lengths]
    frames = np.concatenate([np.sin((0.2 + 0.3 * y) * x)[:, None] + 0.1 * rng.standard_normal((len(x), 1))
                             for x, y in zip(t, labels)]).astype(np.float32)
    np.savez(tmp_path / "series.npz", X=frames, lengths=lengths.astype(np.int64), y=labels.astype(np.int64),
             split=np.where(np.arange(48) < 36, 0, 2).astype(np.int64))
    space_file = tmp_path / "space.yaml"
    space_file.write_text(yaml.safe_dump(tiny_space(search={"epochs": 1})))
    capsys.readouterr()
    assert main(["search", "--space", str(space_file), "--data", str(tmp_path / "series.npz"),
                 "-o", str(tmp_path / "run"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["splits"]["val"] > 0 and result["splits"]["train"] + result["splits"]["val"] == 36
    assert result["splits"]["test"] == 12 and 0 <= summary["test_accuracy"] <= 1


def test_the_example_space_with_defaults_learns_a_tiny_data_set(tmp_path, capsys):
    """What a new user runs first: the shipped space on a small file of their own (4 spoken digits, 10
    training recordings each, train and test splits only). It must decide, and beat chance by far."""
    from rsnn2chip.data.fsdd import load_raw
    frames, lengths, labels = load_raw()
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    rng = np.random.default_rng(7)
    picked = np.concatenate([rng.permutation(np.flatnonzero(labels == d))[:30] for d in (4, 5, 6, 7)])
    split = np.tile(np.repeat([0, 2], [10, 20]), 4)
    np.savez(tmp_path / "digits4.npz", X=np.concatenate([frames[starts[i]:starts[i] + lengths[i]] for i in picked]),
             lengths=lengths[picked], y=labels[picked] - 4, split=split)
    capsys.readouterr()
    space = Path(__file__).resolve().parents[1] / "examples" / "search" / "space_fsdd.yaml"
    assert main(["search", "--space", str(space), "--data", str(tmp_path / "digits4.npz"),
                 "-o", str(tmp_path / "run"), "--no-plots", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert summary["test_accuracy"] >= 0.6, summary  # chance is 0.25
    assert result["entropy"]["hidden"]["types"] < 0.1 and result["entropy"]["hidden"]["size"] < 0.1
    assert result["searched_layers"]["hidden"]["size"] == 128
