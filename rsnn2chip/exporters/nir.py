"""Export the IR as a NIR graph: ``Input`` -> ``Linear`` -> ``CubaLIF`` (``LI``) ... -> ``Output``.

The inverse of :mod:`rsnn2chip.frontends.nir` (see its docstring and
docs/interop.md): a population with ``current_decay`` ``a``,
``voltage_decay`` ``b``, threshold and bias becomes a ``CubaLIF`` with
``tau_syn = dt / a``, ``tau_mem = dt / b``, ``r = tau_mem / dt``,
``w_in = tau_syn / dt`` (so the Euler gains cancel and weights are written
unchanged, as snnTorch does), ``v_leak = bias / b`` and ``v_threshold =
threshold``. Each projection becomes a ``Linear`` node; recurrence becomes a
cycle. ``values="deployed"`` writes the float image of the quantized
parameters (what the chip runs, without its truncation) instead of the
trained floats.
"""
from __future__ import annotations

import io
from pathlib import Path

import networkx as nx
import numpy as np

from rsnn2chip import __version__, fixedpoint as fx, ir
from rsnn2chip.fileio import atomic_write_bytes
from rsnn2chip.errors import InputError, ModelError, Problem
from rsnn2chip.frontends.nir import DEFAULT_DT
from rsnn2chip.neurons.cuba_lif import CubaLIF

NAME = "NIR graph"
SUFFIX = ".nir"


def float_values(graph: nx.DiGraph):
    """Trained float parameters: ``(pop -> CubaLIF, proj name -> (post, pre) float weights)``."""
    return ({p.name: p.neuron for p in ir.populations(graph, "lif")},
            {proj.name: proj.weight.toarray() for proj in ir.projections(graph)})


def deployed_values(graph: nx.DiGraph):
    """The quantized parameters read back in float units of each population's state scale."""
    neurons, weights = {}, {}
    for p in ir.populations(graph, "lif"):
        if p.fixed is None or not p.state_scale:
            raise ModelError("values='deployed' needs a compiled network", where=f"population {p.name}",
                             fix="export a .r2c artifact, or use values='float'")
        neurons[p.name] = p.model.float_type(**p.model.dequantize(p.fixed.expanded(p.size), p.state_scale))
    for proj in ir.projections(graph):
        q, scale = proj.quant, ir.population(graph, proj.post).state_scale
        m = fx.lava_weights(q.mantissa, q.sign_mode).toarray()
        weights[proj.name] = m * 2.0 ** q.weight_exp * (1 << fx.ACT_SHIFT) / scale
    return neurons, weights


VALUES = {"float": float_values, "deployed": deployed_values}


def _full(value: np.ndarray, size: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, dtype=np.float64), (size,)).copy()


def _cuba_lif(n: CubaLIF, size: int, dt: float):
    import nir
    a, b = _full(n.current_decay, size), _full(n.voltage_decay, size)
    return nir.CubaLIF(tau_syn=dt / a, tau_mem=dt / b, r=1.0 / b, v_leak=_full(n.bias, size) / b,
                       v_threshold=_full(n.threshold, size), w_in=1.0 / a)


def _li(n: CubaLIF, size: int, dt: float):
    import nir
    b = _full(n.voltage_decay, size)
    return nir.LI(tau=dt / b, r=1.0 / b, v_leak=_full(n.bias, size) / b)


def _unused(name: str, taken) -> str:
    # Population names become node names, and RSNN's last layer is often called "output".
    candidate, k = name, 1
    while candidate in taken:
        candidate, k = f"{name}_{k}", k + 1
    return candidate


def check_dt(dt: float, neurons: dict) -> None:
    """The time constants ``dt / decay`` are normal floats: not infinite (so the importer reads them back),
    not subnormal (where the importer's ``dt / tau`` would lose the decays' precision)."""
    decays = [d for n in neurons.values() for d in (n.current_decay, n.voltage_decay)]
    smallest = float(min((np.min(d) for d in decays), default=1.0))
    lo, hi = float(np.finfo(np.float64).tiny), float(np.finfo(np.float64).max) * smallest
    if not lo <= dt <= hi:
        raise InputError("the time step makes the exported time constants (dt / decay) infinite or subnormal",
                         where="--dt", found=dt, allowed=f"{lo:.3g} .. {hi:.3g} s (smallest decay {smallest:.3g})",
                         fix=f"pass the time step the model was trained with (default {DEFAULT_DT:g} s)")


def to_nir(graph: nx.DiGraph, dt: float = DEFAULT_DT, values: str = "float"):
    """The IR as an in-memory ``nir.NIRGraph``."""
    import nir

    if values not in VALUES:
        raise InputError("unknown value set", found=values, allowed=", ".join(VALUES))
    if not (np.isfinite(dt) and dt > 0):
        raise InputError("dt must be a positive number", found=dt)
    neurons, weights = VALUES[values](graph)
    nonspiking = set((graph.graph.get("nir") or {}).get("nonspiking", []))
    problems = []
    for name, n in neurons.items():
        for param in ("current_decay", "voltage_decay"):
            d = getattr(n, param)
            if np.any(d <= 0) or np.any(d > 1):
                problems.append(Problem(f"{param} must lie in (0, 1] for NIR", where=f"population {name}",
                                        resource=param, found=float(d[(d <= 0) | (d > 1)][0]), allowed="(0, 1]",
                                        fix=f"{param} = 0 means a time constant of infinity, which NIR's "
                                            "Euler-discretised ODE cannot carry with a finite input gain"))
    if problems:
        raise ModelError(problems=problems)
    check_dt(dt, neurons)
    nodes, edges = {}, []
    for pop in ir.populations(graph):
        if pop.kind == "input":
            nodes[pop.name] = nir.Input(input_type=np.array([pop.size]))
        elif pop.name in nonspiking and np.all(neurons[pop.name].current_decay == 1):
            nodes[pop.name] = _li(neurons[pop.name], pop.size, dt)
        else:
            nodes[pop.name] = _cuba_lif(neurons[pop.name], pop.size, dt)
    for proj in ir.projections(graph):
        nodes[proj.name] = nir.Linear(weight=weights[proj.name])
        edges += [(proj.pre, proj.name), (proj.name, proj.post)]
    outputs = graph.graph.get("outputs") or ([graph.graph["output"]] if graph.graph.get("output") else
                                             [p.name for p in ir.populations(graph, "lif")
                                              if not any(s != p.name for s in graph.successors(p.name))])
    for pop_name in outputs:
        out = _unused("output" if len(outputs) == 1 else f"output_{pop_name}", nodes)
        nodes[out] = nir.Output(output_type=np.array([ir.population(graph, pop_name).size]))
        edges.append((pop_name, out))
    metadata = {"dt": float(dt), "producer": f"rsnn2chip {__version__}", "values": values,
                "synaptic_delay_steps": 1, "reset": "to zero", "spike_condition": "v > v_threshold"}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def export(graph: nx.DiGraph, path: str | Path, dt: float = DEFAULT_DT, values: str = "float", **_options) -> dict:
    import nir

    g = to_nir(graph, dt, values)
    buf = io.BytesIO()
    nir.write(buf, g)
    atomic_write_bytes(path, buf.getvalue())
    return {"format": "nir", "path": str(path), "dt": dt, "values": values,
            "nodes": {name: type(node).__name__ for name, node in g.nodes.items()}}
