"""Fidelity check: the trained model, its quantization-aware twin, the reference backend and Lava on one input.

Four runs for a network compiled from an rsnn2chip checkpoint, compared in pairs:

* ``float`` - the PyTorch model as trained;
* ``qat`` - the same model with :func:`rsnn2chip.nn.qat.enable_qat` (integer forward pass);
* ``reference`` - the compiled artifact on the bit-exact reference backend;
* ``lava`` - the compiled artifact in Lava's fixed-point simulator.

``float`` differs from the others by quantization, which is expected and
explained; ``qat`` and ``reference`` must agree when the artifact was compiled
with the same quantization settings; ``reference`` and ``lava`` must agree on
every spike. A network compiled from anything else (NIR, netx) has no PyTorch
model to run: :func:`verify_compiled` compares three runs, where ``float`` is
the float IR (``backends/float_ir.py``) of the source file or, without one, of
the artifact itself: NIR's equations with Loihi's one-step delays, or slayer's
float model of a netx layer. For every pair the first ``(layer, neuron, step)`` that differs
is named with the likeliest cause: spikes before that step agree in both runs
(it is the first difference), so the cause is local to that neuron.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch

from rsnn2chip import ir
from rsnn2chip.artifact import CompiledNetwork, sha256_file
from rsnn2chip.backends import RunResult, first_divergence, prepare_inputs, run as run_backend
from rsnn2chip.backends.plan import lower
from rsnn2chip.errors import InputError
from rsnn2chip.nn.network import LOGITS_KEY, RSNN, VOLTAGE_KEY
from rsnn2chip.readout import compiled_readout, run_probes, trace_of
from rsnn2chip.nn.qat import QATSettings, enable_qat, quantize_layer
from rsnn2chip.passes.quantize import QuantizationConfig
from rsnn2chip.report import weight_check

PAIRS = (("float", "qat"), ("qat", "reference"), ("float", "reference"), ("reference", "lava"))
COMPILED_PAIRS = (("float", "reference"), ("reference", "lava"))
# A parameter whose conversion moved it by less than one step of an 8-bit mantissa is
# no coarser than the weights themselves: it is reported as part of plain rounding.
PARAM_REL_TOLERANCE = 2.0 ** -8
MAX_LISTED = 5


@dataclass
class Verification:
    steps: int
    samples: int
    spikes: dict[str, dict[str, np.ndarray]]  # run -> population -> (B, steps, size) bool
    pairs: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    readout: dict = field(default_factory=dict)

    @property
    def lava_matches_reference(self) -> bool:
        return next(p["identical"] for p in self.pairs if (p["a"], p["b"]) == ("reference", "lava"))

    def to_dict(self) -> dict:
        return {"samples": self.samples, "steps": self.steps,
                "spike_counts": {run: {pop: int(s.sum()) for pop, s in pops.items()}
                                 for run, pops in self.spikes.items()},
                "pairs": self.pairs, "lava_matches_reference": self.lava_matches_reference,
                "readout": self.readout, "warnings": self.warnings}


# --------------------------------------------------------------------------- runs

def population_map(model: RSNN, graph) -> dict[str, str]:
    """Model layer -> IR population; the names are equal for RSNN models, so this checks they all exist."""
    lif = [p.name for p in ir.populations(graph, "lif")]
    layers = list(model.layers.keys())
    if sorted(layers) != sorted(lif):
        raise InputError("the model's layers are not the artifact's populations", found=layers, allowed=lif,
                         fix="pass the model the artifact was compiled from")
    return {name: name for name in layers}


def run_model(model: RSNN, x: np.ndarray, names: dict[str, str]) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Spikes per population and, for a membrane readout, the output voltage ``(B, T, n)`` in float units."""
    with torch.no_grad():
        out = model(torch.as_tensor(x, dtype=torch.float32))
    voltage = out[VOLTAGE_KEY].double().cpu().numpy() if VOLTAGE_KEY in out else None
    return {names[k]: v.cpu().numpy() > 0.5 for k, v in out.items() if k not in (LOGITS_KEY, VOLTAGE_KEY)}, voltage


def quantization_config(art: CompiledNetwork, given: QuantizationConfig) -> QuantizationConfig:
    """The settings the artifact was compiled with when its provenance records them, else ``given``."""
    q = art.provenance.get("quantization") or {}
    return QuantizationConfig(int(q.get("threshold_mantissa_target", given.threshold_mantissa_target)),
                              float(q.get("weight_clip_percentile", given.weight_clip_percentile)))


def run_all(model: RSNN, art: CompiledNetwork, x: np.ndarray, steps: int, qcfg: QuantizationConfig,
            lava_options: dict) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """Spikes of the four runs, and the readout trace of each (spikes, or v as integers for the exact runs)."""
    names = population_map(model, art.graph)
    graded = next(iter(ir.populations(art.graph, "input"))).graded
    qat_model = enable_qat(copy.deepcopy(model), art.target, qcfg, input_graded=graded)
    readout, output = compiled_readout(art.graph)
    probes = run_probes(readout)
    (float_spikes, float_v), (qat_spikes, qat_v) = run_model(model, x, names), run_model(qat_model, x, names)
    ref = run_backend(art, x, steps, "reference", probes=probes)
    lava = run_backend(art, x, steps, "lava", probes=probes, **lava_options)
    scale = ir.population(art.graph, output).state_scale
    traces = {"float": float_spikes[output] if readout.output_fires else float_v * scale,
              "qat": qat_spikes[output] if readout.output_fires else qat_v * scale,
              "reference": trace_of(readout, ref, output), "lava": trace_of(readout, lava, output)}
    return {"float": float_spikes, "qat": qat_spikes, "reference": ref.spikes, "lava": lava.spikes}, traces


def readout_agreement(art: CompiledNetwork, traces: dict[str, np.ndarray]) -> dict:
    """Predicted class of every run (read over the whole input) and whether the exact runs' traces are equal."""
    readout, _ = compiled_readout(art.graph)
    full = {run: np.full(t.shape[0], t.shape[1]) for run, t in traces.items()}
    predicted = {run: readout.scores(np.rint(t), full[run], 0).argmax(axis=1).tolist() for run, t in traces.items()}
    exact = {f"{a}/{b}": bool(np.array_equal(np.rint(traces[a]), traces[b]))
             for a, b in (("qat", "reference"), ("reference", "lava"))}
    return {"readout": readout.name, "reads": readout.reads, "predicted_class": predicted, "identical_trace": exact}


# --------------------------------------------------------------------------- comparison

def layer_agreement(graph, a: dict, b: dict) -> list[dict]:
    rows = []
    for pop in ir.populations(graph, "lif"):
        sa, sb = a[pop.name], b[pop.name]
        differ = int((sa != sb).sum())
        rows.append({"layer": pop.layer, "population": pop.name, "agreement": 1.0 - differ / max(sa.size, 1),
                     "differing": differ, "spikes_a": int(sa.sum()), "spikes_b": int(sb.sum())})
    return rows


def compare(graph, runs: dict, x: np.ndarray, steps: int, explainers: dict, pairs=PAIRS) -> list[dict]:
    out = []
    for a, b in pairs:
        div = first_divergence(RunResult(a, steps, runs[a]), RunResult(b, steps, runs[b]))
        entry = {"a": a, "b": b, "identical": div is None, "layers": layer_agreement(graph, runs[a], runs[b]),
                 "first_divergence": None}
        if div is not None:
            why = explainers[(a, b)](graph, runs[a], x, div)
            entry["first_divergence"] = {"layer": ir.population(graph, div.population).layer,
                                         "population": div.population, "neuron": div.neuron, "step": div.step,
                                         "sample": div.sample, a: div.a, b: div.b, **why}
        out.append(entry)
    return out


# --------------------------------------------------------------------------- why

def source_spikes_before(graph, spikes: dict, x: np.ndarray, pre: str, sample: int, step: int) -> np.ndarray:
    """(pre.size,) bool: which presynaptic neurons spiked before ``step`` (identical in both runs of the pair)."""
    pop = ir.population(graph, pre)
    if pop.kind == "input":
        lo, hi = ir.neuron_offsets(graph, "input")[pre]
        return x[sample, :step, lo:hi].any(axis=0)
    return spikes[pre][sample, :step].any(axis=0)


def weight_causes(graph, spikes: dict, x: np.ndarray, div) -> list[dict]:
    """Clipped and zeroed synapses into the neuron that carried at least one spike before the divergence."""
    causes = {"weight_clipped": [], "weight_rounded_to_zero": []}
    for proj in ir.projections(graph):
        if proj.post != div.population:
            continue
        c = weight_check(graph, proj)
        active = source_spikes_before(graph, spikes, x, proj.pre, div.sample, div.step)
        mine = (c.rows == div.neuron) & active[c.cols]
        for kind, mask in (("weight_clipped", c.clipped), ("weight_rounded_to_zero", c.zeroed)):
            for k in np.flatnonzero(mine & mask):
                causes[kind].append({"synapse": f"{proj.pre}[{c.cols[k]}] -> {proj.post}[{div.neuron}]",
                                     "float": float(c.float_w[k]),
                                     "quantized": None if c.represented is None else float(c.represented[k])})
    return [{"kind": kind, "synapses": found[:MAX_LISTED], "count": len(found)} for kind, found in causes.items()
            if found]


def neuron_params(pop: ir.Population, neuron: int) -> list[dict]:
    """Float parameters of one neuron and the values its fixed-point ones stand for (``NeuronModel.dequantize``)."""
    f, q, scale = pop.neuron, pop.fixed, pop.state_scale
    if f is None or q is None or not scale:
        return []

    def at(arr):
        return float(arr[neuron] if arr.size > 1 else arr[0])

    represented = pop.model.dequantize(q.expanded(pop.size), scale)
    out = []
    for name in f.names():
        value, exact = float(represented[name][neuron]), at(getattr(f, name))
        rel = abs(value - exact) / max(abs(exact), 1e-12)
        out.append({"param": name, "float": exact, "quantized": value, "rel_error": rel})
    return out


def quantization_why(graph, spikes: dict, x: np.ndarray, div) -> dict:
    pop = ir.population(graph, div.population)
    causes = weight_causes(graph, spikes, x, div)
    params = [p for p in neuron_params(pop, div.neuron) if p["rel_error"] > 0]
    coarse = [p for p in params if p["rel_error"] >= PARAM_REL_TOLERANCE]
    if coarse:
        causes.append({"kind": "parameter_lost_precision", "params": coarse})
    causes.append({"kind": "plain_rounding", "params": [p for p in params if p not in coarse]})
    return {"cause": causes[0]["kind"], "why": describe(causes[0], div), "causes": causes}


def describe(cause: dict, div) -> str:
    where = f"{div.population}[{div.neuron}]"
    text = {
        "weight_clipped": lambda c: f"{c['count']} weight(s) into {where} that carried spikes were clipped to the "
                                    f"8-bit mantissa range, e.g. {_synapse(c['synapses'][0])}",
        "weight_rounded_to_zero": lambda c: f"{c['count']} weight(s) into {where} that carried spikes were rounded "
                                            f"to zero, e.g. {_synapse(c['synapses'][0])}",
        "parameter_lost_precision": lambda c: f"the fixed-point conversion of {where}'s "
                                              + ", ".join(f"{p['param']} ({p['float']:.6g} -> {p['quantized']:.6g})"
                                                          for p in c["params"]) + " lost precision",
        "plain_rounding": lambda c: f"no weight into {where} that carried a spike was clipped or rounded to zero, "
                                    "and no parameter of it moved by an 8-bit step or more"
                                    + "".join(f" ({p['param']} {p['float']:.6g} -> {p['quantized']:.6g})"
                                              for p in c["params"][:MAX_LISTED])
                                    + ": ordinary rounding of weights and state moved the membrane across the "
                                      "threshold",
    }
    return text[cause["kind"]](cause)


def _synapse(s: dict) -> str:
    q = "?" if s["quantized"] is None else f"{s['quantized']:.6g}"
    return f"{s['synapse']}: {s['float']:.6g} -> {q}"


def qat_mismatch(model: RSNN, art: CompiledNetwork, qcfg: QuantizationConfig) -> list[str]:
    """Layers whose quantization-aware weights or parameters differ from the artifact's."""
    net = lower(art.graph)
    compiled = {p.name: p for p in net.projections}
    settings = QATSettings(art.target, qcfg)
    bad = []
    for name, layer in model.layers.items():
        q = quantize_layer(layer, settings)
        model, deployed = net.population_params(name)
        trained = q.net.groups[0]
        if model is not trained.model or any(not np.array_equal(v, deployed[k]) for k, v in trained.params.items()):
            bad.append(f"{name}: neuron parameters")
        for proj in q.net.projections:
            # QAT names the presynaptic side of a layer's own graph "input"; map it back.
            pre = _pre_of(art.graph, name) if proj.source == "input" else name
            if not _same_weights(compiled.get(f"{pre}->{name}"), proj):
                bad.append(f"{pre}->{name}: weights")
    return bad


def _same_weights(a, b) -> bool:
    return (a is not None and a.weight_exp == b.weight_exp and a.weights.shape == b.weights.shape
            and (a.weights != b.weights).nnz == 0)


def _pre_of(graph, name: str) -> str:
    """The feed-forward presynaptic population of a layer (its one predecessor other than itself)."""
    return next(p for p in graph.predecessors(name) if p != name)


def make_explainers(model: RSNN, art: CompiledNetwork, qcfg: QuantizationConfig, lava_options: dict) -> dict:
    def qat_vs_reference(graph, spikes, x, div):
        bad = qat_mismatch(model, art, qcfg)
        if bad:
            return {"cause": "qat_settings_differ",
                    "why": "the quantization-aware model quantizes differently from the artifact ("
                           + "; ".join(bad[:MAX_LISTED]) + "): compile and verify with the same "
                           "--threshold-mantissa and --weight-clip-percentile"}
        return {"cause": "integer_arithmetic",
                "why": "QAT and the reference quantize identically but their integer arithmetic differs: a bug in "
                       "rsnn2chip (please report it with this model and input)"}

    def reference_vs_lava(graph, spikes, x, div):
        return backend_why(art, x, div, lava_options)

    return {("float", "qat"): quantization_why, ("float", "reference"): quantization_why,
            ("qat", "reference"): qat_vs_reference, ("reference", "lava"): reference_vs_lava}


def backend_why(art: CompiledNetwork, x: np.ndarray, div, lava_options: dict) -> dict:
    """Re-run the diverging sample on both backends with u and v probed to find the first state that differs."""
    steps = div.step + 1
    sample = x[div.sample:div.sample + 1]
    ref = run_backend(art, sample, steps, "reference", probes=("u", "v"))
    lava = run_backend(art, sample, steps, "lava", probes=("u", "v"), **lava_options)
    for t in range(steps):
        for var in ("u", "v"):
            a = int(ref.probes[var][div.population][0, t, div.neuron])
            b = int(lava.probes[var][div.population][0, t, div.neuron])
            if a != b:
                return {"cause": "backend_state", "why": f"{var} of {div.population}[{div.neuron}] first differs at "
                        f"step {t}: reference {a}, lava {b}; Lava and the reference disagree (see docs/backends.md)"}
    return {"cause": "backend_spike_decision",
            "why": f"u and v of {div.population}[{div.neuron}] agree up to step {div.step}, yet the spike differs: "
                   "the backends disagree on the threshold test or reset (see docs/backends.md)"}


# --------------------------------------------------------------------------- entry point

def provenance_warnings(model_path, model: RSNN, art: CompiledNetwork) -> list[str]:
    warnings = []
    recorded = art.provenance.get("source_sha256")
    if model_path is not None and recorded and recorded != sha256_file(model_path):
        warnings.append("the artifact was compiled from a different file than this model (checksums differ)")
    compiled = {p.name: p.weight for p in ir.projections(art.graph)}
    for proj in ir.projections(model.to_ir()):
        w = compiled.get(proj.name)
        if w is None or w.shape != proj.weight.shape or abs(w - proj.weight).max() > 1e-6:
            warnings.append(f"projection {proj.name}: the artifact's float weights are not this model's")
    return warnings


def verify(model: RSNN, art: CompiledNetwork, inputs: np.ndarray, steps: int | None = None, *,
           qcfg: QuantizationConfig = QuantizationConfig(), lava_options: dict | None = None,
           model_path=None) -> Verification:
    lava_options = lava_options or {}
    x = np.asarray(inputs)
    steps = steps or (x.shape[-2] if x.ndim >= 2 else 0)
    net = lower(art.graph)
    x = payload_values(net, prepare_inputs(net, x, steps))
    qcfg = quantization_config(art, qcfg)
    runs, traces = run_all(model, art, x, steps, qcfg, lava_options)
    result = Verification(steps, x.shape[0], runs, warnings=provenance_warnings(model_path, model, art))
    result.pairs = compare(art.graph, runs, x, steps, make_explainers(model, art, qcfg, lava_options))
    result.readout = readout_agreement(art, traces)
    return result


def payload_values(net, payloads: np.ndarray) -> np.ndarray:
    """Checked integer inputs back to the values the float model takes (graded payloads / 2**frac_bits)."""
    values = payloads.astype(np.float64)
    for name, (lo, hi) in net.input_slices.items():
        graded = net.input_graded.get(name)
        if graded is not None:
            values[..., lo:hi] /= graded.scale
    return values
def verify_compiled(art: CompiledNetwork, inputs: np.ndarray, steps: int | None = None, *, source_graph=None,
                    lava_options: dict | None = None) -> Verification:
    """Float IR, reference and Lava on one input, for a network without a PyTorch model.

    ``source_graph`` is the IR the frontend read from the source file (its float
    parameters, before quantization); by default the artifact's own float IR.
    """
    from rsnn2chip.backends import float_ir

    lava_options = lava_options or {}
    x = np.asarray(inputs)
    steps = steps or (x.shape[-2] if x.ndim >= 2 else 0)
    x = prepare_inputs(lower(art.graph), x, steps)
    graph = art.graph if source_graph is None else source_graph
    names = {p.name for p in ir.populations(art.graph, "lif")}
    float_spikes = {k: v for k, v in float_ir.simulate(graph, x, steps)[0].items() if k in names}
    missing = sorted(names - set(float_spikes))
    if missing:
        raise InputError("the source model's populations are not the artifact's", found=sorted(float_spikes),
                         allowed=sorted(names), fix="pass the file the artifact was compiled from")
    runs = {"float": float_spikes, "reference": run_backend(art, x, steps, "reference").spikes,
            "lava": run_backend(art, x, steps, "lava", **lava_options).spikes}
    origin = "the source file" if source_graph is not None else "the artifact"
    result = Verification(steps, x.shape[0], runs, warnings=[
        f"no PyTorch model: 'float' is the float IR of {origin} ({art.graph.graph.get('source_format', 'its format')}"
        " semantics with Loihi's one-step delays; docs/interop.md)"])

    def reference_vs_lava(graph, spikes, x, div):
        return backend_why(art, x, div, lava_options)

    explainers = {("float", "reference"): quantization_why, ("reference", "lava"): reference_vs_lava}
    result.pairs = compare(art.graph, runs, x, steps, explainers, COMPILED_PAIRS)
    return result
