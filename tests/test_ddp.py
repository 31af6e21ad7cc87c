"""Data-parallel training under torchrun (2 CPU processes, gloo) takes the same steps as one process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from rsnn2chip.checkpoint import load_checkpoint
from rsnn2chip.cli import main
from rsnn2chip.distributed import DistEnv, shard

REPO = Path(__file__).resolve().parent.parent
NEURON = {"current_decay": 0.5, "voltage_decay": 0.2, "threshold": 1.0, "bias": 0.0}
# 40 samples in batches of 16: the last batch has 8, so the shards are uneven across batches.
COMMON = ["--data", "events-digits", "--limit", "40", "--seed", "1"]


def torchrun(args: list[str], timeout: int = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "rsnn2chip", *args]
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_shards_partition_every_batch():
    index = np.arange(11)
    parts = [shard(index, DistEnv(rank=r, world_size=3)) for r in range(3)]
    assert sorted(np.concatenate(parts).tolist()) == index.tolist()
    assert shard(index, DistEnv()) is index


@pytest.mark.slow  # minutes on two CPU cores; `make test-all` runs it
def test_torchrun_train_follows_the_single_process_loss_curve(tmp_path, capsys):
    arch = {"format": "rsnn2chip.arch", "version": 1, "name": "ddp", "input_size": "auto", "readout": "spike_count",
            "layers": [{"type": "lif_recurrent", "name": "hidden", "size": 16, "neuron": NEURON},
                       {"type": "lif_dense", "name": "output", "size": "auto", "neuron": NEURON}]}
    arch_file = tmp_path / "arch.yaml"
    arch_file.write_text(yaml.safe_dump(arch))
    args = ["train", "--arch", str(arch_file), *COMMON, "--epochs", "2", "--batch-size", "16"]
    assert main(args + ["-o", str(tmp_path / "one.pt"), "--json"]) == 0
    capsys.readouterr()
    torchrun(args + ["-o", str(tmp_path / "two.pt"), "--json"])
    one, two = (json.loads((tmp_path / f"{n}.metrics.json").read_text()) for n in ("one", "two"))
    assert (one["world_size"], two["world_size"]) == (1, 2)
    for a, b in zip(one["evaluations"], two["evaluations"], strict=True):
        for key in ("train_loss", "val_loss", "mean_spike_rate"):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), key
        assert b["train_accuracy"] == a["train_accuracy"] and b["val_accuracy"] == a["val_accuracy"]
    w1, w2 = (load_checkpoint(tmp_path / f"{n}.pt")["state_dict"] for n in ("one", "two"))
    for key in w1:
        assert torch.allclose(w1[key], w2[key], rtol=1e-4, atol=1e-5), key


@pytest.mark.slow  # minutes on two CPU cores; `make test-all` runs it
def test_torchrun_search_follows_the_single_process_search(tmp_path, capsys):
    space = {"format": "rsnn2chip.search-space", "version": 1, "name": "ddp", "input_size": "auto",
             "readout": "spike_count",
             "layers": [{"type": "scml_search", "name": "hidden", "size": 8, "neuron": NEURON, "motif_sizes": [2, 4]},
                        {"type": "lif_dense", "name": "output", "size": "auto", "neuron": NEURON}],
             "search": {"epochs": 2, "min_steps": 0, "batch_size": 16, "warmup_steps": 1, "log_every": 1, "probe_every": 0,
                        "alpha_lr": 0.05},
             "ip": {"eta_r": 0.5, "eta_tau": 0.5}, "retrain": {"epochs": 1, "batch_size": 16}}
    space_file = tmp_path / "space.yaml"
    space_file.write_text(yaml.safe_dump(space))
    args = ["search", "--space", str(space_file), *COMMON, "--no-plots", "--json"]
    assert main(args + ["-o", str(tmp_path / "one")]) == 0
    capsys.readouterr()
    torchrun(args + ["-o", str(tmp_path / "two")])
    logs = [[json.loads(line) for line in (tmp_path / n / "search_log.jsonl").read_text().splitlines()]
            for n in ("one", "two")]
    assert len(logs[0]) == len(logs[1]) > 0
    sizes = [json.loads((tmp_path / n / "result.json").read_text())["world_size"] for n in ("one", "two")]
    assert sizes == [1, 2]
    for a, b in zip(*logs):
        for key in ("train_loss", "val_loss"):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), key
        assert b["intrinsic"]["hidden"]["input_gain"] == pytest.approx(a["intrinsic"]["hidden"]["input_gain"],
                                                                       rel=1e-4)
    s1, s2 = (torch.load(tmp_path / n / "search_state.pt", weights_only=True)["model"] for n in ("one", "two"))
    for key in s1:
        assert torch.allclose(s1[key], s2[key], rtol=1e-4, atol=1e-5), key
