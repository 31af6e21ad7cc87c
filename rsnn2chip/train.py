"""Training an :class:`~rsnn2chip.nn.RSNN` with BPTT on spike (or graded) input.

The readout (``arch.readout``, rsnn2chip/readout.py) is read over each sample's own window, steps
``[0, length + depth)`` where ``depth`` is the number of layers; float, QAT, reference and Lava evaluation all
apply the same rule, so accuracy means the same thing on every backend.

The recipe (docs/training.md says how each default was measured) is meant to work unchanged on a data set
nobody tuned it for:

* the budget is counted in **optimizer steps**: ``budget_epochs`` passes over the training split, but at
  least ``min_steps`` and at most ``max_steps``; the batch size is capped so that an epoch is at least
  ``MIN_STEPS_PER_EPOCH`` steps, so a 40-sample set still gets many updates;
* Adam with a linear **warm-up** then a **cosine** decay of the learning rate, per step;
* gradient-norm **clipping**;
* validation about ``EVALUATIONS`` times in the run; the **best checkpoint on validation** (accuracy, then
  loss) is kept, and training **stops early** after ``patience`` evaluations without a better one;
* a non-finite loss stops training with an error naming the epoch and step.
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

from rsnn2chip import distributed, ir
from rsnn2chip.checkpoint import save_checkpoint
from rsnn2chip.data.common import SpikeData
from rsnn2chip.errors import InputError, R2CError
from rsnn2chip.nn import RSNN, prepare_torch
from rsnn2chip.nn.network import LOGITS_KEY, VOLTAGE_KEY
from rsnn2chip.readout import window_mask
from rsnn2chip.seeds import stream_seed

METRICS_FORMAT = "rsnn2chip.metrics"
AUTO = "auto"
# Validation runs this many times in a run, evenly spaced in steps (an epoch of a large set may be longer).
EVALUATIONS = 40
MIN_STEPS_PER_EPOCH = 8
MIN_BATCH = 4


@dataclass
class TrainConfig:
    # Budget: budget_epochs passes, clamped to [min_steps, max_steps] optimizer steps. ``epochs`` or
    # ``steps`` (either) replaces it with an exact number.
    epochs: int | None = None
    steps: int | None = None
    budget_epochs: int = 60
    min_steps: int = 1500
    max_steps: int = 6000
    batch_size: int = 32
    lr: float = 3e-3
    warmup_fraction: float = 0.05
    # "cosine": warm-up, then cosine decay to lr * final_lr_fraction; "constant": warm-up only.
    lr_schedule: str = "cosine"
    final_lr_fraction: float = 0.05
    # Evaluations without a better validation score before training stops; 0 never stops early.
    patience: int = 12
    seed: int = 0
    limit: int | None = None
    qat: bool = False
    target: str = "loihi2-sim"  # what --qat quantizes for
    # Logits of a spike-count readout are unbounded; one exploding batch early on can silence a layer
    # for good, so gradients are clipped to this norm.
    grad_clip: float = 1.0
    # Optional activity regulariser: rate_reg * mean spike rate of the firing layers (spikes are energy on
    # Loihi). 0 = off.
    rate_reg: float = 0.0
    # Steepness of the fast-sigmoid surrogate gradient (rsnn2chip/nn/neuron.py); only the backward pass
    # depends on it. 5 was measured against 2 and 10 (bench/accuracy.py, docs/training.md).
    surrogate_slope: float = 5.0
    device: str = AUTO
    eval_batch_size: int = 256


@dataclass(frozen=True)
class Budget:
    batch_size: int
    steps_per_epoch: int
    total_steps: int
    eval_every: int
    warmup_steps: int

    def describe(self) -> dict:
        return asdict(self)


def capped_batch_size(n_samples: int, batch_size: int) -> int:
    """``batch_size``, made smaller when needed so that an epoch is at least ``MIN_STEPS_PER_EPOCH`` steps."""
    return max(1, min(batch_size, max(MIN_BATCH, n_samples // MIN_STEPS_PER_EPOCH), n_samples))


def plan_budget(n_train: int, cfg: TrainConfig) -> Budget:
    """Batch size and step counts for a training split of ``n_train`` samples."""
    batch = capped_batch_size(n_train, cfg.batch_size)
    per_epoch = max(1, math.ceil(n_train / batch))
    if cfg.steps:
        total = cfg.steps
    elif cfg.epochs:
        total = cfg.epochs * per_epoch
    else:
        total = min(max(cfg.budget_epochs * per_epoch, cfg.min_steps), cfg.max_steps)
    eval_every = max(1, math.ceil(total / EVALUATIONS))
    return Budget(batch, per_epoch, total, eval_every, int(cfg.warmup_fraction * total))


def resolve_device(name: str) -> torch.device:
    if name == AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda, but torch sees no CUDA device", found=name,
                         allowed="auto, cpu", fix="use --device auto (GPU when there is one) or cpu")
    if name not in ("cpu", "cuda"):
        raise InputError("unknown device", found=name, allowed="auto, cpu, cuda")
    return torch.device(name)


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


def readout_logits(model: RSNN, outputs: dict[str, torch.Tensor], lengths: torch.Tensor, depth: int) -> torch.Tensor:
    """``(B, n)`` logits of the model's readout, each sample read over its own window."""
    return model.readout.logits(model.readout_trace(outputs), lengths, depth)


def layer_rates(outputs: dict[str, torch.Tensor], lengths: torch.Tensor, depth: int) -> dict[str, tuple[float, float]]:
    """Per layer: (spikes inside the windows, neuron-steps inside the windows)."""
    rates = {}
    for name, spikes in outputs.items():
        if name in (LOGITS_KEY, VOLTAGE_KEY):
            continue
        mask = window_mask(spikes.shape[1], lengths, depth).to(spikes.dtype)
        rates[name] = (float((spikes.detach() * mask[:, :, None]).sum()), float(mask.sum()) * spikes.shape[2])
    return rates


def rate_penalty(model: RSNN, outputs: dict[str, torch.Tensor], lengths: torch.Tensor, depth: int) -> torch.Tensor:
    """Mean spike rate over the firing layers inside the windows (differentiable through the surrogate)."""
    rates = []
    for name, layer in model.layers.items():
        if layer.fires:
            mask = window_mask(outputs[name].shape[1], lengths, depth).to(outputs[name].dtype)
            rates.append((outputs[name] * mask[:, :, None]).sum() / (mask.sum() * outputs[name].shape[2]))
    return torch.stack(rates).mean() if rates else lengths.new_zeros((), dtype=torch.float32)


def synaptic_fanout(model: RSNN) -> dict[str, np.ndarray]:
    """Per presynaptic population (input included): synapses leaving each neuron."""
    fanout: dict[str, np.ndarray] = {}
    for proj in ir.projections(model.to_ir()):
        counts = np.diff(proj.weight.tocsc().indptr)
        fanout[proj.pre] = fanout.get(proj.pre, 0) + counts
    return fanout


def batch_synops(outputs: dict[str, torch.Tensor], x: torch.Tensor, lengths: torch.Tensor, depth: int,
                 fanout: dict[str, np.ndarray]) -> float:
    """Synaptic operations in the windows: each message (a spike, or a non-zero graded input) times its fan-out."""
    total = 0.0
    traces = {"input": x, **{k: v for k, v in outputs.items() if k not in (LOGITS_KEY, VOLTAGE_KEY)}}
    for name, trace in traces.items():
        if name in fanout:
            mask = window_mask(trace.shape[1], lengths, depth).to(trace.dtype)
            messages = ((trace != 0).to(trace.dtype) * mask[:, :, None]).sum(dim=(0, 1))
            total += float((messages.cpu().numpy() * fanout[name]).sum())
    return total


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

def model_device(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def evaluate(model: RSNN, data: SpikeData, batch_size: int = 256,
             on_batch: Callable[[int], None] | None = None) -> dict:
    """Loss, accuracy, spike rates, synaptic operations and throughput of ``model`` on ``data``."""
    was_training = model.training
    model.eval()
    depth = depth_of(model)
    loss_sum, correct, totals, synops = 0.0, 0, {}, 0.0
    predictions = np.zeros(len(data), np.int64)
    device = model_device(model)
    fanout = synaptic_fanout(model)
    start = time.perf_counter()
    for batch in data.batches(batch_size, extra_steps=depth):
        y, lengths, x = batch.y.to(device), batch.lengths.to(device), batch.x.to(device)
        outputs = model(x)
        logits = readout_logits(model, outputs, lengths, depth)
        loss_sum += float(F.cross_entropy(logits.double(), y, reduction="sum"))
        # float64 scores: the sum of exact QAT voltages stays exact, so QAT predicts as the reference does.
        pred = model.readout.logits(model.readout_trace(outputs).double(), lengths, depth).argmax(dim=1)
        predictions[batch.index] = pred.cpu().numpy()
        correct += int((pred == y).sum())
        for name, (spikes, slots) in layer_rates(outputs, lengths, depth).items():
            s, n = totals.get(name, (0.0, 0.0))
            totals[name] = (s + spikes, n + slots)
        synops += batch_synops(outputs, x, lengths, depth, fanout)
        if on_batch:
            on_batch(len(batch.y))
    wall = time.perf_counter() - start
    model.train(was_training)
    n = max(len(data), 1)
    return {"loss": loss_sum / n, "accuracy": correct / n, "samples": len(data),
            "spike_rate": rates_of(totals), "mean_spike_rate": mean_rate(totals),
            "synops_per_sample": synops / n,
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


def build_model(arch: dict, cfg: TrainConfig, encoding: dict | None = None) -> RSNN:
    """The model to train; with ``cfg.qat`` in the exact integer forward (graded input when ``encoding`` is)."""
    model = RSNN(arch)
    for layer in model.layers.values():
        layer.neuron.surrogate_slope = float(cfg.surrogate_slope)
    if cfg.qat:
        # Imported here: QAT is optional and lives in its own module.
        from rsnn2chip.data.encoding import graded_input_of
        from rsnn2chip.nn.qat import enable_qat
        from rsnn2chip.passes.quantize import QuantizationConfig
        from rsnn2chip.targets import load_target
        enable_qat(model, load_target(cfg.target), QuantizationConfig(), input_graded=graded_input_of(encoding))
    return model


def lr_factor(step: int, budget: Budget, cfg: TrainConfig) -> float:
    """Multiplier of the base learning rate before optimizer step ``step`` (0-based)."""
    if step < budget.warmup_steps:
        return (step + 1) / budget.warmup_steps
    if cfg.lr_schedule == "constant":
        return 1.0
    progress = (step - budget.warmup_steps) / max(1, budget.total_steps - budget.warmup_steps)
    floor = cfg.final_lr_fraction
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def check_config(cfg: TrainConfig) -> None:
    if cfg.lr_schedule not in ("cosine", "constant"):
        raise InputError("unknown learning-rate schedule", found=cfg.lr_schedule, allowed="cosine, constant")


def better(score: tuple[float, float], best: tuple[float, float] | None) -> bool:
    """Validation scores compare by accuracy, then by lower loss."""
    return best is None or score > best


def train(arch: dict, train_data: SpikeData, val_data: SpikeData, cfg: TrainConfig, out_path: str | Path,
          metrics_path: str | Path | None = None, progress=None, extra_meta: dict | None = None,
          init_state: dict | None = None, test_data: SpikeData | None = None) -> TrainResult:
    """BPTT with Adam (see the module docstring); writes the best model so far to ``out_path``.

    ``progress`` is an optional ``rich.progress.Progress``. Two runs with the same config, data and seed
    give identical metrics (timings aside). ``init_state``: state_dict entries copied into the freshly
    initialised model (an architecture search keeps its adapted ``input_gain``, which the arch cannot
    hold). ``test_data``: evaluated once at the end with the best model, and recorded. Under ``torchrun``
    the batches are sharded over ranks (rsnn2chip/distributed.py) and only rank 0 writes files.
    """
    prepare_torch()
    check_config(cfg)
    env = distributed.setup()
    device = env.device if env.enabled else resolve_device(cfg.device)
    progress = progress if env.is_main else None
    with deterministic():
        seed_everything(cfg.seed)
        arch = resolve_arch(arch, train_data.n_channels, train_data.n_classes)
        model = build_model(arch, cfg, train_data.encoding)
        if init_state:
            state = model.state_dict()
            with torch.no_grad():
                for key, value in init_state.items():
                    state[key].copy_(value)
        model.to(device)
        net = distributed.wrap(model, env)
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        budget = plan_budget(len(train_data), cfg)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, budget, cfg))
        depth = depth_of(model)
        metrics = {"format": METRICS_FORMAT, "version": 2, "model": str(out_path),
                   "dataset": train_data.describe() | {"split": None},
                   "splits": {"train": len(train_data), "val": len(val_data)},
                   "config": asdict(cfg), "budget": budget.describe(), "readout": model.readout.describe(),
                   "arch": model.arch(), "world_size": env.world_size, "device": str(device), "evaluations": []}
        meta = {"dataset": metrics["dataset"], "encoding": train_data.encoding, "readout": model.readout.describe(),
                "training": {"config": asdict(cfg), "budget": budget.describe()},
                "qat": {"enabled": cfg.qat, "target": cfg.target}, **(extra_meta or {})}
        loop = TrainingLoop(model, net, optimizer, scheduler, train_data, cfg, budget, depth, env, device)
        step_task = progress.add_task("training", total=budget.total_steps) if progress else None
        best_score, best_state, since_best = None, None, 0
        start = time.perf_counter()
        for stats in loop.run():
            val = evaluate(model, val_data, cfg.eval_batch_size) if len(val_data) else None
            row = {"step": stats["step"], "epoch": stats["epoch"], "lr": stats["lr"],
                   "train_loss": stats["loss"], "train_accuracy": stats["accuracy"],
                   "spike_rate": stats["spike_rate"], "mean_spike_rate": stats["mean_spike_rate"],
                   "val_loss": val["loss"] if val else None, "val_accuracy": val["accuracy"] if val else None,
                   "seconds": time.perf_counter() - start}
            metrics["evaluations"].append(row)
            # Without a validation split the latest model is the best we can tell.
            score = (val["accuracy"], -val["loss"]) if val else (stats["step"], 0.0)
            if better(score, best_score):
                best_score, since_best = score, 0
                best_state = copy.deepcopy(model.state_dict())
                metrics["best_val"] = {"step": stats["step"], "epoch": stats["epoch"],
                                       "val_accuracy": row["val_accuracy"], "val_loss": row["val_loss"]}
                meta["training"].update(best=metrics["best_val"])
                if env.is_main:
                    save_checkpoint(out_path, model, meta)
            else:
                since_best += 1
            metrics["final"] = {k: v for k, v in row.items() if k != "seconds"}
            if env.is_main and metrics_path:
                write_json(metrics_path, metrics)
            if progress:
                progress.update(step_task, completed=stats["step"],
                                description=f"step {stats['step']}: val acc {row['val_accuracy'] or 0:.3f}")
            if cfg.patience and since_best >= cfg.patience:
                metrics["stopped_early"] = {"step": stats["step"], "patience": cfg.patience}
                break
        metrics["seconds"] = time.perf_counter() - start
        metrics["train_samples_per_s"] = loop.samples_seen / max(loop.train_seconds, 1e-9)
        model.load_state_dict(best_state)
        meta["training"].update(steps_done=loop.step, seconds=metrics["seconds"])
        test_error = None
        if test_data is not None and len(test_data):
            try:
                test = evaluate(model, test_data, cfg.eval_batch_size)
            except R2CError as exc:
                # A bad test sample found after training: the trained model is sound, so it is kept (with its
                # metrics) and the error says so, rather than leave a checkpoint unexplained.
                test_error = exc
            else:
                test.pop("predictions")
                metrics["test"] = test
                meta["training"].update(test_accuracy=test["accuracy"])
        if env.is_main:
            save_checkpoint(out_path, model, meta)
            if metrics_path:
                write_json(metrics_path, metrics)
        if test_error is not None:
            first = test_error.problems[0]
            first.fix = "; ".join(filter(None, [
                first.fix, f"training finished: its best model is saved in {out_path}, without a test score, "
                           f"which `rsnn2chip eval {out_path} --data ...` gives once the test split is fixed"]))
            test_error.args = (test_error.render(),)
            raise test_error
    return TrainResult(model, metrics)


def stop_if_diverged(model: RSNN, loss: torch.Tensor, epoch: int, step: int) -> None:
    """Training that produced a non-finite loss or weights cannot recover; say where, instead of saving NaNs."""
    bad = None if torch.isfinite(loss).all() else "the loss"
    bad = bad or next((f"weights {name}" for name, p in model.named_parameters() if not torch.isfinite(p).all()), None)
    if bad:
        raise InputError(f"training diverged: {bad} became NaN or infinite", where=f"epoch {epoch}, step {step}",
                         found=f"loss {float(loss.detach()):g}",
                         fix="lower --lr or the arch's init_scale; the best checkpoint so far is kept")


class TrainingLoop:
    """Optimizer steps over reshuffled epochs; yields running train statistics every ``eval_every`` steps."""

    def __init__(self, model, net, optimizer, scheduler, data: SpikeData, cfg: TrainConfig, budget: Budget,
                 depth: int, env: distributed.DistEnv, device: torch.device):
        self.model, self.net, self.optimizer, self.scheduler = model, net or model, optimizer, scheduler
        self.data, self.cfg, self.budget, self.depth, self.env, self.device = data, cfg, budget, depth, env, device
        self.step, self.samples_seen, self.train_seconds = 0, 0, 0.0

    def run(self):
        epoch = 0
        window = RunningStats()
        while self.step < self.budget.total_steps:
            epoch += 1
            for index in self.data.batch_order(self.budget.batch_size, shuffle=True, seed=stream_seed(self.cfg.seed, epoch)):
                tick = time.perf_counter()
                window.add(self.one_step(index, epoch))
                self.train_seconds += time.perf_counter() - tick
                self.step += 1
                if self.step % self.budget.eval_every == 0 or self.step == self.budget.total_steps:
                    yield {"step": self.step, "epoch": epoch, "lr": self.optimizer.param_groups[0]["lr"],
                           **window.summary(self.env)}
                    window = RunningStats()
                if self.step >= self.budget.total_steps:
                    return

    def one_step(self, index: np.ndarray, epoch: int) -> dict:
        model, env = self.model, self.env
        model.train()
        part = distributed.shard(index, env)
        # A rank whose slice is empty still joins the gradient all-reduce, with a zero-weight sample.
        batch = self.data.make_batch(part if len(part) else index[:1], extra_steps=self.depth)
        y, lengths = batch.y.to(self.device), batch.lengths.to(self.device)
        outputs = self.net(batch.x.to(self.device))
        logits = readout_logits(model, outputs, lengths, self.depth)
        if env.enabled:
            # Summed loss scaled so that DDP's mean over ranks is the global batch's mean loss.
            loss = F.cross_entropy(logits, y, reduction="sum") * (env.world_size / len(index))
            loss = loss * (1.0 if len(part) else 0.0)
        else:
            loss = F.cross_entropy(logits, y)
        if self.cfg.rate_reg:
            loss = loss + self.cfg.rate_reg * rate_penalty(model, outputs, lengths, self.depth)
        stop_if_diverged(model, loss, epoch, self.step + 1)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        stop_if_diverged(model, loss, epoch, self.step + 1)
        self.scheduler.step()
        if not len(part):
            return {}
        n = len(part)
        self.samples_seen += n
        return {"loss": float(loss.detach()) * (len(index) / env.world_size if env.enabled else n),
                "correct": int((logits.argmax(dim=1) == y).sum()), "seen": n,
                "rates": layer_rates(outputs, lengths, self.depth)}


class RunningStats:
    """Train loss, accuracy and spike rates accumulated between two evaluations (summed over ranks)."""

    def __init__(self):
        self.loss, self.correct, self.seen, self.totals = 0.0, 0, 0, {}

    def add(self, step: dict) -> None:
        if not step:
            return
        self.loss += step["loss"]
        self.correct += step["correct"]
        self.seen += step["seen"]
        for name, (spikes, slots) in step["rates"].items():
            s, m = self.totals.get(name, (0.0, 0.0))
            self.totals[name] = (s + spikes, m + slots)

    def summary(self, env: distributed.DistEnv) -> dict:
        loss, correct, seen, totals = self.loss, self.correct, self.seen, self.totals
        if env.enabled:
            names = sorted(totals)
            summed = distributed.all_sum([loss, correct, seen] + [v for k in names for v in totals[k]], env)
            loss, correct, seen = summed[0], int(summed[1]), int(summed[2])
            totals = {k: (summed[3 + 2 * i], summed[4 + 2 * i]) for i, k in enumerate(names)}
        return {"loss": loss / max(seen, 1), "accuracy": correct / max(seen, 1),
                "spike_rate": rates_of(totals), "mean_spike_rate": mean_rate(totals)}


def write_json(path: str | Path, payload: dict) -> None:
    from rsnn2chip.fileio import atomic_write_bytes
    atomic_write_bytes(path, (json.dumps(payload, indent=1, default=float) + "\n").encode())
