"""Derived random seeds: one run seed, many independent streams (epochs, splits, IP probes).

Every trainer asks for ``stream_seed(seed, stream)`` instead of writing the
formula, so training, search and soft-LIF see the same batch orders for the
same (seed, epoch) and a change to the formula is one edit.
"""
from __future__ import annotations

SEED_RANGE = (0, 2 ** 32 - 1)  # what numpy's and torch's seeding accept

# A prime stride: seeds s and s + 1 give streams that do not collide for any stream number below it.
SEED_STRIDE = 100_003


def stream_seed(seed: int, stream: int) -> int:
    """The seed of stream ``stream`` (e.g. an epoch number) of a run with seed ``seed``."""
    return seed * SEED_STRIDE + stream
