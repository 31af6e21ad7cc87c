"""The intermediate representation every frontend produces and every pass consumes.

The IR is a :class:`networkx.DiGraph`:

* a **node** is a population, stored under the node attribute ``"pop"`` as a
  :class:`Population`. Input populations carry no neuron model; LIF
  populations carry float :class:`CubaLIF` parameters and, after quantization,
  their fixed-point form :class:`LoihiLIF`. Parameters are arrays of shape
  ``(1,)`` when every neuron shares them and ``(size,)`` where they differ.
  Motif membership is ``motif_size``: motifs are contiguous blocks of that many
  neurons, and the mapper never splits one.
* an **edge** ``pre -> post`` is a projection, stored under ``"proj"`` as a
  :class:`Projection`: a sparse ``(post.size, pre.size)`` weight matrix, the
  synaptic delay in time steps, and after quantization a :class:`WeightQuant`.

See ``docs/ir.md`` for the full contract.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterator

import networkx as nx
import numpy as np
import scipy.sparse as sp

IR_VERSION = 1


def param_array(value, dtype=np.float64) -> np.ndarray:
    """A parameter as a 1-d array, collapsed to shape (1,) when all entries agree."""
    arr = np.atleast_1d(np.asarray(value, dtype=dtype)).ravel()
    if arr.size > 1 and np.all(arr == arr[0]):
        arr = arr[:1].copy()
    return arr


@dataclass
class CubaLIF:
    """Float current-based LIF with Loihi's update order.

    ``u[t] = u[t-1] * (1 - current_decay) + I[t]``;
    ``v[t] = v[t-1] * (1 - voltage_decay) + u[t] + bias``;
    spike when ``v > threshold`` (strict), then ``v = 0``; ``u`` is not reset.
    """

    current_decay: np.ndarray
    voltage_decay: np.ndarray
    threshold: np.ndarray
    bias: np.ndarray

    PARAMS = ("current_decay", "voltage_decay", "threshold", "bias")

    def __post_init__(self):
        for name in self.PARAMS:
            setattr(self, name, param_array(getattr(self, name)))


@dataclass
class LoihiLIF:
    """Fixed-point LIF parameters exactly as Lava's ``LIF`` process takes them."""

    du: np.ndarray
    dv: np.ndarray
    vth: np.ndarray
    bias_mant: np.ndarray
    bias_exp: np.ndarray

    PARAMS = ("du", "dv", "vth", "bias_mant", "bias_exp")

    def __post_init__(self):
        for name in self.PARAMS:
            setattr(self, name, param_array(getattr(self, name), np.int64))

    def expanded(self, size: int) -> dict[str, np.ndarray]:
        return {name: np.broadcast_to(getattr(self, name), (size,)).copy() for name in self.PARAMS}


@dataclass(frozen=True)
class GradedInput:
    """Graded (multi-bit) input spikes: each channel sends a signed ``bits``-bit integer every step.

    The float value the network was trained on is ``payload / 2**frac_bits``. Loihi 2 carries such payloads
    on its graded spikes (Lava: ``num_message_bits`` on Dense/Sparse); a zero payload is no message.
    """

    bits: int
    frac_bits: int

    @property
    def max_payload(self) -> int:
        return (1 << (self.bits - 1)) - 1

    @property
    def scale(self) -> float:
        return float(1 << self.frac_bits)


@dataclass
class Population:
    name: str
    size: int
    layer: str
    neuron: CubaLIF | None = None
    motif_size: int | None = None
    fixed: LoihiLIF | None = None
    # Integer state units per float unit of u and v, chosen by quantization.
    state_scale: float | None = None
    # Precision lost converting each neuron parameter (see passes/quantize.py).
    quant_stats: dict = field(default_factory=dict)
    # False for a membrane-potential readout: the population never fires and its v is read instead.
    fires: bool = True
    # Input populations only: None for 0/1 spikes, else the graded-spike payload format (a GradedInput).
    graded: "GradedInput | None" = None

    @property
    def kind(self) -> str:
        return "input" if self.neuron is None else "lif"

    @property
    def n_motifs(self) -> int:
        return self.size // self.motif_size if self.motif_size else 0


@dataclass
class WeightQuant:
    """Quantized weights: effective integer weight = mantissa * 2**weight_exp."""

    mantissa: sp.csr_matrix
    weight_exp: int
    sign_mode: str
    # Error statistics of this projection's quantization (see passes/quantize.py).
    stats: dict = field(default_factory=dict)


@dataclass
class Projection:
    pre: str
    post: str
    weight: sp.csr_matrix  # (post.size, pre.size), float
    delay: int = 1
    quant: WeightQuant | None = None

    def __post_init__(self):
        self.weight = sp.csr_matrix(self.weight, dtype=np.float64)
        self.weight.eliminate_zeros()

    @property
    def name(self) -> str:
        return f"{self.pre}->{self.post}"

    @property
    def n_synapses(self) -> int:
        return int(self.weight.nnz)


def new_graph(name: str) -> nx.DiGraph:
    g = nx.DiGraph()
    g.graph.update(name=name, ir_version=IR_VERSION)
    return g


def add_population(g: nx.DiGraph, pop: Population) -> Population:
    if pop.name in g:
        raise ValueError(f"duplicate population name {pop.name!r}")
    g.add_node(pop.name, pop=pop)
    return pop


def add_projection(g: nx.DiGraph, proj: Projection) -> Projection:
    for end in (proj.pre, proj.post):
        if end not in g:
            raise ValueError(f"projection {proj.name}: unknown population {end!r}")
    expected = (population(g, proj.post).size, population(g, proj.pre).size)
    if proj.weight.shape != expected:
        raise ValueError(f"projection {proj.name}: weight shape {proj.weight.shape}, expected {expected}")
    if g.has_edge(proj.pre, proj.post):
        raise ValueError(f"duplicate projection {proj.name}")
    g.add_edge(proj.pre, proj.post, proj=proj)
    return proj


def population(g: nx.DiGraph, name: str) -> Population:
    return g.nodes[name]["pop"]


def populations(g: nx.DiGraph, kind: str | None = None) -> Iterator[Population]:
    """Populations in insertion order (the order neurons are numbered in)."""
    for _, data in g.nodes(data=True):
        if kind is None or data["pop"].kind == kind:
            yield data["pop"]


def projections(g: nx.DiGraph) -> Iterator[Projection]:
    for _, _, data in g.edges(data=True):
        yield data["proj"]


def neuron_offsets(g: nx.DiGraph, kind: str) -> dict[str, tuple[int, int]]:
    """Global ``[start, stop)`` index range of each population among those of ``kind``."""
    offsets, start = {}, 0
    for pop in populations(g, kind):
        offsets[pop.name] = (start, start + pop.size)
        start += pop.size
    return offsets


def total_neurons(g: nx.DiGraph, kind: str) -> int:
    return sum(p.size for p in populations(g, kind))


# --------------------------------------------------------------------------- serialization
# The IR travels inside artifacts as JSON metadata plus named numpy arrays, so
# it can be read back without pickle.

def _csr_arrays(prefix: str, m: sp.csr_matrix, dtype) -> dict[str, np.ndarray]:
    m = sp.csr_matrix(m)
    return {
        f"{prefix}.data": m.data.astype(dtype),
        f"{prefix}.indices": m.indices.astype(np.int32),
        f"{prefix}.indptr": m.indptr.astype(np.int64),
    }


def _csr_from(arrays, prefix: str, shape) -> sp.csr_matrix:
    return sp.csr_matrix(
        (arrays[f"{prefix}.data"], arrays[f"{prefix}.indices"], arrays[f"{prefix}.indptr"]), shape=tuple(shape)
    )


def to_serializable(g: nx.DiGraph) -> tuple[dict, dict[str, np.ndarray]]:
    """Split the IR into JSON-safe metadata and a flat dict of arrays."""
    arrays: dict[str, np.ndarray] = {}
    pops = []
    for pop in populations(g):
        key = f"pop/{pop.name}"
        entry = {"name": pop.name, "size": pop.size, "layer": pop.layer, "motif_size": pop.motif_size,
                 "state_scale": pop.state_scale, "quant_stats": pop.quant_stats, "neuron": None, "fixed": None,
                 "fires": pop.fires, "graded": None if pop.graded is None else vars(pop.graded)}
        if pop.neuron is not None:
            entry["neuron"] = "CubaLIF"
            for p in CubaLIF.PARAMS:
                arrays[f"{key}/neuron/{p}"] = getattr(pop.neuron, p)
        if pop.fixed is not None:
            entry["fixed"] = "LoihiLIF"
            for p in LoihiLIF.PARAMS:
                arrays[f"{key}/fixed/{p}"] = getattr(pop.fixed, p)
        pops.append(entry)
    projs = []
    for proj in projections(g):
        key = f"proj/{proj.pre}/{proj.post}"
        entry = {"pre": proj.pre, "post": proj.post, "delay": proj.delay, "shape": list(proj.weight.shape),
                 "quant": None}
        arrays.update(_csr_arrays(f"{key}/weight", proj.weight, np.float64))
        if proj.quant is not None:
            q = proj.quant
            entry["quant"] = {"weight_exp": q.weight_exp, "sign_mode": q.sign_mode, "stats": q.stats}
            arrays.update(_csr_arrays(f"{key}/mantissa", q.mantissa, np.int32))
        projs.append(entry)
    # Frontends annotate the graph (output population, time offsets, ...); keep what JSON can carry.
    attrs = {k: v for k, v in g.graph.items() if k not in ("name", "ir_version") and _json_safe(v)}
    meta = {"name": g.graph.get("name"), "ir_version": IR_VERSION, "graph": attrs, "populations": pops,
            "projections": projs}
    return meta, arrays


def _json_safe(value) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def from_serializable(meta: dict, arrays) -> nx.DiGraph:
    g = new_graph(meta["name"])
    g.graph.update(meta.get("graph", {}))
    for entry in meta["populations"]:
        key = f"pop/{entry['name']}"
        neuron = fixed = None
        if entry["neuron"]:
            neuron = CubaLIF(**{p: arrays[f"{key}/neuron/{p}"] for p in CubaLIF.PARAMS})
        if entry["fixed"]:
            fixed = LoihiLIF(**{p: arrays[f"{key}/fixed/{p}"] for p in LoihiLIF.PARAMS})
        graded = entry.get("graded")
        add_population(g, Population(entry["name"], int(entry["size"]), entry["layer"], neuron,
                                     entry["motif_size"], fixed, entry["state_scale"], entry["quant_stats"],
                                     fires=bool(entry.get("fires", True)),
                                     graded=GradedInput(int(graded["bits"]), int(graded["frac_bits"]))
                                     if graded else None))
    for entry in meta["projections"]:
        key = f"proj/{entry['pre']}/{entry['post']}"
        quant = None
        if entry["quant"]:
            q = entry["quant"]
            quant = WeightQuant(_csr_from(arrays, f"{key}/mantissa", entry["shape"]), int(q["weight_exp"]),
                                q["sign_mode"], q["stats"])
        add_projection(g, Projection(entry["pre"], entry["post"], _csr_from(arrays, f"{key}/weight", entry["shape"]),
                                     int(entry["delay"]), quant))
    return g
