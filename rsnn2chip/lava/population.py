"""Where a population lives inside a :class:`~rsnn2chip.lava.Network`.

Outside ``proc/``: Lava executes the modules there as anonymous modules, where
a dataclass cannot be defined.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PopulationView:
    """Where one population lives: its neuron process and its ``[start, stop)`` in it, per replica.

    ``process.s_out`` carries its spikes, ``process.u`` / ``process.v`` its
    state; replica ``r`` occupies ``[r * width + start, r * width + stop)``.
    """
    name: str
    process: Any  # the Lava neuron process
    start: int
    stop: int
    width: int  # neurons per replica in `process`

    @property
    def size(self) -> int:
        return self.stop - self.start

    def select(self, data: np.ndarray, replica: int = 0) -> np.ndarray:
        """This population's columns of an array over ``process``'s neurons (last axis)."""
        offset = replica * self.width
        return data[..., offset + self.start:offset + self.stop]


