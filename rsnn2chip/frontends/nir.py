"""Frontend for NIR graphs (Neuromorphic Intermediate Representation, ``nir`` HDF5 files).

NIR nodes are continuous-time ODEs; rsnn2chip's IR is the discrete CUBA-LIF
with Loihi's update order. The mapping (forward Euler with time step ``dt``,
the convention snnTorch and Norse export with) is, per neuron::

    a = dt / tau_syn   (current_decay)       b = dt / tau_mem   (voltage_decay)
    u = b * r * I      so   u[t] = (1 - a) u[t-1] + a * b * r * w_in * (W s + c)
    v[t] = (1 - b) v[t-1] + u[t] + b * v_leak

so the gain ``a * b * r * w_in`` is folded into the rows of every incoming
weight matrix, ``b * v_leak`` becomes the bias, and ``v`` and the threshold
keep NIR's units. ``LIF`` and ``LI`` have no synaptic current (``a = 1``,
gain ``b * r``); ``LI`` never spikes, so it gets a threshold above any
voltage its inputs can produce. Affine biases ``c`` are a constant input
current; see docs/interop.md for how they enter. ``dt`` comes from the
``load`` argument, else the graph's metadata ``dt``, else ``$RSNN2CHIP_NIR_DT``,
else :data:`DEFAULT_DT`. Every projection gets Loihi's one-step delay, so each
population runs a fixed number of steps behind the NIR model
(``graph.graph["nir"]["time_offset"]``; see :meth:`_Importer.time_offsets`).
Conventions of the source framework that an exporter of ``rsnn2chip.interop``
found Loihi cannot follow (``metadata["conventions"]``) are warned again here.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
import networkx as nx
import numpy as np
import scipy.sparse as sp

from rsnn2chip import ir
from rsnn2chip.errors import CheckpointError, ModelError, Problem, about_file
from rsnn2chip.neurons.cuba_lif import CubaLIF
from rsnn2chip.frontends import HDF5_READ_ERRORS, check_hdf5, hdf5_matches
from rsnn2chip.interop import Difference

NAME = "NIR graph (.nir)"
# snnTorch exports with dt = 1e-4 (Norse uses 1e-3 but also writes tau in seconds).
DEFAULT_DT = 1e-4
DT_ENV = "RSNN2CHIP_NIR_DT"
# A non-spiking LI population's threshold sits this far above the largest |v|
# its inputs can drive, so rounding in fixed point cannot make it spike.
LI_THRESHOLD_MARGIN = 1.125
SEP = "."  # joins the names of nested graphs and their nodes


def sniff(path: str | Path) -> bool:
    """HDF5 signature, then NIR's top-level ``node`` group and ``version``; reads structure only."""
    import h5py
    return hdf5_matches(path, lambda f: isinstance(f.get("node"), h5py.Group) and "version" in f)


def load(path: str | Path, dt: float | None = None) -> nx.DiGraph:
    import nir

    path = Path(path)
    check_hdf5(path, "NIR file")
    check_nir_version(path)
    check_nir_nodes(path)
    try:
        graph = nir.read(path)
    except Exception as exc:  # noqa: BLE001 - nir raises many kinds on malformed files
        raise CheckpointError(f"cannot read NIR file ({type(exc).__name__}: {exc})", file=str(path),
                              fix="write it with nir.write (nir >= 1.0)") from None
    try:
        with about_file(path):  # graph_from_nir reads an in-memory graph: the file is named here
            g = graph_from_nir(graph, dt=dt, name=path.stem)
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        # nir.read checks node types, not that parameter arrays agree in shape; a file whose arrays do not
        # is malformed input, not a bug here (the named checks of graph_from_nir raise ModelError first).
        raise CheckpointError(f"NIR file holds parameters of inconsistent shapes or types ({type(exc).__name__}: "
                              f"{exc})", file=str(path), fix="write it with nir.write from a consistent graph") from None
    g.graph["source"] = str(path)
    return g


SUPPORTED_NIR_MAJOR = "1"  # the format of nir >= 1.0; files declare the nir version that wrote them


def check_nir_version(path: Path) -> None:
    import h5py
    try:
        with h5py.File(path, "r") as f:
            raw = f["version"][()] if isinstance(f.get("version"), h5py.Dataset) else None
    except HDF5_READ_ERRORS as exc:
        raise CheckpointError(f"cannot read NIR file ({type(exc).__name__}: {exc})", file=str(path),
                              where="version", fix="write it with nir.write (nir >= 1.0)") from None
    version = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw if isinstance(raw, str) else None
    if version is None or version.split(".")[0] != SUPPORTED_NIR_MAJOR:
        raise CheckpointError("unsupported NIR file version", file=str(path), where="version",
                              found=repr(raw)[:60], allowed=f"{SUPPORTED_NIR_MAJOR}.x",
                              fix="write the file with nir 1.x (nir.write)")


SUPPORTED_NODES = "Input, Output, Affine, Linear, LIF, CubaLIF, LI (and nested graphs of them)"


def check_nir_nodes(path: Path) -> None:
    """What nir.read would fail on without naming it, or read wrongly: a node whose type is not a NIR node
    type (nir only asserts), and a complex array (NumPy would drop its imaginary part)."""
    import h5py
    import nir
    from nir.serialization import hdf2dict

    problems: list[Problem] = []

    def visit(group, name: str) -> None:
        where = f"node {name or '(top-level graph)'}"
        raw = group["type"][()] if isinstance(group.get("type"), h5py.Dataset) else None
        ntype = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        cls = getattr(nir, ntype, None) if isinstance(ntype, str) else None
        if not (isinstance(cls, type) and issubclass(cls, nir.NIRNode) and cls is not nir.NIRNode):
            problems.append(Problem("unknown NIR node type", file=str(path), where=where, resource="type",
                                    found=repr(raw)[:60], allowed=f"a NIR node type; rsnn2chip reads {SUPPORTED_NODES}",
                                    fix="write the file with nir.write from nir's own node classes"))
        elif ntype != "NIRGraph":
            check_node_builds(group, cls, where)
        metadata = group.get("metadata")
        arrays = [*group.items(), *((f"metadata/{k}", v) for k, v in metadata.items())] \
            if isinstance(metadata, h5py.Group) else group.items()
        for key, item in arrays:
            if isinstance(item, h5py.Dataset) and item.dtype.kind == "c":
                problems.append(Problem("NIR parameters must be real numbers", file=str(path), where=where,
                                        resource=key, found=f"{item.dtype} (complex)", allowed="float or integer",
                                        fix="write real-valued parameters; a complex value's imaginary part "
                                            "would be lost"))
        if ntype == "NIRGraph" and isinstance(group.get("nodes"), h5py.Group):
            for child, item in group["nodes"].items():
                if isinstance(item, h5py.Group):
                    visit(item, name + SEP + child if name else child)

    def check_node_builds(group, cls, where: str) -> None:
        """nir.read builds every node with its class's own reader and, on a missing or unexpected parameter,
        fails without naming the node; build each one here, where its name is known."""
        try:
            nir.dict2NIRNode(hdf2dict(group))
        except Exception as exc:  # noqa: BLE001 - nir's constructors raise TypeError, AssertionError, ...
            params = [f.name for f in fields(cls) if f.init and f.name != "metadata"]
            problems.append(Problem(f"nir cannot build this {cls.__name__} node ({type(exc).__name__}: {exc})",
                                    file=str(path), where=where, found=f"parameters {sorted(group.keys())}",
                                    allowed=f"nir.{cls.__name__}'s parameters ({', '.join(params)})",
                                    fix="write the file with nir.write from nir's own node classes"))

    try:
        with h5py.File(path, "r") as f:
            visit(f["node"], "")
    except (*HDF5_READ_ERRORS, RecursionError) as exc:  # RecursionError: graphs nested thousands deep
        raise CheckpointError(f"cannot read NIR file ({type(exc).__name__}: {exc})", file=str(path),
                              fix="write it with nir.write (nir >= 1.0)") from None
    if problems:
        raise CheckpointError(problems=problems)


def resolve_dt(nir_graph, dt: float | None) -> float:
    # (where the value came from, the value, how to fix it there), in the order docs/interop.md gives
    sources = (("the dt argument", dt, "pass dt=, the network's training time step in seconds"),
               ("the graph's metadata 'dt'", (nir_graph.metadata or {}).get("dt"),
                f"write the graph with metadata['dt'] set to its training time step in seconds, or without it and "
                f"set ${DT_ENV}"),
               (f"${DT_ENV}", os.environ.get(DT_ENV),
                f"set ${DT_ENV} to the training time step in seconds, or unset it"),
               ("the default", DEFAULT_DT, ""))
    for where, value, fix in sources:
        if value is not None:
            try:
                number = float(np.asarray(value).ravel()[0]) if not isinstance(value, str) else float(value)
            except (IndexError, TypeError, ValueError):
                number = None
            if number is None or not np.isfinite(number) or number <= 0:
                raise ModelError("dt must be a positive number", where=where, resource="dt", found=repr(value)[:60],
                                 allowed="a finite time step in seconds > 0 (snnTorch writes 1e-4, Norse 1e-3)",
                                 fix=fix)
            return number
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- flattening

def flatten(nir_graph) -> tuple[dict, list[tuple[str, str]], set[str]]:
    """Inline nested graphs: ``(nodes, edges, top-level names)``; names become ``outer.inner``."""
    import nir

    nodes, edges, top = {}, [], set()
    ports = {}  # subgraph name -> (its input node, its output node)

    def visit(graph, prefix: str):
        for name, node in graph.nodes.items():
            full = prefix + name
            if isinstance(node, nir.NIRGraph):
                ins = [n for n, v in node.nodes.items() if isinstance(v, nir.Input)]
                outs = [n for n, v in node.nodes.items() if isinstance(v, nir.Output)]
                if len(ins) != 1 or len(outs) != 1:
                    raise ModelError("nested NIR graphs must have one Input and one Output", where=f"node {full}",
                                     found=f"{len(ins)} inputs, {len(outs)} outputs")
                ports[full] = (full + SEP + ins[0], full + SEP + outs[0])
                visit(node, full + SEP)
            else:
                nodes[full] = node
                if not prefix:
                    top.add(full)
        for src, dst in graph.edges:
            edges.append((prefix + src, prefix + dst))

    visit(nir_graph, "")

    def endpoint(name: str, side: int) -> str:
        while name in ports:
            name = ports[name][side]
        return name

    edges = [(endpoint(s, 1), endpoint(d, 0)) for s, d in edges]
    unknown = sorted({n for e in edges for n in e if n not in nodes})
    if unknown:
        raise ModelError("NIR edges name nodes that do not exist", found=unknown)
    return nodes, edges, top


# --------------------------------------------------------------------------- neurons

@dataclass
class NeuronImport:
    current_decay: np.ndarray
    voltage_decay: np.ndarray
    threshold: np.ndarray | None  # None: non-spiking, set from the input bound
    bias: np.ndarray  # b * v_leak
    gain: np.ndarray  # multiplies every incoming weight row and constant current
    problems: list[Problem] = field(default_factory=list)


def _arr(value) -> np.ndarray:
    return np.atleast_1d(np.asarray(value, dtype=np.float64)).ravel()


def _decay(where: str, name: str, tau, dt: float, problems: list[Problem]) -> np.ndarray:
    tau = _arr(tau)
    d = dt / tau
    bad = ~np.isfinite(tau) | (tau < dt) | ~np.isfinite(d)
    if bad.any():
        problems.append(Problem(f"{name} must be finite and at least dt", where=where, resource=name,
                                found=float(tau[bad][0]), allowed=f">= dt = {dt:g}",
                                fix=f"pass the dt the model was trained with (load(path, dt=...) or ${DT_ENV}); "
                                    "forward Euler with tau < dt is unstable and tau = inf never integrates input"))
    return d


def _no_reset_value(where: str, node, problems: list[Problem]) -> None:
    v_reset = getattr(node, "v_reset", None)  # NIR >= 1.0.6 has it; Loihi resets to zero only
    if v_reset is not None and np.any(_arr(v_reset) != 0):
        problems.append(Problem("Loihi resets the voltage to zero only", where=where, resource="v_reset",
                                found=float(_arr(v_reset)[_arr(v_reset) != 0][0]), allowed=0,
                                fix="train with v_reset = 0 (snnTorch: reset_mechanism='zero')"))


def _cuba_lif(where: str, node, dt: float) -> NeuronImport:
    problems: list[Problem] = []
    a = _decay(where, "tau_syn", node.tau_syn, dt, problems)
    b = _decay(where, "tau_mem", node.tau_mem, dt, problems)
    _no_reset_value(where, node, problems)
    gain = a * b * _arr(node.r) * _arr(node.w_in)
    return NeuronImport(a, b, _arr(node.v_threshold), b * _arr(node.v_leak), gain, problems)


def _lif(where: str, node, dt: float) -> NeuronImport:
    problems: list[Problem] = []
    b = _decay(where, "tau", node.tau, dt, problems)
    _no_reset_value(where, node, problems)
    return NeuronImport(np.ones(1), b, _arr(node.v_threshold), b * _arr(node.v_leak), b * _arr(node.r), problems)


def _li(where: str, node, dt: float) -> NeuronImport:
    problems: list[Problem] = []
    b = _decay(where, "tau", node.tau, dt, problems)
    return NeuronImport(np.ones(1), b, None, b * _arr(node.v_leak), b * _arr(node.r), problems)


def _neuron_types():
    import nir
    return {nir.CubaLIF: _cuba_lif, nir.LIF: _lif, nir.LI: _li}


# --------------------------------------------------------------------------- linear paths

@dataclass
class Signal:
    """A linear function of population outputs: ``sum_p terms[p] @ s_p + const``."""

    size: int
    terms: dict[str, sp.csr_matrix] = field(default_factory=dict)
    const: np.ndarray | None = None

    def add(self, other: "Signal") -> None:
        for pop, m in other.terms.items():
            self.terms[pop] = self.terms[pop] + m if pop in self.terms else m
        if other.const is not None:
            self.const = other.const if self.const is None else self.const + other.const


def _affine(node):
    return np.asarray(node.weight, dtype=np.float64), _arr(node.bias)


def _linear(node):
    return np.asarray(node.weight, dtype=np.float64), None


def _linear_types():
    import nir
    return {nir.Affine: _affine, nir.Linear: _linear}


class _Importer:
    def __init__(self, nir_graph, dt: float, name: str):
        import nir

        self.dt = dt
        self.metadata = dict(nir_graph.metadata or {})
        self.nodes, self.edges, top = flatten(nir_graph)
        self.preds: dict[str, list[str]] = {n: [] for n in self.nodes}
        for s, d in self.edges:
            self.preds[d].append(s)
        self.neuron_types = _neuron_types()
        self.linear_types = _linear_types()
        self.inputs = [n for n, v in self.nodes.items() if isinstance(v, nir.Input) and n in top]
        self.outputs = [n for n, v in self.nodes.items() if isinstance(v, nir.Output) and n in top]
        # Inputs and Outputs of inlined subgraphs only pass signals through.
        self.identities = {n for n, v in self.nodes.items() if isinstance(v, (nir.Input, nir.Output)) and n not in top}
        self.problems: list[Problem] = []
        self.notes: list[str] = []
        self.sizes: dict[str, int] = {}
        self.graph = ir.new_graph(name)
        self._signals: dict[str, Signal] = {}
        self._visiting: set[str] = set()

    def where(self, name: str) -> str:
        return f"node {name} ({type(self.nodes[name]).__name__})"

    def graph_order(self) -> list[str]:
        """Node names breadth-first from the inputs (nir.read returns them alphabetically)."""
        succs: dict[str, list[str]] = {n: [] for n in self.nodes}
        for s, d in self.edges:
            succs[s].append(d)
        order = list(dict.fromkeys(self.inputs))
        for name in order:
            order += [d for d in succs[name] if d not in order]
        return order + [n for n in self.nodes if n not in order]

    def classify(self) -> list[str]:
        """Neuron node names, in graph order; refuses every unsupported node at once."""
        neurons = []
        for name in self.graph_order():
            node = self.nodes[name]
            if type(node) in self.neuron_types:
                neurons.append(name)
            elif not (type(node) in self.linear_types or name in self.inputs or name in self.outputs
                      or name in self.identities):
                self.problems.append(Problem("unsupported NIR node type", where=self.where(name),
                                             found=type(node).__name__,
                                             allowed=SUPPORTED_NODES,
                                             fix="rsnn2chip deploys dense CUBA-LIF networks; convert or remove it"))
        return neurons

    def nonfinite(self, name: str, p: NeuronImport) -> list[Problem]:
        values = {"r / w_in (input gain)": p.gain, "v_leak (bias)": p.bias, "v_threshold": p.threshold}
        return [Problem(f"{label} must be finite", where=self.where(name), found=float(v[~np.isfinite(v)][0]),
                        allowed="finite numbers", fix="export again from a trained model without NaN or infinite "
                                                      "parameters (a diverged training run leaves them)")
                for label, v in values.items() if v is not None and not np.all(np.isfinite(v))]

    # ---- sizes
    def input_size(self, name: str) -> int:
        return int(np.prod(self.nodes[name].input_type["input"]))

    def neuron_size(self, name: str, params: NeuronImport) -> int:
        sizes = {v.size for v in (params.current_decay, params.voltage_decay, params.bias, params.gain,
                                  params.threshold) if v is not None and v.size > 1}
        if len(sizes) > 1:
            self.problems.append(Problem("neuron parameters have different lengths", where=self.where(name),
                                         found=sorted(sizes)))
        if sizes:
            return sizes.pop()
        # Scalar parameters (snnTorch writes them for a shared beta): size from the neighbours.
        for s, d in self.edges:
            other = s if d == name else d if s == name else None
            if other is not None and type(self.nodes[other]) in self.linear_types:
                w = np.asarray(self.nodes[other].weight)
                return int(w.shape[0] if d == name else w.shape[1])
            if other is not None and other in self.inputs:
                return self.input_size(other)
        self.problems.append(Problem("cannot tell how many neurons this node has", where=self.where(name),
                                     fix="give its parameters one value per neuron"))
        return 1

    # ---- signals
    def signal(self, name: str) -> Signal | None:
        """What node ``name`` outputs, as a linear function of populations."""
        if name in self.sizes:  # a population: its own spikes
            n = self.sizes[name]
            return Signal(n, {name: sp.identity(n, format="csr")})
        if name in self._signals:
            return self._signals[name]
        if name in self._visiting:
            self.problems.append(Problem("a cycle without neurons (algebraic loop)", where=self.where(name),
                                         fix="every cycle needs a neuron node, whose output is delayed one step"))
            return None
        self._visiting.add(name)
        summed = self.summed_input(name)
        self._visiting.discard(name)
        node = self.nodes[name]
        if summed is None:
            out = None
        elif type(node) in self.linear_types:
            out = self.apply_linear(name, summed)
        elif name in self.identities:
            out = summed
        else:
            self.problems.append(Problem("signal passes through an Output node into the network",
                                         where=self.where(name)))
            out = None
        self._signals[name] = out
        return out

    def summed_input(self, name: str) -> Signal | None:
        preds = self.preds[name]
        if not preds:
            self.problems.append(Problem("node has no input", where=self.where(name)))
            return None
        total = None
        for pred in preds:
            sig = self.signal(pred)
            if sig is None:
                return None
            if total is None:
                total = Signal(sig.size)
            if sig.size != total.size:
                self.problems.append(Problem("inputs of different sizes meet", where=self.where(name),
                                             found=[total.size, sig.size]))
                return None
            total.add(sig)
        return total

    def apply_linear(self, name: str, x: Signal) -> Signal | None:
        weight, bias = self.linear_types[type(self.nodes[name])](self.nodes[name])
        if weight.ndim != 2 or weight.shape[1] != x.size:
            self.problems.append(Problem("weight shape does not match its input", where=self.where(name),
                                         found=weight.shape, allowed=f"(n, {x.size})"))
            return None
        out = Signal(weight.shape[0], {p: sp.csr_matrix(weight @ m) for p, m in x.terms.items()})
        const = weight @ x.const if x.const is not None else None
        if bias is not None and np.any(bias):
            const = bias if const is None else const + bias
        out.const = const
        return out

    # ---- build
    def build(self) -> nx.DiGraph:
        self.problems += self.metadata_problems()
        neurons = self.classify()
        for name in self.inputs:
            self.sizes[name] = self.input_size(name)
            ir.add_population(self.graph, ir.Population(name, self.sizes[name], layer=name))
        params = {}
        for name in neurons:
            params[name] = self.neuron_types[type(self.nodes[name])](self.where(name), self.nodes[name], self.dt)
            self.problems += params[name].problems or self.nonfinite(name, params[name])
            self.sizes[name] = self.neuron_size(name, params[name])
        if self.problems:
            raise ModelError(problems=self.problems)
        incoming = {name: self.summed_input(name) if self.preds[name] else Signal(self.sizes[name])
                    for name in neurons}
        outputs = self.output_populations()
        if self.problems:
            raise ModelError(problems=self.problems)
        nonspiking, projections = [], []
        for name in neurons:
            pop, projs = self.population(name, params[name], incoming[name])
            ir.add_population(self.graph, pop)
            projections += projs
            if params[name].threshold is None:
                nonspiking.append(name)
        for proj in projections:
            ir.add_projection(self.graph, proj)
        self.notes += self.recorded_conventions()
        if len(outputs) > 1:
            self.notes.append(f"the graph has {len(outputs)} Output populations ({', '.join(outputs)}); the readout "
                              f"(eval's accuracy, run's predicted class) reads the first, {outputs[0]}; all stay in "
                              "the network and in NIR export")
        offsets = self.time_offsets()
        self.graph.graph.update(output=outputs[0] if outputs else None, outputs=outputs, source_format="nir",
                                nir={"dt": self.dt, "nonspiking": nonspiking, "notes": self.notes,
                                     "time_offset": offsets})
        for note in self.notes:
            warnings.warn(note, stacklevel=3)
        return self.graph

    def metadata_problems(self) -> list[Problem]:
        """Metadata rsnn2chip's exporter writes, with a value that would change what the graph means."""
        problems = []
        delay = self.metadata.get("synaptic_delay_steps", 0)
        if not (np.ndim(delay) == 0 and isinstance(delay, (int, np.integer)) and delay in (0, 1)):
            problems.append(Problem("synaptic delay cannot be represented", where="metadata",
                                    resource="synaptic_delay_steps", found=repr(delay)[:60],
                                    allowed="0 (NIR's convention: none) or 1 (Loihi's one step, as rsnn2chip "
                                            "writes)", fix="rsnn2chip projections all have Loihi's one-step delay"))
        reset = self.metadata.get("reset", b"to zero")
        reset = reset.decode("utf-8", "replace") if isinstance(reset, bytes) else reset
        if reset != "to zero":
            problems.append(Problem("Loihi resets the voltage to zero only", where="metadata", resource="reset",
                                    found=repr(reset)[:60], allowed="'to zero'",
                                    fix="train with reset to zero (snnTorch: reset_mechanism='zero')"))
        return problems

    def recorded_conventions(self) -> list[str]:
        """Differences an exporter of rsnn2chip.interop found in the source model, warned again at import."""
        recorded = np.atleast_1d(self.metadata.get("conventions", []))
        return [t.decode() if isinstance(t, bytes) else str(t) for t in recorded]

    def time_offsets(self) -> dict[str, int]:
        """How many steps each population runs behind the NIR model's time.

        NIR has no synaptic delay, and snnTorch and Norse apply a feed-forward weight
        within the step, a weight that closes a cycle one step later. Here every
        projection adds Loihi's one-step delay. So a population whose feed-forward
        paths from the inputs all have ``d`` weight layers runs exactly ``d`` steps
        late, provided every cycle stays within one depth; otherwise inputs meet
        misaligned, and that is warned as ``synaptic-delay``. Graphs rsnn2chip
        exported (``synaptic_delay_steps = 1``) already carry the delay: offset 0.
        """
        g = self.graph
        if int(np.asarray(self.metadata.get("synaptic_delay_steps", 0))) == 1:
            return {name: 0 for name in g}
        back, state = set(), {}

        def visit(node):  # depth-first; an edge to a node still on the stack closes a cycle
            state[node] = "open"
            for nxt in g.successors(node):
                if state.get(nxt) == "open":
                    back.add((node, nxt))
                elif nxt not in state:
                    visit(nxt)
            state[node] = "done"

        for node in list(self.inputs) + list(g):
            if node not in state:
                visit(node)
        depth: dict[str, int] = {}
        forward = nx.DiGraph()
        forward.add_nodes_from(g)
        forward.add_edges_from(e for e in g.edges if e not in back)
        for node in nx.topological_sort(forward):
            depth[node] = max((depth[p] + 1 for p in forward.predecessors(node)), default=0)
        misaligned = [f"{pre}->{post}" for pre, post in g.edges
                      if depth[post] != depth[pre] + (0 if (pre, post) in back else 1)]
        early = [f"{p.name} ({depth[p.name]} steps)" for p in ir.populations(g, "lif")
                 if depth[p.name] > 0 and np.any(p.neuron.bias)]
        if early:
            self.notes.append(Difference("bias-onset", ", ".join(early)).text())
        if misaligned:
            self.notes.append(Difference("synaptic-delay", ", ".join(misaligned),
                                         "feed-forward depths " + ", ".join(f"{n}={d}" for n, d in depth.items()
                                                                              if n in self.sizes)).text())
        return depth

    def output_populations(self) -> list[str]:
        pops = []
        for name in self.outputs:
            for pred in self.preds[name]:
                while pred in self.identities and len(self.preds[pred]) == 1:
                    pred = self.preds[pred][0]
                if pred in self.sizes:
                    pops.append(pred)
                else:
                    self.problems.append(Problem("an Output must be fed by a neuron or Input node",
                                                 where=self.where(name), found=self.where(pred),
                                                 fix="end the network with a LIF, CubaLIF or LI layer"))
        return list(dict.fromkeys(pops))

    def population(self, name: str, p: NeuronImport, x: Signal) -> tuple[ir.Population, list[ir.Projection]]:
        size = self.sizes[name]
        if x.size != size:
            raise ModelError("input size does not match the neuron count", where=self.where(name),
                             found=x.size, allowed=size)
        gain = np.broadcast_to(p.gain, (size,))
        projections = [ir.Projection(pre, name, sp.diags(gain) @ m, delay=1) for pre, m in x.terms.items()
                       if m.count_nonzero()]
        bias = np.broadcast_to(p.bias, (size,)).copy()
        if x.const is not None and np.any(x.const):
            drive = gain * x.const  # constant added to u every step
            a = np.broadcast_to(p.current_decay, (size,))
            bias += drive / a
            if np.any(a < 1):
                self.notes.append(
                    f"{self.where(name)}: the Affine bias is a constant synaptic current; Loihi has no bias on u, "
                    f"so its steady-state value (bias / current_decay) is added to v's bias. The first "
                    f"~{int(np.ceil(1 / a.min() - 1e-9))} steps see more drive than in NIR (docs/interop.md)")
        threshold = p.threshold if p.threshold is not None else self.li_threshold(projections, bias, p, size)
        neuron = CubaLIF(current_decay=p.current_decay, voltage_decay=p.voltage_decay,
                         threshold=np.broadcast_to(threshold, (size,)), bias=bias)
        return ir.Population(name, size, layer=name, neuron=neuron), projections

    def li_threshold(self, projections, bias, p: NeuronImport, size: int) -> float:
        """A threshold no voltage reachable from 0/1 spikes and the bias can exceed."""
        drive = np.zeros(size)
        for proj in projections:
            w = proj.weight
            drive += np.maximum(np.asarray(w.maximum(0).sum(axis=1)).ravel(),
                                np.asarray(-w.minimum(0).sum(axis=1)).ravel())
        u_max = drive / np.broadcast_to(p.current_decay, (size,))
        v_max = (u_max + np.abs(bias)) / np.broadcast_to(p.voltage_decay, (size,))
        bound = float(v_max.max(initial=0.0))
        return LI_THRESHOLD_MARGIN * bound if bound > 0 else 1.0


def graph_from_nir(nir_graph, dt: float | None = None, name: str = "nir") -> nx.DiGraph:
    """Convert an in-memory ``nir.NIRGraph`` into the IR (see the module docstring for conventions)."""
    return _Importer(nir_graph, resolve_dt(nir_graph, dt), name).build()
