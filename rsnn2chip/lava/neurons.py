"""The neuron process of a neuron group: one registry entry per neuron model.

A new neuron model (e.g. Lava's ATRLIF) adds one function here that builds
its Lava process from the group's per-neuron parameters; it must expose
``a_in``, ``s_out`` and the Vars it can be probed for, like Lava's ``LIF``.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from rsnn2chip.errors import ModelError


def lif_process(shape: tuple[int, ...], params: dict[str, np.ndarray], name: str):
    from lava.proc.lif.process import LIF

    return LIF(shape=shape, du=params["du"], dv=params["dv"], vth=params["vth"],
               bias_mant=params["bias_mant"], bias_exp=params["bias_exp"], name=name)


NEURON_PROCESSES: dict[str, Callable] = {"lif": lif_process}


def neuron_process(model: str, params: dict[str, np.ndarray], replicas: int, name: str):
    """Lava process for one group of ``model`` neurons, its per-neuron ``params`` tiled ``replicas`` times."""
    if model not in NEURON_PROCESSES:
        raise ModelError("no Lava process for this neuron model", where=name, found=model,
                         allowed=", ".join(NEURON_PROCESSES))
    tiled = {k: np.tile(np.asarray(v), replicas) for k, v in params.items()}
    size = len(next(iter(tiled.values())))
    return NEURON_PROCESSES[model]((size,), tiled, name)
