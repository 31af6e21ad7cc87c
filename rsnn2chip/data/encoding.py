"""Analog frames -> 0/1 spikes: per-channel normalisation, then delta (send-on-delta) encoding.

Used for FSDD's MFCCs and for any float ``X`` in a user's npz file. See
docs/data.md for the description aimed at users; in short, for every input
channel ``c`` and every threshold ``theta_k``:

* ``z = (x - mean[c]) / std[c]`` with statistics of the *train* split only,
  so validation and test data never influence the encoding;
* a reference level ``ref`` starts at 0 (the channel mean) and each frame is
  presented for ``repeat`` consecutive time steps; at each step
  ``ON`` fires if ``z - ref >= theta_k`` and ``OFF`` fires if
  ``z - ref <= -theta_k``, and ``ref`` moves ``theta_k`` towards ``z``.

One spike per channel and step at most, so a large jump is spread over the
repeats; the coarse thresholds follow big jumps quickly, the fine ones resolve
small changes. Output channel ``p*K*C + k*C + c`` (``p`` = 0 ON, 1 OFF).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rsnn2chip.errors import InputError

ENCODING_KIND = "delta"
DEFAULT_THRESHOLDS = (0.25, 0.5, 1.0)
DEFAULT_REPEAT = 2
# A constant channel has std 0; dividing by this instead keeps it silent rather than NaN.
MIN_STD = 1e-6


@dataclass
class DeltaEncoder:
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
    repeat: int = DEFAULT_REPEAT
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)

    @property
    def channels_in(self) -> int:
        return len(self.mean)

    @property
    def channels_out(self) -> int:
        return 2 * len(self.thresholds) * self.channels_in

    def fitted(self) -> bool:
        return bool(self.mean)

    def fit(self, frames: np.ndarray) -> "DeltaEncoder":
        """Per-channel mean and std of ``frames`` ``(total frames, channels)`` (the train split's)."""
        frames = np.asarray(frames, dtype=np.float64)
        self.mean = frames.mean(axis=0).tolist()
        self.std = np.maximum(frames.std(axis=0), MIN_STD).tolist()
        return self

    def to_dict(self) -> dict:
        return {"kind": ENCODING_KIND, "thresholds": [float(t) for t in self.thresholds], "repeat": int(self.repeat),
                "mean": [float(m) for m in self.mean], "std": [float(s) for s in self.std]}

    @classmethod
    def from_dict(cls, spec: dict) -> "DeltaEncoder":
        if not isinstance(spec, dict) or spec.get("kind") != ENCODING_KIND:
            kind = spec.get("kind") if isinstance(spec, dict) else type(spec).__name__
            raise InputError("the saved encoding is not the delta encoding this dataset uses",
                             found=f"encoding kind {kind!r}", allowed=f"kind {ENCODING_KIND!r}")
        try:
            enc = cls(tuple(float(t) for t in spec["thresholds"]), int(spec["repeat"]),
                      [float(m) for m in spec["mean"]], [float(s) for s in spec["std"]])
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(f"delta-encoding spec is incomplete ({type(err).__name__}: {err})",
                             found=sorted(spec), allowed="thresholds, repeat, mean, std") from None
        if not enc.thresholds or min(enc.thresholds) <= 0 or enc.repeat < 1 or len(enc.mean) != len(enc.std):
            raise InputError("delta-encoding spec has bad values", found=spec.get("thresholds"),
                             allowed="thresholds > 0, repeat >= 1, one mean and std per channel")
        return enc

    def encode(self, frames: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
        """``(sum(lengths), channels_in)`` frames -> per sample ``(lengths[i] * repeat, channels_out)`` uint8."""
        if not self.fitted():
            raise ValueError("DeltaEncoder.encode before fit (no normalisation statistics)")
        frames = np.asarray(frames)
        lengths = np.asarray(lengths, dtype=np.int64)
        if frames.ndim != 2 or frames.shape[1] != self.channels_in:
            raise InputError("frames have the wrong number of channels for this encoding",
                             found=tuple(frames.shape), allowed=f"(frames, {self.channels_in})")
        if len(lengths) == 0:
            return []
        z = (frames.astype(np.float64) - np.asarray(self.mean)) / np.asarray(self.std)
        padded = pad_frames(z, lengths)  # (N, F, C)
        spikes = self.encode_padded(padded)
        steps = lengths * self.repeat
        return [spikes[i, :steps[i]] for i in range(len(lengths))]

    def encode_padded(self, z: np.ndarray) -> np.ndarray:
        """All samples advance together; a sample's output depends only on its own prefix."""
        n, n_frames, n_in = z.shape
        theta = np.asarray(self.thresholds, dtype=np.float64)[None, :, None]  # (1, K, 1)
        ref = np.zeros((n, len(self.thresholds), n_in))
        out = np.zeros((n, n_frames * self.repeat, 2, len(self.thresholds), n_in), np.uint8)
        for f in range(n_frames):
            target = z[:, f][:, None, :]
            for r in range(self.repeat):
                diff = target - ref
                on = diff >= theta
                off = diff <= -theta
                ref += theta * (on.astype(np.float64) - off)
                out[:, f * self.repeat + r, 0] = on
                out[:, f * self.repeat + r, 1] = off
        return out.reshape(n, n_frames * self.repeat, self.channels_out)


def pad_frames(frames: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated frames -> ``(N, max(lengths), C)``, zero after each sample's end."""
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    out = np.zeros((len(lengths), int(lengths.max()), frames.shape[1]), frames.dtype)
    for i, (s, n) in enumerate(zip(starts, lengths)):
        out[i, :n] = frames[s:s + n]
    return out


def is_binary(frames: np.ndarray) -> bool:
    return bool(np.isin(frames, (0, 1)).all())
