"""Static images as rate-coded spike trains: ``digits-images`` and ``fmnist-images``.

For rate networks (rsnn2chip.softlif) that are trained on pixel intensities and deployed as spiking
networks. The images are real and the spikes are a plain encoding of their intensities, so these sets are
not marked derived. Pixel intensities are scaled to [0, 1] (digits: /16, Fashion-MNIST: /255), and
channel ``y*W + x`` carries pixel ``(y, x)`` for ``steps`` time steps at ``max_rate * intensity`` spikes
per step:

* ``regular`` (default): pixel ``p`` spikes at step ``t`` when ``floor(q (t+1) + phase)`` exceeds
  ``floor(q t + phase)``, ``q = max_rate * p``. Deterministic, evenly spaced, and after ``n`` steps the
  count is ``round(q n)`` (phase 0.5), the least noisy spike train with the right rate.
* ``bernoulli``: an independent coin with probability ``q`` per step, seeded per image (Poisson-like).

Splits: digits (1797 images, no official test set) 70/15/15 stratified with the fixed seed, the same
partition as ``events-digits``; Fashion-MNIST: official test set, val = stratified 15 % of the official
training set. :func:`static_images` gives the intensities themselves, for training rate networks.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from rsnn2chip.data.common import SPLIT_SEED, LazySamples, SpikeData, carve_validation, check_split, stratified_split
from rsnn2chip.data.events import FMNIST_FILES, fmnist_dir, read_idx
from rsnn2chip.errors import InputError

ENCODING_KIND = "image_rate"
CODES = ("regular", "bernoulli")
DEFAULT_STEPS = 100
SOURCES = {"digits-images": "sklearn.load_digits", "fmnist-images": "fashion-mnist"}


def encoding_spec(name: str, steps: int = DEFAULT_STEPS, code: str = "regular", max_rate: float = 1.0,
                  phase: float = 0.5, seed: int = 0) -> dict:
    return {"kind": ENCODING_KIND, "source": SOURCES[name], "code": code, "steps": int(steps),
            "max_rate": float(max_rate), "phase": float(phase), "seed": int(seed)}


def check_spec(name: str, spec: dict) -> dict:
    """A saved spec for this dataset (its steps and code may differ from the default), with defaults filled."""
    if not isinstance(spec, dict) or spec.get("kind") != ENCODING_KIND or spec.get("source") != SOURCES[name]:
        found = f"{spec.get('kind')!r} from {spec.get('source')!r}" if isinstance(spec, dict) else type(spec).__name__
        raise InputError(f"the saved encoding is not the {name} rate encoding", found=found,
                         allowed=f"kind {ENCODING_KIND!r} from {SOURCES[name]!r}",
                         fix="evaluate on the dataset the model was trained on")
    full = {**encoding_spec(name), **spec}
    steps, rate = full["steps"], full["max_rate"]
    if full["code"] not in CODES or not isinstance(steps, int) or steps < 1 or not 0 < rate <= 1:
        raise InputError("bad image rate encoding", found={k: full[k] for k in ("code", "steps", "max_rate")},
                         allowed=f"code in {CODES}, steps >= 1, 0 < max_rate <= 1 (at most one spike per step)")
    return full


def encode(images: np.ndarray, spec: dict, index: np.ndarray | None = None) -> np.ndarray:
    """``(N, C)`` intensities in [0, 1] -> ``(N, steps, C)`` uint8 spikes; ``index`` seeds bernoulli per image."""
    q = np.clip(np.asarray(images, dtype=np.float64), 0.0, 1.0) * spec["max_rate"]
    t = np.arange(spec["steps"] + 1, dtype=np.float64)[None, :, None]
    if spec["code"] == "regular":
        counts = np.floor(q[:, None, :] * t + spec["phase"])
        return np.diff(counts, axis=1).astype(np.uint8)
    index = np.arange(len(q)) if index is None else np.asarray(index)
    out = np.empty((len(q), spec["steps"], q.shape[1]), np.uint8)
    for row, (i, qi) in enumerate(zip(index, q)):
        rng = np.random.default_rng([int(spec["seed"]), int(i)])
        out[row] = rng.random((spec["steps"], q.shape[1])) < qi
    return out


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # bundled with scikit-learn, no download
    bunch = load_digits()
    return (bunch.data / 16.0).astype(np.float32), bunch.target.astype(np.int64)


@lru_cache(maxsize=2)
def _fmnist(root: str | None, part: str) -> tuple[np.ndarray, np.ndarray]:
    d = fmnist_dir(root)
    images = read_idx(d / FMNIST_FILES[part][0])
    labels = read_idx(d / FMNIST_FILES[part][1]).astype(np.int64)
    return (images.reshape(len(images), -1) / 255.0).astype(np.float32), labels


def static_images(name: str, split: str, root: str | Path | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(X (N, C) float32 in [0, 1], y (N,), info)`` for one split, in the split's fixed order."""
    check_split(split)
    if name == "digits-images":
        x, y = _digits()
        index = stratified_split(y, SPLIT_SEED)[split]
        info = {"source": "scikit-learn load_digits (8x8, intensities / 16)", "split_seed": SPLIT_SEED}
    elif name == "fmnist-images":
        part = "test" if split == "test" else "train"
        x, y = _fmnist(str(root) if root else None, part)
        index = np.arange(len(y)) if split == "test" else carve_validation(y)[split]
        info = {"source": "Fashion-MNIST (28x28, intensities / 255)", "split_seed": SPLIT_SEED}
    else:
        raise InputError("not a static image dataset", found=name, allowed=", ".join(SOURCES))
    return x[index], y[index], info


def load(name: str, split: str = "train", encoding: dict | None = None, root=None) -> SpikeData:
    spec = check_spec(name, encoding) if encoding else encoding_spec(name)
    x, y, info = static_images(name, split, root)

    def make(i: int) -> np.ndarray:
        return encode(x[i:i + 1], spec, index=[i])[0]

    return SpikeData(name, split, LazySamples(np.arange(len(y)), make), y, x.shape[1], 10, derived=False,
                     encoding=spec, lengths=np.full(len(y), spec["steps"], np.int64),
                     info={**info, "encoding": f"{spec['code']} rate code, {spec['steps']} steps"})


# name -> loader(split, encoding=None, root=None), merged into rsnn2chip.data.DATASETS
DATASETS = {name: (lambda name: lambda split, encoding=None, root=None: load(name, split, encoding, root))(name)
            for name in SOURCES}
