"""Real temporal data sets that can be built offline, written as rsnn2chip npz files (docs/data.md).

    .venv/bin/python bench/datasets.py ArrowHead OSULeaf fmnist-rows   # -> build/data/<name>.npz

* ``<UCR/UEA name>``: a classification set from the ``.ts`` files inside the aeon 1.6.0 wheel on PyPI
  (``aeon/datasets/data/<name>/<name>_{TRAIN,TEST}.ts``). The wheel is fetched with
  ``pip download --no-deps aeon==1.6.0`` into build/cache/ and read as a zip: aeon itself (and its heavy
  dependencies) is never installed. The official train/test split is kept (``split`` 0 / 2); rsnn2chip
  carves its validation split out of train.
* ``fmnist-rows``: Fashion-MNIST (Debian package ``dataset-fashion-mnist``, MIT licence) read row by row,
  28 steps of 28 real-valued channels, a standard recurrent benchmark. A fixed, class-stratified subset
  (``FMNIST_TRAIN`` / ``FMNIST_TEST`` per class) keeps CPU runs short.

The UCR/UEA sets JapaneseVowels, BasicMotions, ItalyPowerDemand, PickupGestureWiimoteZ and GunPoint are
held out for checks of the defaults on unseen data: this script refuses them.
"""
from __future__ import annotations

import argparse
import gzip
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "data"
CACHE = ROOT / "build" / "cache"
AEON = "aeon==1.6.0"
HELD_OUT = ("JapaneseVowels", "BasicMotions", "ItalyPowerDemand", "PickupGestureWiimoteZ", "GunPoint")
FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FMNIST_TRAIN, FMNIST_TEST = 300, 100  # per class


def aeon_wheel() -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    found = sorted(CACHE.glob("aeon-1.6.0-*.whl"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(CACHE), AEON], check=True)
        found = sorted(CACHE.glob("aeon-1.6.0-*.whl"))
    return found[0]


def parse_ts(text: str) -> tuple[list[np.ndarray], list[str]]:
    """A ``.ts`` file's series ``(T, dims)`` and labels; each line is ``dim1:dim2:...:label``."""
    series, labels, in_data = [], [], False
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.lower().startswith("@data"):
            in_data = True
            continue
        if not in_data or line.startswith("@"):
            continue
        *dims, label = line.split(":")
        channels = [np.array([float(v) if v not in ("?", "NaN") else np.nan for v in d.split(",")]) for d in dims]
        length = min(len(c) for c in channels)
        frame = np.stack([c[:length] for c in channels], axis=1)
        keep = ~np.isnan(frame).any(axis=1)  # trailing padding of unequal-length series
        series.append(frame[keep])
        labels.append(label.strip())
    return series, labels


def ucr(name: str) -> dict[str, np.ndarray]:
    if name in HELD_OUT:
        raise SystemExit(f"{name} is held out for checks on unseen data; pick another set")
    with zipfile.ZipFile(aeon_wheel()) as wheel:
        parts = {split: parse_ts(wheel.read(f"aeon/datasets/data/{name}/{name}_{split}.ts").decode())
                 for split in ("TRAIN", "TEST")}
    classes = sorted({label for _, labels in parts.values() for label in labels})
    series = parts["TRAIN"][0] + parts["TEST"][0]
    labels = parts["TRAIN"][1] + parts["TEST"][1]
    split = np.array([0] * len(parts["TRAIN"][0]) + [2] * len(parts["TEST"][0]), np.int64)
    return frames_npz(series, [classes.index(label) for label in labels], split)


def fmnist_rows() -> dict[str, np.ndarray]:
    def images(kind: str) -> tuple[np.ndarray, np.ndarray]:
        with gzip.open(FMNIST_DIR / f"{kind}-images-idx3-ubyte.gz") as f:
            x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
        with gzip.open(FMNIST_DIR / f"{kind}-labels-idx1-ubyte.gz") as f:
            y = np.frombuffer(f.read(), np.uint8, offset=8)
        return x, y

    if not FMNIST_DIR.is_dir():
        raise SystemExit(f"{FMNIST_DIR} missing: apt-get install dataset-fashion-mnist")
    series, labels, split = [], [], []
    for kind, per_class, code in (("train", FMNIST_TRAIN, 0), ("t10k", FMNIST_TEST, 2)):
        x, y = images(kind)
        rng = np.random.default_rng(0)
        for cls in range(10):
            for i in rng.permutation(np.flatnonzero(y == cls))[:per_class]:
                series.append(x[i].astype(np.float32) / 255.0)
                labels.append(cls)
                split.append(code)
    return frames_npz(series, labels, np.array(split, np.int64))


def frames_npz(series: list[np.ndarray], labels, split: np.ndarray) -> dict[str, np.ndarray]:
    return {"X": np.concatenate(series).astype(np.float32), "lengths": np.array([len(s) for s in series], np.int64),
            "y": np.asarray(labels, np.int64), "split": split}


def build_fsdd_tiny(name: str) -> Path:
    """``fsdd4a`` (digits 0-3) or ``fsdd4b`` (digits 4-7): 10 training and 40 test recordings per digit, train
    and test splits only. A stand-in for small sets such as a lab's own recordings: the search defaults must
    work on 40 training series."""
    digits, seed = {"fsdd4a": ([0, 1, 2, 3], 0), "fsdd4b": ([4, 5, 6, 7], 1)}[name]
    path = OUT / f"{name}.npz"
    if path.exists():
        return path
    from rsnn2chip.data.fsdd import load_raw
    frames, lengths, labels = load_raw()
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    rng = np.random.default_rng(seed)
    picked, split = [], []
    for digit in digits:
        order = rng.permutation(np.nonzero(labels == digit)[0])
        picked += list(order[:50])
        split += [0] * 10 + [2] * 40
    series = [frames[starts[i]:starts[i] + lengths[i]] for i in picked]
    return _save(path, frames_npz(series, np.searchsorted(digits, labels[picked]), np.array(split, np.int64)))


def _save(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)
    return path


def build(name: str) -> Path:
    path = OUT / f"{name}.npz"
    if not path.exists():
        _save(path, fmnist_rows() if name == "fmnist-rows" else ucr(name))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="+", help="UCR/UEA set names in the aeon wheel, or fmnist-rows")
    for name in parser.parse_args().names:
        path = build(name)
        with np.load(path) as npz:
            print(f"{path}: {len(npz['y'])} series, {npz['X'].shape[1]} channels, "
                  f"{int(npz['y'].max()) + 1} classes, lengths {npz['lengths'].min()}..{npz['lengths'].max()}, "
                  f"train {int((npz['split'] == 0).sum())} / test {int((npz['split'] == 2).sum())}")


if __name__ == "__main__":
    main()
