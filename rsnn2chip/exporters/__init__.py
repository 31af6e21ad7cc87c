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

from rsnn2chip.errors import InputError

EXPORTERS = {"netx": "rsnn2chip.exporters.netx", "nir": "rsnn2chip.exporters.nir"}


def exporter(fmt: str):
    if fmt not in EXPORTERS:
        raise InputError("unknown export format", found=fmt, allowed=", ".join(EXPORTERS))
    return importlib.import_module(EXPORTERS[fmt])


def export(graph: nx.DiGraph, path: str | Path, fmt: str, **options) -> dict:
    return exporter(fmt).export(graph, path, **options)
