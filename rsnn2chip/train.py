"""Training an :class:`~rsnn2chip.nn.RSNN` with BPTT on spike data.

The readout is the **spike count** of the last layer over each sample's own
window, ``steps [0, length + depth)`` where ``depth`` is the number of layers:
every projection delays spikes by one step, so the last input step reaches
the output ``depth`` steps later. Cross-entropy is taken on these counts as
logits; the class is the neuron with the most spikes (ties -> lowest index,
as ``argmax`` does everywhere). This is the rule a chip can apply by counting
output spikes, and float, QAT, reference and Lava evaluation all use it, so
accuracy means the same thing on every backend (docs/data.md, "Readout").
Steps after a sample's window (batch padding) are ignored, so a prediction
does not depend on which other samples share its batch.
"""
from __future__ import annotations

import copy
import json
import math
import random
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from rsnn2chip import distributed
from rsnn2chip.checkpoint import save_checkpoint
from rsnn2chip.data.common import SpikeData
from rsnn2chip.errors import InputError
from rsnn2chip.nn import RSNN, prepare_torch
from rsnn2chip.nn.network import LOGITS_KEY

READOUT = {"kind": "spike_count", "window": "length + depth",
           "doc": "class = argmax over output neurons of spikes in steps [0, length + depth); depth = layers"}
METRICS_FORMAT = "rsnn2chip.metrics"
AUTO = "auto"


@dataclass
class TrainConfig:
    epochs: int = 8
    batch_size: int = 64
    lr: float = 3e-3
    seed: int = 0
    limit: int | None = None
    qat: bool = False
    target: str = "loihi2-sim"  # what --qat quantizes for
    # Spike-count logits are unbounded; one exploding batch early on can silence
    # a layer for good, so gradients are clipped to this norm.
    grad_clip: float = 1.0
    # "cosine" anneals the learning rate to lr/10 over the epochs: the last
    # epochs then refine instead of jumping between minima (val accuracy on
    # FSDD swings by several points from epoch to epoch at a constant rate).
    lr_schedule: str = "cosine"
    eval_batch_size: int = 256


# --------------------------------------------------------------------------- arch

def resolve_arch(arch: dict, n_channels: int, n_classes: int) -> dict:
    """Fill ``input_size: auto`` with the dataset's channels and a last-layer ``size: auto`` with its classes."""
    if not isinstance(arch, dict):
        raise InputError("arch must be a mapping", found=type(arch).__name__)
    arch = copy.deepcopy(arch)
    if arch.get("input_size") == AUTO:
        arch["input_size"] = n_channels
    layers = arch.get("layers")
    if isinstance(layers, list) and layers and isinstance(layers[-1], dict) and layers[-1].get("size") == AUTO:
        layers[-1]["size"] = n_classes
    if isinstance(layers, list):
        for i, cfg in enumerate(layers[:-1]):
            if isinstance(cfg, dict) and cfg.get("size") == AUTO:
                raise InputError("only the last layer's size may be 'auto' (= number of classes)",
                                 where=f"layer {i} ({cfg.get('name')!r})", found=AUTO)
    if arch.get("input_size") != n_channels:
        raise InputError("the arch's input_size does not match the dataset's channel count",
                         where="arch.input_size", found=arch.get("input_size"), allowed=n_channels,
                         fix="set input_size: auto")
    if isinstance(layers, list) and layers and isinstance(layers[-1], dict) \
            and isinstance(layers[-1].get("size"), int) and layers[-1]["size"] < n_classes:
        raise InputError("the output layer has fewer neurons than the dataset has classes",
                         where=f"layer {layers[-1].get('name')!r}", found=layers[-1]["size"], allowed=n_classes,
                         fix="set the last layer's size to auto")
    return arch


# --------------------------------------------------------------------------- readout

def depth_of(model: RSNN) -> int:
    return len(model.layers)


def window_mask(steps: int, lengths: torch.Tensor, depth: int) -> torch.Tensor:
    """``(B, steps)`` True inside each sample's readout window."""
    return torch.arange(steps, device=lengths.device)[None, :] < (lengths[:, None] + depth)


def readout_counts(spikes: torch.Tensor, lengths: torch.Tensor, depth: int) -> torch.Tensor:
    """``(B, T, n)`` output spikes -> ``(B, n)`` counts inside each sample's window."""
    mask = window_mask(spikes.shape[1], lengths, depth).to(spikes.dtype)
    return (spikes * mask[:, :, None]).sum(dim=1)


def layer_rates(outputs: dict[str, torch.Tensor], lengths: torch.Tensor, depth: int) -> dict[str, tuple[float, float]]:
    """Per layer: (spikes inside the windows, neuron-steps inside the windows)."""
    rates = {}
    for name, spikes in outputs.items():
        if name == LOGITS_KEY:
            continue
        mask = window_mask(spikes.shape[1], lengths, depth).to(spikes.dtype)
        rates[name] = (float((spikes.detach() * mask[:, :, None]).sum()), float(mask.sum()) * spikes.shape[2])
    return rates


# --------------------------------------------------------------------------- determinism

def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextmanager
def deterministic():
    """Deterministic kernels for the duration of a run, restoring the caller's setting after."""
    before = torch.are_deterministic_algorithms_enabled()
    warn_before = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn_before)


# --------------------------------------------------------------------------- evaluation

@torch.no_grad()
def evaluate(model: RSNN, data: SpikeData, batch_size: int = 256,
             on_batch: Callable[[int], None] | None = None) -> dict:
    """Loss, accuracy, spike rates and throughput of ``model`` on ``data`` (float or QAT forward)."""
    was_training = model.training
    model.eval()
    depth = depth_of(model)
    loss_sum, correct, totals = 0.0, 0, {}
    predictions = np.zeros(len(data), np.int64)
    device = next(model.parameters()).device
    start = time.perf_counter()
    for batch in data.batches(batch_size, extra_steps=depth):
        y, lengths = batch.y.to(device), batch.lengths.to(device)
        outputs = model(batch.x.to(device))
        counts = readout_counts(outputs[model.output_layer], lengths, depth)
        loss_sum += float(F.cross_entropy(counts, y, reduction="sum"))
        pred = counts.argmax(dim=1)
        predictions[batch.index] = pred.cpu().numpy()
        correct += int((pred == y).sum())
        for name, (spikes, slots) in layer_rates(outputs, lengths, depth).items():
            s, n = totals.get(name, (0.0, 0.0))
            totals[name] = (s + spikes, n + slots)
        if on_batch:
            on_batch(len(batch.y))
    wall = time.perf_counter() - start
    model.train(was_training)
    n = max(len(data), 1)
    return {"loss": loss_sum / n, "accuracy": correct / n, "samples": len(data),
            "spike_rate": rates_of(totals), "mean_spike_rate": mean_rate(totals),
            "samples_per_s": len(data) / wall if wall > 0 else math.inf, "predictions": predictions}


def rates_of(totals: dict) -> dict[str, float]:
    return {name: (s / n if n else 0.0) for name, (s, n) in totals.items()}


def mean_rate(totals: dict) -> float:
    spikes = sum(s for s, _ in totals.values())
    slots = sum(n for _, n in totals.values())
    return spikes / slots if slots else 0.0


# --------------------------------------------------------------------------- training

@dataclass
class TrainResult:
    model: RSNN
    metrics: dict


def build_model(arch: dict, cfg: TrainConfig) -> RSNN:
    model = RSNN(arch)
    if cfg.qat:
        # Imported here: QAT is optional and lives in its own module.
        from rsnn2chip.nn.qat import enable_qat
        from rsnn2chip.passes.quantize import QuantizationConfig
        from rsnn2chip.targets import load_target
        enable_qat(model, load_target(cfg.target), QuantizationConfig())
    return model


def train(arch: dict, train_data: SpikeData, val_data: SpikeData, cfg: TrainConfig, out_path: str | Path,
          metrics_path: str | Path | None = None, progress=None, extra_meta: dict | None = None,
          init_state: dict | None = None) -> TrainResult:
    """BPTT with Adam; writes ``out_path`` (checkpoint) after every epoch and ``metrics_path`` (JSON).

    ``progress`` is an optional ``rich.progress.Progress``. Two runs with the
    same config, data and seed give identical metrics (timings aside).
    ``init_state``: state_dict entries copied into the freshly initialised model
    (an architecture search keeps its adapted ``input_gain``, which the arch cannot hold).
    Under ``torchrun`` the batches are sharded over ranks (rsnn2chip/distributed.py)
    and only rank 0 writes files.
    """
    prepare_torch()
    env = distributed.setup()
    progress = progress if env.is_main else None
    with deterministic():
        seed_everything(cfg.seed)
        arch = resolve_arch(arch, train_data.n_channels, train_data.n_classes)
        model = build_model(arch, cfg)
        if init_state:
            state = model.state_dict()
            with torch.no_grad():
                for key, value in init_state.items():
                    state[key].copy_(value)
        model.to(env.device)
        net = distributed.wrap(model, env)
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        scheduler = make_scheduler(optimizer, cfg)
        depth = depth_of(model)
        metrics = {"format": METRICS_FORMAT, "version": 1, "model": str(out_path),
                   "dataset": train_data.describe() | {"split": None},
                   "splits": {"train": len(train_data), "val": len(val_data)},
                   "config": asdict(cfg), "readout": READOUT, "arch": model.arch(), "world_size": env.world_size,
                   "epochs": []}
        meta = {"dataset": metrics["dataset"], "encoding": train_data.encoding, "readout": READOUT,
                "training": {"config": asdict(cfg)}, "qat": {"enabled": cfg.qat, "target": cfg.target},
                **(extra_meta or {})}
        epoch_task = progress.add_task("epochs", total=cfg.epochs) if progress else None
        for epoch in range(1, cfg.epochs + 1):
            start = time.perf_counter()
            train_stats = train_epoch(model, optimizer, train_data, cfg, epoch, depth, progress, net=net, env=env)
            if scheduler:
                scheduler.step()
            val_stats = evaluate(model, val_data, cfg.eval_batch_size) if len(val_data) else None
            row = {"epoch": epoch, "train_loss": train_stats["loss"], "train_accuracy": train_stats["accuracy"],
                   "spike_rate": train_stats["spike_rate"], "mean_spike_rate": train_stats["mean_spike_rate"],
                   "val_loss": val_stats["loss"] if val_stats else None,
                   "val_accuracy": val_stats["accuracy"] if val_stats else None,
                   "seconds": time.perf_counter() - start}
            metrics["epochs"].append(row)
            metrics["final"] = {k: v for k, v in row.items() if k != "seconds"}
            best = max(metrics["epochs"], key=lambda r: (r["val_accuracy"] or 0.0, -r["epoch"]))
            metrics["best_val"] = {"epoch": best["epoch"], "val_accuracy": best["val_accuracy"]}
            meta["training"].update(epochs_done=epoch, final=metrics["final"])
            if env.is_main:
                save_checkpoint(out_path, model, meta)
                if metrics_path:
                    write_json(metrics_path, metrics)
            if progress:
                progress.update(epoch_task, advance=1,
                                description=f"epoch {epoch}: val acc {row['val_accuracy'] or 0:.3f}")
    return TrainResult(model, metrics)


def make_scheduler(optimizer, cfg: TrainConfig):
    if cfg.lr_schedule == "constant":
        return None
    if cfg.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(cfg.epochs, 1), eta_min=cfg.lr / 10)
    raise InputError("unknown learning-rate schedule", found=cfg.lr_schedule, allowed="cosine, constant")


def stop_if_diverged(model: RSNN, loss: torch.Tensor, epoch: int, step: int) -> None:
    """Training that produced a non-finite loss or weights cannot recover; say where, instead of saving NaNs."""
    bad = None if torch.isfinite(loss).all() else "the loss"
    bad = bad or next((f"weights {name}" for name, p in model.named_parameters() if not torch.isfinite(p).all()), None)
    if bad:
        raise InputError(f"training diverged: {bad} became NaN or infinite", where=f"epoch {epoch}, step {step}",
                         found=f"loss {float(loss.detach()):g}",
                         fix="lower --lr or the arch's init_scale; checkpoints of finished epochs are kept")


def train_epoch(model: RSNN, optimizer, data: SpikeData, cfg: TrainConfig, epoch: int, depth: int,
                progress=None, net=None, env: distributed.DistEnv | None = None) -> dict:
    """One epoch; ``net`` is ``model`` wrapped in DDP when ``env`` is distributed."""
    net, env = net or model, env or distributed.DistEnv()
    model.train()
    loss_sum, correct, seen, totals = 0.0, 0, 0, {}
    task = progress.add_task(f"epoch {epoch}", total=len(data)) if progress else None
    # The batch order depends on (seed, epoch) only, so a rerun (or every rank) sees the same batches.
    order = data.batch_order(cfg.batch_size, shuffle=True, seed=cfg.seed * 100_003 + epoch)
    for step, index in enumerate(order, 1):
        part = distributed.shard(index, env)
        # A rank whose slice is empty still joins the gradient all-reduce, with a zero-weight sample.
        batch = data.make_batch(part if len(part) else index[:1], extra_steps=depth)
        batch.y, batch.lengths = batch.y.to(env.device), batch.lengths.to(env.device)
        outputs = net(batch.x.to(env.device))
        counts = readout_counts(outputs[model.output_layer], batch.lengths, depth)
        if env.enabled:
            # Summed loss scaled so that DDP's mean over ranks is the global batch's mean loss.
            loss = F.cross_entropy(counts, batch.y, reduction="sum") * (env.world_size / len(index))
            loss = loss * (1.0 if len(part) else 0.0)
        else:
            loss = F.cross_entropy(counts, batch.y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        stop_if_diverged(model, loss, epoch, step)
        if not len(part):
            continue
        n = len(part)
        loss_sum += float(loss.detach()) * (len(index) / env.world_size if env.enabled else n)
        correct += int((counts.argmax(dim=1) == batch.y).sum())
        seen += n
        for name, (spikes, slots) in layer_rates(outputs, batch.lengths, depth).items():
            s, m = totals.get(name, (0.0, 0.0))
            totals[name] = (s + spikes, m + slots)
        if progress:
            progress.update(task, advance=len(index), description=f"epoch {epoch} loss {loss_sum / seen:.3f}")
    if progress:
        progress.remove_task(task)
    if env.enabled:
        names = sorted(totals)
        summed = distributed.all_sum([loss_sum, correct, seen] + [v for k in names for v in totals[k]], env)
        loss_sum, correct, seen = summed[0], int(summed[1]), int(summed[2])
        totals = {k: (summed[3 + 2 * i], summed[4 + 2 * i]) for i, k in enumerate(names)}
    return {"loss": loss_sum / max(seen, 1), "accuracy": correct / max(seen, 1),
            "spike_rate": rates_of(totals), "mean_spike_rate": mean_rate(totals)}


def write_json(path: str | Path, payload: dict) -> None:
    from rsnn2chip.fileio import atomic_write_bytes
    atomic_write_bytes(path, (json.dumps(payload, indent=1, default=float) + "\n").encode())


