"""Export a quantized IR as a lava-dl netx HDF5 file that ``netx.hdf5.Network`` runs bit-exactly like us.

netx describes a *chain*: one input, then ``dense`` or ``dense_rec`` layers,
each fed only by the layer before it (plus, for ``dense_rec``, itself). Its
weights are 8-bit integers without an exponent (netx picks one per layer when
loading) and its bias exponent is fixed at 6. Everything else is refused with
every reason at once. Before writing, each layer's weights are put through
netx's own loading arithmetic (:func:`rsnn2chip.frontends.netx.netx_layer_weights`)
and must come back unchanged, so a file that is written runs exactly.

A network compiled with rsnn2chip's defaults has fractional effective weights
(negative weight exponents, for precision), which netx cannot store. Unless
``exact`` is asked for, :func:`export` then re-quantizes the artifact's float
IR the way netx can hold it (:func:`requantize_for_netx`: integer weight
exponents, the largest threshold mantissa whose weights still fit netx's 8
bits, biases in multiples of 64) and writes that. The file then runs exactly
like the re-quantized network, not like the artifact; the summary says why it
was re-quantized and how often the two networks' spikes agree on random input.
"""
from __future__ import annotations

import copy
import dataclasses
import io
from pathlib import Path

import networkx as nx
import numpy as np

from rsnn2chip import fixedpoint as fx
from rsnn2chip import ir
from rsnn2chip.fileio import atomic_write_bytes
from rsnn2chip.errors import ModelError, Problem
from rsnn2chip.frontends.netx import NETX_BIAS_EXP, netx_layer_weights

NAME = "lava-dl netx HDF5"
SUFFIX = ".net"
COMPILE_FIX = ("export without --exact (it re-quantizes for netx), or compile for netx: a target with "
               "quantization.weight_exp_min = 0 and a --threshold-mantissa small enough that every weight fits "
               "8 bits (see docs/interop.md)")
# Threshold mantissas tried when re-quantizing, largest (finest weights) first.
NETX_THRESHOLD_MANTISSAS = (2048, 1024, 512, 256, 128, 64, 32, 16)
AGREEMENT_STEPS, AGREEMENT_SAMPLES, AGREEMENT_RATE = 100, 8, 0.2


def chain(graph: nx.DiGraph) -> tuple[str | None, list[str], list[Problem]]:
    """``(input population, LIF populations in chain order, problems)``."""
    problems = []
    inputs = [p.name for p in ir.populations(graph, "input")]
    if len(inputs) != 1:
        problems.append(Problem("netx networks have exactly one input", where="input populations",
                                found=inputs or "none", allowed="one input population",
                                fix="merge the inputs into one population"))
        return None, [], problems
    order, current, seen = [], inputs[0], {inputs[0]}
    while True:
        nexts = [s for s in graph.successors(current) if s != current]
        if not nexts:
            break
        if len(nexts) > 1:
            problems.append(Problem("population feeds more than one layer; netx layers form a chain",
                                    where=f"population {current}", found=sorted(nexts), allowed="one next layer",
                                    fix="export each branch as its own network"))
            break
        current = nexts[0]
        if current in seen:
            problems.append(Problem("feedback between layers cannot be expressed in netx", where=f"population {current}",
                                    found="a cycle through several layers", allowed="self-recurrence only"))
            break
        seen.add(current)
        order.append(current)
    for name in order:
        pres = [p for p in graph.predecessors(name) if p != name]
        expected = ([inputs[0]] + order)[order.index(name)]
        if pres != [expected]:
            problems.append(Problem("layer is fed by populations other than the previous layer (a skip connection)",
                                    where=f"population {name}", found=sorted(pres), allowed=[expected],
                                    fix="netx layers receive input only from the layer before them"))
    missing = [p.name for p in ir.populations(graph, "lif") if p.name not in seen]
    if missing:
        problems.append(Problem("populations outside the input-to-output chain", where="network", found=missing,
                                allowed="one chain from the input", fix="remove them or export them separately"))
    return inputs[0], order, problems


def file_weights(proj: ir.Projection) -> tuple[np.ndarray | None, Problem | None]:
    """The integer weights netx needs so that its ``a_in`` equals ours: ``m * 2**weight_exp``, exactly."""
    q = proj.quant
    m = fx.lava_weights(q.mantissa, q.sign_mode).toarray().astype(np.int64)
    if q.weight_exp >= 0:
        return np.left_shift(m, q.weight_exp), None
    step = 1 << -q.weight_exp
    if np.any(m % step):
        # We add floor(sum(m) / step) to a_in; netx's integer weights can only add whole units per synapse.
        return None, Problem("fractional effective weights cannot be written as netx's integer weights",
                             where=f"projection {proj.name}", resource="weight_exp", found=q.weight_exp,
                             allowed=">= 0 (or mantissas divisible by 2**-weight_exp)", fix=COMPILE_FIX)
    return np.right_shift(m, -q.weight_exp), None


def neuron_registers(pop: ir.Population) -> tuple[dict, Problem | None]:
    f = pop.fixed
    bias = fx.effective_bias(f.bias_mant, f.bias_exp)
    step = 1 << NETX_BIAS_EXP
    mant = bias // step
    lo, hi = fx.BIAS_MANT_RANGE
    regs = {"iDecay": f.du + 1, "vDecay": f.dv, "vThMant": f.vth, "bias": mant}
    if np.any(bias % step) or mant.min() < lo or mant.max() > hi:
        return regs, Problem("bias cannot be written with netx's fixed bias exponent 6", where=f"population {pop.name}",
                             resource="bias", found=f"effective bias {bias.min()}..{bias.max()} "
                                                    f"(bias_exp {f.bias_exp.tolist()})",
                             allowed=f"multiples of 64 in {lo * step}..{hi * step}",
                             fix="quantize biases to multiples of 64 state units (or zero) before exporting")
    return regs, None


def layer_weights(graph, name: str, pre: str) -> tuple[list[np.ndarray], list[Problem]]:
    problems, mats = [], []
    for src in [pre] + ([name] if graph.has_edge(name, name) else []):
        w, problem = file_weights(graph.edges[src, name]["proj"])
        if problem:
            problems.append(problem)
        mats.append(w)
    if problems:
        return mats, problems
    if not any(np.any(w) for w in mats):
        # netx divides by the largest weight to pick its exponent.
        return mats, [Problem("netx cannot load a layer whose weights are all zero", where=f"population {name}",
                              resource="weight", fix="remove the layer or give it nonzero weights")]
    try:
        effective, exp, _ = netx_layer_weights(mats, f"population {name}")
    except ModelError as exc:
        return mats, exc.problems
    if any(not np.array_equal(e, np.left_shift(w, -exp)) for e, w in zip(effective, mats)):
        problems.append(Problem("netx would clip or truncate these weights when loading them",
                                where=f"population {name}", resource="weight",
                                found=f"{min(int(w.min()) for w in mats)}..{max(int(w.max()) for w in mats)}",
                                allowed="8-bit weights (-256..254 mixed, 0..255, -255..0)", fix=COMPILE_FIX))
    return mats, problems


def exact_layers(graph: nx.DiGraph) -> tuple[list, list[Problem]]:
    """The layers netx would load unchanged from ``graph``'s quantized values, and every reason it cannot."""
    not_quantized = [p.name for p in ir.populations(graph, "lif") if p.fixed is None]
    not_quantized += [p.name for p in ir.projections(graph) if p.quant is None]
    if not_quantized:
        raise ModelError("netx export needs a compiled (quantized) network", found=not_quantized,
                         fix="compile it first: `rsnn2chip compile MODEL -o net.r2c`, then export net.r2c")
    source, order, problems = chain(graph)
    if problems:  # structure: no quantization can fix it
        raise ModelError(problems=problems)
    layers, pre = [], source
    for name in order:
        regs, problem = neuron_registers(ir.population(graph, name))
        mats, weight_problems = layer_weights(graph, name, pre)
        problems += ([problem] if problem else []) + weight_problems
        layers.append((name, regs, mats))
        pre = name
    return layers, problems


def _netx_target(target):
    from rsnn2chip.targets import target_from_dict
    data = copy.deepcopy(target.data)
    data["quantization"].update(weight_exp_min=0, weight_exp_max=0)
    return target_from_dict(data, f"{target.name}, integer weight exponents for netx")


def _biases_to_netx(graph: nx.DiGraph) -> None:
    """Round every effective bias to the multiples of 64 netx's fixed bias exponent can hold."""
    step = 1 << NETX_BIAS_EXP
    for pop in ir.populations(graph, "lif"):
        f = pop.fixed
        bias = fx.effective_bias(f.bias_mant, f.bias_exp)
        mant = np.clip(np.rint(bias / step), *fx.BIAS_MANT_RANGE).astype(np.int64)
        pop.fixed = dataclasses.replace(f, bias_mant=mant, bias_exp=np.full_like(mant, NETX_BIAS_EXP))


def requantize_for_netx(graph: nx.DiGraph, target) -> tuple[nx.DiGraph, int]:
    """A copy of ``graph`` quantized from its float IR so netx holds it exactly; returns it and the mantissa used."""
    from rsnn2chip.passes.quantize import PREQUANTIZED, QuantizationConfig, quantize

    netx_target = _netx_target(target)
    last = None
    for mantissa in NETX_THRESHOLD_MANTISSAS:
        g = copy.deepcopy(graph)
        for pop in ir.populations(g, "lif"):
            pop.fixed, pop.state_scale = None, None
            pop.quant_stats.pop(PREQUANTIZED, None)
        for proj in ir.projections(g):
            proj.quant = None
        quantize(g, netx_target, QuantizationConfig(threshold_mantissa_target=mantissa))
        _biases_to_netx(g)
        last = exact_layers(g)[1]
        if not last:
            return g, mantissa
    raise ModelError("no netx-compatible quantization of this network exists", problems=last,
                     fix="netx holds 8-bit integer weights per layer: a layer whose weights span more than ~7 bits "
                         "of dynamic range cannot be exported to netx")


def spike_agreement(a: nx.DiGraph, b: nx.DiGraph, seed: int = 0) -> dict:
    """Fraction of (sample, step, neuron) spikes equal in two quantizations of one network, on random input."""
    from rsnn2chip.artifact import CompiledNetwork
    from rsnn2chip.backends import run

    n_in = ir.total_neurons(a, "input")
    x = (np.random.default_rng(seed).random((AGREEMENT_SAMPLES, AGREEMENT_STEPS, n_in)) < AGREEMENT_RATE)
    ra = run(CompiledNetwork(a, None, None), x.astype(np.int8), AGREEMENT_STEPS)
    rb = run(CompiledNetwork(b, None, None), x.astype(np.int8), AGREEMENT_STEPS)
    per_pop = {name: float((s == rb.spikes[name]).mean()) for name, s in ra.spikes.items()}
    counts = {name: [int(s.sum()), int(rb.spikes[name].sum())] for name, s in ra.spikes.items()}
    return {"inputs": f"{AGREEMENT_SAMPLES} samples x {AGREEMENT_STEPS} steps of random spikes at rate "
                      f"{AGREEMENT_RATE}", "agreement": per_pop, "spike_counts_artifact_vs_exported": counts}


def export(graph: nx.DiGraph, path: str | Path, target=None, exact: bool = False, **_options) -> dict:
    """Write ``graph`` as netx; re-quantize for netx when its values cannot be written exactly (see module doc)."""
    layers, problems = exact_layers(graph)
    requantized = None
    if problems and not exact and target is not None:
        netx_graph, mantissa = requantize_for_netx(graph, target)
        layers, _ = exact_layers(netx_graph)
        requantized = {"threshold_mantissa": mantissa,
                       "why": sorted({f"{p.where}: {p.message}" for p in problems}),
                       **spike_agreement(graph, netx_graph)}
    elif problems:
        raise ModelError(problems=problems)
    atomic_write_bytes(path, _hdf5_bytes(layers))
    return {"format": "netx", "path": str(path), "exact": requantized is None, "requantized": requantized,
            "layers": [{"index": i, "population": name, "type": "dense_rec" if len(mats) > 1 else "dense",
                        "size": int(mats[0].shape[0])} for i, (name, _, mats) in enumerate(layers)]}


def _hdf5_bytes(layers) -> bytes:
    import h5py

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        root = f.create_group("layer")
        for i, (name, regs, mats) in enumerate(layers):
            g = root.create_group(str(i))
            ltype = "dense_rec" if len(mats) > 1 else "dense"
            # The same dataset types slayer's export_hdf5 writes, so netx's NetDict reads them as it reads slayer's.
            g.create_dataset("type", (1,), "S10", [ltype.encode("ascii")])
            g.create_dataset("shape", data=np.array([mats[0].shape[0]]))
            g.create_dataset("inFeatures", data=mats[0].shape[1])
            g.create_dataset("outFeatures", data=mats[0].shape[0])
            g.create_dataset("weight", data=mats[0].astype(np.float32))
            if len(mats) > 1:
                g.create_dataset("weight_rec", data=mats[1].astype(np.float32))
            if np.any(regs["bias"]):
                g.create_dataset("bias", data=np.broadcast_to(regs["bias"], (mats[0].shape[0],)).astype(np.float32))
            g.create_dataset("neuron/type", data="CUBA")
            for key in ("iDecay", "vDecay", "vThMant"):
                value = regs[key]
                g.create_dataset(f"neuron/{key}", data=int(value[0]) if value.size == 1 else value.astype(np.int64))
            g.create_dataset("neuron/refDelay", data=1)
            g.create_dataset("neuron/gradedSpike", data=False)
            g.attrs["rsnn2chip_population"] = name
    return buf.getvalue()
