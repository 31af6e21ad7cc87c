"""Neuromorphic datasets read with `tonic` from files the user already has.

No registry package ships SHD, N-MNIST, DVS-Gesture or N-TIDIGITS, and these
machines cannot download them, so tonic's own downloader is switched off: a
missing file is an :class:`InputError` that says which files to put where.
Reading, event parsing and framing are tonic's (its dataset classes and
``tonic.transforms.ToFrame``), so the files are exactly those tonic expects.

Root folder: ``load(..., root=DIR)``, ``--data shd:DIR`` on the command line,
else ``$RSNN2CHIP_DATA_DIR``, else ``./data``. Inside the root, each dataset
sits in a folder named after its tonic class (tonic's convention)::

    DIR/SHD/shd_train.h5, shd_test.h5
    DIR/NMNIST/Train/<digit>/*.bin, DIR/NMNIST/Test/<digit>/*.bin
    DIR/DVSGesture/ibmGestureTrain/user*_*/<label>.npy, .../ibmGestureTest/...
    DIR/NTIDIGITS18/n-tidigits.hdf5

Events become 0/1 frames: bins of ``time_window_us`` starting at t = 0, one
spike per (bin, channel) however many events fell in it. Channel order is
tonic's frame order flattened: ``p*H*W + y*W + x`` (``p*W + x`` for the
one-dimensional audio sensors). The official test set is ``test``; ``val``
is a fixed stratified 15 % of the official training set and ``train`` the rest.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from rsnn2chip.data.common import SPLIT_SEED, LazySamples, SpikeData, carve_validation, check_split
from rsnn2chip.errors import InputError
from rsnn2chip.preflight import available_bytes

ROOT_ENV = "RSNN2CHIP_DATA_DIR"
ENCODING_KIND = "tonic_frames"


@dataclass(frozen=True)
class TonicSet:
    name: str           # our dataset name
    tonic_class: str    # class in tonic.datasets; also its folder under the root
    required: dict      # split part ("train"/"test") -> (relative glob, at least one match needed)
    how_to_get: str
    time_window_us: float
    spatial_factor: float = 1.0
    n_classes: int = 0
    members: tuple = ()  # HDF5 datasets/groups the reader opens ("{part}" -> train/test), checked up front


TONIC_SETS = {
    "shd": TonicSet("shd", "SHD", {"train": "shd_train.h5", "test": "shd_test.h5"},
                    "download shd_train.h5.zip and shd_test.h5.zip (URL: tonic.datasets.SHD.base_url) and unzip",
                    time_window_us=10_000, n_classes=20, members=("spikes/times", "spikes/units", "labels")),
    "nmnist": TonicSet("nmnist", "NMNIST", {"train": "Train/*/*.bin", "test": "Test/*/*.bin"},
                       "download N-MNIST's train.zip and test.zip (URLs: tonic.datasets.NMNIST.train_url, "
                       "test_url) and unzip them so that Train/0/*.bin ... Test/9/*.bin exist",
                       time_window_us=10_000, n_classes=10),
    "dvs-gesture": TonicSet("dvs-gesture", "DVSGesture",
                            {"train": "ibmGestureTrain/*/*.npy", "test": "ibmGestureTest/*/*.npy"},
                            "download tonic's preprocessed ibmGestureTrain.tar.gz and ibmGestureTest.tar.gz "
                            "(URLs: tonic.datasets.DVSGesture.train_url, test_url) and untar them",
                            time_window_us=50_000, spatial_factor=0.25, n_classes=11),
    "ntidigits": TonicSet("ntidigits", "NTIDIGITS18", {"train": "n-tidigits.hdf5", "test": "n-tidigits.hdf5"},
                          "download n-tidigits.hdf5 (URL: tonic.datasets.NTIDIGITS18.base_url)",
                          time_window_us=10_000, n_classes=11,
                          members=("{part}_labels", "{part}_addresses", "{part}_timestamps")),
}


def import_tonic():
    try:
        import tonic
        import tonic.datasets
        import tonic.transforms
    except ImportError as err:
        raise InputError(f"the tonic package is needed for this dataset but cannot be imported ({err})",
                         fix="make setup (installs tonic with --no-deps; see requirements-nodeps.txt)") from None
    return tonic


def data_root(root: str | Path | None = None) -> Path:
    if root:
        return Path(root).expanduser()
    return Path(os.environ.get(ROOT_ENV) or "data").expanduser()


def require_files(spec: TonicSet, root: Path, part: str) -> Path:
    """The dataset folder, after checking the files tonic will read are there."""
    folder = root / spec.tonic_class
    pattern = spec.required[part]
    if not any(folder.glob(pattern)):
        raise InputError(f"{spec.name} files not found (no download is attempted)",
                         file=str(folder.resolve() / pattern), where=f"{spec.name} {part} set",
                         fix=f"{spec.how_to_get} into {folder.resolve()}/, or pass --data {spec.name}:DIR "
                             f"(or set {ROOT_ENV}) for a root folder DIR that holds {spec.tonic_class}/")
    return folder


# What tonic's readers raise on a malformed file: h5py a KeyError for a missing member and an OSError
# for damaged data or a file that is not HDF5, numpy a ValueError for an object array or a bad .npy
# header, an IndexError for a truncated N-MNIST record, a TypeError for members of the wrong kind.
READ_ERRORS = (OSError, KeyError, ValueError, IndexError, TypeError)
# Bytes per (time bin, channel) while a sample is framed: tonic's int16 frame, our 0/1 test and uint8 copy.
FRAME_BYTES_PER_CELL = 4


@contextmanager
def reading(spec: TonicSet, file, where: str):
    """Only around calls that read the user's files: what they raise names the file, not a traceback."""
    try:
        yield
    except READ_ERRORS as exc:
        raise InputError(f"{spec.name} file is not in the format tonic.datasets.{spec.tonic_class} reads "
                         f"({type(exc).__name__}: {exc})", file=str(file), where=where,
                         allowed=f"the files tonic.datasets.{spec.tonic_class} reads (docs/data.md)",
                         fix=f"replace it with an intact copy: {spec.how_to_get}") from None


def check_members(spec: TonicSet, folder: Path, part: str) -> None:
    """The HDF5 datasets the reader opens are there (h5py's KeyError for a missing one need not name it)."""
    if not spec.members:
        return
    import h5py

    file = folder / spec.required[part]
    needed = [m.format(part=part) for m in spec.members]
    with reading(spec, file, f"{spec.name} {part} set"), h5py.File(file, "r") as f:
        missing = [name for name in needed if name not in f]
        present = sorted(f)
    if missing:
        raise InputError(f"{spec.name} file lacks datasets its reader needs", file=str(file),
                         where=", ".join(missing),
                         found=f"missing; the file holds only: {', '.join(present) or 'nothing'}",
                         allowed=f"a file with {', '.join(needed)}",
                         fix=f"replace it with an intact copy: {spec.how_to_get}")


def sample_file(spec: TonicSet, dataset, folder: Path, part: str, i: int) -> str:
    """The file sample ``i`` is read from: its own (N-MNIST, DVS-Gesture) or the set's one HDF5 file."""
    pattern = spec.required[part]
    return str(dataset.data[i]) if "*" in pattern else str(folder / pattern)


def read_events(spec: TonicSet, dataset, file: str, part: str, i: int, n_channels: int) -> np.ndarray:
    """Sample ``i``'s events, their times checked before framing (tonic would size its frames by them)."""
    where = f"{spec.name} {part} set, sample {i}"
    # tonic casts the files' float times (SHD, N-TIDIGITS: seconds) to integer microseconds; a NaN or
    # infinity would become a huge negative time there, so the cast is made to raise instead.
    try:
        with reading(spec, file, where), np.errstate(invalid="raise"):
            events, _ = dataset[i]
    except FloatingPointError:
        raise InputError(f"{spec.name} event times hold NaN or infinity", file=file, where=f"{where}, times",
                         found="NaN or infinity", allowed="finite times >= 0",
                         fix="repair or remove this sample") from None
    times = events["t"]
    if times.size == 0:
        return events
    # The frames hold one row per time window up to the last event: bound that by the memory available.
    max_us = available_bytes() // (n_channels * FRAME_BYTES_PER_CELL) * spec.time_window_us
    first, last = int(times.min()), int(times.max())
    if first < 0 or last > max_us:
        raise InputError(f"{spec.name} event times are out of range", file=file, where=f"{where}, times",
                         found=f"times {first / 1e6:g}..{last / 1e6:g} s",
                         allowed=f"0..{max_us / 1e6:g} s (frames of {spec.time_window_us / 1e3:g} ms x "
                                 f"{n_channels} channels that fit in the memory available)",
                         fix="repair or remove this sample")
    return events


def offline(cls):
    """tonic's class with the same name (tonic derives the folder from it), minus downloading."""
    def download(self):
        raise InputError(f"{cls.__name__} files are incomplete and downloading is disabled",
                         file=getattr(self, "location_on_system", None), fix="see docs/data.md")

    # Our require_files has already checked for the files this reader opens; tonic's
    # own check also wants the downloaded archive and thousands of files.
    return type(cls.__name__, (cls,), {"download": download, "_check_exists": lambda self: True})


def sensor_of(spec: TonicSet, tonic_cls) -> tuple[int, int, int]:
    w, h, p = tonic_cls.sensor_size
    if spec.spatial_factor != 1.0:
        w, h = int(w * spec.spatial_factor), int(h * spec.spatial_factor)
    return w, h, p


def framer(spec: TonicSet, tonic) -> tuple[Callable[[np.ndarray], np.ndarray], int, dict]:
    cls = getattr(tonic.datasets, spec.tonic_class)
    sensor = sensor_of(spec, cls)
    n_channels = int(np.prod(sensor))
    steps = [tonic.transforms.ToFrame(sensor_size=sensor, time_window=spec.time_window_us, start_time=0,
                                      include_incomplete=True)]
    if spec.spatial_factor != 1.0:
        steps.insert(0, tonic.transforms.Downsample(spatial_factor=spec.spatial_factor))
    transform = tonic.transforms.Compose(steps)

    def to_spikes(events: np.ndarray) -> np.ndarray:
        if len(events) == 0:
            return np.zeros((1, n_channels), np.uint8)
        frames = np.asarray(transform(events))
        return (frames.reshape(frames.shape[0], -1) > 0).astype(np.uint8)

    encoding = {"kind": ENCODING_KIND, "dataset": spec.name, "time_window_us": spec.time_window_us,
                "spatial_factor": spec.spatial_factor, "sensor_size": list(sensor), "binary": True}
    return to_spikes, n_channels, encoding


def open_dataset(spec: TonicSet, tonic, folder_root: Path, part: str):
    cls = offline(getattr(tonic.datasets, spec.tonic_class))
    train = part == "train"
    if spec.name == "ntidigits":
        return cls(str(folder_root), train=train, single_digits=True)
    return cls(str(folder_root), train=train)


def labels_of(spec: TonicSet, dataset) -> np.ndarray:
    """All labels without reading any events."""
    if spec.name == "shd":
        import h5py
        with h5py.File(os.path.join(dataset.location_on_system, dataset.data_filename), "r") as f:
            return np.asarray(f["labels"][()], dtype=np.int64)
    if spec.name == "ntidigits":
        return np.array([dataset.class_map[s.split("-")[-1]] for s in dataset._samples], dtype=np.int64)
    return np.asarray(dataset.targets, dtype=np.int64)


def load(name: str, split: str = "train", encoding: dict | None = None, root: str | Path | None = None) -> SpikeData:
    check_split(split)
    if name not in TONIC_SETS:
        raise InputError("unknown tonic dataset", found=name, allowed=", ".join(TONIC_SETS))
    spec = TONIC_SETS[name]
    part = "test" if split == "test" else "train"
    base = data_root(root)
    folder = require_files(spec, base, part)
    check_members(spec, folder, part)
    tonic = import_tonic()
    to_spikes, n_channels, enc = framer(spec, tonic)
    if encoding and (encoding.get("kind"), encoding.get("dataset")) != (enc["kind"], enc["dataset"]):
        trained = f"encoding kind {encoding.get('kind')!r}" + (f" of {encoding['dataset']!r}"
                                                              if encoding.get("dataset") else "")
        raise InputError(f"the model was trained on another dataset or encoding, not on {spec.name}'s tonic frames",
                         found=trained, allowed=f"encoding kind {enc['kind']!r} of {spec.name!r}",
                         fix="run the model on the data it was trained on")
    if encoding and encoding != enc:
        raise InputError("the model was trained with another framing of this dataset", found=encoding, allowed=enc,
                         fix="retrain with this rsnn2chip version")
    with reading(spec, folder / spec.required[part], f"{spec.name} {part} set, labels"):
        dataset = open_dataset(spec, tonic, base, part)
        labels = labels_of(spec, dataset)
    index = np.arange(len(labels)) if part == "test" else carve_validation(labels)[split]

    def make(i: int) -> np.ndarray:
        return to_spikes(read_events(spec, dataset, sample_file(spec, dataset, folder, part, i), part, i,
                                     n_channels))

    n_classes = max(spec.n_classes, int(labels.max()) + 1 if labels.size else 0)
    return SpikeData(spec.name, split, LazySamples(index, make), labels[index], n_channels, n_classes,
                     encoding=enc, info={"source": f"tonic {spec.tonic_class} files in {base.resolve()}",
                                         "split_seed": SPLIT_SEED})
