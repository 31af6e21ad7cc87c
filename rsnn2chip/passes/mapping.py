"""What the partition pass hands to the place pass: :class:`MappingResult`.

It lives on its own so that ``partition`` (which scores candidates after
placement) and ``place`` (which builds the core graph from a result) both
depend on it and neither depends on the other's result type.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class MappingResult:
    """The core of every atomic unit, and how it was chosen.

    ``mapper`` is the mapper asked for (``--mapper``); ``chosen`` is the one
    whose assignment this is (they differ for ``auto``, which also records each
    candidate's cost and the order of the criteria it compared them by).
    """

    mapper: str
    core_of_unit: np.ndarray
    chosen: str
    candidates: dict[str, dict] | None = None
    cost_order: tuple[str, ...] = field(default=())

    @classmethod
    def single(cls, mapper: str, core_of_unit: np.ndarray) -> "MappingResult":
        """The result of a mapper that computes one assignment."""
        return cls(mapper, np.asarray(core_of_unit, np.int64), mapper)

    @property
    def n_cores(self) -> int:
        return int(self.core_of_unit.max()) + 1 if self.core_of_unit.size else 0
