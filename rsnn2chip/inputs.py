"""What ``run`` and ``verify`` feed a network: spikes, raw features encoded as in training, or a data-set sample.

* ``--input x.npy`` of 0/1 values: spikes, used as they are.
* ``--input x.npy`` of real values: raw features, ``(T, features)`` or
  ``(batch, T, features)``, encoded with the encoding the training run recorded
  (in the artifact's provenance, or in the checkpoint): the per-channel
  statistics, then graded payloads or delta thresholds (``rsnn2chip.data.encoding``),
  so the network sees exactly what it saw in training.
* ``--data NAME --index I [--split SPLIT]``: sample ``I`` of a data set, encoded
  the same way.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from rsnn2chip import argtypes, artifact as artifact_io
from rsnn2chip.backends import check_input_shape
from rsnn2chip.data.encoding import DeltaEncoder, GradedEncoder, is_binary
from rsnn2chip.errors import InputError, Problem
from rsnn2chip.safeio import load_npy


def training_meta(art, notes: list) -> dict:
    """The training run's ``encoding`` and ``dataset``: from the artifact, else its unchanged source checkpoint."""
    from rsnn2chip.checkpoint import load_checkpoint  # torch: only when a checkpoint must be read
    from rsnn2chip.frontends import checkpoint as checkpoint_frontend

    prov = art.provenance or {}
    for meta in (prov, prov.get("meta") or {}):
        if meta.get("encoding"):
            return {"encoding": meta["encoding"], "dataset": meta.get("dataset")}
    source = prov.get("source")
    # Only an rsnn2chip checkpoint records its training encoding; a .nir or .net source has none to offer.
    if (source and Path(source).is_file() and checkpoint_frontend.sniff(source)
            and prov.get("source_sha256") == artifact_io.sha256_file(source)):
        meta = load_checkpoint(source)["meta"]
        if meta.get("encoding"):
            return {"encoding": meta["encoding"], "dataset": meta.get("dataset")}
    notes.append("the artifact records no input encoding and its source checkpoint is not available unchanged; "
                 "using the dataset's default encoding (fitted on its train split), which is what "
                 "`rsnn2chip train` uses unless the data were given an explicit encoding")
    return {"encoding": None, "dataset": None}


def load_as_trained(name_or_path, split: str, trained: dict, network_file, limit: int | None = None):
    """``load_dataset`` with the training run's encoding; a data-set mix-up is named as such, the data
    set's own refusal of the encoding after it (``trained``: what :func:`training_meta` returns)."""
    from rsnn2chip.data import load_dataset

    dataset = trained.get("dataset")
    trained_on = dataset.get("name") if isinstance(dataset, dict) else dataset
    try:
        return load_dataset(name_or_path, split, encoding=trained.get("encoding"), limit=limit)
    except InputError as err:
        asked = Path(name_or_path).name if str(name_or_path).endswith(".npz") else str(name_or_path).partition(":")[0]
        if trained_on and trained_on != asked:
            err.problems.insert(0, Problem(f"the model was trained on {trained_on!r}, not on {asked!r}",
                                           file=str(network_file), fix=f"pass --data {trained_on}"))
            raise InputError(problems=err.problems) from None
        raise


def add_arguments(parser, what: str = "run") -> None:
    parser.add_argument("--input", type=argtypes.path_text,
                        help=".npy of 0/1 spikes, or of real-valued features that are encoded as in training; shape "
                             "(T, channels) or (batch, T, channels)")
    parser.add_argument("--data", help=f"{what} sample --index of this data set instead (encoded as in training)")
    # Defaults applied in load(): None says the option was not given, which --input must not be given with.
    parser.add_argument("--index", type=int, help="with --data: which sample (default 0)")
    parser.add_argument("--split", choices=("train", "val", "test"), help="with --data: which split (default test)")


def read_npy(path: str) -> np.ndarray:
    """The input array, its header and size checked before anything is read (rsnn2chip.safeio)."""
    return load_npy(path, "input file",
                    fix="pass a .npy array of 0/1 spikes or of raw features saved with numpy.save, "
                        "or --data NAME --index I")


def check_finite(x: np.ndarray, file: str) -> None:
    """NaN or infinity has no spike or payload to stand for it; the encoders would clip or cast it silently."""
    if x.dtype.kind != "f" or np.isfinite(x).all():
        return
    at = tuple(int(i) for i in np.argwhere(~np.isfinite(x))[0])
    where = ", ".join(f"{name} {i}" for name, i in zip(("sample", "step", "channel")[-x.ndim:], at)) \
        if x.ndim in (2, 3) else f"index {at}"
    raise InputError("input holds NaN or infinity", file=file, where=where, found=float(x[at]),
                     allowed="finite values: 0/1 spikes, or raw features", fix="remove or impute missing values first")


def _per_step(encoder, features: np.ndarray, dtype, file: str) -> np.ndarray:
    batch = features if features.ndim == 3 else features[None]
    steps = batch.shape[1]
    if batch.shape[2] != encoder.channels_in:
        raise InputError("raw features have another width than the training data", file=file, found=batch.shape[2],
                         allowed=f"{encoder.channels_in} features per step (the encoding was fitted on them)")
    encoded = encoder.encode(batch.reshape(-1, batch.shape[2]), np.full(len(batch), steps))
    out = np.stack(encoded).astype(dtype)
    return out if features.ndim == 3 else out[0]


# Encoding kind -> encoder of raw features (T, features); kinds that encode whole images or
# event streams have no such per-step form: their samples come in with --data.
RAW_ENCODERS = {"delta": lambda spec, x, file: _per_step(DeltaEncoder.from_dict(spec), x, np.int8, file),
                "graded": lambda spec, x, file: _per_step(GradedEncoder.from_dict(spec), x, np.float32, file)}


def encode_features(features: np.ndarray, encoding: dict | None, file: str) -> np.ndarray:
    if not encoding:
        raise InputError("real-valued input, but no input encoding is recorded for this network", file=file,
                         found=f"values {float(features.min()):g}..{float(features.max()):g}",
                         allowed="0/1 spikes, or raw features for a network trained by `rsnn2chip train` on them",
                         fix="encode the features yourself, or pass --data NAME --index I")
    encode = RAW_ENCODERS.get(encoding.get("kind"))
    if encode is None:
        raise InputError("real-valued input, but this network's input encoding has no per-step form", file=file,
                         found=f"encoding kind {encoding.get('kind')!r}", allowed=", ".join(RAW_ENCODERS),
                         fix="pass the sample as --data NAME --index I, or 0/1 spikes")
    if features.ndim not in (2, 3):
        raise InputError("raw features must be (T, features) or (batch, T, features)", file=file,
                         found=features.shape)
    return encode(encoding, features.astype(np.float64), file)


def load(args, training, n_input: int, network_file) -> tuple[np.ndarray, list[str]]:
    """``(spikes, notes)`` from ``args.input`` or ``args.data``/``args.index``.

    ``training(notes) -> {"encoding", "dataset"}`` looks up what training recorded;
    it is called only for raw features and data-set samples. ``n_input``: the
    network's input channels, which an ``--input`` file is checked against here,
    where its name is known (the backends check again, without it); ``network_file``
    is named when ``--data`` is not the data set the network was trained on.
    """
    if (args.input is None) == (args.data is None):
        raise InputError("give exactly one of --input and --data", found={"--input": args.input, "--data": args.data},
                         fix="--input x.npy (spikes or raw features), or --data NAME --index I")
    notes: list[str] = []
    if args.input is not None:
        given = {flag: value for flag, value in (("--index", args.index), ("--split", args.split)) if value is not None}
        if given:
            raise InputError(f"{' and '.join(given)} choose a sample of --data; with --input they would be ignored",
                             found=given, fix=f"drop {' and '.join(given)}, or use --data NAME instead of --input")
        x = read_npy(args.input)
        check_finite(x, args.input)
        if x.ndim not in (2, 3):  # before any encoding: an array of another rank is no sample, whatever it holds
            check_input_shape(x, n_input, args.input)
        if x.size and not is_binary(x):
            encoding = training(notes).get("encoding")
            x = encode_features(x, encoding, args.input)
            notes.append(f"real-valued input encoded with the training run's {encoding['kind']!r} encoding "
                         f"-> {x.shape[-2]} steps of {x.shape[-1]} input channels")
        check_input_shape(x, n_input, args.input)
        if args.steps is None and x.shape[-2] == 0:
            raise InputError("the input has no time steps", file=args.input, found=f"shape {x.shape}",
                             allowed=f"T >= 1: (T, {n_input}) or (batch, T, {n_input})",
                             fix="pass an input with at least one step, or --steps N to run N steps without input")
        return x, notes
    index, split = args.index or 0, args.split or "test"
    if index < 0:
        raise InputError("--index must be >= 0", found=index, allowed="0 .. the split's samples - 1",
                         fix="count samples from 0")
    data = load_as_trained(args.data, split, training(notes), network_file, limit=index + 1)
    if index >= len(data):
        raise InputError("--index is past the end of the split", found=index,
                         allowed=f"0..{len(data) - 1} ({args.data} {split})")
    return np.asarray(data.samples[index]), \
        notes + [f"{data.name} {split} sample {index} (label {int(data.labels[index])})"]
