"""Training and evaluation through the CLI: checkpoints, metrics, determinism, and every eval backend."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import yaml

from rsnn2chip.checkpoint import load_checkpoint, model_from_checkpoint
from rsnn2chip.cli import main
from rsnn2chip.data import load_dataset
from rsnn2chip.errors import InputError
from rsnn2chip.nn import example_arch
from rsnn2chip.readout import READOUTS
from rsnn2chip.train import evaluate, resolve_arch

from conftest import cli_json

NEURON = {"current_decay": 0.5, "voltage_decay": 0.2, "threshold": 1.0, "bias": 0.0}


@pytest.fixture(scope="module")
def arch_file(tmp_path_factory):
    arch = {"format": "rsnn2chip.arch", "version": 1, "name": "tiny", "input_size": "auto", "readout": "spike_count",
            "layers": [{"type": "lif_recurrent", "name": "hidden", "size": 24, "neuron": NEURON},
                       {"type": "lif_dense", "name": "output", "size": "auto", "neuron": NEURON}]}
    path = tmp_path_factory.mktemp("arch") / "tiny.yaml"
    path.write_text(yaml.safe_dump(arch))
    return path



def train_args(arch_file, output, data="events-digits", seed=0, extra=()) -> list[str]:
    return ["train", "--arch", str(arch_file), "--data", data, "--epochs", "1", "--limit", "96", "--seed", str(seed),
            "--batch-size", "32", "-o", str(output), *extra]


def without_timings(metrics: dict) -> dict:
    metrics = json.loads(json.dumps(metrics))
    metrics.pop("model")
    metrics.pop("seconds")
    metrics.pop("train_samples_per_s")
    metrics.get("test", {}).pop("samples_per_s", None)
    for row in metrics["evaluations"]:
        row.pop("seconds")
    return metrics


@pytest.fixture(scope="module")
def trained(tmp_path_factory, arch_file):
    """One small events-digits model trained through the CLI, shared by the eval tests."""
    out = tmp_path_factory.mktemp("run") / "model.pt"
    assert main(train_args(arch_file, out, extra=["--json"])) == 0
    return out


def test_train_writes_checkpoint_and_metrics(trained):
    metrics = json.loads(trained.with_name("model.metrics.json").read_text())
    # 96 samples: the batch is capped at 96 // 8 = 12 so that an epoch is 8 optimizer steps
    assert metrics["budget"]["batch_size"] == 12 and metrics["budget"]["total_steps"] == 8
    assert metrics["format"] == "rsnn2chip.metrics" and [r["step"] for r in metrics["evaluations"]] == list(range(1, 9))
    row = metrics["evaluations"][-1]
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "mean_spike_rate"):
        assert math.isfinite(row[key])
    assert set(row["spike_rate"]) == {"hidden", "output"}
    assert metrics["splits"] == {"train": 96, "val": 96} and metrics["dataset"]["derived"] is True
    payload = load_checkpoint(trained)
    assert payload["arch"]["input_size"] == 200 and payload["arch"]["layers"][-1]["size"] == 10
    meta = payload["meta"]
    assert meta["encoding"]["kind"] == "saccade_events" and meta["readout"]["kind"] == "spike_count"
    assert meta["dataset"]["name"] == "events-digits" and meta["training"]["steps_done"] == 8
    assert 0 <= metrics["test"]["accuracy"] <= 1 and metrics["test"]["samples"] == 96
    assert meta["training"]["test_accuracy"] == metrics["test"]["accuracy"]


def test_training_is_deterministic_under_a_seed(tmp_path, arch_file, capsys):
    runs = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        code, _ = cli_json(capsys, train_args(arch_file, tmp_path / f"{name}.pt", data="fsdd", seed=seed))
        assert code == 0
        runs.append(without_timings(json.loads((tmp_path / f"{name}.metrics.json").read_text())))
    assert runs[0] == runs[1]
    assert runs[0]["evaluations"] != runs[2]["evaluations"]
    a, b = (model_from_checkpoint(tmp_path / f"{n}.pt").state_dict() for n in "ab")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert runs[0]["dataset"]["name"] == "fsdd" and runs[0]["arch"]["input_size"] == 13  # graded: one channel per MFCC


def test_eval_float_matches_direct_evaluation(trained, capsys):
    code, result = cli_json(capsys, ["eval", str(trained), "--data", "events-digits", "--limit", "60"])
    assert code == 0 and result["backend"] == "float" and result["samples"] == 60
    data = load_dataset("events-digits", "test", limit=60)
    direct = evaluate(model_from_checkpoint(trained), data)
    assert result["accuracy"] == direct["accuracy"] and result["mean_spike_rate"] == direct["mean_spike_rate"]
    assert result["samples_per_s"] > 0 and result["dataset"]["derived"] is True


def test_prediction_does_not_depend_on_batching(trained):
    model = model_from_checkpoint(trained)
    digits = load_dataset("events-digits", "val", limit=40)
    # different lengths in one batch: truncate half the samples so padding appears after them
    digits.samples = [s[:6] if i % 2 else s for i, s in enumerate(digits.samples)]
    digits.lengths = np.array([s.shape[0] for s in digits.samples])
    one = evaluate(model, digits, batch_size=1)["predictions"]
    many = evaluate(model, digits, batch_size=40)["predictions"]
    assert np.array_equal(one, many)


def test_compile_then_eval_reference_agrees_with_qat(trained, tmp_path, capsys):
    net = tmp_path / "net.r2c"
    code, _ = cli_json(capsys, ["compile", str(trained), "-o", str(net)])
    assert code == 0
    code, ref = cli_json(capsys, ["eval", str(net), "--data", "events-digits", "--limit", "24", "--batch-size", "12"])
    assert code == 0 and ref["backend"] == "reference" and ref["samples"] == 24
    assert ref["notes"] == []  # the artifact carries the training encoding
    assert ref["output_population"] == "output" and ref["readout_depth"] == 2
    code, qat = cli_json(capsys, ["eval", str(trained), "--data", "events-digits", "--limit", "24", "--backend", "qat"])
    assert code == 0
    # QAT's forward pass is the reference backend's arithmetic, so the two agree exactly.
    assert qat["accuracy"] == ref["accuracy"]
    assert qat["spike_rate"] == pytest.approx(ref["spike_rate"], abs=1e-12)


def test_artifact_is_self_contained_without_its_checkpoint(trained, tmp_path, capsys):
    moved = tmp_path / "model.pt"
    moved.write_bytes(trained.read_bytes())
    net = tmp_path / "net.r2c"
    assert cli_json(capsys, ["compile", str(moved), "-o", str(net)])[0] == 0
    moved.unlink()  # eval must not need the checkpoint to encode inputs as training did
    code, ref = cli_json(capsys, ["eval", str(net), "--data", "events-digits", "--limit", "12"])
    assert code == 0 and ref["notes"] == []
    from rsnn2chip import artifact
    prov = artifact.load(net).provenance
    assert prov["encoding"] and prov["dataset"]["name"] == "events-digits"
    assert prov["quantization"]["threshold_mantissa_target"] == 2048


def test_train_with_qat_runs(tmp_path, arch_file, capsys):
    code, result = cli_json(capsys, train_args(arch_file, tmp_path / "q.pt", extra=["--qat"]))
    assert code == 0 and math.isfinite(result["final"]["train_loss"])
    assert load_checkpoint(tmp_path / "q.pt")["meta"]["qat"] == {"enabled": True, "target": "loihi2-sim"}


def test_cli_errors_are_input_errors(tmp_path, trained, arch_file, capsys):
    assert main(["eval", str(trained), "--data", "events-digits", "--backend", "reference"]) == 2
    assert "runs compiled networks" in capsys.readouterr().err
    assert main(["eval", str(trained), "--data", "fsdd"]) == 2
    assert "trained on 'events-digits', not on 'fsdd'" in capsys.readouterr().err
    assert main(["train", "--arch", str(tmp_path / "none.yaml"), "--data", "fsdd", "-o", str(tmp_path / "m.pt")]) == 2
    assert "arch file not found" in capsys.readouterr().err
    assert main(train_args(arch_file, tmp_path / "m.pt", data="nope")) == 2
    assert "unknown dataset" in capsys.readouterr().err


def test_arch_errors_name_the_arch_file_and_stop_before_training(tmp_path, arch_file, capsys):
    """The arch's own checks know only its content; the error still names the file, and nothing is written."""
    arch = yaml.safe_load(arch_file.read_text())
    arch["layers"][0]["neuron"] = {**NEURON, "current_decay": 2.0}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(arch))
    assert main(train_args(bad, tmp_path / "m.pt")) == 2
    err = capsys.readouterr().err
    assert "neuron.current_decay must lie in [0, 1]" in err and f"file:     {bad}" in err
    assert not (tmp_path / "m.pt").exists()


def test_resolve_arch_and_readout_window():
    arch = example_arch("a", "auto", (8, "auto"))
    resolved = resolve_arch(arch, 12, 5)
    assert resolved["input_size"] == 12 and resolved["layers"][-1]["size"] == 5 and arch["input_size"] == "auto"
    with pytest.raises(InputError, match="only the last layer"):
        resolve_arch(example_arch("a", "auto", ("auto", 4)), 12, 4)
    with pytest.raises(InputError, match="fewer neurons than the dataset has classes"):
        resolve_arch(example_arch("a", 12, (8, 3)), 12, 5)
    spikes = torch.ones(2, 6, 3)
    lengths = torch.tensor([1, 3])
    assert READOUTS["spike_count"].logits(spikes, lengths, depth=2).tolist() == [[3, 3, 3], [5, 5, 5]]
    # membrane: the mean over the window, so the trace's level, whatever the window's length
    voltage = torch.arange(6.0)[None, :, None].expand(2, 6, 3)
    assert READOUTS["membrane"].logits(voltage, lengths, depth=2).tolist() == [[1.0] * 3, [2.0] * 3]
    assert READOUTS["membrane"].scores(voltage.numpy(), lengths.numpy(), depth=2).tolist() == [[3] * 3, [10] * 3]
