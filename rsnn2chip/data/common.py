"""The uniform dataset object every loader returns, fixed splits, and batching.

A :class:`SpikeData` holds one split of one dataset as 0/1 spike samples of
shape ``(T_i, channels)`` (``T_i`` may differ per sample) plus integer labels.
Samples are either kept in memory (FSDD, events-digits, npz files) or made on
demand by a :class:`LazySamples` (tonic datasets, Fashion-MNIST events), so a
large set never has to fit in memory as one padded tensor.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from rsnn2chip.errors import InputError

SPLITS = ("train", "val", "test")
# Fractions of every class that go to train / val / test; the rest of a class
# (rounding) goes to test. Fixed so that every run, and eval after train, sees
# the same partition.
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)
SPLIT_SEED = 0


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise InputError("unknown data split", found=repr(split), allowed=", ".join(SPLITS))
    return split


def stratified_split(labels: np.ndarray, seed: int = SPLIT_SEED,
                     fractions: tuple[float, float, float] = SPLIT_FRACTIONS) -> dict[str, np.ndarray]:
    """Indices of each split; every class is divided in the same proportions.

    Written out rather than taken from scikit-learn so that the partition
    cannot change with a library upgrade. Within a split the indices are in a
    seeded random order, so taking the first ``n`` (``--limit``) gives a
    class-mixed subset.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts = {name: [] for name in SPLITS}
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        n_train = int(round(fractions[0] * len(members)))
        n_val = int(round(fractions[1] * len(members)))
        parts["train"].append(members[:n_train])
        parts["val"].append(members[n_train:n_train + n_val])
        parts["test"].append(members[n_train + n_val:])
    return {name: rng.permutation(np.concatenate(chunks)) if chunks else np.zeros(0, np.int64)
            for name, chunks in parts.items()}


def carve_validation(labels: np.ndarray, val_fraction: float = SPLIT_FRACTIONS[1],
                     seed: int = SPLIT_SEED) -> dict[str, np.ndarray]:
    """Split a dataset's official training set into train and val (its test set stays as it is)."""
    parts = stratified_split(labels, seed, (1.0 - val_fraction, val_fraction, 0.0))
    return {"train": parts["train"], "val": np.concatenate([parts["val"], parts["test"]])}


def carve_validation_from(data: "SpikeData", val_fraction: float = SPLIT_FRACTIONS[1]) -> tuple["SpikeData", "SpikeData"]:
    """A train split without a validation split -> (train, val), stratified with the fixed seed."""
    parts = carve_validation(data.labels, val_fraction)
    return data.subset(parts["train"], "train"), data.subset(parts["val"], "val")


class LazySamples:
    """A sequence whose items are made when asked for: ``make(i) -> (T_i, C)`` 0/1 array."""

    def __init__(self, indices: Sequence[int], make: Callable[[int], np.ndarray]):
        self.indices = np.asarray(indices, dtype=np.int64)
        self.make = make

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.make(int(self.indices[i]))

    def take(self, n: int) -> "LazySamples":
        return LazySamples(self.indices[:n], self.make)


@dataclass
class Batch:
    x: torch.Tensor        # (B, T, C) float32 of 0/1, zero-padded after each sample's own length
    y: torch.Tensor        # (B,) int64
    lengths: torch.Tensor  # (B,) int64 steps of real input per sample
    index: np.ndarray      # (B,) positions of the samples in the SpikeData


@dataclass
class SpikeData:
    """One split of a dataset as spikes; see the module docstring."""

    name: str
    split: str
    samples: Sequence[np.ndarray]  # each (T_i, n_channels), values 0/1
    labels: np.ndarray             # (N,) int64 in 0..n_classes-1
    n_channels: int
    n_classes: int
    derived: bool = False          # real content, simulated sensor (see docs/data.md)
    encoding: dict = field(default_factory=dict)  # JSON-safe; reproduces this encoding exactly
    lengths: np.ndarray | None = None  # (N,) T_i, when known without making every sample
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    def describe(self) -> dict:
        """JSON-safe summary for checkpoints and metrics."""
        return {"name": self.name, "split": self.split, "samples": len(self), "n_channels": self.n_channels,
                "n_classes": self.n_classes, "derived": self.derived, **self.info}

    def limit(self, n: int | None) -> "SpikeData":
        """The first ``n`` samples (the split order is already shuffled with a fixed seed)."""
        if n is None or n >= len(self):
            return self
        if n < 1:
            raise InputError("--limit must be >= 1", found=n)
        samples = self.samples.take(n) if isinstance(self.samples, LazySamples) else list(self.samples[:n])
        return SpikeData(self.name, self.split, samples, self.labels[:n], self.n_channels, self.n_classes,
                         self.derived, self.encoding, None if self.lengths is None else self.lengths[:n],
                         dict(self.info))

    def subset(self, index: np.ndarray, split: str) -> "SpikeData":
        """The samples at positions ``index``, as split ``split``."""
        index = np.asarray(index, dtype=np.int64)
        samples = LazySamples(self.samples.indices[index], self.samples.make) \
            if isinstance(self.samples, LazySamples) else [self.samples[int(i)] for i in index]
        return SpikeData(self.name, split, samples, self.labels[index], self.n_channels, self.n_classes,
                         self.derived, self.encoding, None if self.lengths is None else self.lengths[index],
                         dict(self.info, carved_from="train"))

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.n_classes)

    # ---- batching
    def batch_order(self, batch_size: int, shuffle: bool, seed: int) -> list[np.ndarray]:
        """Index groups; with known lengths, samples of similar length share a batch.

        Bucketing cuts the padded steps the network has to simulate (FSDD's
        lengths run from 6 to 92 frames) without changing any result: a
        sample's prediction ignores steps after its own window.
        """
        n = len(self)
        order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
        if self.lengths is None:
            return [order[i:i + batch_size] for i in range(0, n, batch_size)]
        pool = batch_size * 8
        batches = []
        for start in range(0, n, pool):
            chunk = order[start:start + pool]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
        if shuffle:
            batches = [batches[i] for i in np.random.default_rng(seed + 1).permutation(len(batches))]
        return batches

    def make_batch(self, index: np.ndarray, extra_steps: int = 0) -> Batch:
        arrays = [np.asarray(self.samples[int(i)]) for i in index]
        lengths = np.array([a.shape[0] for a in arrays], dtype=np.int64)
        x = np.zeros((len(arrays), int(lengths.max()) + extra_steps, self.n_channels), np.float32)
        for row, a in enumerate(arrays):
            x[row, :a.shape[0]] = a
        return Batch(torch.from_numpy(x), torch.as_tensor(self.labels[index], dtype=torch.int64),
                     torch.from_numpy(lengths), np.asarray(index))

    def batches(self, batch_size: int = 64, shuffle: bool = False, seed: int = 0,
                extra_steps: int = 0) -> Iterator[Batch]:
        """Padded batches; ``extra_steps`` zero steps are added so the last input can reach the output."""
        for index in self.batch_order(batch_size, shuffle, seed):
            yield self.make_batch(index, extra_steps)

    def tensor(self, extra_steps: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole split as one padded ``(N, T, C)`` tensor and its lengths (for small sets)."""
        batch = self.make_batch(np.arange(len(self)), extra_steps)
        return batch.x, batch.lengths
