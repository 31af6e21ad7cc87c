"""Soft-LIF training as a library call: train a soft-LIF rate network on static images, convert it, and write
an ordinary spiking checkpoint (model.pt) that ``compile`` and ``eval`` read like any other.

``rsnn2chip train --neuron softlif`` (``commands/train.py``) checks its
arguments, calls :func:`train_softlif` and prints the result; nothing here
knows about the command line.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from rsnn2chip import readout
from rsnn2chip.backends import get_backend
from rsnn2chip.checkpoint import save_checkpoint
from rsnn2chip.compiler import compile_graph
from rsnn2chip.data import images
from rsnn2chip.errors import DesignRuleError, InputError, ModelError, Problem
from rsnn2chip.nn import prepare_torch
from rsnn2chip.nn.network import check_arch
from rsnn2chip.softlif import ann
from rsnn2chip.softlif.convert import META_KEY, Deployment, constants, to_rsnn
from rsnn2chip.softlif.rates import SoftLIFParams
from rsnn2chip.targets import load_target
from rsnn2chip.train import METRICS_FORMAT, deterministic, resolve_arch, seed_everything, write_json

NEURON_KEYS = ("current_decay", "voltage_decay", "threshold")

# A converted soft-LIF network is read by counting its output spikes.
SPIKE_COUNT = readout.READOUTS["spike_count"].describe()


def rate_layers(arch: dict) -> tuple[list[int], list[str]]:
    """Sizes and names of a chain of ``lif_dense`` layers: the only type a feed-forward rate net maps to."""
    problems = check_arch(arch)
    problems += [Problem("--neuron softlif trains feed-forward networks: every layer must be lif_dense",
                         where=f"layer {i} ({cfg.get('name')!r})", found=cfg.get("type"), allowed="lif_dense")
                 for i, cfg in enumerate(arch.get("layers") or []) if isinstance(cfg, dict)
                 and cfg.get("type") != "lif_dense"]
    if problems:
        raise ModelError(problems=problems)
    return [arch["input_size"]] + [cfg["size"] for cfg in arch["layers"]], [cfg["name"] for cfg in arch["layers"]]


def replaced_neuron_values(arch: dict, c: dict) -> list[str]:
    """Arch neuron values the conversion overrides (they follow from tau_RC, dt and the threshold)."""
    notes = []
    for cfg in arch["layers"]:
        changed = {k: cfg["neuron"][k] for k in NEURON_KEYS if cfg["neuron"][k] != c[k]}
        if changed:
            notes.append(f"layer {cfg['name']}: {changed} replaced by "
                         f"{ {k: c[k] for k in changed} } (derived from tau_RC and dt; docs/softlif.md)")
    return notes


def load_images(data: str, limit: int | None):
    name, _, root = data.partition(":")
    if name not in images.SOURCES:
        raise InputError("--neuron softlif trains on static images", found=data,
                         allowed=", ".join(images.SOURCES), fix="see docs/softlif.md")
    splits = {}
    for split in ("train", "val"):
        x, y, info = images.static_images(name, split, root or None)
        splits[split] = (x[:limit], y[:limit]) if limit else (x, y)
    return name, splits, info


def spiking_accuracy(model, x: np.ndarray, y: np.ndarray, spec: dict, target_name: str) -> dict:
    """Accuracy of the converted network on the reference backend (Loihi fixed point, bit-exact)."""
    try:
        art = compile_graph(model.to_ir(), load_target(target_name))
    except DesignRuleError as err:
        return {"accuracy": None, "reason": err.render()}
    tally = readout.tally_for(art)
    spikes = images.encode(x, spec).astype(np.int8)
    lengths = np.full(len(x), spikes.shape[1])
    spikes = np.concatenate([spikes, np.zeros((len(x), tally.depth, x.shape[1]), np.int8)], axis=1)
    with get_backend("reference").open(art) as session:
        for i in range(0, len(y), 256):
            readout.classify(session, spikes[i:i + 256], lengths[i:i + 256], y[i:i + 256], tally)
    return {"accuracy": tally.accuracy, "steps": spec["steps"], "target": target_name, "backend": "reference"}


@dataclass
class SoftLIFResult:
    metrics: dict  # as written to the metrics JSON
    spiking: dict  # spiking val accuracy of the converted network (see spiking_accuracy)
    notes: list[str]  # arch values the conversion replaced
    dataset: str
    n_train: int
    n_val: int
    steps: int  # time steps per image of the spike encoding
    seconds: float


def train_softlif(arch: dict, data: str, output: Path, metrics_path: Path, cfg: ann.ANNConfig, *, target: str,
                  limit: int | None = None, arch_file: str | None = None,
                  on_epoch: Callable[[dict], None] | None = None) -> SoftLIFResult:
    """Train, convert and save after every epoch (checkpoint and metrics); ``on_epoch`` sees each epoch's row."""
    prepare_torch()
    params, dep = SoftLIFParams(), Deployment()
    c = constants(params, dep)
    name, splits, info = load_images(data, limit)
    (x_tr, y_tr), (x_va, y_va) = splits["train"], splits["val"]
    arch = resolve_arch(arch, x_tr.shape[1], 10)
    sizes, names = rate_layers(arch)
    notes = replaced_neuron_values(arch, c)
    spec = images.encoding_spec(name, max_rate=dep.input_rate)
    dataset = {"name": name, "split": "train", "samples": len(y_tr), "n_channels": int(x_tr.shape[1]),
               "n_classes": 10, "derived": False, **info}
    metrics = {"format": METRICS_FORMAT, "version": 1, "model": str(output), "dataset": dataset | {"split": None},
               "splits": {"train": len(y_tr), "val": len(y_va)}, "config": cfg.to_dict(), "readout": SPIKE_COUNT,
               "arch": None, "epochs": [], "notes": notes}
    meta = {"dataset": dataset, "encoding": spec, "readout": SPIKE_COUNT, "arch_file": arch_file,
            "training": {"neuron": "softlif", "config": cfg.to_dict()}, "qat": {"enabled": False}}
    with deterministic():
        seed_everything(cfg.seed)
        net = ann.build(sizes, names, params, cfg)

        def save(row: dict) -> None:
            model, conv = to_rsnn(net, dep, arch["name"])
            metrics["epochs"].append(row)
            metrics["final"] = {k: v for k, v in row.items() if k != "seconds"}
            best = max(metrics["epochs"], key=lambda r: (r.get("val_accuracy") or 0.0, -r["epoch"]))
            metrics["best_val"] = {"epoch": best["epoch"], "val_accuracy": best.get("val_accuracy")}
            metrics["arch"] = model.arch()
            meta["training"].update(epochs_done=row["epoch"], final=metrics["final"])
            save_checkpoint(output, model, {**meta, META_KEY: conv})
            write_json(metrics_path, metrics)
            if on_epoch:
                on_epoch(row)

        start = time.perf_counter()
        ann.train(net, x_tr, y_tr, cfg, x_va, y_va, on_epoch=save)
    model, conv = to_rsnn(net, dep, arch["name"])
    spiking = spiking_accuracy(model, x_va, y_va, spec, target) if len(y_va) else {"accuracy": None}
    metrics["softlif"] = {**conv, "val_spiking": spiking}
    meta[META_KEY] = {**conv, "val_spiking": spiking}
    save_checkpoint(output, model, meta)
    write_json(metrics_path, metrics)
    return SoftLIFResult(metrics, spiking, notes, name, len(y_tr), len(y_va), spec["steps"],
                         time.perf_counter() - start)
