"""Datasets: FSDD, derived events, the npz format and its errors, tonic loaders on tiny files we write."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import h5py
import numpy as np
import pytest

from rsnn2chip.data import DATASETS, SpikeData, load_dataset
from rsnn2chip.data import events, fsdd, tonic_loaders
from rsnn2chip.data.common import stratified_split
from rsnn2chip.data.encoding import DeltaEncoder
from rsnn2chip.errors import InputError


def binary(data: SpikeData) -> bool:
    return all(np.isin(np.asarray(data.samples[i]), (0, 1)).all() for i in range(len(data)))


# --------------------------------------------------------------------------- FSDD

@pytest.fixture(scope="module")
def fsdd_splits():
    train = fsdd.load("train", input_encoding="delta")
    return {"train": train, "val": fsdd.load("val", train.encoding), "test": fsdd.load("test", train.encoding)}


def test_fsdd_split_is_stratified_disjoint_and_fixed(fsdd_splits):
    parts = fsdd.split_indices()
    assert {k: len(v) for k, v in parts.items()} == {"train": 2100, "val": 450, "test": 450}
    union = np.concatenate(list(parts.values()))
    assert len(np.unique(union)) == 3000
    for name, n in (("train", 210), ("val", 45), ("test", 45)):
        assert fsdd_splits[name].class_counts().tolist() == [n] * 10
    # Pinned: a change here silently changes every reported FSDD number.
    assert parts["test"][:8].tolist() == [2664, 34, 1525, 2068, 2747, 2423, 2281, 1068]
    assert parts["train"][:4].tolist() == [2768, 1319, 2796, 926]


def test_fsdd_encoding_is_binary_deterministic_and_fitted_on_train_only(fsdd_splits):
    train = fsdd_splits["train"]
    assert (len(train), train.n_channels, train.n_classes, train.derived) == (2100, 78, 10, False)
    assert binary(train) and binary(fsdd_splits["test"])
    X, lengths, _ = fsdd.load_raw()
    assert np.array_equal(train.lengths, lengths[fsdd.split_indices()["train"]] * 2)
    assert [s.shape[0] for s in train.samples[:20]] == train.lengths[:20].tolist()
    train_frames, _ = fsdd.frames_of(X, lengths, fsdd.split_indices()["train"])
    assert np.allclose(train.encoding["mean"], train_frames.mean(0))
    assert not np.allclose(train.encoding["mean"], X.mean(0))
    again = fsdd.load("test", input_encoding="delta")  # a new encoder is fitted on train, so this equals the fixture
    assert all(np.array_equal(a, b) for a, b in zip(again.samples, fsdd_splits["test"].samples))
    rate = np.mean([s.mean() for s in train.samples])
    assert 0.02 < rate < 0.3


def test_fsdd_default_is_graded_values_on_the_payload_grid(fsdd_splits):
    graded = fsdd.load("train")
    assert graded.encoding["kind"] == "graded" and graded.n_channels == 13
    assert np.array_equal(graded.lengths, fsdd_splits["train"].lengths // 2)  # one step per frame
    assert graded.encoding["mean"] == fsdd_splits["train"].encoding["mean"]  # same train-only statistics
    values = np.concatenate(list(graded.samples))
    step = 2 ** graded.encoding["frac_bits"]
    assert np.array_equal(values * step, np.rint(values * step))
    assert np.abs(values).max() <= (2 ** (graded.encoding["bits"] - 1) - 1) / step
    # normalised: about zero mean and unit spread over the train split
    assert abs(values.mean()) < 0.05 and 0.8 < values.std() < 1.2


def test_graded_encoder_by_hand():
    from rsnn2chip.data.encoding import GradedEncoder
    enc = GradedEncoder(bits=4, frac_bits=1, mean=[1.0], std=[2.0])
    (values,) = enc.encode(np.array([[1.0], [2.0], [3.6], [100.0], [-100.0]]), np.array([5]))
    # z = 0, 0.5, 1.3, 49.5, -50.5 -> payloads 0, 1, 3 (round 2.6), 7 (clipped), -7 -> values / 2
    assert values[:, 0].tolist() == [0.0, 0.5, 1.5, 3.5, -3.5]


def test_delta_encoder_by_hand():
    enc = DeltaEncoder(thresholds=(0.5,), repeat=2, mean=[0.0], std=[1.0])
    (spikes,) = enc.encode(np.array([[0.0], [1.0], [1.0], [-1.0]]), np.array([4]))
    assert spikes.shape == (8, 2)
    assert spikes[:, 0].tolist() == [0, 0, 1, 1, 0, 0, 0, 0]  # ON: two steps to climb 1.0 by 0.5
    # OFF: ref falls 1.0 -> 0.5 -> 0.0; with one spike per step the rest of the drop would need more steps
    assert spikes[:, 1].tolist() == [0, 0, 0, 0, 0, 0, 1, 1]
    assert DeltaEncoder.from_dict(enc.to_dict()) == enc
    with pytest.raises(InputError, match="incomplete"):
        DeltaEncoder.from_dict({"kind": "delta", "thresholds": [1.0]})


# --------------------------------------------------------------------------- derived events

def test_events_digits_is_derived_binary_and_split():
    parts = {s: load_dataset("events-digits", s) for s in ("train", "val", "test")}
    assert sum(len(p) for p in parts.values()) == 1797
    train = parts["train"]
    assert train.derived and train.name == "events-digits" and "derived" in train.describe()["source"]
    assert train.n_channels == 200 and {s.shape for s in train.samples} == {(12, 200)}
    assert binary(train) and 0.01 < np.mean([s.mean() for s in train.samples]) < 0.5
    assert abs(int(train.class_counts().min()) - int(train.class_counts().max())) <= 6
    assert train.encoding["kind"] == "saccade_events"


def test_saccade_sensor_by_hand():
    spec = events.encoding_spec("test", (4, 4), substeps=1)
    assert not events.image_to_events(np.zeros((4, 4)), spec).any()  # nothing moves, nothing fires
    img = np.zeros((4, 4))
    img[1, 1] = 1.0
    ev = events.image_to_events(img, spec).reshape(3, 2, 6, 6)
    # first saccade moves the view by (1, 1): the dot appears at (3, 3) (pad 1) and leaves (2, 2)
    assert ev[0, 0, 3, 3] == 1 and ev[0, 1, 2, 2] == 1 and ev[0].sum() == 2
    assert np.array_equal(ev, events.image_to_events(img, spec).reshape(3, 2, 6, 6))


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_events_fmnist_from_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    for part, n in (("train", 40), ("test", 10)):
        images, labels = events.FMNIST_FILES[part]
        write_idx(tmp_path / images, rng.integers(0, 256, (n, 28, 28)))
        write_idx(tmp_path / labels, np.arange(n) % 10)
    train = load_dataset(f"events-fmnist:{tmp_path}", "train")
    test = load_dataset(f"events-fmnist:{tmp_path}", "test")
    val = load_dataset(f"events-fmnist:{tmp_path}", "val")
    assert train.derived and len(test) == 10 and len(train) + len(val) == 40
    assert train.n_channels == 2 * 16 * 16 and train.samples[0].shape == (12, 512) and binary(test)
    with pytest.raises(InputError, match="Fashion-MNIST files not found") as err:
        load_dataset(f"events-fmnist:{tmp_path / 'nowhere'}", "train")
    assert "dataset-fashion-mnist" in err.value.render()


# --------------------------------------------------------------------------- npz format

def frames_file(tmp_path: Path, n: int = 30, channels: int = 3, binary_x: bool = False, **override) -> Path:
    rng = np.random.default_rng(1)
    lengths = rng.integers(2, 6, n).astype(np.int64)
    shape = (int(lengths.sum()), channels)
    X = (rng.random(shape) < 0.3) if binary_x else rng.normal(size=shape)
    arrays = {"X": X.astype(np.float32), "lengths": lengths, "y": (np.arange(n) % 3).astype(np.int64)}
    arrays.update(override)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return path


def events_file(tmp_path: Path, **override) -> Path:
    arrays = {"events": np.array([[0, 1], [2, 0], [1, 3], [1, 3]], np.int64), "sample_index": np.array([0, 0, 2, 2]),
              "lengths": np.array([3, 2, 4], np.int64), "y": np.array([0, 1, 0], np.int64),
              "n_channels": np.array(4, np.int64), "split": np.array([0, 0, 2], np.int64)}
    arrays.update(override)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    path = tmp_path / "events.npz"
    np.savez(path, **arrays)
    return path


def test_npz_frames_are_encoded_like_fsdd(tmp_path):
    path = frames_file(tmp_path)
    assert load_dataset(path, "train").encoding["kind"] == "graded"  # the default for analog frames
    train = load_dataset(path, "train", input_encoding="delta")
    assert train.encoding["kind"] == "delta" and train.n_channels == 3 * 2 * 3 and binary(train)
    assert len(train) + len(load_dataset(path, "val")) + len(load_dataset(path, "test")) == 30
    test = load_dataset(path, "test", encoding=train.encoding)
    assert all(s.shape[0] % 2 == 0 for s in test.samples)  # each frame presented for `repeat` = 2 steps


def test_npz_binary_frames_pass_through(tmp_path):
    path = frames_file(tmp_path, binary_x=True)
    data = load_dataset(path, "train")
    assert data.encoding == {"kind": "spikes"} and data.n_channels == 3
    with np.load(path) as f:
        X, lengths, y = f["X"], f["lengths"], f["y"]
    first = int(stratified_split(y)["train"][0])
    start = int(lengths[:first].sum())
    assert np.array_equal(data.samples[0], X[start:start + lengths[first]])


def test_npz_events_form(tmp_path):
    data = load_dataset(events_file(tmp_path), "train")
    assert len(data) == 2 and data.n_channels == 4 and data.labels.tolist() == [0, 1]
    assert data.samples[0].shape == (3, 4) and data.samples[0][0, 1] == 1 and data.samples[0][2, 0] == 1
    assert data.samples[1].sum() == 0
    test = load_dataset(events_file(tmp_path), "test")
    assert test.samples[0][1, 3] == 1 and test.samples[0].sum() == 1  # the repeated event is one spike


@pytest.mark.parametrize("maker, override, message", [
    ("frames", {"y": None}, "lacks required arrays"),
    ("frames", {"extra": np.zeros(3)}, "unknown arrays"),
    ("frames", {"events": np.zeros((1, 2), np.int64)}, "both 'X'"),
    ("frames", {"X": None}, "neither 'X'"),
    ("frames", {"X": np.zeros((10, 3), np.float64)}, "'X' has the wrong dtype"),
    ("frames", {"lengths": np.ones((2, 15), np.int64)}, "'lengths' has the wrong number of dimensions"),
    ("frames", {"y": np.zeros(30, np.int32)}, "'y' has the wrong dtype"),
    ("frames", {"lengths": np.full(30, 1, np.int64)}, "sum\\(lengths\\) rows"),
    ("frames", {"y": np.arange(29, dtype=np.int64)}, "one entry per sample"),
    ("frames", {"y": np.full(30, -1, np.int64)}, "labels must be 0..K-1"),
    ("frames", {"lengths": np.zeros(30, np.int64)}, "at least one time step"),
    ("frames", {"split": np.full(30, 5, np.int64)}, "'split' values"),
    ("events", {"events": np.array([[0, 9]], np.int64), "sample_index": np.array([0])}, "channel out of range"),
    ("events", {"events": np.array([[3, 0]], np.int64), "sample_index": np.array([0])}, "event time outside"),
    ("events", {"sample_index": np.array([0, 0, 7, 1])}, "'sample_index' out of range"),
    ("events", {"n_channels": np.array([4], np.int64)}, "'n_channels' has the wrong number of dimensions"),
    ("events", {"n_channels": None}, "lacks required arrays"),
])
def test_npz_errors_name_the_problem(tmp_path, maker, override, message):
    path = (frames_file if maker == "frames" else events_file)(tmp_path, **override)
    with pytest.raises(InputError, match=message) as err:
        load_dataset(path, "train")
    assert str(path) in err.value.render()


def test_npz_nan_object_and_bad_files(tmp_path):
    X = np.zeros((60, 3), np.float32)
    X[7, 2] = np.nan
    with pytest.raises(InputError, match=r"NaN[\s\S]*X\[7, 2\]"):
        load_dataset(_with_x(tmp_path, X), "train")
    obj = tmp_path / "obj.npz"
    np.savez(obj, X=np.array([{"a": 1}], dtype=object), lengths=np.array([1]), y=np.array([0]))
    with pytest.raises(InputError, match="never unpickled"):
        load_dataset(obj, "train")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a readable .npz"):
        load_dataset(junk, "train")
    with pytest.raises(InputError, match="dataset file not found"):
        load_dataset(tmp_path / "missing.npz", "train")


def _with_x(tmp_path: Path, X: np.ndarray) -> Path:
    path = tmp_path / "nan.npz"
    np.savez(path, X=X, lengths=np.full(30, 2, np.int64), y=(np.arange(30) % 3).astype(np.int64))
    return path


# --------------------------------------------------------------------------- tonic loaders

def write_shd(root: Path, n: int = 6) -> None:
    rng = np.random.default_rng(0)
    folder = root / "SHD"
    folder.mkdir(parents=True)
    for part in ("train", "test"):
        with h5py.File(folder / f"shd_{part}.h5", "w") as f:
            times = f.create_dataset("spikes/times", (n,), dtype=h5py.vlen_dtype(np.float32))
            units = f.create_dataset("spikes/units", (n,), dtype=h5py.vlen_dtype(np.uint16))
            for i in range(n):
                times[i] = np.sort(rng.uniform(0, 0.05, 20)).astype(np.float32)  # seconds, as in SHD
                units[i] = rng.integers(0, 700, 20).astype(np.uint16)
            # one spike we can find: sample 0, unit 699 at 23 ms -> bin 2 (10 ms bins)
            times[0] = np.array([0.023], np.float32)
            units[0] = np.array([699], np.uint16)
            f["labels"] = (np.arange(n) % 20).astype(np.uint16)
            f["extra/keys"] = np.array([b"digit"] * 20)
            f["extra/speaker"] = np.zeros(n, np.uint16)


def nmnist_bin(x, y, p, t) -> bytes:
    """N-MNIST's 40-bit events: x, y, polarity in bit 7 + t[22:16], t[15:8], t[7:0] (microseconds)."""
    x, y, p, t = (np.asarray(a, np.int64) for a in (x, y, p, t))
    rows = np.stack([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF], axis=1)
    return rows.astype(np.uint8).tobytes()


def write_nmnist(root: Path) -> None:
    rng = np.random.default_rng(0)
    for folder in ("Train", "Test"):
        for digit in (0, 1, 2):
            d = root / "NMNIST" / folder / str(digit)
            d.mkdir(parents=True)
            for j in range(2):
                t = np.sort(rng.integers(0, 40_000, 30))
                (d / f"{j:05d}.bin").write_bytes(nmnist_bin(rng.integers(0, 34, 30), rng.integers(0, 34, 30),
                                                            rng.integers(0, 2, 30), t))
    # A file with one known event: x=5, y=7, OFF->ON bit 1, t=25 ms -> bin 2, channel 1*34*34 + 7*34 + 5.
    (root / "NMNIST" / "Test" / "0" / "00000.bin").write_bytes(nmnist_bin([5], [7], [1], [25_000]))


def write_dvsgesture(root: Path) -> None:
    rng = np.random.default_rng(0)
    for folder in ("ibmGestureTrain", "ibmGestureTest"):
        for user in ("user01_fluorescent", "user02_led"):
            d = root / "DVSGesture" / folder / user
            d.mkdir(parents=True)
            for label in (0, 3, 10):
                # tonic's preprocessed form: one (N, 4) array per gesture, columns x, y, p, t in ms
                ev = np.stack([rng.integers(0, 128, 50), rng.integers(0, 128, 50), rng.integers(0, 2, 50),
                               np.sort(rng.integers(0, 200, 50))], axis=1)
                np.save(d / f"{label}.npy", ev.astype(np.int64))


def write_ntidigits(root: Path) -> None:
    rng = np.random.default_rng(0)
    folder = root / "NTIDIGITS18"
    folder.mkdir(parents=True)
    with h5py.File(folder / "n-tidigits.hdf5", "w") as f:
        for part in ("train", "test"):
            ids = [f"man-ab-{c}" for c in "o12z"] + ["woman-cd-12"]  # the last is a 2-digit sequence
            f[f"{part}_labels"] = np.array([s.encode() for s in ids])
            for s in ids:
                f[f"{part}_addresses/{s}"] = rng.integers(0, 64, 25).astype(np.uint8)
                f[f"{part}_timestamps/{s}"] = np.sort(rng.uniform(0, 0.04, 25)).astype(np.float32)


@pytest.fixture(scope="module")
def tonic_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("tonic")
    for write in (write_shd, write_nmnist, write_dvsgesture, write_ntidigits):
        write(root)
    return root


@pytest.mark.parametrize("name, channels, classes, test_labels", [
    ("shd", 700, 20, [0, 1, 2, 3, 4, 5]),
    ("nmnist", 2312, 10, [0, 0, 1, 1, 2, 2]),
    ("dvs-gesture", 2048, 11, [0, 3, 10, 0, 3, 10]),
    ("ntidigits", 64, 11, [0, 1, 2, 10]),
])
def test_tonic_loaders_read_their_formats(tonic_root, name, channels, classes, test_labels):
    test = load_dataset(f"{name}:{tonic_root}", "test")
    train = load_dataset(f"{name}:{tonic_root}", "train")
    assert (test.n_channels, test.n_classes, test.derived) == (channels, classes, False)
    assert test.labels.tolist() == test_labels
    assert len(train) + len(load_dataset(f"{name}:{tonic_root}", "val")) == len(test_labels)
    batch = next(test.batches(8))
    assert batch.x.shape[0] == len(test) and batch.x.shape[2] == channels
    assert set(batch.x.unique().tolist()) <= {0.0, 1.0} and batch.x.sum() > 0
    assert test.encoding["kind"] == "tonic_frames"


def test_tonic_frames_place_known_events(tonic_root):
    shd = load_dataset(f"shd:{tonic_root}", "test")
    assert shd.samples[0].shape == (3, 700) and np.argwhere(shd.samples[0]).tolist() == [[2, 699]]
    nmnist = load_dataset(f"nmnist:{tonic_root}", "test")
    assert np.argwhere(nmnist.samples[0]).tolist() == [[2, 34 * 34 + 7 * 34 + 5]]


def test_tonic_missing_files_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv(tonic_loaders.ROOT_ENV, str(tmp_path))
    for name, folder in (("shd", "SHD"), ("nmnist", "NMNIST"), ("dvs-gesture", "DVSGesture"),
                         ("ntidigits", "NTIDIGITS18")):
        with pytest.raises(InputError, match="files not found") as err:
            load_dataset(name, "train")
        text = err.value.render()
        assert str(tmp_path / folder) in text and f"--data {name}:DIR" in text and "URL" in text


# --------------------------------------------------------------------------- registry

def test_registry_and_limit():
    assert {"fsdd", "events-digits", "events-fmnist", "shd", "nmnist", "dvs-gesture", "ntidigits"} <= set(DATASETS)
    with pytest.raises(InputError, match="unknown dataset"):
        load_dataset("mnist-please", "train")
    with pytest.raises(InputError, match="unknown data split"):
        load_dataset("events-digits", "holdout")
    small = load_dataset("events-digits", "train", limit=10)
    assert len(small) == 10 and len(small.lengths) == 10 and len(set(small.labels.tolist())) > 3
    x, lengths = small.tensor()
    assert x.shape == (10, 12, 200) and lengths.tolist() == [12] * 10
