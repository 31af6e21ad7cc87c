"""argparse ``type=`` converters that range-check numbers where they enter the program.

An out-of-range value is refused by argparse itself (exit 2, naming the option
and what is allowed), so ``--steps 0`` cannot silently mean "the input's
length" and ``--timeout 0`` cannot mean "no timeout".
"""
from __future__ import annotations

import argparse
import math

from rsnn2chip import fixedpoint as fx
from rsnn2chip.seeds import SEED_RANGE


def _number(text: str, kind):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def path_text(text: str) -> str:
    """A file or folder path: not empty, since an empty value would read as "not given" and pick the default
    (``compile -o ""`` overwrote MODEL.r2c)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is an empty path; give a file name, or leave the option out")
    return text


def positive_int(text: str) -> int:
    """An integer >= 1 (steps, epochs, batch sizes, limits)."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (timeouts in seconds)."""
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {value:g}")
    return value


def non_negative_float(text: str) -> float:
    value = _number(text, float)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {value:g}")
    return value


MAX_LEARNING_RATE = 10.0  # beyond it Adam diverges on every network this tool trains


def learning_rate(text: str) -> float:
    """A learning rate in (0, :data:`MAX_LEARNING_RATE`]."""
    value = _number(text, float)
    if not 0 < value <= MAX_LEARNING_RATE:
        raise argparse.ArgumentTypeError(f"must lie in (0, {MAX_LEARNING_RATE:g}], got {value:g}")
    return value


def percentile(text: str) -> float:
    """A percentile in (0, 100]."""
    value = _number(text, float)
    if not 0 < value <= 100:
        raise argparse.ArgumentTypeError(f"must lie in (0, 100], got {value:g}")
    return value


def int_in_range(lo: int, hi: int):
    """A converter for integers in ``lo..hi``."""
    def convert(text: str) -> int:
        value = _number(text, int)
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be an integer in {lo}..{hi}, got {value}")
        return value
    convert.__name__ = f"integer in {lo}..{hi}"
    return convert


SEED = int_in_range(*SEED_RANGE)
THRESHOLD_MANTISSA = int_in_range(1, fx.VTH_RANGE[1])
