"""The generic dataset file: one ``.npz`` (``numpy.savez``), read with ``allow_pickle=False``.

Exactly one of two forms (docs/data.md has the full description):

**Frames** (analog features or already-binary spikes)::

    X        float32 (sum(lengths), channels)  all samples' time steps, one after the other
    lengths  int64   (N,)                      steps of each sample, every one >= 1
    y        int64   (N,)                      labels 0..K-1

If every value of ``X`` is 0 or 1 the rows are spikes and pass through
unchanged (one row = one time step); otherwise ``X`` is encoded exactly as
FSDD is (per-channel normalisation with train-split statistics, then graded
input values, or delta ON/OFF spikes when asked for; rsnn2chip.data.encoding).

**Events** (sparse spikes)::

    events        int64 (M, 2)  rows (t, channel): a spike at step t on that channel
    sample_index  int64 (M,)    which sample each event belongs to, 0..N-1
    lengths       int64 (N,)    steps of each sample; every event has t < lengths[sample]
    y             int64 (N,)    labels 0..K-1
    n_channels    int64 ()      number of input channels; every channel < n_channels

Optional in both forms: ``split`` int64 (N,) with 0 = train, 1 = val, 2 = test.
Without it the samples are split 70/15/15, stratified by label, with the fixed
seed every dataset uses. Repeated events collapse into one spike.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from rsnn2chip.data.common import SPLIT_SEED, SPLITS, SpikeData, check_split, stratified_split
from rsnn2chip.data.encoding import encoder_from_dict, is_binary, new_encoder
from rsnn2chip.errors import InputError, Problem
from rsnn2chip.preflight import check_fits
from rsnn2chip.safeio import load_npz

FRAME_KEYS = ("X", "lengths", "y")
EVENT_KEYS = ("events", "sample_index", "lengths", "y", "n_channels")
OPTIONAL_KEYS = ("split",)
MAX_CLASSES = 1 << 16
FIX = "see docs/data.md, 'The npz format'"


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The file's arrays; member names, dtypes and declared sizes are checked before any is read."""
    file = str(path)
    return load_npz(path, "dataset file", InputError, fix="check the path; " + FIX,
                    keys=lambda names: check_keys(dict.fromkeys(names), file))


def expect(arrays: dict, key: str, dtype, ndim: int, file: str) -> list[Problem]:
    a = arrays[key]
    problems = []
    if a.dtype != np.dtype(dtype):
        problems.append(Problem(f"'{key}' has the wrong dtype", file=file, where=key, found=str(a.dtype),
                                allowed=np.dtype(dtype).name, fix=f"save {key}.astype(numpy.{np.dtype(dtype).name})"))
    if a.ndim != ndim:
        problems.append(Problem(f"'{key}' has the wrong number of dimensions", file=file, where=key,
                                found=f"shape {a.shape}", allowed=f"{ndim} dimension(s)", fix=FIX))
    return problems


def check_keys(arrays: dict, file: str) -> str:
    keys = set(arrays)
    has_frames, has_events = "X" in keys, "events" in keys
    if has_frames and has_events:
        raise InputError("npz has both 'X' (frames) and 'events'; use one form", file=file, found=sorted(keys),
                         fix=FIX)
    if not has_frames and not has_events:
        raise InputError("npz has neither 'X' (frames) nor 'events'", file=file, found=sorted(keys),
                         allowed=f"{list(FRAME_KEYS)} or {list(EVENT_KEYS)}, optionally 'split'", fix=FIX)
    form, required = ("frames", FRAME_KEYS) if has_frames else ("events", EVENT_KEYS)
    missing = [k for k in required if k not in keys]
    unknown = sorted(keys - set(required) - set(OPTIONAL_KEYS))
    problems = []
    if missing:
        problems.append(Problem(f"npz ({form} form) lacks required arrays", file=file, found=sorted(keys),
                                allowed=list(required), fix=f"add {missing}; " + FIX))
    if unknown:
        problems.append(Problem(f"npz ({form} form) has unknown arrays", file=file, found=unknown,
                                allowed=list(required) + list(OPTIONAL_KEYS), fix="remove or rename them; " + FIX))
    if problems:
        raise InputError(problems=problems)
    return form


def check_common(arrays: dict, file: str) -> None:
    problems = expect(arrays, "lengths", np.int64, 1, file) + expect(arrays, "y", np.int64, 1, file)
    if "split" in arrays:
        problems += expect(arrays, "split", np.int64, 1, file)
    if problems:
        raise InputError(problems=problems)
    lengths, y = arrays["lengths"], arrays["y"]
    if len(lengths) == 0:
        raise InputError("npz holds no samples", file=file, where="lengths", found="0 samples")
    if len(y) != len(lengths):
        problems.append(Problem("'y' and 'lengths' must have one entry per sample", file=file, where="y",
                                found=f"{len(y)} labels for {len(lengths)} samples"))
    if lengths.min() < 1:
        problems.append(Problem("every sample needs at least one time step", file=file, where="lengths",
                                found=f"min {int(lengths.min())} (sample {int(lengths.argmin())})", allowed=">= 1"))
    else:
        # Summed as floats: int64 would wrap for crafted lengths. Every step costs a byte per channel at least.
        check_fits(float(lengths.sum(dtype=np.float64)), f"the {len(lengths)} samples' time steps", file=file,
                   where="lengths", fix="check 'lengths'; " + FIX)
    if y.size and (y.min() < 0 or y.max() >= MAX_CLASSES):
        problems.append(Problem("labels must be 0..K-1", file=file, where="y",
                                found=f"{int(y.min())}..{int(y.max())}", allowed=f"0..{MAX_CLASSES - 1}"))
    if "split" in arrays:
        split = arrays["split"]
        if len(split) != len(lengths):
            problems.append(Problem("'split' must have one entry per sample", file=file, where="split",
                                    found=len(split), allowed=len(lengths)))
        elif split.size and not np.isin(split, (0, 1, 2)).all():
            problems.append(Problem("'split' values must be 0 (train), 1 (val) or 2 (test)", file=file,
                                    where="split", found=sorted(set(np.unique(split).tolist()) - {0, 1, 2})[:5]))
    if problems:
        raise InputError(problems=problems)


def check_frames(arrays: dict, file: str) -> None:
    problems = expect(arrays, "X", np.float32, 2, file)
    if problems:
        raise InputError(problems=problems)
    X, lengths = arrays["X"], arrays["lengths"]
    if X.shape[0] != int(lengths.sum()):
        raise InputError("'X' must have sum(lengths) rows", file=file, where="X",
                         found=f"{X.shape[0]} rows", allowed=f"{int(lengths.sum())} rows (sum of lengths)")
    if X.shape[1] < 1:
        raise InputError("'X' needs at least one channel", file=file, where="X", found=f"shape {X.shape}")
    if not np.isfinite(X).all():
        bad = np.argwhere(~np.isfinite(X))[0]
        raise InputError("'X' holds NaN or infinity", file=file, where=f"X[{bad[0]}, {bad[1]}]",
                         found=float(X[bad[0], bad[1]]), fix="remove or impute missing values first")


def check_events(arrays: dict, file: str) -> None:
    problems = (expect(arrays, "events", np.int64, 2, file) + expect(arrays, "sample_index", np.int64, 1, file)
                + expect(arrays, "n_channels", np.int64, 0, file))
    if problems:
        raise InputError(problems=problems)
    events, owner, lengths = arrays["events"], arrays["sample_index"], arrays["lengths"]
    n_channels = int(arrays["n_channels"])
    if events.shape[1] != 2:
        problems.append(Problem("'events' must have two columns (t, channel)", file=file, where="events",
                                found=f"shape {events.shape}", allowed="(M, 2)"))
    if len(owner) != len(events):
        problems.append(Problem("'sample_index' must have one entry per event", file=file, where="sample_index",
                                found=len(owner), allowed=len(events)))
    if n_channels < 1:
        problems.append(Problem("'n_channels' must be >= 1", file=file, where="n_channels", found=n_channels))
    if problems:
        raise InputError(problems=problems)
    # The samples are expanded to dense (steps, channels) uint8 arrays.
    check_fits(float(lengths.sum(dtype=np.float64)) * n_channels, f"the {len(lengths)} samples as dense spike arrays",
               file=file,
               where="lengths, n_channels", fix="check 'lengths' and 'n_channels'; " + FIX)
    if len(events) == 0:
        return
    if owner.min() < 0 or owner.max() >= len(lengths):
        problems.append(Problem("'sample_index' out of range", file=file, where="sample_index",
                                found=f"{int(owner.min())}..{int(owner.max())}", allowed=f"0..{len(lengths) - 1}"))
    t, ch = events[:, 0], events[:, 1]
    if ch.min() < 0 or ch.max() >= n_channels:
        problems.append(Problem("event channel out of range", file=file, where="events[:, 1]",
                                found=f"{int(ch.min())}..{int(ch.max())}", allowed=f"0..{n_channels - 1}"))
    if not problems:
        late = (t < 0) | (t >= lengths[owner])
        if late.any():
            i = int(np.flatnonzero(late)[0])
            problems.append(Problem("event time outside its sample", file=file, where=f"events[{i}]",
                                    found=f"t={int(t[i])} in sample {int(owner[i])}",
                                    allowed=f"0 <= t < {int(lengths[owner[i]])} (its length)"))
    if problems:
        raise InputError(problems=problems)


def events_to_samples(arrays: dict) -> list[np.ndarray]:
    lengths, n_channels = arrays["lengths"], int(arrays["n_channels"])
    samples = [np.zeros((int(n), n_channels), np.uint8) for n in lengths]
    for (t, ch), s in zip(arrays["events"], arrays["sample_index"]):
        samples[s][t, ch] = 1
    return samples


def split_indices(arrays: dict) -> dict[str, np.ndarray]:
    if "split" in arrays:
        return {name: np.flatnonzero(arrays["split"] == code) for code, name in enumerate(SPLITS)}
    y = arrays["y"]
    counts = np.bincount(y)
    if counts[counts > 0].min() < 3:
        # A class with fewer than 3 samples cannot appear in all three splits.
        rng = np.random.default_rng(SPLIT_SEED)
        order = rng.permutation(len(y))
        a, b = int(round(0.70 * len(y))), int(round(0.85 * len(y)))
        return {"train": order[:a], "val": order[a:b], "test": order[b:]}
    return stratified_split(y, SPLIT_SEED)


def load(path: str | Path, split: str = "train", encoding: dict | None = None,
         input_encoding: str | None = None) -> SpikeData:
    check_split(split)
    path = Path(path)
    file = str(path)
    arrays = read_arrays(path)
    form = check_keys(arrays, file)
    check_common(arrays, file)
    y = arrays["y"]
    n_classes = int(y.max()) + 1
    parts = split_indices(arrays)
    index = parts[split]
    info = {"source": f"npz file {path.name}", "form": form, "split_seed": SPLIT_SEED,
            "split_from_file": "split" in arrays}
    if form == "events":
        check_events(arrays, file)
        samples = events_to_samples(arrays)
        return SpikeData(path.name, split, [samples[i] for i in index], y[index], int(arrays["n_channels"]),
                         n_classes, encoding={"kind": "spikes"}, lengths=arrays["lengths"][index], info=info)
    check_frames(arrays, file)
    X, lengths = arrays["X"], arrays["lengths"]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    kind = (encoding or {}).get("kind") or ("spikes" if is_binary(X) and input_encoding is None else "analog")
    if kind == "spikes":
        if not is_binary(X):
            raise InputError("the model was trained on binary spikes but this file's X is analog", file=file,
                             where="X", fix="evaluate on the same kind of data the model was trained on")
        samples = [X[starts[i]:starts[i] + lengths[i]].astype(np.uint8) for i in index]
        return SpikeData(path.name, split, samples, y[index], X.shape[1], n_classes, encoding={"kind": "spikes"},
                         lengths=lengths[index], info=info)
    if encoding:
        encoder = encoder_from_dict(encoding)
    else:
        train_rows = np.concatenate([np.arange(starts[i], starts[i] + lengths[i]) for i in parts["train"]]) \
            if len(parts["train"]) else np.arange(len(X))
        encoder = new_encoder(input_encoding).fit(X[train_rows])
    if encoder.channels_in != X.shape[1]:
        raise InputError("the saved encoding has another channel count than this file's X", file=file,
                         where="X", found=X.shape[1], allowed=encoder.channels_in)
    rows = np.concatenate([np.arange(starts[i], starts[i] + lengths[i]) for i in index]) if len(index) \
        else np.zeros(0, np.int64)
    samples = encoder.encode(X[rows], lengths[index])
    return SpikeData(path.name, split, samples, y[index], encoder.channels_out, n_classes,
                     encoding=encoder.to_dict(), lengths=lengths[index] * encoder.repeat, info=info)
