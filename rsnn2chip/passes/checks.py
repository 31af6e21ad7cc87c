"""Design-rule checks: small named functions, all run, all violations reported at once.

Each rule takes a :class:`CheckContext` and returns a list of
:class:`~rsnn2chip.errors.Problem` naming the layer/motif/core, the resource,
the amount used, the limit and a concrete fix. Rules are registered by name in
:data:`RULES`; each target lists the ones its compiles must pass (``[drc]
rules``, every rule when absent), in the manner of Rockpool's per-device DRC
lists, but :func:`run_checks` runs all of them and collects every problem
instead of stopping at the first. The compiler fails if any problem has
severity "error". Every limit a rule applies comes from the target.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import networkx as nx
import numpy as np


from rsnn2chip import fixedpoint as fx
from rsnn2chip import ir
from rsnn2chip.errors import Problem, TargetError
from rsnn2chip.passes.resources import RESOURCES, NetworkDemand
from rsnn2chip.targets import Target


@dataclass
class CheckContext:
    graph: nx.DiGraph
    demand: NetworkDemand
    cores: nx.DiGraph
    target: Target


Rule = Callable[[CheckContext], list[Problem]]
RULES: dict[str, Rule] = {}


def rule(fn: Rule) -> Rule:
    RULES[fn.__name__] = fn
    return fn


def rules_for(target: Target) -> list[Rule]:
    """The rules ``target`` lists, in its order (all registered rules when it lists none)."""
    names = target.drc.rules if target.drc.rules is not None else tuple(RULES)
    unknown = [n for n in names if n not in RULES]
    if unknown:
        raise TargetError("unknown design rule in the target's drc.rules", file=target.path,
                          found=", ".join(unknown), allowed=", ".join(RULES),
                          fix="remove or correct the name; docs/mapping.md describes every rule")
    return [RULES[n] for n in names]


def describe_core(ctx: CheckContext, core: int, max_parts: int = 4) -> str:
    data = ctx.cores.nodes[core]
    parts = []
    for pop_name, lo, hi in data["slices"][:max_parts]:
        pop = ir.population(ctx.graph, pop_name)
        if pop.motif_size:
            first, last = lo // pop.motif_size, (hi - 1) // pop.motif_size
            span = f"motif {first}" if first == last else f"motifs {first}-{last}"
            parts.append(f"layer {pop.layer} ({pop_name} {span}, neurons {lo}-{hi - 1})")
        else:
            parts.append(f"layer {pop.layer} ({pop_name} neurons {lo}-{hi - 1})")
    more = len(data["slices"]) - max_parts
    if more > 0:  # scattered assignments (METIS) can hold hundreds of runs; the name must stay readable
        parts.append(f"and {more} more neuron ranges")
    return f"core {core} (chip {data['chip']}) holding " + ", ".join(parts)


FIXES = {
    "neurons": "spread the layer over more cores (smaller motifs) or use a target with larger cores",
    "synapse_memory_bits": "reduce fan-in (sparser input/recurrent weights) or use smaller motifs so fewer "
                           "synapses share a core",
    "input_axons": "reduce fan-in: fewer distinct presynaptic neurons per core (sparser input projections)",
    "output_axons": "reduce fan-out: keep each neuron's targets on fewer cores (--mapper greedy or auto keep "
                    "consecutive motifs together) or project to fewer postsynaptic layers",
    "neuron_profiles": "reduce the number of distinct neuron profiles (decays and bias exponent, per neuron "
                       "model) per core, e.g. share intrinsic parameters within a motif",
    "threshold_profiles": "reduce the number of distinct thresholds per core",
}


def _single_unit_fix(ctx: CheckContext, core: int, resource: str) -> str | None:
    """The concrete fix when one atomic unit (a motif or a lone neuron) alone breaks a limit.

    Built-in mappers only leave a core over a limit when a single unit cannot
    fit an empty core, so the fix is about that unit: a smaller motif or less
    fan-in/fan-out, with the numbers that would fit.
    """
    data = ctx.cores.nodes[core]
    if data["units"] != 1 or len(data["slices"]) != 1:
        return None
    pop = ir.population(ctx.graph, data["slices"][0][0])
    used, limit = data["used"], ctx.target.core.limit(resource)
    n = max(used["neurons"], 1)
    what = f"one {pop.motif_size}-neuron motif of layer {pop.layer}" if pop.motif_size else \
        f"one neuron of layer {pop.layer}"
    smaller = "" if not pop.motif_size else " or smaller motifs"
    if resource == "neurons":
        return f"{what} exceeds a core's {limit} neurons: use motifs of <= {limit} neurons in layer {pop.layer}"
    if resource == "synapse_memory_bits":
        core, enc = ctx.target.core, ctx.target.synapse_encoding
        bps = enc.bits_per_synapse
        state = core.neuron_state_bits * pop.model.state_size if core.shared_memory else 0
        header = enc.header_bits_per_axon * used["input_axons"]
        fan_in = used["synapses"] / n
        # Smaller motif: the same sources (headers) shared by fewer neurons.
        fit = int((limit - header) // max(fan_in * bps + state, 1))
        # Less fan-in: headers assumed to shrink in proportion to the synapses.
        max_fan_in = int((limit - n * state) // max(n * bps + header / max(fan_in, 1), 1))
        head = (f"{what} needs {used['synapse_memory_bits']} bits ({used['synapses'] // n} synapses per neuron "
                f"x {bps} bits + {used['input_axons']} axon headers)")
        cut = f"cut the fan-in of layer {pop.layer} to <= {max(max_fan_in, 0)} synapses per neuron"
        if pop.motif_size and fit >= 1:
            return f"{head}: split layer {pop.layer} into motifs of <= {fit} neurons, or {cut}"
        return f"{head}: {cut}"
    if resource == "input_axons":
        return (f"{what} listens to {used['input_axons']} distinct presynaptic neurons or channels; a core accepts "
                f"{limit}: make the projections into layer {pop.layer} sparser{smaller} so each core sees "
                f"<= {limit} sources")
    if resource == "output_axons":
        return (f"{what} sends spikes to {used['output_axons']} (neuron, core) pairs; a core allows "
                f"{limit}: reduce the fan-out of layer {pop.layer} or make its targets more local")
    if resource in ("neuron_profiles", "threshold_profiles"):
        kind = "neuron profiles (decays and bias exponent)" if resource == "neuron_profiles" else "thresholds"
        return (f"{what} uses {used[resource]} distinct {kind}; a core allows {limit}: share them within each "
                f"motif (at most {limit} distinct values){smaller}")
    return None


def _core_limit_rule(resource: str):
    def check(ctx: CheckContext) -> list[Problem]:
        limit = ctx.target.core.limit(resource)
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


for _resource in RESOURCES:
    _core_limit_rule(_resource)


@rule
def chip_cores(ctx: CheckContext) -> list[Problem]:
    chip = ctx.target.chip
    n_cores = ctx.cores.graph["n_cores"]
    available = ctx.target.total_cores
    if n_cores <= available:
        return []
    chips_needed = -(-n_cores // chip.cores)
    lb = ctx.cores.graph.get("lower_bound", {}).get("cores")
    example = "targets/loihi2-sim-2chip.toml is loihi2-sim with chips = 2" if chips_needed == 2 else \
        f"e.g. a copy of targets/loihi2-sim-2chip.toml with chips = {chips_needed}"
    return [Problem(f"network needs {n_cores} cores ({chips_needed} chips); the target has {available} "
                    f"({chip.chips} chip{'s' if chip.chips != 1 else ''} of {chip.cores})",
                    where=f"target {ctx.target.name} ({ctx.target.path})", resource="cores", found=n_cores,
                    allowed=available, rule="chip_cores",
                    fix=f"use a target with chip.chips >= {chips_needed} ({example}), "
                        f"or shrink the network"
                        + (f" (no mapping can use fewer than {lb} cores)" if lb else ""))]


@rule
def weight_exponent_range(ctx: CheckContext) -> list[Problem]:
    q = ctx.target.quantization
    problems = []
    for proj in ir.projections(ctx.graph):
        e = proj.quant.weight_exp
        if not q.weight_exp_min <= e <= q.weight_exp_max:
            problems.append(Problem("weight exponent out of range", where=f"projection {proj.name}",
                                    resource="weight_exp", found=e,
                                    allowed=f"{q.weight_exp_min}..{q.weight_exp_max}", rule="weight_exponent_range",
                                    fix="rescale the layer's weights or its threshold"))
    return problems


@rule
def weight_bits(ctx: CheckContext) -> list[Problem]:
    """Every weight mantissa fits the target's ``synapse_encoding.weight_bits`` (compile quantizes onto that
    grid; networks read already quantized, e.g. from netx, may not be on it)."""
    bits = ctx.target.synapse_encoding.weight_bits
    problems = []
    for proj in ir.projections(ctx.graph):
        lo, hi, step = fx.weight_grid(proj.quant.sign_mode, bits)
        data = proj.quant.mantissa.data
        bad = (data < lo) | (data > hi) | (data % step != 0)
        if bad.any():
            problems.append(Problem(f"weight mantissas need more than the target's {bits} weight bits",
                                    where=f"projection {proj.name}", resource="weight mantissa",
                                    found=f"{int(bad.sum())} of {data.size} (e.g. {int(data[bad][0])})",
                                    allowed=f"multiples of {step} in {lo}..{hi} ({proj.quant.sign_mode})",
                                    rule="weight_bits",
                                    fix="re-quantize the weights for this target (compile a float model), or use a "
                                        "target with more synapse_encoding.weight_bits"))
    return problems


@rule
def synaptic_delay(ctx: CheckContext) -> list[Problem]:
    return [Problem("synaptic delay not supported", where=f"projection {p.name}", resource="delay",
                    found=p.delay, allowed=1, rule="synaptic_delay",
                    fix="use the one-step delay of a Sparse projection (delay=1)")
            for p in ir.projections(ctx.graph) if p.delay != 1]


def _row_sums(m, values: np.ndarray) -> np.ndarray:
    """Per-row sums of a CSR matrix's (transformed) data, in int64, without copying the matrix."""
    out = np.zeros(m.shape[0], np.int64)
    counts = np.diff(m.indptr)
    nonempty = counts > 0
    if values.size:
        # reduceat sums up to the next start; empty rows are skipped so that start is this row's end.
        out[nonempty] = np.add.reduceat(values, m.indptr[:-1][nonempty], dtype=np.int64)
    return out


@rule
def neuron_models(ctx: CheckContext) -> list[Problem]:
    """Every population's neuron model is one the target's cores run."""
    supported = ctx.target.core.neuron_models
    return [Problem(f"neuron model {pop.model.name!r} not supported by target {ctx.target.name}",
                    where=f"layer {pop.layer} (population {pop.name})", resource="neuron model",
                    found=pop.model.name, allowed=", ".join(supported), rule="neuron_models",
                    fix=f"use one of {', '.join(supported)} for this layer, or a target whose core.neuron_models "
                        f"lists {pop.model.name!r}")
            for pop in ir.populations(ctx.graph, "lif") if pop.model.name not in supported]


@rule
def accumulator_range(ctx: CheckContext) -> list[Problem]:
    """The worst-case synaptic input of a step fits the target's signed dendritic accumulator
    (``core.accumulator_bits``); Lava's CPU model does not wrap it, so hardware could differ."""
    worst = np.zeros(ctx.demand.n_lif)
    lif = ir.neuron_offsets(ctx.graph, "lif")
    for proj in ir.projections(ctx.graph):
        m = proj.quant.mantissa
        data = m.data
        mode = proj.quant.sign_mode
        pos = _row_sums(m, data) if mode == "excitatory" else \
            (0 if mode == "inhibitory" else _row_sums(m, np.maximum(data, 0)))
        neg = -_row_sums(m, data) if mode == "inhibitory" else \
            (0 if mode == "excitatory" else -_row_sums(m, np.minimum(data, 0)))
        lo, hi = lif[proj.post]
        worst[lo:hi] += np.maximum(pos, neg) * 2.0 ** proj.quant.weight_exp
    bits = ctx.target.core.accumulator_bits
    limit = (1 << (bits - 1)) - 1
    if worst.size == 0 or worst.max() <= limit:
        return []
    n = int((worst > limit).sum())
    k = int(np.argmax(worst))
    pop = ctx.demand.populations[ctx.demand.population_of[k]]
    local = k - lif[pop.name][0]
    return [Problem(f"worst-case synaptic input may exceed the {bits}-bit dendritic accumulator", severity="warning",
                    where=f"{n} neurons; worst is layer {pop.layer} ({pop.name} neuron {local})", resource="a_in",
                    found=int(worst[k]), allowed=limit, rule="accumulator_range",
                    fix="lower threshold_mantissa_target or the weights feeding these neurons")]


@rule
def weight_clipping(ctx: CheckContext) -> list[Problem]:
    problems = []
    for proj in ir.projections(ctx.graph):
        frac = proj.quant.stats.get("clipped_fraction", 0.0)
        if frac > 0.01:
            # At the target's largest exponent the mantissa range, not the percentile, is what clips.
            capped = proj.quant.weight_exp >= ctx.target.quantization.weight_exp_max
            fix = (f"the weight exponent is at the target's weight_exp_max ({proj.quant.weight_exp}): lower "
                   "--threshold-mantissa (weights scale with it) or raise the target's weight_exp_max" if capped
                   else "raise --weight-clip-percentile toward 100 or regularise large weights")
            problems.append(Problem("more than 1% of weights clipped by quantization", severity="warning",
                                    where=f"projection {proj.name}", resource="weight mantissa",
                                    found=f"{frac:.1%} clipped", allowed="<= 1%", rule="weight_clipping", fix=fix))
    return problems


def run_checks(ctx: CheckContext) -> list[Problem]:
    """Every problem found by every rule the target lists."""
    return [p for check in rules_for(ctx.target) for p in check(ctx)]


def errors_only(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]
