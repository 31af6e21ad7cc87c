"""The intermediate representation every frontend produces and every pass consumes.

The IR is a :class:`networkx.DiGraph`:

* a **node** is a population, stored under the node attribute ``"pop"`` as a
  :class:`Population`. Input populations carry no neuron model; LIF
  (kind ``"lif"``) carry the float parameters of their neuron model (for
  example :class:`~rsnn2chip.neurons.cuba_lif.CubaLIF` or
  :class:`~rsnn2chip.neurons.atrlif.ATRLIF`; ``pop.model`` is the
  :class:`~rsnn2chip.neurons.base.NeuronModel`) and, after quantization, its
  fixed-point form. Parameters are arrays of shape ``(1,)`` when every neuron
  shares them and ``(size,)`` where they differ.
  Motif membership is ``motif_size``: motifs are contiguous blocks of that many
  neurons, and the mapper never splits one.
* an **edge** ``pre -> post`` is a projection, stored under ``"proj"`` as a
  :class:`Projection`: a sparse ``(post.size, pre.size)`` weight matrix, the
  synaptic delay in time steps, and after quantization a :class:`WeightQuant`.

See ``docs/ir.md`` for the full contract.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Iterator

import networkx as nx
import numpy as np
import scipy.sparse as sp

from rsnn2chip import neurons
from rsnn2chip.neurons.base import NeuronModel, ParamArrays

IR_VERSION = 1


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
    neuron: ParamArrays | None = None  # float parameters of the population's neuron model
    motif_size: int | None = None
    fixed: ParamArrays | None = None  # the same model's fixed-point parameters
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
        """``"input"`` or ``"lif"``: a population of spiking neurons of some leaky-integrate-and-fire model."""
        return "input" if self.neuron is None else "lif"

    @property
    def model(self) -> NeuronModel | None:
        params = self.neuron if self.neuron is not None else self.fixed
        return None if params is None else neurons.model_of(params)

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
                 "fires": pop.fires, "graded": None if pop.graded is None else dataclasses.asdict(pop.graded)}
        # Each part is written under its model's registry name; the reader looks the model up there.
        for part in ("neuron", "fixed"):
            params = getattr(pop, part)
            if params is not None:
                entry[part] = params.MODEL
                for p in params.names():
                    arrays[f"{key}/{part}/{p}"] = getattr(params, p)
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
            cls = neurons.get(entry["neuron"], where=f"population {entry['name']}").float_type
            neuron = cls(**{p: arrays[f"{key}/neuron/{p}"] for p in cls.names()})
        if entry["fixed"]:
            cls = neurons.get(entry["fixed"], where=f"population {entry['name']}").fixed_type
            fixed = cls(**{p: arrays[f"{key}/fixed/{p}"] for p in cls.names()})
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
