"""Design-rule checks: small named functions, all run, all violations reported at once.

Each rule takes a :class:`CheckContext` and returns a list of
:class:`~rsnn2chip.errors.Problem` naming the layer/motif/core, the resource,
the amount used, the limit and a concrete fix. :func:`run_checks` runs every
rule in :data:`RULES`; the compiler fails if any problem has severity "error".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import networkx as nx
import numpy as np


from rsnn2chip import ir
from rsnn2chip.errors import Problem
from rsnn2chip.passes.resources import NetworkDemand
from rsnn2chip.targets import Target


@dataclass
class CheckContext:
    graph: nx.DiGraph
    demand: NetworkDemand
    cores: nx.DiGraph
    target: Target


RULES: list[Callable[[CheckContext], list[Problem]]] = []


def rule(fn):
    RULES.append(fn)
    return fn


def describe_core(ctx: CheckContext, core: int) -> str:
    data = ctx.cores.nodes[core]
    parts = []
    for pop_name, lo, hi in data["slices"]:
        pop = ir.population(ctx.graph, pop_name)
        if pop.motif_size:
            first, last = lo // pop.motif_size, (hi - 1) // pop.motif_size
            span = f"motif {first}" if first == last else f"motifs {first}-{last}"
            parts.append(f"layer {pop.layer} ({pop_name} {span}, neurons {lo}-{hi - 1})")
        else:
            parts.append(f"layer {pop.layer} ({pop_name} neurons {lo}-{hi - 1})")
    return f"core {core} (chip {data['chip']}) holding " + ", ".join(parts)


def _single_unit_fix(ctx: CheckContext, core: int, resource: str) -> str | None:
    """When a core holds one atomic motif that alone breaks a limit, the fix is a smaller motif."""
    data = ctx.cores.nodes[core]
    if data["units"] != 1 or len(data["slices"]) != 1:
        return None
    pop = ir.population(ctx.graph, data["slices"][0][0])
    if not pop.motif_size:
        return None
    used = data["used"][resource]
    limit = ctx.target.core[resource]
    smaller = max(1, int(pop.motif_size * limit // max(used, 1)))
    return (f"motif of layer {pop.layer} alone exceeds one core: split layer {pop.layer} into motifs of "
            f"<= {smaller} neurons, or reduce its fan-in")


FIXES = {
    "neurons": "spread the layer over more cores (smaller motifs) or use a target with larger cores",
    "synapse_memory_bits": "reduce fan-in (sparser input/recurrent weights) or use smaller motifs so fewer "
                           "synapses share a core",
    "input_axons": "reduce fan-in: fewer distinct presynaptic neurons per core (sparser input projections)",
    "output_axons": "reduce fan-out: keep each neuron's targets on fewer cores (contiguous mapping, "
                    "--mapper greedy) or fewer postsynaptic layers",
    "neuron_profiles": "reduce the number of distinct (current decay, voltage decay, bias exponent) "
                       "combinations per core, e.g. share intrinsic parameters within a motif",
    "threshold_profiles": "reduce the number of distinct thresholds per core",
}


def _core_limit_rule(resource: str):
    def check(ctx: CheckContext) -> list[Problem]:
        limit = ctx.target.core[resource]
        problems = []
        for core, data in ctx.cores.nodes(data=True):
            used = data["used"][resource]
            if used > limit:
                problems.append(Problem(
                    f"core {resource.replace('_', ' ')} over limit", where=describe_core(ctx, core),
                    resource=resource, found=used, allowed=limit, rule=check.__name__,
                    fix=_single_unit_fix(ctx, core, resource) or FIXES[resource]))
        return problems

    check.__name__ = f"core_{resource}"
    return rule(check)


for _resource in ("neurons", "synapse_memory_bits", "input_axons", "output_axons", "neuron_profiles",
                  "threshold_profiles"):
    _core_limit_rule(_resource)


@rule
def chip_cores(ctx: CheckContext) -> list[Problem]:
    chip = ctx.target["chip"]
    n_cores = ctx.cores.graph["n_cores"]
    available = chip["cores"] * chip["chips"]
    if n_cores <= available:
        return []
    chips_needed = -(-n_cores // chip["cores"])
    return [Problem("network needs more cores than the target has", where=f"target {ctx.target.name}",
                    resource="cores", found=n_cores, allowed=available, rule="chip_cores",
                    fix=f"needs {chips_needed} chips of {chip['cores']} cores: use a target with chip.chips >= "
                        f"{chips_needed} (e.g. a copy of {ctx.target.path} with chips = {chips_needed}), "
                        f"or shrink the network")]


@rule
def weight_exponent_range(ctx: CheckContext) -> list[Problem]:
    q = ctx.target["quantization"]
    problems = []
    for proj in ir.projections(ctx.graph):
        e = proj.quant.weight_exp
        if not q["weight_exp_min"] <= e <= q["weight_exp_max"]:
            problems.append(Problem("weight exponent out of range", where=f"projection {proj.name}",
                                    resource="weight_exp", found=e,
                                    allowed=f"{q['weight_exp_min']}..{q['weight_exp_max']}", rule="weight_exponent_range",
                                    fix="rescale the layer's weights or its threshold"))
    return problems


@rule
def synaptic_delay(ctx: CheckContext) -> list[Problem]:
    return [Problem("synaptic delay not supported", where=f"projection {p.name}", resource="delay",
                    found=p.delay, allowed=1, rule="synaptic_delay",
                    fix="use the one-step delay of a Sparse projection (delay=1)")
            for p in ir.projections(ctx.graph) if p.delay != 1]


@rule
def activation_16bit(ctx: CheckContext) -> list[Problem]:
    """Loihi's dendritic accumulator is 16 bits; Lava's CPU model does not wrap it, so hardware could differ."""
    worst = np.zeros(ctx.demand.n_lif)
    lif = ir.neuron_offsets(ctx.graph, "lif")
    for proj in ir.projections(ctx.graph):
        m = proj.quant.mantissa
        pos = np.asarray(m.maximum(0).sum(axis=1)).ravel()
        neg = np.asarray((-m.minimum(0)).sum(axis=1)).ravel()
        lo, hi = lif[proj.post]
        worst[lo:hi] += np.maximum(pos, neg) * 2.0 ** proj.quant.weight_exp
    limit = (1 << 15) - 1
    if worst.size == 0 or worst.max() <= limit:
        return []
    n = int((worst > limit).sum())
    k = int(np.argmax(worst))
    return [Problem("worst-case synaptic input may exceed Loihi's 16-bit accumulator", severity="warning",
                    where=f"{n} neurons, worst is global LIF neuron {k}", resource="a_in",
                    found=int(worst[k]), allowed=limit, rule="activation_16bit",
                    fix="lower threshold_mantissa_target or the weights feeding these neurons")]


@rule
def weight_clipping(ctx: CheckContext) -> list[Problem]:
    problems = []
    for proj in ir.projections(ctx.graph):
        frac = proj.quant.stats.get("clipped_fraction", 0.0)
        if frac > 0.01:
            problems.append(Problem("more than 1% of weights clipped by quantization", severity="warning",
                                    where=f"projection {proj.name}", resource="weight mantissa",
                                    found=f"{frac:.1%} clipped", allowed="<= 1%", rule="weight_clipping",
                                    fix="raise --weight-clip-percentile toward 100 or regularise large weights"))
    return problems


def run_checks(ctx: CheckContext) -> list[Problem]:
    return [p for check in RULES for p in check(ctx)]


def errors_only(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]



