"""Analog frames -> network input: per-channel normalisation, then one of two encodings.

Used for FSDD's MFCCs and for any float ``X`` in a user's npz file. See docs/data.md for the description
aimed at users. Both encodings normalise every channel with statistics of the *train* split only.

**graded** (:class:`GradedEncoder`, the default, measured in docs/training.md): every channel sends its
normalised value as one graded spike per step, a signed ``bits``-bit integer payload
``p = clip(round(z * 2**frac_bits))``; the network sees ``p / 2**frac_bits`` in float, QAT and the reference,
and Lava carries ``p`` itself (``num_message_bits`` on Dense/Sparse, a Loihi 2 feature). Nothing but the
rounding is lost, and one input channel per feature keeps the input layer small.

**delta** (:class:`DeltaEncoder`): 0/1 send-on-delta ON/OFF spikes. For every input channel ``c`` and every
threshold ``theta_k``:

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
GRADED_KIND = "graded"
DEFAULT_THRESHOLDS = (0.25, 0.5, 1.0)
DEFAULT_REPEAT = 2
# A constant channel has std 0; dividing by this instead keeps it silent rather than NaN.
MIN_STD = 1e-6


# Graded payloads: signed 8-bit integers with 5 fractional bits, so +-3.97 standard deviations in steps of
# 1/32. Loihi 2 carries payloads of up to 32 bits; 8 keep the input projections' integer sums small (a_in is
# 16-bit on the chip) while resolving a normalised feature far below its usual noise. Not tuned further.
DEFAULT_PAYLOAD_BITS = 8
DEFAULT_FRAC_BITS = 5


class ChannelStats:
    """Per-channel mean and std of the train split, shared by both encoders."""

    mean: list[float]
    std: list[float]

    @property
    def channels_in(self) -> int:
        return len(self.mean)

    def fitted(self) -> bool:
        return bool(self.mean)

    def fit(self, frames: np.ndarray):
        """Per-channel mean and std of ``frames`` ``(total frames, channels)`` (the train split's)."""
        frames = np.asarray(frames, dtype=np.float64)
        self.mean = frames.mean(axis=0).tolist()
        self.std = np.maximum(frames.std(axis=0), MIN_STD).tolist()
        return self

    def normalised(self, frames: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """``(sum(lengths), channels_in)`` frames -> ``(N, max length, channels_in)`` z-scores, zero-padded."""
        if not self.fitted():
            raise ValueError(f"{type(self).__name__}.encode before fit (no normalisation statistics)")
        frames = np.asarray(frames)
        if frames.ndim != 2 or frames.shape[1] != self.channels_in:
            raise InputError("frames have the wrong number of channels for this encoding",
                             found=tuple(frames.shape), allowed=f"(frames, {self.channels_in})")
        z = (frames.astype(np.float64) - np.asarray(self.mean)) / np.asarray(self.std)
        return pad_frames(z, np.asarray(lengths, dtype=np.int64))


@dataclass
class GradedEncoder(ChannelStats):
    bits: int = DEFAULT_PAYLOAD_BITS
    frac_bits: int = DEFAULT_FRAC_BITS
    repeat: int = 1
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)

    @property
    def channels_out(self) -> int:
        return self.channels_in

    @property
    def max_payload(self) -> int:
        return (1 << (self.bits - 1)) - 1

    def to_dict(self) -> dict:
        return {"kind": GRADED_KIND, "bits": int(self.bits), "frac_bits": int(self.frac_bits),
                "repeat": int(self.repeat), "mean": [float(m) for m in self.mean], "std": [float(s) for s in self.std]}

    @classmethod
    def from_dict(cls, spec: dict) -> "GradedEncoder":
        enc = build_from_spec(cls, spec, GRADED_KIND, lambda d: (int(d["bits"]), int(d["frac_bits"]), int(d["repeat"]),
                                                                  [float(m) for m in d["mean"]],
                                                                  [float(s) for s in d["std"]]))
        if not 2 <= enc.bits <= 24 or not 0 <= enc.frac_bits < enc.bits or enc.repeat < 1 \
                or len(enc.mean) != len(enc.std):
            raise InputError("graded-encoding spec has bad values", found={"bits": enc.bits, "frac_bits": enc.frac_bits,
                                                                           "repeat": enc.repeat},
                             allowed="2 <= bits <= 24, 0 <= frac_bits < bits, repeat >= 1, one mean and std per "
                                     "channel")
        return enc

    def payloads(self, z: np.ndarray) -> np.ndarray:
        """Normalised values -> the integer payloads the chip receives."""
        return np.clip(np.rint(z * (1 << self.frac_bits)), -self.max_payload, self.max_payload).astype(np.int32)

    def encode(self, frames: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
        """Frames -> per sample ``(lengths[i] * repeat, channels)`` float32 values ``payload / 2**frac_bits``."""
        lengths = np.asarray(lengths, dtype=np.int64)
        if len(lengths) == 0:
            return []
        values = self.payloads(self.normalised(frames, lengths)).astype(np.float32) / np.float32(1 << self.frac_bits)
        values = np.repeat(values, self.repeat, axis=1)
        return [values[i, :lengths[i] * self.repeat] for i in range(len(lengths))]


def build_from_spec(cls, spec, kind: str, parse):
    """``cls(*parse(spec))`` with errors that say which encoding spec is wrong."""
    if not isinstance(spec, dict) or spec.get("kind") != kind:
        found = spec.get("kind") if isinstance(spec, dict) else type(spec).__name__
        raise InputError(f"the saved encoding is not the {kind} encoding", found=f"encoding kind {found!r}",
                         allowed=f"kind {kind!r}")
    try:
        return cls(*parse(spec))
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"{kind}-encoding spec is incomplete ({type(err).__name__}: {err})",
                         found=sorted(spec)) from None


@dataclass
class DeltaEncoder(ChannelStats):
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
    repeat: int = DEFAULT_REPEAT
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)

    @property
    def channels_out(self) -> int:
        return 2 * len(self.thresholds) * self.channels_in

    def to_dict(self) -> dict:
        return {"kind": ENCODING_KIND, "thresholds": [float(t) for t in self.thresholds], "repeat": int(self.repeat),
                "mean": [float(m) for m in self.mean], "std": [float(s) for s in self.std]}

    @classmethod
    def from_dict(cls, spec: dict) -> "DeltaEncoder":
        enc = build_from_spec(cls, spec, ENCODING_KIND, lambda d: (tuple(float(t) for t in d["thresholds"]),
                                                                   int(d["repeat"]), [float(m) for m in d["mean"]],
                                                                   [float(s) for s in d["std"]]))
        if not enc.thresholds or min(enc.thresholds) <= 0 or enc.repeat < 1 or len(enc.mean) != len(enc.std):
            raise InputError("delta-encoding spec has bad values", found=spec.get("thresholds"),
                             allowed="thresholds > 0, repeat >= 1, one mean and std per channel")
        return enc

    def encode(self, frames: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
        """``(sum(lengths), channels_in)`` frames -> per sample ``(lengths[i] * repeat, channels_out)`` uint8."""
        lengths = np.asarray(lengths, dtype=np.int64)
        if len(lengths) == 0:
            return []
        spikes = self.encode_padded(self.normalised(frames, lengths))
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


# encoding name (the --encoding choice and the spec's "kind") -> encoder class
ANALOG_ENCODERS = {GRADED_KIND: GradedEncoder, ENCODING_KIND: DeltaEncoder}
DEFAULT_ANALOG_ENCODING = GRADED_KIND


def encoder_from_dict(spec: dict) -> GradedEncoder | DeltaEncoder:
    kind = spec.get("kind") if isinstance(spec, dict) else None
    if kind not in ANALOG_ENCODERS:
        raise InputError("the saved encoding is not one this data set can be encoded with",
                         found=f"encoding kind {kind!r}", allowed=", ".join(ANALOG_ENCODERS))
    return ANALOG_ENCODERS[kind].from_dict(spec)


def new_encoder(name: str | None) -> GradedEncoder | DeltaEncoder:
    name = name or DEFAULT_ANALOG_ENCODING
    if name not in ANALOG_ENCODERS:
        raise InputError("unknown input encoding", found=name, allowed=", ".join(ANALOG_ENCODERS))
    return ANALOG_ENCODERS[name]()


def is_graded(spec: dict | None) -> bool:
    return isinstance(spec, dict) and spec.get("kind") == GRADED_KIND


def graded_input_of(spec: dict | None):
    """The IR's payload format for a saved encoding spec: an ``ir.GradedInput`` for graded input, else None."""
    if not is_graded(spec):
        return None
    from rsnn2chip.ir import GradedInput
    encoder = GradedEncoder.from_dict(spec)
    return GradedInput(encoder.bits, encoder.frac_bits)
