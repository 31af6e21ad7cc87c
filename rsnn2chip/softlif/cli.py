"""``rsnn2chip train --neuron softlif``: train a soft-LIF rate network on static images, convert it, and
write an ordinary spiking checkpoint (model.pt) that ``compile`` and ``eval`` read like any other."""
from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
from rich.table import Table

from rsnn2chip.checkpoint import save_checkpoint
from rsnn2chip.data import images
from rsnn2chip.errors import DesignRuleError, InputError, ModelError, Problem
from rsnn2chip.nn import prepare_torch
from rsnn2chip.nn.network import check_arch
from rsnn2chip.softlif import ann
from rsnn2chip.softlif.convert import META_KEY, Deployment, constants, to_rsnn
from rsnn2chip.softlif.rates import SoftLIFParams
from rsnn2chip.train import METRICS_FORMAT, READOUT, deterministic, resolve_arch, seed_everything, write_json

NEURON_KEYS = ("current_decay", "voltage_decay", "threshold")


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
    from rsnn2chip.backends import run
    from rsnn2chip.compiler import compile_graph
    from rsnn2chip.targets import load_target
    try:
        art = compile_graph(model.to_ir(), load_target(target_name))
    except DesignRuleError as err:
        return {"accuracy": None, "reason": err.render()}
    depth = len(model.layers)
    spikes = images.encode(x, spec).astype(np.int8)
    spikes = np.concatenate([spikes, np.zeros((len(x), depth, x.shape[1]), np.int8)], axis=1)
    output = next(reversed(model.layers.keys()))
    correct = 0
    for i in range(0, len(y), 256):
        counts = run(art, spikes[i:i + 256], spikes.shape[1]).spikes[output].sum(axis=1)
        correct += int((counts.argmax(axis=1) == y[i:i + 256]).sum())
    return {"accuracy": correct / max(len(y), 1), "steps": spec["steps"], "target": target_name,
            "backend": "reference"}


def run_train(args, out) -> int:
    """The body of ``rsnn2chip train`` for ``--neuron softlif`` (args as that command parses them)."""
    from rsnn2chip.commands.train import metrics_path_for, read_arch
    if args.qat:
        raise InputError("--qat does not apply to --neuron softlif: the converted network is quantized by "
                         "`rsnn2chip compile`, and its rate model has no fixed-point forward pass")
    prepare_torch()
    params, dep = SoftLIFParams(), Deployment()
    c = constants(params, dep)
    name, splits, info = load_images(args.data, args.limit)
    (x_tr, y_tr), (x_va, y_va) = splits["train"], splits["val"]
    arch = resolve_arch(read_arch(args.arch), x_tr.shape[1], 10)
    sizes, names = rate_layers(arch)
    notes = replaced_neuron_values(arch, c)
    output = Path(args.output)
    metrics_path = Path(args.metrics) if args.metrics else metrics_path_for(output)
    cfg = ann.ANNConfig(activation="softlif", noise=args.noise, epochs=args.epochs, batch_size=args.batch_size,
                        lr=args.lr, seed=args.seed)
    spec = images.encoding_spec(name, max_rate=dep.input_rate)
    dataset = {"name": name, "split": "train", "samples": len(y_tr), "n_channels": int(x_tr.shape[1]),
               "n_classes": 10, "derived": False, **info}
    metrics = {"format": METRICS_FORMAT, "version": 1, "model": str(output), "dataset": dataset | {"split": None},
               "splits": {"train": len(y_tr), "val": len(y_va)}, "config": cfg.to_dict(), "readout": READOUT,
               "arch": None, "epochs": [], "notes": notes}
    meta = {"dataset": dataset, "encoding": spec, "readout": READOUT, "arch_file": str(args.arch),
            "training": {"neuron": "softlif", "config": cfg.to_dict()}, "qat": {"enabled": False}}
    with deterministic():
        seed_everything(args.seed)
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
            if status:
                status.update(f"epoch {row['epoch']}/{cfg.epochs}: val acc {row.get('val_accuracy', 0.0):.3f}")

        start = time.perf_counter()
        with (nullcontext() if args.json else out.err.status("training", spinner="dots")) as status:
            ann.train(net, x_tr, y_tr, cfg, x_va, y_va, on_epoch=save)
    model, conv = to_rsnn(net, dep, arch["name"])
    spiking = spiking_accuracy(model, x_va, y_va, spec, args.target) if len(y_va) else {"accuracy": None}
    metrics["softlif"] = {**conv, "val_spiking": spiking}
    meta[META_KEY] = {**conv, "val_spiking": spiking}
    save_checkpoint(output, model, meta)
    write_json(metrics_path, metrics)
    seconds = time.perf_counter() - start
    if args.json:
        out.json({"model": str(output), "metrics": str(metrics_path), "final": metrics["final"],
                  "best_val": metrics["best_val"], "val_spiking": spiking, "seconds": seconds, "notes": notes})
        return 0
    table = Table(title=f"soft-LIF ({name}, sigma {args.noise:g} Hz): {len(y_tr)} train / {len(y_va)} val images")
    for col in ("epoch", "train loss", "train acc", "val loss", "val acc"):
        table.add_column(col, justify="right")
    for e in metrics["epochs"]:
        table.add_row(str(e["epoch"]), f"{e['train_loss']:.4f}", f"{e['train_accuracy']:.3f}",
                      f"{e.get('val_loss', float('nan')):.4f}", f"{e.get('val_accuracy', float('nan')):.3f}")
    out.console.print(table)
    acc = spiking.get("accuracy")
    out.console.print(f"spiking val accuracy (reference backend, {spec['steps']} steps): "
                      + (f"{acc:.3f}" if acc is not None else f"n/a ({spiking.get('reason')})"))
    for note in notes:
        out.console.print(f"[yellow]note:[/] {note}")
    out.console.print(f"wrote {output} and {metrics_path}")
    return 0
