"""Shared test setup and the builders several test modules use (real components only).

Test modules import the builders with ``from conftest import ...`` (tests/ is on
``sys.path`` under pytest's default import mode); fixtures are found by name.
"""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import scipy.sparse as sp

import rsnn2chip  # noqa: F401  (installs the lava compatibility fix before any test imports lava)
from rsnn2chip import ir
from rsnn2chip.neurons.cuba_lif import CubaLIF
from rsnn2chip.cli import main
from rsnn2chip.targets import Target, load_target, target_from_dict


@pytest.fixture(scope="module")
def torch_settings():
    """The torch settings training uses (flush denormals, threads); modules opt in with ``pytestmark``."""
    from rsnn2chip.nn import prepare_torch

    prepare_torch()


def cli_json(capsys, argv: list[str]) -> tuple[int, dict]:
    """Run ``rsnn2chip ARGV --json``: the exit code and the parsed JSON on stdout (empty when there is none)."""
    capsys.readouterr()
    code = main(argv + ["--json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else {}


# --------------------------------------------------------------------------- IR networks and inputs

def lif(threshold=1.0, current_decay=0.3, voltage_decay=0.1, bias=0.0) -> CubaLIF:
    return CubaLIF(current_decay, voltage_decay, threshold, bias)


def small_graph(seed: int = 0, n_in: int = 6, n_rec: int = 16, n_out: int = 4, motif_size: int | None = 4,
                per_neuron_decay: bool = True) -> ir.nx.DiGraph:
    """input -> recurrent (motifs) -> readout, random float weights of both signs."""
    rng = np.random.default_rng(seed)
    g = ir.new_graph(f"small{seed}")
    ir.add_population(g, ir.Population("input", n_in, "input"))
    vdecay = rng.uniform(0.02, 0.2, n_rec) if per_neuron_decay else 0.1
    ir.add_population(g, ir.Population("rec", n_rec, "rec", CubaLIF(0.3, vdecay, 1.0, 0.01), motif_size))
    ir.add_population(g, ir.Population("out", n_out, "out", CubaLIF(0.3, 0.1, 1.0, 0.0)))
    ir.add_projection(g, ir.Projection("input", "rec", sp.csr_matrix(rng.uniform(0, 0.8, (n_rec, n_in)))))
    rec = rng.normal(0, 0.3, (n_rec, n_rec)) * (rng.random((n_rec, n_rec)) < 0.3)
    ir.add_projection(g, ir.Projection("rec", "rec", sp.csr_matrix(rec)))
    ir.add_projection(g, ir.Projection("rec", "out", sp.csr_matrix(rng.normal(0.1, 0.3, (n_out, n_rec)))))
    return g


def busy(arch: dict, init_scale: float = 1.0) -> dict:
    """``arch`` with every layer at twice the training default's initial drive.

    Tests of untrained random networks compare spikes; at the default drive (chosen for training) their
    deep layers are nearly silent, and equal silence proves nothing.
    """
    return {**arch, "layers": [{**layer, "init_scale": init_scale} for layer in arch["layers"]]}


def random_spikes(seed: int, steps: int, channels: int, rate: float = 0.3, batch: int | None = None) -> np.ndarray:
    shape = (steps, channels) if batch is None else (batch, steps, channels)
    return (np.random.default_rng(seed).random(shape) < rate).astype(np.int8)


# --------------------------------------------------------------------------- targets

def small_target(name: str = "tiny", *, chip: dict | None = None, enc: dict | None = None, quant: dict | None = None,
                 **core) -> Target:
    """loihi2-sim with small, easily hit limits; keyword arguments override [core] keys."""
    data = copy.deepcopy(load_target("loihi2-sim").data)
    data["target"]["name"] = name
    data["chip"].update({"cores": 64, "chips": 1, "mesh": [8, 8]})
    data["core"].update({"neurons": 64, "synapse_memory_bits": 40_000, "input_axons": 160, "output_axons": 160,
                         "neuron_profiles": 4, "threshold_profiles": 2})
    data["chip"].update(chip or {})
    data["core"].update(core)
    data["synapse_encoding"].update(enc or {})
    data["quantization"].update(quant or {})
    return target_from_dict(data, f"test target {name}")


# Per-neuron parameter ranges for exactness tests: values spread over several scales (input_gain included).
# A name the layer's neuron model does not have is skipped, so one table serves CUBA-LIF and ATRLIF.
SPREAD_RANGES = {"current_decay": (0.1, 0.9), "voltage_decay": (0.05, 0.5), "threshold": (0.5, 1.5),
                 "bias": (-0.05, 0.1), "input_gain": (0.5, 2.0), "threshold_decay": (0.01, 0.2),
                 "refractory_decay": (0.2, 0.9)}


def spread_parameters(model, seed: int, drive: float):
    """Draw every layer's neuron parameters from SPREAD_RANGES and scale its input weights by ``drive``."""
    import torch
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for lay in model.layers.values():
            for name, (lo, hi) in SPREAD_RANGES.items():
                if hasattr(lay.neuron, name):
                    getattr(lay.neuron, name).copy_(torch.from_numpy(rng.uniform(lo, hi, lay.size)))
            lay.w_in.mul_(drive)
    return model
