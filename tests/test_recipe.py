"""The default training recipe, graded input and the membrane readout, end to end through the CLI.

Data: a small analog series set written by the test (3 classes of noisy sinusoids at different frequencies,
2 channels, 20..40 steps), in the npz format a user would write.
"""
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
from rsnn2chip.nn import prepare_torch
from rsnn2chip.train import TrainConfig, evaluate, lr_factor, plan_budget
from conftest import busy

ROOT_ARCH = {"format": "rsnn2chip.arch", "version": 1, "name": "series", "input_size": "auto",
             "readout": "membrane",
             "layers": [{"type": "lif_recurrent", "name": "hidden", "size": 24,
                         "neuron": {"current_decay": 0.5, "voltage_decay": 0.2, "threshold": 1.0, "bias": 0.0}},
                        {"type": "lif_dense", "name": "output", "size": "auto",
                         "neuron": {"current_decay": 0.5, "voltage_decay": 0.2, "threshold": 1.0, "bias": 0.0}}]}


def series_npz(path, n_per_class: int = 20, split: bool = False, seed: int = 0):
    rng = np.random.default_rng(seed)
    frames, lengths, labels = [], [], []
    for cls, freq in enumerate((0.1, 0.2, 0.35)):
        for _ in range(n_per_class):
            t = np.arange(rng.integers(20, 41))
            phase = rng.uniform(0, 2 * math.pi)
            x = np.stack([np.sin(2 * math.pi * freq * t + phase), np.cos(2 * math.pi * freq * t + phase)], 1)
            frames.append((3.0 * x + 0.3 * rng.standard_normal(x.shape) + 10.0).astype(np.float32))
            lengths.append(len(t))
            labels.append(cls)
    arrays = {"X": np.concatenate(frames), "lengths": np.array(lengths, np.int64), "y": np.array(labels, np.int64)}
    if split:  # official train / test only, as UCR files come: no validation split
        arrays["split"] = np.array([0 if i % 4 else 2 for i in range(len(labels))], np.int64)
    np.savez(path, **arrays)
    return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    prepare_torch()
    d = tmp_path_factory.mktemp("recipe")
    (d / "arch.yaml").write_text(yaml.safe_dump(ROOT_ARCH))
    series_npz(d / "series.npz")
    return d


def cli(capsys, argv) -> tuple[int, dict]:
    capsys.readouterr()
    code = main(argv + ["--json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else {}


# --------------------------------------------------------------------------- budget and schedule

def test_budget_scales_with_the_data_and_caps_the_batch():
    cfg = TrainConfig()
    tiny = plan_budget(40, cfg)
    assert tiny.batch_size == 5 and tiny.steps_per_epoch == 8 and tiny.total_steps == cfg.min_steps
    fsdd = plan_budget(2100, cfg)
    assert fsdd.batch_size == 32 and fsdd.total_steps == min(cfg.budget_epochs * 66, cfg.max_steps)
    huge = plan_budget(10 ** 6, cfg)
    assert huge.total_steps == cfg.max_steps
    assert plan_budget(40, TrainConfig(epochs=3)).total_steps == 24
    assert plan_budget(40, TrainConfig(steps=7)).total_steps == 7
    for budget in (tiny, fsdd, huge):  # about EVALUATIONS validations, evenly spaced, whatever an epoch is
        assert 30 <= budget.total_steps / budget.eval_every <= 40


def test_learning_rate_warms_up_then_decays_to_the_floor():
    cfg = TrainConfig()
    budget = plan_budget(2100, cfg)
    factors = [lr_factor(s, budget, cfg) for s in range(budget.total_steps)]
    peak = budget.warmup_steps
    assert factors[0] < 0.05 and factors[peak] == pytest.approx(1.0)
    assert all(a <= b for a, b in zip(factors[:peak], factors[1:peak + 1]))
    assert all(a >= b for a, b in zip(factors[peak:], factors[peak + 1:]))
    assert factors[-1] == pytest.approx(cfg.final_lr_fraction, abs=1e-3)


# --------------------------------------------------------------------------- train -> compile -> run

@pytest.fixture(scope="module")
def trained(workdir):
    model = workdir / "model.pt"
    assert main(["train", "--arch", str(workdir / "arch.yaml"), "--data", str(workdir / "series.npz"),
                 "--steps", "120", "--patience", "0", "-o", str(model), "--json"]) == 0
    return model


def test_graded_input_is_the_default_for_analog_data_and_is_recorded(trained, workdir):
    metrics = json.loads(trained.with_name("model.metrics.json").read_text())
    data = load_dataset(str(workdir / "series.npz"), "test", encoding=None)
    assert data.encoding["kind"] == "graded" and data.n_channels == 2
    values = np.concatenate(list(data.samples))
    assert (values * 32 == np.rint(values * 32)).all() and np.abs(values).max() <= 127 / 32
    assert metrics["readout"]["kind"] == "membrane" and metrics["test"]["samples"] == len(data)
    assert metrics["test"]["accuracy"] > 0.6, "noisy sinusoids of 3 frequencies are easy"
    assert metrics["test"]["synops_per_sample"] > 0


def test_the_checkpoint_is_the_best_validation_model(trained, workdir):
    metrics = json.loads(trained.with_name("model.metrics.json").read_text())
    best = max(metrics["evaluations"], key=lambda r: (r["val_accuracy"], -r["val_loss"]))
    assert metrics["best_val"]["step"] == best["step"]
    model = model_from_checkpoint(trained)
    train_data = load_dataset(str(workdir / "series.npz"), "train")
    val = load_dataset(str(workdir / "series.npz"), "val", encoding=train_data.encoding)
    again = evaluate(model, val)
    assert again["accuracy"] == best["val_accuracy"] and again["loss"] == pytest.approx(best["val_loss"], rel=1e-5)


@pytest.mark.lava
def test_membrane_readout_with_graded_input_is_exact_from_qat_to_lava(trained, workdir, capsys, tmp_path):
    net = tmp_path / "net.r2c"
    assert main(["compile", str(trained), "-o", str(net), "--json"]) == 0
    data = ["--data", str(workdir / "series.npz")]
    code, float_eval = cli(capsys, ["eval", str(trained), *data, "--backend", "float"])
    code_q, qat = cli(capsys, ["eval", str(trained), *data, "--backend", "qat"])
    code_r, ref = cli(capsys, ["eval", str(net), *data, "--backend", "reference"])
    assert code == code_q == code_r == 0 and ref["readout"] == "membrane"
    assert qat["accuracy"] == ref["accuracy"] and abs(float_eval["accuracy"] - ref["accuracy"]) <= 0.15
    code_l, lava = cli(capsys, ["eval", str(net), *data, "--backend", "lava", "--limit", "4"])
    code_r4, ref4 = cli(capsys, ["eval", str(net), *data, "--backend", "reference", "--limit", "4"])
    assert code_l == code_r4 == 0 and lava["accuracy"] == ref4["accuracy"]
    # verify on one recording's raw features (encoded as in training): QAT == reference == Lava on the readout
    # voltage, same classes
    with np.load(workdir / "series.npz") as npz:
        raw = npz["X"][:npz["lengths"][0]]
    np.save(tmp_path / "x.npy", raw)
    code_v, verified = cli(capsys, ["verify", str(trained), str(net), "--input", str(tmp_path / "x.npy")])
    assert code_v == 0 and verified["readout"]["identical_trace"] == {"qat/reference": True, "reference/lava": True}
    classes = verified["readout"]["predicted_class"]
    assert classes["qat"] == classes["reference"] == classes["lava"]
    code_run, ran = cli(capsys, ["run", str(net), "--input", str(tmp_path / "x.npy"), "--compare"])
    assert code_run == 0 and ran["reference"]["predicted_class"] == classes["reference"]


def test_a_file_without_a_validation_split_gets_one_carved_from_train(tmp_path, workdir, capsys):
    path = series_npz(tmp_path / "official.npz", split=True)
    code, out = cli(capsys, ["train", "--arch", str(workdir / "arch.yaml"), "--data", str(path), "--steps", "8",
                             "-o", str(tmp_path / "m.pt")])
    assert code == 0
    metrics = json.loads((tmp_path / "m.metrics.json").read_text())
    assert metrics["splits"]["val"] > 0 and metrics["splits"]["train"] + metrics["splits"]["val"] == 45
    assert out["test_accuracy"] is not None and metrics["test"]["samples"] == 15


def test_delta_encoding_is_still_available(tmp_path, workdir, capsys):
    code, _ = cli(capsys, ["train", "--arch", str(workdir / "arch.yaml"), "--data", str(workdir / "series.npz"),
                           "--steps", "4", "--encoding", "delta", "-o", str(tmp_path / "d.pt")])
    assert code == 0
    meta = load_checkpoint(tmp_path / "d.pt")["meta"]
    assert meta["encoding"]["kind"] == "delta" and meta["dataset"]["n_channels"] == 12


def test_rate_regulariser_lowers_the_spike_rate(tmp_path, workdir, capsys):
    # A network that starts active, so the penalty has rate to remove.
    (tmp_path / "active.yaml").write_text(yaml.safe_dump(busy(ROOT_ARCH)))
    rates = {}
    for reg in ("0", "5"):
        code, out = cli(capsys, ["train", "--arch", str(tmp_path / "active.yaml"), "--data", str(workdir / "series.npz"),
                                 "--steps", "60", "--patience", "0", "--rate-reg", reg, "-o", str(tmp_path / f"{reg}.pt")])
        assert code == 0
        rates[reg] = json.loads((tmp_path / f"{reg}.metrics.json").read_text())["test"]["mean_spike_rate"]
    assert rates["5"] < 0.7 * rates["0"], rates


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA; the CUDA training test covers it")
def test_device_cuda_without_a_gpu_is_a_clear_error(tmp_path, workdir, capsys):
    code, err = cli(capsys, ["train", "--arch", str(workdir / "arch.yaml"), "--data", str(workdir / "series.npz"),
                             "--steps", "2", "--device", "cuda", "-o", str(tmp_path / "c.pt")])
    assert code == 2 and "CUDA" in json.dumps(err)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (runs on the GPU machine)")
def test_training_on_cuda_matches_the_cpu_run_closely(tmp_path, workdir, capsys):
    accs = {}
    for device in ("cpu", "cuda"):
        code, out = cli(capsys, ["train", "--arch", str(workdir / "arch.yaml"), "--data", str(workdir / "series.npz"),
                                 "--steps", "40", "--patience", "0", "--device", device, "-o",
                                 str(tmp_path / f"{device}.pt")])
        assert code == 0
        metrics = json.loads((tmp_path / f"{device}.metrics.json").read_text())
        assert metrics["device"].startswith(device)
        accs[device] = metrics["evaluations"][-1]["train_loss"]
    assert accs["cuda"] == pytest.approx(accs["cpu"], rel=0.05)


def test_surrogate_slope_reaches_every_layer_and_changes_only_the_gradient():
    from rsnn2chip.train import build_model, resolve_arch
    arch = resolve_arch(dict(ROOT_ARCH, readout="spike_count"), 2, 3)
    x = torch.rand(2, 10, 2) * 3
    grads = {}
    for slope in (2.0, 10.0):
        torch.manual_seed(0)
        model = build_model(arch, TrainConfig(surrogate_slope=slope))
        assert all(layer.neuron.surrogate_slope == slope for layer in model.layers.values())
        out = model(x)
        out["logits"].sum().backward()
        grads[slope] = (out["hidden"].detach().clone(), model.layers["hidden"].w_in.grad.clone())
    assert torch.equal(grads[2.0][0], grads[10.0][0])  # same forward
    assert not torch.equal(grads[2.0][1], grads[10.0][1])  # other gradient
