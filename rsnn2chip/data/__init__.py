"""Datasets as 0/1 spike tensors: ``load_dataset(name_or_path, split) -> SpikeData``.

``name_or_path`` is a key of :data:`DATASETS`, ``NAME:DIR`` for a dataset read
from files under ``DIR`` (the tonic sets, events-fmnist), or the path of an
``.npz`` file in the format of :mod:`rsnn2chip.data.npz`. Every loader returns
a :class:`SpikeData` with the same fields; see docs/data.md.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from rsnn2chip.data import events, fsdd, images, npz, tonic_loaders
from rsnn2chip.data.common import SPLITS, Batch, LazySamples, SpikeData, carve_validation_from, stratified_split
from rsnn2chip.errors import InputError
from rsnn2chip.preflight import check_train_lengths

__all__ = ["DATASETS", "DERIVED", "SPLITS", "Batch", "LazySamples", "SpikeData", "load_dataset", "load_splits", "require_samples",
           "stratified_split", "dataset_names"]

# name -> loader(split, encoding=None, root=None) -> SpikeData
DATASETS: dict[str, Callable[..., SpikeData]] = {
    "fsdd": lambda split, encoding=None, root=None, input_encoding=None: fsdd.load(split, encoding, input_encoding),
    "events-digits": lambda split, encoding=None, root=None: events.load_digits_events(split, encoding),
    "events-fmnist": lambda split, encoding=None, root=None: events.load_fmnist_events(split, encoding, root),
    **{name: (lambda name: lambda split, encoding=None, root=None:
              tonic_loaders.load(name, split, encoding, root))(name) for name in tonic_loaders.TONIC_SETS},
    **images.DATASETS,  # digits-images, fmnist-images: static images as rate-coded spikes (rsnn2chip.softlif)
}
# Real content, simulated sensor: never to be reported as a recorded neuromorphic dataset.
DERIVED = ("events-digits", "events-fmnist")
TAKES_ROOT = ("events-fmnist", *tonic_loaders.TONIC_SETS)
# Analog data: --encoding (graded or delta) chooses how they enter the network.
ANALOG = ("fsdd",)


def dataset_names() -> list[str]:
    return list(DATASETS)


def load_dataset(name_or_path: str | Path, split: str = "train", encoding: dict | None = None,
                 limit: int | None = None, input_encoding: str | None = None) -> SpikeData:
    """One split as network input. ``encoding`` (saved at training time) reproduces the training run's
    encoder; otherwise ``input_encoding`` ("graded", "delta"; default graded) chooses one for analog data."""
    text = str(name_or_path)
    name, _, root = text.partition(":")
    if name in DATASETS and (not root or name in TAKES_ROOT):
        if input_encoding and name not in ANALOG:
            raise InputError("--encoding applies to analog data only; this dataset has its own spike encoding",
                             found=f"--encoding {input_encoding} with --data {text}",
                             allowed=f"--encoding with {', '.join(ANALOG)} or an npz file of analog frames",
                             fix="drop --encoding")
        extra = {"input_encoding": input_encoding} if name in ANALOG else {}
        data = DATASETS[name](split, encoding=encoding, root=root or None, **extra)
    elif text.endswith(".npz"):
        data = npz.load(text, split, encoding, input_encoding)
    else:
        raise InputError("unknown dataset", found=text,
                         allowed=f"one of {', '.join(DATASETS)}; NAME:DIR for {', '.join(TAKES_ROOT)}; "
                                 "or a .npz file",
                         fix="see docs/data.md for the datasets and the npz format")
    return data.limit(limit)


def load_splits(name_or_path: str | Path, limit: int | None = None,
                input_encoding: str | None = None) -> tuple[SpikeData, SpikeData, SpikeData]:
    """Train, val and test as training and search read them: val and test encoded with the train split's
    encoder, and a file without validation samples (train and test only, as UCR/UEA sets come) gets 15 % of
    train, stratified with the fixed seed, carved out for validation (choosing the best model needs one)."""
    train = require_samples(load_dataset(name_or_path, "train", limit=limit, input_encoding=input_encoding),
                            "train", name_or_path)
    val = load_dataset(name_or_path, "val", encoding=train.encoding, limit=limit)
    test = load_dataset(name_or_path, "test", encoding=train.encoding, limit=limit)
    if len(test):
        # Lazily read samples are first made when the split is used, and the test split only after training:
        # make its first one now, so that an unreadable test file stops the run before hours of training.
        test.samples[0]
    for data in (train, val, test):
        check_train_lengths(data.lengths, data.split, str(name_or_path))
    require_classes(train, name_or_path)
    if not len(val):
        train, val = carve_validation_from(train)
    return train, val, test


def require_classes(data: SpikeData, source) -> None:
    """At least two classes: a one-class model learns nothing and scores 1.0. ``n_classes`` counts the data set's
    classes (a file's: its largest label + 1), not those a --limit leaves, so a small limit stays allowed."""
    if data.n_classes < 2:
        raise InputError("training needs samples of at least two classes", file=str(source), where="labels",
                         found="every label is 0", allowed="labels 0..K-1 with K >= 2",
                         fix="label the samples of each class with its own number (docs/data.md)")


def require_samples(data: SpikeData, split: str, source) -> SpikeData:
    """``data`` if it holds at least one sample: training or evaluating on nothing is an error, not exit 0."""
    if not len(data):
        raise InputError(f"the {split} split holds no samples", file=str(source), where=f"split {split}",
                         found="0 samples", allowed="at least 1",
                         fix="check the dataset's 'split' array (docs/data.md) or --limit")
    return data
