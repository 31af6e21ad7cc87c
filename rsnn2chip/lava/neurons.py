"""The neuron process of a neuron group, from the neuron model registry (rsnn2chip/neurons).

Each model builds its own Lava process (``NeuronModel.lava_process``: Lava's ``LIF``, ``ATRLIF``, ...) and
names the Vars it can be probed for (``NeuronModel.lava_vars``); a new model needs nothing here.
"""
from __future__ import annotations

import numpy as np

from rsnn2chip import neurons


def neuron_process(model: str, params: dict[str, np.ndarray], replicas: int, name: str):
    """Lava process for one group of ``model`` neurons, its per-neuron ``params`` tiled ``replicas`` times."""
    tiled = {k: np.tile(np.asarray(v), replicas) for k, v in params.items()}
    size = len(next(iter(tiled.values())))
    return neurons.get(model, where=name).lava_process(tiled, size, name)


def probe_var(model: str, probe: str) -> str:
    """The Lava Var of a ``model`` process that holds probe ``probe`` (``u``, ``v``)."""
    return neurons.get(model).lava_vars[probe]
