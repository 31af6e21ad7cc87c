"""Exporters write a network (usually a compiled artifact's quantized IR) in another tool's format.

Each exporter module exposes ``NAME``, ``SUFFIX`` and
``export(graph, path, **options) -> dict`` (a JSON-safe summary of what was
written) and raises :class:`~rsnn2chip.errors.ModelError` naming everything
the format cannot express.
"""
from __future__ import annotations

import importlib
from pathlib import Path

import networkx as nx

from rsnn2chip import ir, neurons
from rsnn2chip.errors import InputError, ModelError, Problem

EXPORTERS = {"netx": "rsnn2chip.exporters.netx", "nir": "rsnn2chip.exporters.nir"}


def exporter(fmt: str):
    if fmt not in EXPORTERS:
        raise InputError("unknown export format", found=fmt, allowed=", ".join(EXPORTERS))
    return importlib.import_module(EXPORTERS[fmt])


def export(graph: nx.DiGraph, path: str | Path, fmt: str, **options) -> dict:
    module = exporter(fmt)
    check_neuron_models(graph, fmt, module.NAME)
    return module.export(graph, path, **options)


def check_neuron_models(graph: nx.DiGraph, fmt: str, name: str) -> None:
    """Refuse, by name, populations whose neuron model the format has no counterpart for."""
    problems = [Problem(f"{name} has no neuron like {pop.model.name} ({pop.model.description})",
                        where=f"population {pop.name}", found=f"neuron model {pop.model.name}",
                        allowed=[m for m in neurons.NEURON_MODELS if fmt in neurons.NEURON_MODELS[m].interchange],
                        fix="keep the compiled .r2c artifact for this network; it runs in Lava as it is")
                for pop in ir.populations(graph, "lif") if fmt not in pop.model.interchange]
    if problems:
        raise ModelError(problems=problems)
