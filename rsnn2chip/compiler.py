"""The compile pipeline: frontend -> passes -> artifact.

Each pass does one job and lives in its own module under ``passes/``; this
module only orders them and collects their results.
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import networkx as nx

from rsnn2chip.artifact import CompiledNetwork, provenance_for
from rsnn2chip.errors import DesignRuleError, Problem, about_file
from rsnn2chip.frontends import load_network
from rsnn2chip.passes import checks
from rsnn2chip.passes.mapping import MappingResult
from rsnn2chip.passes.partition import partition
from rsnn2chip.passes.place import build_core_graph
from rsnn2chip.passes.quantize import QuantizationConfig, quantize
from rsnn2chip.passes.resources import NetworkDemand, network_demand
from rsnn2chip.targets import Target


@dataclass
class CompileState:
    graph: nx.DiGraph
    target: Target
    mapper: str
    qcfg: QuantizationConfig
    spike_counts: object = None  # optional measured spikes per neuron; mappers then weigh traffic by them
    demand: NetworkDemand | None = None
    mapping: MappingResult | None = None  # partition's result, which place reads
    cores: nx.DiGraph | None = None
    problems: list[Problem] = field(default_factory=list)


def _quantize(s: CompileState) -> None:
    quantize(s.graph, s.target, s.qcfg)


def _demand(s: CompileState) -> None:
    s.demand = network_demand(s.graph, s.spike_counts)


def _partition(s: CompileState) -> None:
    s.mapping = partition(s.demand, s.target, s.mapper)


def _place(s: CompileState) -> None:
    s.cores = build_core_graph(s.demand, s.mapping, s.target)


def _check(s: CompileState) -> None:
    s.problems = checks.run_checks(checks.CheckContext(s.graph, s.demand, s.cores, s.target))


PASSES: list[tuple[str, Callable[[CompileState], None]]] = [
    ("quantize", _quantize),
    ("resource demand", _demand),
    ("partition", _partition),
    ("place", _place),
    ("design-rule checks", _check),
]


def compile_graph(graph: nx.DiGraph, target: Target, *, mapper: str = "greedy",
                  qcfg: QuantizationConfig = QuantizationConfig(), provenance: dict | None = None,
                  on_pass: Callable[[str], None] | None = None, spike_counts=None) -> CompiledNetwork:
    """Run every pass; raise :class:`DesignRuleError` listing every violation if any rule fails.

    ``spike_counts``: measured spikes per neuron (flat array over LIF neurons in
    IR order, or a dict population -> array); see ``resources.network_demand``.
    """
    checks.rules_for(target)  # a target naming an unknown rule fails before any work
    state = CompileState(graph, target, mapper, qcfg, spike_counts)
    for name, run_pass in PASSES:
        if on_pass:
            on_pass(name)
        run_pass(state)
    errors = checks.errors_only(state.problems)
    if errors:
        raise DesignRuleError(problems=errors)
    warnings = [p.to_dict() for p in state.problems if p.severity != "error"]
    return CompiledNetwork(graph, target, state.cores, provenance or {}, warnings)


def import_warnings(model_path, caught) -> list[dict]:
    """A frontend's warnings (conventions it could not follow, approximations) as compile warnings."""
    out = []
    for w in caught:
        text, _, fix = str(w.message).partition("; fix: ")
        out.append(Problem(text, file=str(model_path), rule="import", severity="warning", fix=fix or None).to_dict())
    return out


def compile_file(model_path: str | Path, target: Target, **kwargs) -> CompiledNetwork:
    # Kept in the artifact (and so in reports), not only printed once by Python.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        graph = load_network(model_path)
    qcfg = kwargs.get("qcfg", QuantizationConfig())
    # Recorded so eval encodes inputs as training did and verify re-quantizes with the same settings.
    provenance = provenance_for(model_path, target=target.name, mapper=kwargs.get("mapper", "greedy"),
                                quantization=dataclasses.asdict(qcfg), **graph.graph.get("training", {}))
    with about_file(model_path):  # the passes see a graph; what they refuse is in this file
        compiled = compile_graph(graph, target, provenance=provenance, **kwargs)
    compiled.warnings = import_warnings(model_path, caught) + compiled.warnings
    return compiled
