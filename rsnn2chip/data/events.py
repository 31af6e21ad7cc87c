"""*Derived* event data: real images seen by a simulated event camera making saccades.

The image content is real (scikit-learn's bundled ``load_digits``: 1797 8x8
handwritten digits; or Debian's ``dataset-fashion-mnist``: 70,000 28x28
photos of clothes), but the events are **simulated**, in the spirit of how
N-MNIST was recorded (a sensor moved in front of a still image). So these sets
are marked ``derived=True`` and their names say what they are built from:
``events-digits`` and ``events-fmnist``. Never report them as N-MNIST.

Sensor model (all choices fixed and recorded in the encoding spec):

* the image is scaled to [0, 1] and padded by one pixel so that a one-pixel
  move keeps it in view; the sensor has that many pixels times 2 polarities;
* the view moves along a triangle of three one-pixel saccades,
  ``(0,0) -> (1,1) -> (1,0) -> (0,0)`` (``(dy, dx)`` in pixels), each split
  into ``substeps`` time steps, rendered with bilinear interpolation;
* every pixel compares its log intensity ``log(I + eps)`` with a reference
  that starts at the first view (a sensor adapted to the still image emits
  nothing); an ON (OFF) event fires when the log intensity has risen (fallen)
  by at least ``threshold``, and the reference moves by the whole number of
  thresholds crossed. At most one event per pixel, polarity and step.

Channel ``p*H*W + y*W + x`` is polarity ``p`` (0 ON, 1 OFF) at pixel ``(y, x)``.
"""
from __future__ import annotations

import gzip
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage

from rsnn2chip.data.common import (SPLIT_SEED, LazySamples, SpikeData, carve_validation, check_split,
                                   stratified_split)
from rsnn2chip.errors import InputError

ENCODING_KIND = "saccade_events"
SACCADE_PATH = ((0.0, 0.0), (1.0, 1.0), (1.0, 0.0), (0.0, 0.0))
DEFAULTS = {"substeps": 4, "threshold": 0.25, "eps": 0.1, "pad": 1}
FMNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)
FMNIST_ENV = "RSNN2CHIP_FMNIST_DIR"
FMNIST_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def encoding_spec(source: str, image_shape: tuple[int, int], downsample: int = 1, **overrides) -> dict:
    spec = {"kind": ENCODING_KIND, "source": source, "image_shape": list(image_shape), "downsample": downsample,
            "saccades": [list(p) for p in SACCADE_PATH], **DEFAULTS}
    spec.update(overrides)
    return spec


def sensor_shape(spec: dict) -> tuple[int, int]:
    h, w = (s // spec["downsample"] for s in spec["image_shape"])
    return h + 2 * spec["pad"], w + 2 * spec["pad"]


def n_channels(spec: dict) -> int:
    h, w = sensor_shape(spec)
    return 2 * h * w


def saccade_offsets(spec: dict) -> np.ndarray:
    """``(steps + 1, 2)`` view offsets: the start, then one per time step."""
    path = np.asarray(spec["saccades"], dtype=np.float64)
    s = int(spec["substeps"])
    offsets = [path[0]]
    for a, b in zip(path[:-1], path[1:]):
        offsets += [a + (b - a) * (i / s) for i in range(1, s + 1)]
    return np.asarray(offsets)


def image_to_events(image: np.ndarray, spec: dict) -> np.ndarray:
    """One image (values in [0, 1]) -> ``(steps, channels)`` uint8 ON/OFF events."""
    return images_to_events(image[None], spec)[0]


def images_to_events(images: np.ndarray, spec: dict) -> np.ndarray:
    """``(N, H, W)`` images in [0, 1] -> ``(N, steps, channels)`` uint8; all images move together."""
    images = np.asarray(images, dtype=np.float64)
    k = spec["downsample"]
    if k > 1:
        n, h, w = images.shape[0], images.shape[1] // k * k, images.shape[2] // k * k
        images = images[:, :h, :w].reshape(n, h // k, k, w // k, k).mean(axis=(2, 4))
    pad = spec["pad"]
    images = np.pad(images, ((0, 0), (pad, pad), (pad, pad)))
    offsets = saccade_offsets(spec)
    theta = spec["threshold"]
    ref = None
    out = np.zeros((len(offsets) - 1, 2) + images.shape, np.uint8)
    for t, (dy, dx) in enumerate(offsets):
        view = np.log(ndimage.shift(images, (0.0, dy, dx), order=1, mode="constant", cval=0.0) + spec["eps"])
        if ref is None:
            ref = view
            continue
        crossed = np.trunc((view - ref) / theta)  # whole thresholds crossed, signed
        out[t - 1, 0] = crossed >= 1
        out[t - 1, 1] = crossed <= -1
        ref = ref + crossed * theta
    # (steps, 2, N, H, W) -> (N, steps, 2*H*W)
    return out.transpose(2, 0, 1, 3, 4).reshape(images.shape[0], len(offsets) - 1, -1)


# --------------------------------------------------------------------------- events-digits

@lru_cache(maxsize=1)
def digits_images() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # bundled with scikit-learn, no download
    bunch = load_digits()
    return (bunch.images / 16.0).astype(np.float64), bunch.target.astype(np.int64)


@lru_cache(maxsize=1)
def digits_events() -> np.ndarray:
    images, _ = digits_images()
    spec = encoding_spec("sklearn.load_digits", images.shape[1:])
    return images_to_events(images, spec)


def load_digits_events(split: str = "train", encoding: dict | None = None) -> SpikeData:
    check_split(split)
    images, labels = digits_images()
    spec = encoding_spec("sklearn.load_digits", images.shape[1:])
    check_same_spec(encoding, spec)
    index = stratified_split(labels, SPLIT_SEED)[split]
    events = digits_events()[index]
    return SpikeData("events-digits", split, list(events), labels[index], n_channels(spec), 10, derived=True,
                     encoding=spec, lengths=np.full(len(index), events.shape[1], np.int64),
                     info={"source": "derived: scikit-learn load_digits images, simulated saccade events",
                           "split_seed": SPLIT_SEED})


def check_same_spec(saved: dict | None, current: dict) -> None:
    """Derived sets have one fixed encoding; a model trained on another one would be misread."""
    if saved and saved != current:
        found = saved if saved.get("kind") == current["kind"] else f"encoding kind {saved.get('kind')!r}"
        raise InputError("the saved encoding does not match this dataset's encoding in this rsnn2chip version",
                         found=found, allowed=current,
                         fix="evaluate on the dataset the model was trained on, or retrain with this version")


# --------------------------------------------------------------------------- events-fmnist

def fmnist_dir(root: str | Path | None = None) -> Path:
    candidates = [Path(root)] if root else ([Path(os.environ[FMNIST_ENV])] if os.environ.get(FMNIST_ENV) else [])
    candidates += [Path(d) for d in FMNIST_DIRS] if not root else []
    for d in candidates:
        if all((d / f).is_file() for f in FMNIST_FILES["train"] + FMNIST_FILES["test"]):
            return d
    files = ", ".join(FMNIST_FILES["train"] + FMNIST_FILES["test"])
    raise InputError("Fashion-MNIST files not found", file=", ".join(str(c) for c in candidates),
                     allowed=files,
                     fix=f"apt-get install dataset-fashion-mnist (puts them in {FMNIST_DIRS[0]}), or set "
                         f"{FMNIST_ENV} to a folder holding those four files")


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzipped), the MNIST container: magic 0x0000 08 ndim, big-endian dims, uint8 data."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise InputError("not an IDX file of unsigned bytes", file=str(path), found=raw[:4].hex())
    ndim = raw[3]
    dims = np.frombuffer(raw, ">u4", count=ndim, offset=4).astype(np.int64)
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise InputError("IDX file is truncated", file=str(path), found=data.size, allowed=int(np.prod(dims)))
    return data.reshape(tuple(dims))


def load_fmnist_events(split: str = "train", encoding: dict | None = None, root: str | Path | None = None,
                       downsample: int = 2) -> SpikeData:
    """Fashion-MNIST through the saccade sensor; images are 2x2-averaged to 14x14 to keep 512 channels."""
    check_split(split)
    d = fmnist_dir(root)
    part = "test" if split == "test" else "train"
    images = read_idx(d / FMNIST_FILES[part][0])
    labels = read_idx(d / FMNIST_FILES[part][1]).astype(np.int64)
    if images.ndim != 3 or len(images) != len(labels):
        raise InputError("Fashion-MNIST images and labels do not match", file=str(d),
                         found={"images": images.shape, "labels": labels.shape})
    spec = encoding_spec("fashion-mnist", images.shape[1:], downsample=downsample)
    check_same_spec(encoding, spec)
    index = np.arange(len(labels)) if split == "test" else carve_validation(labels)[split]

    def make(i: int) -> np.ndarray:
        return image_to_events(images[i] / 255.0, spec)

    steps = len(saccade_offsets(spec)) - 1
    return SpikeData("events-fmnist", split, LazySamples(index, make), labels[index], n_channels(spec), 10,
                     derived=True, encoding=spec, lengths=np.full(len(index), steps, np.int64),
                     info={"source": f"derived: Fashion-MNIST images from {d}, simulated saccade events",
                           "split_seed": SPLIT_SEED})
