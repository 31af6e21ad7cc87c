"""How closely the compiled network (reference backend) follows the float PyTorch model it came from.

Compilation quantizes weights to 8-bit mantissas with a shared exponent and the
state to 24-bit integers, so spikes of neurons close to threshold flip and, in
recurrent layers, the flips propagate. The bounds asserted here are the
measured agreement (docs/backends.md, "Float model vs compiled network") less
a margin; a drop below them means the compiler lost fidelity it used to have.

Measures, per layer over the readout window of every sample:

* spike agreement: fraction of (sample, step, neuron) entries that are equal;
* spike-count correlation: Pearson r of per-(sample, neuron) spike counts;
* classification agreement: argmax of output spike counts equal in both.
"""
from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch
import yaml

from rsnn2chip.backends import run
from rsnn2chip.checkpoint import load_checkpoint, model_from_checkpoint
from rsnn2chip.cli import main
from rsnn2chip.compiler import compile_graph
from rsnn2chip.data import load_dataset
from rsnn2chip.nn import RSNN, example_arch, prepare_torch
from rsnn2chip.targets import load_target
from rsnn2chip.train import depth_of
from conftest import busy

NEURON = {"current_decay": 0.5, "voltage_decay": 0.2, "threshold": 1.0, "bias": 0.0}
TARGET = "loihi2-sim"

# Bounds: measured value (docs/backends.md) minus a margin.
TRAINED_BOUNDS = {"agreement": {"hidden": 0.95, "output": 0.96},
                  "count_corr": {"hidden": 0.97, "output": 0.95},
                  "class_agreement": 0.90, "accuracy_gap": 0.05}
RANDOM_BOUNDS = {"agreement": {"hidden0": 0.90, "output": 0.88},
                 "count_corr": {"hidden0": 0.95, "output": 0.90},
                 "class_agreement": 0.65}


def compare(model: RSNN, x: np.ndarray, window: np.ndarray) -> dict:
    """Float forward vs compiled reference run on spikes ``x`` (B, T, C); ``window`` (B, T) marks counted steps."""
    model.eval()
    with torch.no_grad():
        out = model(torch.from_numpy(x.astype(np.float32)))
    art = compile_graph(model.to_ir(), load_target(TARGET))
    res = run(art, x.astype(np.int8), x.shape[1], backend="reference")
    stats = {"agreement": {}, "count_corr": {}, "rate_float": {}, "rate_reference": {}}
    w3 = window[:, :, None]
    for name in model.layers:
        f = out[name].numpy().astype(bool)
        r = res.spikes[name]
        assert f.shape == r.shape
        stats["agreement"][name] = float((f == r)[window].mean())
        cf, cr = (f * w3).sum(axis=1).ravel(), (r * w3).sum(axis=1).ravel()
        stats["count_corr"][name] = float(np.corrcoef(cf, cr)[0, 1])
        stats["rate_float"][name] = float(f[window].mean())
        stats["rate_reference"][name] = float(r[window].mean())
    output = model.output_layer
    stats["pred_float"] = (out[output].numpy() * w3).sum(axis=1).argmax(axis=1)
    stats["pred_reference"] = (res.spikes[output] * w3).sum(axis=1).argmax(axis=1)
    stats["class_agreement"] = float((stats["pred_float"] == stats["pred_reference"]).mean())
    return stats


def check_bounds(stats: dict, bounds: dict) -> None:
    for kind in ("agreement", "count_corr"):
        for layer, bound in bounds[kind].items():
            assert stats[kind][layer] >= bound, (kind, layer, stats[kind][layer], bound)
    assert stats["class_agreement"] >= bounds["class_agreement"], stats["class_agreement"]
    for layer, rate in stats["rate_float"].items():  # the comparison means little for silent or saturated layers
        assert 0.01 < rate < 0.6, (layer, rate)


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory):
    """A small recurrent events-digits model, trained briefly (float, no QAT) through the CLI."""
    tmp = tmp_path_factory.mktemp("float_vs_ref")
    arch = {"format": "rsnn2chip.arch", "version": 1, "name": "fvr", "input_size": "auto",
            "readout": "spike_count",
            "layers": [{"type": "lif_recurrent", "name": "hidden", "size": 64, "neuron": NEURON},
                       {"type": "lif_dense", "name": "output", "size": "auto", "neuron": NEURON}]}
    (tmp / "arch.yaml").write_text(yaml.safe_dump(arch))
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["train", "--arch", str(tmp / "arch.yaml"), "--data", "events-digits", "--epochs", "6",
                     "--limit", "480", "--seed", "0", "--batch-size", "32", "-o", str(tmp / "model.pt"),
                     "--json"]) == 0
    return tmp / "model.pt"


@pytest.mark.slow  # minutes on two CPU cores; `make test-all` runs it
def test_trained_float_model_and_compiled_reference_agree(trained_model):
    prepare_torch()
    model = model_from_checkpoint(trained_model)
    meta = load_checkpoint(trained_model)["meta"]
    data = load_dataset("events-digits", "test", encoding=meta.get("encoding"), limit=200)
    depth = depth_of(model)
    batch = next(iter(data.batches(len(data), extra_steps=depth)))
    x = batch.x.numpy()
    window = np.arange(x.shape[1])[None, :] < (batch.lengths.numpy()[:, None] + depth)
    stats = compare(model, x, window)
    check_bounds(stats, TRAINED_BOUNDS)
    y = batch.y.numpy()
    gap = abs(float((stats["pred_float"] == y).mean()) - float((stats["pred_reference"] == y).mean()))
    assert gap <= TRAINED_BOUNDS["accuracy_gap"], gap


def test_random_float_model_and_compiled_reference_agree():
    """An untrained recurrent network (random init, ~10 % firing): fidelity is lower, but bounded."""
    prepare_torch()
    torch.manual_seed(0)
    model = RSNN(busy(example_arch(input_size=32, sizes=(128, 10))))
    rng = np.random.default_rng(0)
    x = (rng.random((64, 60, 32)) < 0.15).astype(np.int8)
    stats = compare(model, x, np.ones(x.shape[:2], bool))
    check_bounds(stats, RANDOM_BOUNDS)
