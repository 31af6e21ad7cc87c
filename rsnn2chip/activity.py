"""The recorded activity of one run: spikes of every population, input included.

``rsnn2chip run ... --save-activity RUN`` writes it; ``rsnn2chip report
--activity RUN`` reads it to measure traffic and estimate cost. ``RUN`` is a
``.npz`` file, or a directory holding ``activity.npz`` and a readable copy of
its metadata (``meta.json``). The arrays are ``spikes/<population>`` of shape
``(batch, steps, size)`` (bool) plus ``meta`` (a JSON string), so the file
loads with ``allow_pickle=False``. Both forms are written atomically.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rsnn2chip import ir
from rsnn2chip.errors import InputError
from rsnn2chip.fileio import atomic_directory, atomic_write_bytes, check_output_directory, check_output_file
from rsnn2chip.safeio import load_npz

FORMAT = "rsnn2chip.activity"
VERSION = 1
DIR_FILE = "activity.npz"
META_FILE = "meta.json"
DIR_FILES = (DIR_FILE, META_FILE)  # all a saved directory holds: only those are replaced by a new save
SPIKES = "spikes/"


@dataclass
class Activity:
    spikes: dict[str, np.ndarray]  # population (input populations too) -> (batch, steps, size) bool
    backend: str = ""
    network: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def batch(self) -> int:
        return next(iter(self.spikes.values())).shape[0] if self.spikes else 0

    @property
    def steps(self) -> int:
        return next(iter(self.spikes.values())).shape[1] if self.spikes else 0

    def counts(self, name: str) -> np.ndarray:
        """Spikes per neuron of one population, summed over samples and steps."""
        return self.spikes[name].sum(axis=(0, 1)).astype(np.int64)


def from_run(result, inputs: np.ndarray, input_slices: dict[str, tuple[int, int]], network: str) -> Activity:
    """An :class:`Activity` from a backend's ``RunResult`` and the ``(B, steps, n_input)`` input it ran on."""
    spikes = {name: inputs[..., lo:hi].astype(bool) for name, (lo, hi) in input_slices.items()}
    spikes.update({name: s.astype(bool) for name, s in result.spikes.items()})
    return Activity(spikes, result.backend, network, {"wall_s": result.wall_s})


def _payload(act: Activity) -> tuple[bytes, dict]:
    meta = {"format": FORMAT, "version": VERSION, "backend": act.backend, "network": act.network,
            "batch": act.batch, "steps": act.steps, "populations": {k: int(v.shape[-1]) for k, v in act.spikes.items()},
            **act.meta}
    buf = io.BytesIO()
    np.savez_compressed(buf, meta=np.array(json.dumps(meta)),
                        **{SPIKES + name: np.asarray(s, bool) for name, s in act.spikes.items()})
    return buf.getvalue(), meta


def check_output(path: str | Path) -> None:
    """Refuse, before the run, a path :func:`save` could not write (or must not replace)."""
    path = Path(path)
    if path.suffix == ".npz":
        check_output_file(path)
    else:
        check_output_directory(path, DIR_FILES)


def save(act: Activity, path: str | Path) -> Path:
    """Write to ``path``: a single file if it ends in ``.npz``, else a directory."""
    path = Path(path)
    payload, meta = _payload(act)
    if path.suffix == ".npz":
        atomic_write_bytes(path, payload)
        return path
    with atomic_directory(path, DIR_FILES) as tmp:
        (tmp / DIR_FILE).write_bytes(payload)
        (tmp / META_FILE).write_bytes(json.dumps(meta, indent=1).encode())
    return path


def load(path: str | Path) -> Activity:
    path = Path(path)
    file = path / DIR_FILE if path.is_dir() else path
    fix = "write it with `rsnn2chip run NET.r2c --input X.npy --save-activity RUN`"
    arrays = load_npz(file, "activity file", InputError, fix=fix, kinds="bU")
    meta_array = arrays.pop("meta", None)
    try:
        meta = json.loads(str(meta_array[()])) if meta_array is not None and meta_array.ndim == 0 else None
    except (ValueError, RecursionError):
        meta = None
    if not isinstance(meta, dict):
        raise InputError("activity file lacks its metadata (a JSON string 'meta')", file=str(file), fix=fix)
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise InputError("not an rsnn2chip activity file of a supported version", file=str(file),
                         found=f"{meta.get('format')} v{meta.get('version')}", allowed=f"{FORMAT} v{VERSION}", fix=fix)
    unknown = [k for k in arrays if not k.startswith(SPIKES)]
    bad = [k for k, v in arrays.items() if k.startswith(SPIKES) and (v.dtype != bool or v.ndim != 3)]
    if unknown or bad:
        raise InputError("activity file holds unexpected arrays", file=str(file), found=(unknown + bad)[:10],
                         allowed="meta and spikes/<population> bool arrays of shape (batch, steps, size)", fix=fix)
    spikes = {k[len(SPIKES):]: v for k, v in arrays.items()}
    extra = {k: v for k, v in meta.items() if k not in ("format", "version", "backend", "network", "batch", "steps",
                                                           "populations")}
    return Activity(spikes, str(meta.get("backend", "")), str(meta.get("network", "")), extra)


def check_matches(act: Activity, graph, source: str = "activity") -> None:
    """Every population of the network present with its size and one common (batch, steps)."""
    problems = []
    for pop in ir.populations(graph):
        s = act.spikes.get(pop.name)
        if s is None:
            problems.append(f"population {pop.name} missing")
        elif s.ndim != 3 or s.shape[-1] != pop.size:
            problems.append(f"population {pop.name} has shape {s.shape}, expected (batch, steps, {pop.size})")
    shapes = {s.shape[:2] for s in act.spikes.values() if s.ndim == 3}
    if len(shapes) > 1:
        problems.append(f"populations disagree on (batch, steps): {sorted(shapes)}")
    if problems:
        raise InputError(f"{source} does not belong to this network: " + "; ".join(problems),
                         where=f"network {graph.graph.get('name')}",
                         fix="re-run `rsnn2chip run` on this artifact with --save-activity")
