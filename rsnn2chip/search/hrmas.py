"""HRMAS: the two-step alternation, discretisation, retraining and test evaluation (docs/hrmas.md).

One search step, repeated over ``search.epochs`` passes of the train split:

1. **Step 1 (first-order DARTS)**: one Adam step on the weights, on a train batch; then (after
   ``warmup_steps``) one Adam step on the alphas, on a val batch. Both gradients are plain BPTT through the
   mixed network; the alpha step ignores the weights' dependence on alpha (first order).
2. **Step 2 (SpiKL-IP)**: ``ip.window`` further train batches, forward only, adapting every IP layer's
   ``voltage_decay`` and ``input_gain`` (``ip.py``). Weights and alphas are not touched.

Then the argmax architecture is written as a plain arch (``arch.yaml``), retrained from re-initialised
weights by ``rsnn2chip.train.train`` (``model.pt``, compilable) and evaluated on the test split.

Everything is deterministic under the seed: batch orders are functions of (seed, epoch or cycle), so a run
resumed from ``search_state.pt`` (written every ``checkpoint_every`` steps and at each epoch's end) takes
exactly the steps the uninterrupted run takes.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from rsnn2chip import distributed
from rsnn2chip.data.common import SpikeData
from rsnn2chip.errors import InputError
from rsnn2chip.fileio import atomic_write, atomic_write_bytes
from rsnn2chip.nn import prepare_torch
from rsnn2chip.safeio import load_json, parse_json
from rsnn2chip.search.ip import ip_layer_names, ip_step, mean_of, rate_stats, sample_rates
from rsnn2chip.search.space import Space
from rsnn2chip.search.supernet import Supernet, synapse_count
from rsnn2chip.seeds import stream_seed
from rsnn2chip.train import (AUTO, TrainConfig, capped_batch_size, depth_of, deterministic, evaluate, readout_logits,
                             resolve_device, seed_everything, train, write_json)

STATE_FORMAT = "rsnn2chip.search-state"
# What resuming reads from a search checkpoint (save_state writes them all, with format and version).
STATE_KEYS = ("space", "data", "step", "seconds", "done", "model", "opt_w", "opt_a", "sched")
RESULT_FORMAT = "rsnn2chip.search-result"
STATE_FILE, LOG_FILE, ARCH_FILE = "search_state.pt", "search_log.jsonl", "arch.yaml"
MODEL_FILE, METRICS_FILE, RESULT_FILE = "model.pt", "model.metrics.json", "result.json"
# A damaged file in the run directory cannot be resumed from; the run can be redone.
RESUME_FIX = "delete the file (or the whole run directory) and run again, or run without --resume"
# Offsets that give the val and IP batch orders seeds of their own, disjoint from the train order's.
VAL_SEED_OFFSET, IP_SEED_OFFSET = 500_009, 900_007


@dataclass
class SearchOutcome:
    model: Supernet
    seconds: float
    steps: int
    ip_layers: list[str]
    # How decided the search ended (normalised entropies) and what discretisation cost on the val split.
    entropy: dict
    discretisation: dict


def temperature_at(cfg, step: int, total: int) -> float:
    """Geometric annealing from ``temperature_start`` at the first alpha step to ``temperature_end`` at the last."""
    span = max(total - 1 - cfg.warmup_steps, 1)
    progress = min(max(step - cfg.warmup_steps, 0) / span, 1.0)
    return cfg.temperature_start * (cfg.temperature_end / cfg.temperature_start) ** progress


def discretisation_cost(model: Supernet, val_data: SpikeData, batch_size: int) -> dict:
    """Val accuracy of the supernet (at its final temperature) and of its argmax with the same weights."""
    mixed = evaluate(model, val_data, batch_size)["accuracy"]
    argmax = evaluate(model.inherited_model().to(next(model.parameters()).device), val_data, batch_size)["accuracy"]
    return {"supernet_val_accuracy": mixed, "argmax_val_accuracy": argmax, "drop": mixed - argmax}


class Interrupted(Exception):
    """Raised by an ``on_step`` callback to stop a search (tests use it to simulate a crash)."""


# --------------------------------------------------------------------------- batch orders

class CyclicOrder:
    """Batches of a split, reshuffled every pass, addressed by a running counter (so resumable)."""

    def __init__(self, data: SpikeData, batch_size: int, seed: int):
        self.data, self.batch_size, self.seed = data, batch_size, seed
        self.n = len(data.batch_order(batch_size, shuffle=False, seed=0))
        self._cycle, self._order = None, None

    def __getitem__(self, counter: int) -> np.ndarray:
        cycle, position = divmod(counter, self.n)
        if cycle != self._cycle:
            self._cycle = cycle
            self._order = self.data.batch_order(self.batch_size, shuffle=True, seed=self.seed + cycle)
        return self._order[position]


# --------------------------------------------------------------------------- one supervised step

def supervised_loss(net, model, data: SpikeData, index: np.ndarray, env: distributed.DistEnv, depth: int):
    """Loss whose DDP-averaged gradient is that of the global batch's mean loss; plus this rank's stats."""
    part = distributed.shard(index, env)
    batch = data.make_batch(part if len(part) else index[:1], extra_steps=depth)
    y, lengths = batch.y.to(env.device), batch.lengths.to(env.device)
    outputs = net(batch.x.to(env.device))
    counts = readout_logits(model, outputs, lengths, depth)
    summed = F.cross_entropy(counts, y, reduction="sum")
    loss = summed * ((env.world_size / len(index)) if len(part) else 0.0)
    stats = [float(summed.detach()), int((counts.argmax(1) == y).sum()), len(y)] if len(part) else [0.0, 0, 0]
    return loss, stats, outputs, lengths


def clip(params, limit: float) -> None:
    if limit:
        torch.nn.utils.clip_grad_norm_(params, limit)


# --------------------------------------------------------------------------- checkpoint

def save_state(path: Path, payload: dict) -> None:
    """Atomic ``torch.save`` of tensors and plain data only (loads with ``weights_only=True``)."""
    atomic_write(path, lambda handle: torch.save(payload, handle))


def load_state(path: Path, space: Space, data: SpikeData) -> dict:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a torn or foreign file: say which and how to proceed
        raise InputError(f"cannot read the search checkpoint ({type(err).__name__})", file=str(path),
                         fix="delete it to start the search afresh") from None
    if not isinstance(payload, dict) or payload.get("format") != STATE_FORMAT:
        raise InputError("not a search checkpoint", file=str(path), fix="delete it to start afresh")
    missing = [key for key in STATE_KEYS if key not in payload]
    if missing:
        raise InputError("search checkpoint lacks entries that resuming needs", file=str(path), found=missing,
                         fix="delete it to start afresh")
    if payload["space"] != space.to_dict():
        raise InputError("the search space (or --seed) differs from the one the checkpoint was made with",
                         file=str(path), fix="resume with the same SPACE.yaml and --seed, or use a new -o")
    if payload["data"] != data.describe():
        raise InputError("the dataset differs from the one the checkpoint was made with", file=str(path),
                         found=data.describe().get("name"), allowed=payload["data"].get("name"))
    return payload


# What torch's load_state_dict raises on a state of another shape or structure.
RESTORE_ERRORS = (RuntimeError, ValueError, KeyError, TypeError, IndexError, AttributeError)


def restore_state(payload: dict, path: Path, total: int, model: torch.nn.Module, stateful: dict) -> tuple:
    """Load a checkpoint that :func:`load_state` accepted into ``model`` and ``stateful`` (optimizers and the
    schedule, by payload key); returns ``(step, seconds, done)``. The space and data matched, so a state that
    does not fit was edited or written by another version: refused, naming the file, not an internal error."""
    fix = "delete it to start the search afresh"
    entry = "model"
    try:
        tensors = payload["model"]
        bad = next((k for k, v in tensors.items() if isinstance(v, torch.Tensor) and v.is_floating_point()
                    and not torch.isfinite(v).all()), None)
        if bad is not None:
            raise InputError("search checkpoint holds NaN or infinity", file=str(path), where=f"model, {bad}", fix=fix)
        model.load_state_dict(tensors)
        for entry, target in stateful.items():
            target.load_state_dict(payload[entry])
        entry = "step, seconds, done"
        step, seconds, done = payload["step"], float(payload["seconds"]), payload["done"]
    except RESTORE_ERRORS as err:
        raise InputError("search checkpoint does not fit this search", file=str(path), where=entry,
                         found=f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}",
                         fix=fix) from None
    if not (isinstance(step, int) and not isinstance(step, bool) and 0 <= step <= total) \
            or not (math.isfinite(seconds) and seconds >= 0) or not isinstance(done, bool):
        raise InputError("search checkpoint's progress is out of range", file=str(path), where="step, seconds, done",
                         found=f"step {step!r}, seconds {seconds!r}, done {done!r}",
                         allowed=f"step 0..{total}, seconds >= 0, done true or false", fix=fix)
    return step, seconds, done


def json_line(record: dict) -> str:
    return json.dumps(record, default=float, separators=(",", ":")) + "\n"


def read_log(path: Path) -> list[dict]:
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        record = parse_json(line, str(path), "search log", fix=RESUME_FIX, where=f"line {number}")
        if not isinstance(record, dict) or not isinstance(record.get("step"), int):
            raise InputError("search log record is not an object with an integer 'step'", file=str(path),
                             where=f"line {number}", found=line[:80], fix=RESUME_FIX)
        records.append(record)
    return records


# --------------------------------------------------------------------------- step 1 + step 2

def search_phase(space: Space, train_data: SpikeData, val_data: SpikeData, out_dir: Path, resume: bool = False,
                 on_step: Callable[[int, int], None] | None = None, device: str = AUTO) -> SearchOutcome:
    """Run (or resume) the alternating search; ``space`` must be resolved. Returns the trained supernet.

    ``device``: auto (CUDA when torch sees one), cpu or cuda; under torchrun each rank takes its local device.
    """
    cfg, ip_cfg = space.search, space.ip
    env = distributed.setup()
    if not env.enabled:
        env = dataclasses.replace(env, device=resolve_device(device))
    prepare_torch()
    state_path, log_path = out_dir / STATE_FILE, out_dir / LOG_FILE
    with deterministic():
        seed_everything(cfg.seed)
        model = Supernet(space).to(env.device)
        net = distributed.wrap(model, env)
        weights, alphas = model.weight_parameters(), model.alpha_parameters()
        opt_w = torch.optim.Adam(weights, lr=cfg.lr)
        opt_a = torch.optim.Adam(alphas, lr=cfg.alpha_lr, betas=tuple(cfg.alpha_betas),
                                 weight_decay=cfg.alpha_weight_decay)
        depth = depth_of(model)
        ip_names = ip_layer_names(model, ip_cfg)
        hidden = list(model.layers)[:-1]
        # As in training, small data get small batches, and the search at least min_steps steps: a
        # 40-sample set at batch 64 would otherwise search with one weight step per epoch.
        batch = capped_batch_size(len(train_data), cfg.batch_size)
        train_orders = CyclicOrder(train_data, batch, stream_seed(cfg.seed, 1))
        steps_per_epoch = train_orders.n
        epochs = max(cfg.epochs, math.ceil(cfg.min_steps / steps_per_epoch))
        total = epochs * steps_per_epoch
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt_w, T_max=epochs, eta_min=cfg.lr / 10)
        val_orders = CyclicOrder(val_data, capped_batch_size(len(val_data), cfg.batch_size),
                                 stream_seed(cfg.seed, VAL_SEED_OFFSET))
        ip_orders = CyclicOrder(train_data, batch, stream_seed(cfg.seed, IP_SEED_OFFSET))
        probe_data = train_data.limit(cfg.probe_samples)

        start, seconds_before, done = 0, 0.0, False
        if resume and state_path.exists():
            payload = load_state(state_path, space, train_data)
            start, seconds_before, done = restore_state(payload, state_path, total, model,
                                                        {"opt_w": opt_w, "opt_a": opt_a, "sched": sched})
        if env.is_main:
            # Drop records written after the checkpoint, so a resumed log equals an uninterrupted one.
            kept = [r for r in read_log(log_path) if r["step"] <= start] if resume else []
            log_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(log_path, "".join(json_line(r) for r in kept).encode())

        def checkpoint(step: int, finished: bool) -> None:
            if env.is_main:
                save_state(state_path, {
                    "format": STATE_FORMAT, "version": 1, "space": space.to_dict(), "data": train_data.describe(),
                    "step": step, "steps_total": total, "done": finished,
                    "seconds": seconds_before + time.perf_counter() - t0,
                    "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                    "opt_w": opt_w.state_dict(), "opt_a": opt_a.state_dict(), "sched": sched.state_dict()})

        def probe() -> dict:
            result = evaluate(model, probe_data, cfg.eval_batch_size)
            rates = [result["spike_rate"][n] for n in hidden]
            return {"accuracy": result["accuracy"], "rate": float(np.mean(rates)) if rates else 0.0}

        t0 = time.perf_counter()
        window: list[dict] = []
        sums = np.zeros(6)
        model.train()
        for g in range(start, total if not done else start):
            epoch, b = divmod(g, steps_per_epoch)
            index = train_orders[g]
            model.set_temperature(temperature_at(cfg, g, total))
            # ---- step 1a: weights on the train split
            opt_w.zero_grad(set_to_none=True)
            opt_a.zero_grad(set_to_none=True)
            loss, stats, outputs, lengths = supervised_loss(net, model, train_data, index, env, depth)
            loss.backward()
            clip(weights, cfg.grad_clip)
            opt_w.step()
            sums[:3] += stats
            record = {name: rate_stats(sample_rates(outputs[name].detach(), lengths, depth), ip_cfg.target_rate)
                      for name in hidden} if stats[2] else {}
            window.append(record)
            probing = env.is_main and cfg.probe_every and g % cfg.probe_every == 0 and g >= cfg.warmup_steps
            before = probe() if probing else None
            # ---- step 1b: alphas on the val split
            if g >= cfg.warmup_steps:
                opt_w.zero_grad(set_to_none=True)
                opt_a.zero_grad(set_to_none=True)
                vloss, vstats, _, _ = supervised_loss(net, model, val_data, val_orders[g - cfg.warmup_steps], env,
                                                      depth)
                if cfg.entropy_weight:
                    vloss = vloss + cfg.entropy_weight * model.entropy()
                vloss.backward()
                clip(alphas, cfg.grad_clip)
                opt_a.step()
                sums[3:] += vstats
            after_alpha = probe() if probing else None
            # ---- step 2: intrinsic plasticity
            ip_stats = {}
            if ip_cfg.enabled and ip_names:
                shards = [distributed.shard(ip_orders[g * ip_cfg.window + w], env) for w in range(ip_cfg.window)]
                ip_stats = ip_step(model, train_data, shards, ip_cfg, depth, env)
            if probing:
                after_ip = probe() if ip_stats else after_alpha
                with log_path.open("a") as handle:
                    handle.write(json_line({"kind": "probe", "step": g + 1, "before": before,
                                            "after_alpha": after_alpha, "after_ip": after_ip}))
            if b == steps_per_epoch - 1:
                sched.step()
            if (g + 1) % cfg.log_every == 0 or g + 1 == total:
                totals = distributed.all_sum(sums, env)
                if env.is_main:
                    rates = {name: mean_of([r[name] for r in window if name in r]) for name in hidden}
                    intrinsic = {name: {"voltage_decay": float(model.layers[name].neuron.voltage_decay.mean()),
                                        "input_gain": float(model.layers[name].neuron.input_gain.mean())}
                                 for name in ip_names}
                    entry = {"kind": "step", "step": g + 1, "epoch": epoch + 1, "lr": opt_w.param_groups[0]["lr"],
                             "train_loss": totals[0] / max(totals[2], 1), "train_accuracy": totals[1] / max(totals[2], 1),
                             "val_loss": totals[3] / totals[5] if totals[5] else None,
                             "val_accuracy": totals[4] / totals[5] if totals[5] else None,
                             "rates": rates, "ip": ip_stats, "intrinsic": intrinsic, "alpha": model.alpha_summary(),
                             "temperature": temperature_at(cfg, g, total), "entropy": model.entropy_summary(),
                             "seconds": seconds_before + time.perf_counter() - t0}
                    with log_path.open("a") as handle:
                        handle.write(json_line(entry))
                window, sums = [], np.zeros(6)
            finished = g + 1 == total
            if (g + 1) % cfg.checkpoint_every == 0 or b == steps_per_epoch - 1:
                checkpoint(g + 1, finished)
            if on_step:
                on_step(g + 1, total)
        # The last step ends an epoch, so the final checkpoint (done=True) is already written.
        seconds = seconds_before + (time.perf_counter() - t0 if not done else 0.0)
        model.set_temperature(temperature_at(cfg, total - 1, total))
        model.eval()
        cost = discretisation_cost(model, val_data, cfg.eval_batch_size)
    distributed.barrier(env)
    return SearchOutcome(model, seconds, total, ip_names, model.entropy_summary(), cost)


# --------------------------------------------------------------------------- discretise + retrain

def layer_summary(cfg: dict) -> dict:
    summary = {"type": cfg["type"], "size": cfg["size"], "recurrent_synapses": synapse_count(cfg)}
    if cfg["type"] == "scml":
        summary.update(motif_size=cfg["motif_size"], intra_types=cfg["intra_types"], inter_types=cfg["inter_types"])
    return summary


def write_arch(path: Path, arch: dict, note: str) -> None:
    header = "".join(f"# {line}\n" for line in note.splitlines())
    atomic_write_bytes(path, (header + yaml.safe_dump(arch, sort_keys=False, default_flow_style=None, width=120)).encode())


def retrain_phase(space: Space, outcome: SearchOutcome, train_data: SpikeData, val_data: SpikeData, out_dir: Path,
                  progress=None, extra_meta: dict | None = None, device: str = AUTO):
    keep = space.retrain.keep_intrinsic
    arch = outcome.model.discretise(keep_intrinsic=keep, intrinsic_layers=outcome.ip_layers)
    if distributed.current().is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_arch(out_dir / ARCH_FILE, arch,
                   f"Architecture found by `rsnn2chip search` (HRMAS) for space {space.name!r}.\n"
                   f"Train it: rsnn2chip train --arch {out_dir / ARCH_FILE} --data DATA -o model.pt\n"
                   + ("voltage_decay holds the values intrinsic plasticity adapted; their input_gain is in "
                      f"{out_dir / MODEL_FILE} only (an arch has no key for it)." if keep else
                      "Neuron parameters are the space's initial values (retrain.keep_intrinsic: false)."))
    cfg = TrainConfig(epochs=space.retrain.epochs, batch_size=space.retrain.batch_size, lr=space.retrain.lr,
                      seed=space.search.seed, device=device)
    init_state = inherited_weights(outcome.model) if space.retrain.init == "inherit" else {}
    init_state |= outcome.model.intrinsic_state(outcome.ip_layers) if keep else {}
    start = time.perf_counter()
    result = train(arch, train_data, val_data, cfg, out_dir / MODEL_FILE, out_dir / METRICS_FILE, progress,
                   extra_meta={"search": {"space": space.name, **(extra_meta or {})}}, init_state=init_state or None)
    return arch, result, time.perf_counter() - start


def inherited_weights(model: Supernet) -> dict[str, torch.Tensor]:
    """The argmax network's weights from the supernet (a warm start); neuron parameters are not weights."""
    return {key: value.cpu() for key, value in model.inherited_model().state_dict().items() if ".neuron." not in key}


def run_hrmas(space: Space, data: tuple[SpikeData, SpikeData, SpikeData], out_dir: str | Path, *,
              resume: bool = False, progress=None, on_step: Callable[[int, int], None] | None = None,
              plots: bool = True, device: str = AUTO) -> dict:
    """Search, discretise, retrain, test; write every output to ``out_dir``; return the result dict."""
    out_dir = Path(out_dir)
    train_data, val_data, test_data = data
    space = space.resolved(train_data.n_channels, train_data.n_classes)
    env = distributed.setup()
    result_path = out_dir / RESULT_FILE
    if resume and result_path.exists() and (out_dir / MODEL_FILE).exists():
        previous = load_json(result_path, "search result", fix=RESUME_FIX)
        if not isinstance(previous, dict):
            raise InputError("search result is not a JSON object", file=str(result_path),
                             found=type(previous).__name__, allowed=f"an object with format {RESULT_FORMAT!r}",
                             fix=RESUME_FIX)
        if previous.get("space") == space.to_dict() and previous.get("done"):
            return previous
    outcome = search_phase(space, train_data, val_data, out_dir, resume=resume, on_step=on_step, device=device)
    arch, trained, retrain_seconds = retrain_phase(space, outcome, train_data, val_data, out_dir, progress,
                                                   {"search_seconds": outcome.seconds}, device=device)
    test = evaluate(trained.model, test_data) if len(test_data) else None
    searched = {cfg["name"]: layer_summary(cfg) for cfg in arch["layers"]
                if cfg["name"] in outcome.model.searched()}
    result = {"format": RESULT_FORMAT, "version": 1, "done": True, "space": space.to_dict(),
              "dataset": train_data.describe() | {"split": None},
              "splits": {"train": len(train_data), "val": len(val_data), "test": len(test_data)},
              "seed": space.search.seed, "world_size": env.world_size, "searched_layers": searched,
              "recurrent_synapses": sum(s["recurrent_synapses"] for s in searched.values()),
              "neurons": sum(cfg["size"] for cfg in arch["layers"]),
              "search_seconds": outcome.seconds, "search_steps": outcome.steps,
              "entropy": outcome.entropy, "discretisation": outcome.discretisation,
              "retrain_seconds": retrain_seconds,
              "final_val": trained.metrics["final"], "best_val": trained.metrics["best_val"],
              "test": None if test is None else {k: test[k] for k in ("accuracy", "loss", "mean_spike_rate",
                                                                       "spike_rate", "samples")}}
    # The cost of the search in units of one training run of the network it found.
    result["search_cost_ratio"] = outcome.seconds / max(retrain_seconds, 1e-9)
    if env.is_main:
        write_json(result_path, result)
        if plots:
            import rsnn2chip.search.plots as plotting
            result["plots"] = plotting.plot_run(out_dir, read_log(out_dir / LOG_FILE), arch, list(searched))
            write_json(result_path, result)
    return result
