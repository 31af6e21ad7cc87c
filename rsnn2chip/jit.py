"""Compiled loops for the reference simulator's integer kernels (numba, on first use).

The kernels are plain Python functions over scalars, written next to what they
mirror (each neuron model's module, the reference backend); :func:`compiled`
turns one into machine code the first time it runs and caches that code on disk,
so a later process loads it instead of compiling again. Importing this module
does not import numba: commands that never simulate do not pay for it.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Callable


@lru_cache(maxsize=None)
def compiled(kernel: Callable) -> Callable:
    """``kernel`` compiled by numba (no Python objects inside, so no GIL needed)."""
    import numba

    return numba.njit(cache=True, nogil=True)(kernel)
