"""Raw features in: run and verify encode real-valued input with the encoding training recorded."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import rsnn2chip  # noqa: F401
from rsnn2chip.checkpoint import save_checkpoint
from rsnn2chip.cli import main as cli_main
from rsnn2chip.data.encoding import DeltaEncoder
from rsnn2chip.nn import RSNN, example_arch

FEATURES = 4


@pytest.fixture
def trained_on_features(tmp_path):
    """A checkpoint whose training encoded 4 real-valued features with the delta encoder, compiled."""
    rng = np.random.default_rng(0)
    encoder = DeltaEncoder().fit(rng.normal(2.0, 3.0, (500, FEATURES)))
    torch.manual_seed(0)
    model = RSNN(example_arch(input_size=encoder.channels_out, sizes=(16, 3)))
    save_checkpoint(tmp_path / "model.pt", model, {"encoding": encoder.to_dict()})
    assert cli_main(["compile", str(tmp_path / "model.pt"), "-o", str(tmp_path / "net.r2c")]) == 0
    features = rng.normal(2.0, 3.0, (30, FEATURES))
    np.save(tmp_path / "raw.npy", features)
    spikes = encoder.encode(features, np.array([30]))[0]
    np.save(tmp_path / "spikes.npy", spikes)
    return tmp_path


def run_json(capsys, argv) -> dict:
    capsys.readouterr()
    assert cli_main(argv + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_run_encodes_raw_features_as_training_did(trained_on_features, capsys):
    d = trained_on_features
    raw = run_json(capsys, ["run", str(d / "net.r2c"), "--input", str(d / "raw.npy")])
    spikes = run_json(capsys, ["run", str(d / "net.r2c"), "--input", str(d / "spikes.npy")])
    assert raw["reference"]["spike_counts"] == spikes["reference"]["spike_counts"]
    assert raw["reference"]["steps"] == 30 * DeltaEncoder().repeat
    assert "delta" in raw["input"][0]
    assert sum(spikes["reference"]["spike_counts"].values()) > 0


@pytest.mark.lava
def test_verify_encodes_raw_features(trained_on_features, capsys):
    d = trained_on_features
    result = run_json(capsys, ["verify", str(d / "model.pt"), str(d / "net.r2c"), "--input", str(d / "raw.npy")])
    assert result["lava_matches_reference"] and "delta" in result["warnings"][0]


def test_raw_features_without_a_recorded_encoding_are_refused(tmp_path, capsys):
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "model.pt", RSNN(example_arch(input_size=4, sizes=(8, 2))))
    assert cli_main(["compile", str(tmp_path / "model.pt"), "-o", str(tmp_path / "net.r2c")]) == 0
    np.save(tmp_path / "raw.npy", np.random.default_rng(0).normal(size=(10, 4)))
    capsys.readouterr()
    assert cli_main(["run", str(tmp_path / "net.r2c"), "--input", str(tmp_path / "raw.npy")]) == 2
    err = capsys.readouterr().err
    assert "no input encoding is recorded" in err and "--data NAME --index I" in err


def test_run_takes_a_data_set_sample(tmp_path, capsys):
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "model.pt", RSNN(example_arch(input_size=200, sizes=(8, 10))))
    assert cli_main(["compile", str(tmp_path / "model.pt"), "-o", str(tmp_path / "net.r2c")]) == 0
    result = run_json(capsys, ["run", str(tmp_path / "net.r2c"), "--data", "events-digits", "--index", "2"])
    assert "events-digits test sample 2" in " ".join(result["input"])
    assert cli_main(["run", str(tmp_path / "net.r2c")]) == 2  # neither --input nor --data
