"""A Lava run configuration that names every process's model up front, as Lava's own selection picks it.

Lava's compiler finds the models of each process *instance* by executing every module in the folder of its
Process class (``ProcGroupDiGraphs._find_proc_models``), ~50 ms a process: on the H = 512 network of
bench/lava_speed.py, 4 replicas (9 processes with source and sink), the first run took 1.2 s, 0.45 s
without the search. Its compiler skips that search for a process listed, as an instance, in
the run configuration's ``exception_proc_model_map``. So :func:`sim_config` runs Lava's own search and
selection once per Process class and lists every given process with the model Lava would have chosen: the
same models, searched once. A process not given is searched by Lava as usual.

Outside ``proc/``: Lava executes the modules there while it searches.
"""
from __future__ import annotations

from collections.abc import Iterable

# (Process class, select_tag, select_sub_proc_model) -> the ProcessModel class Lava selects
_SELECTED: dict[tuple, type] = {}


def sim_config(select_tag: str, processes: Iterable, exceptions: dict | None = None):
    """``Loihi2SimCfg(select_tag, exception_proc_model_map=...)`` whose map holds ``exceptions`` (Process
    class -> model, as Lava's own map) and every process of ``processes`` with its selected model."""
    from lava.magma.compiler.compiler_graphs import ProcGroupDiGraphs
    from lava.magma.core.run_configs import Loihi2SimCfg

    exceptions = dict(exceptions or {})
    config = Loihi2SimCfg(select_tag=select_tag, exception_proc_model_map=exceptions)
    chosen = {}
    for process in processes:
        if type(process) in exceptions:
            continue  # Lava's selection takes the class's model from the map first
        key = (type(process), config.select_tag, config.select_sub_proc_model)
        if key not in _SELECTED:
            found = ProcGroupDiGraphs._find_proc_models(process)
            _SELECTED[key] = ProcGroupDiGraphs._select_proc_models(process, found, config)
        chosen[process] = _SELECTED[key]
    config.exception_proc_model_map.update(chosen)
    return config
