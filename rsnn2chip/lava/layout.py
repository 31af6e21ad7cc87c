"""Which Lava processes a compiled network becomes: a pure NumPy plan, no Lava import.

Lava runs every process as an OS process synchronised at every step, so a
process costs ~0.3 ms per step on a small CPU, whatever it computes; a
synapse process costs its kernel on top. :func:`plan` builds candidate
layouts and keeps the one with the lowest :meth:`Layout.step_cost`:

* **neuron groups**: populations that share one neuron process, as runs of
  consecutive populations (of one neuron model) in the network's order. All
  splits into runs are tried (up to :data:`MAX_ENUMERATED_POPULATIONS`
  populations; beyond, only all-in-one, hidden-in-one and one-per-population).
  Few processes help small networks; narrow synapse matrices help large ones.
  The hierarchical process's ``out`` port sends the spikes of the process that
  holds the readout, since Lava ports cannot be sliced; ``separate_readout``
  keeps the readout alone in its process, so that ``out`` is exactly the readout.
* **synapse groups**: projections that share one ``Dense`` or ``Sparse``
  process. A group shares source process, target process, weight exponent and
  sign mode (one process has one of each). It may feed one neuron from
  several projections only where the sum stays exact: the process floors
  ``sum * 2**weight_exp`` once per neuron, which equals the sum of the
  per-projection floors when at most one of the projections meeting there has
  mantissas that its negative exponent does not divide (:func:`shift_exact`).
  netx files always qualify: netx stores weights pre-shifted by minus their
  exponent. Two projections never share a synapse (Lava would clip the sum).
* **kernel** per synapse group, all Lava's own ``fixed_pt`` models:
  ``dense`` (``Dense``, binary spikes: ``weights[:, spiking].sum(axis=1)``,
  a column gather that slows down once the matrix leaves the cache),
  ``dense-dot`` (``Dense`` with ``num_message_bits=1``: ``weights.dot(s)``,
  a streaming product; the 0/1 spikes make the same integer sum),
  ``sparse`` (``Sparse``: a CSR column slice, for few synapses) and
  ``sparse-dot`` (``Sparse`` with ``num_message_bits=1``: a CSR product,
  ~0.6 ns per stored weight, six times faster than the slice). The ``-dot``
  kernels declare graded spikes, which Loihi 2 hardware would read differently
  from a LIF's binary ones, so ``hardware=True`` leaves them out.
* **parts**: a heavy ``Sparse`` group is split by target rows into parts, one
  process each, balanced by stored weights. Lava runs each process on a core
  of its own and sums the parts' outputs at the target's ``a_in``; every row
  lives in one part, so each neuron's floor of ``sum * 2**weight_exp`` is
  unchanged. The parts share the memory bandwidth that a CSR product is bound
  by, so two parts run 1.26x, not 2x, as fast (:data:`PARALLEL_PART_GAIN`), and
  only groups of millions of stored weights gain more than the extra process
  costs.

Replicas (independent copies of the network side by side, for batched
evaluation) multiply every process's width, not the process count; each
synapse matrix becomes block diagonal.
"""
from __future__ import annotations

import dataclasses
import itertools
import os
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from rsnn2chip import neurons
from rsnn2chip.backends.plan import LoweredNetwork, LoweredProjection
from rsnn2chip.errors import InputError

INPUT = "input"  # the source name of synapse groups fed by the network's input port

# Step-cost model (seconds), measured with lava-nc 0.10 on 2 shared CPU cores
# (docs/lava.md, "How the layout is chosen"). Per process and step; Dense per
# (row x spiking column), in and beyond the cache; Dense-dot per call and
# (row x column); Sparse per call and per stored weight in a spiking column.
COST_PROCESS_S = 3e-4
COST_GATHER_S = 1e-8
COST_GATHER_UNCACHED_S = 2.5e-8
GATHER_CACHED_ELEMENTS = 1 << 20
COST_DOT_CALL_S = 2e-5
COST_DOT_S = 3e-9
COST_SPARSE_CALL_S = 1.5e-4
# Measured on block-diagonal replicas of the H = 512 netx network (bench/lava_speed.py), 100 steps: 4 replicas
# ~7 ms and 16 ~33 ms a step, where 7e-8 predicted 26 and 100 ms.
COST_SPARSE_NONZERO_S = 2.5e-8
# Sparse-dot: SciPy's CSR product, per call and per stored weight (measured 2.5 ms for 4.2 M weights, 0.15 ms
# for 0.26 M, whatever the spikes).
COST_SPARSE_DOT_CALL_S = 5e-5
COST_SPARSE_DOT_NONZERO_S = 6e-10
# Parts of a Sparse group on separate cores: speed gained per part beyond the first. Measured on the H = 2048
# netx network of bench/lava_speed.py, 3 replicas (16 M stored weights), 12 rounds of 101 steps in one build:
# 24.4-27.7 s in one process, 20.2-20.8 s in two parts of equal stored weights (2 shared cores); the parts
# share the memory bandwidth, so the gain is per extra core, not a multiple.
PARALLEL_PART_GAIN = 0.26
# The most parts "auto" makes: two is what was measured to pay. More may on a machine with more cores and memory
# channels, but the linear model above is not measured there; synapse_parts=k forces k.
MAX_AUTO_PARTS = 2
COST_BUILD_S = 2.5  # one Lava build: process creation, compile, OS processes, first step
# A build's cost per stored weight (all replicas): building the matrices, and Lava's copies and clipping of them
# in every synapse process. Measured on the H = 2048 network of bench/lava_speed.py (5.4 M weights a replica):
# construction, first step less a step and stop took 3.1 / 3.9 / 4.6 / 5.5 / 7.7 s at 3 / 6 / 8 / 12 / 16
# replicas, ~64 ns per weight above ~2 s. Since then block_diagonal's in-place copies took ~9 ns a weight off
# (0.89 -> 0.50 s for 43 M) and sim_config ~0.7 s off every build; 6e-8 still ranks within that error.
COST_BUILD_WEIGHT_S = 6e-8
# Var.set moves one element per message: 2,048 elements took 56-79 ms; one more run() of a build ~2 ms.
COST_SET_ELEMENT_S = 3e-5
COST_RUN_CALL_S = 2e-3
ASSUMED_SPIKE_RATE = 0.2  # fraction of source neurons spiking per step, for the kernel costs
MAX_DENSE_ELEMENTS = 1 << 25  # a bigger Dense matrix (128 MiB of int32) is never built
MAX_ENUMERATED_POPULATIONS = 8
MAX_REPLICA_NEURONS = 1 << 16  # neurons of all replicas in one build
# Stored weights of all replicas in one build: block-diagonal copies multiply the memory of the weights, held by
# this process and again, with Lava's clipped copies, by the synapse processes. The H = 2048 network of
# bench/lava_speed.py peaked at 1.8 GB (all processes, PSS) with 16 M weights and 2.9 GB with 65 M, ~23 bytes
# a weight. 64 M keeps a build near 3 GB. Beyond, rounds share the build.
MAX_REPLICA_WEIGHTS = 1 << 26

KERNELS = ("dense", "dense-dot", "sparse", "sparse-dot")
SYNAPSE_CHOICES = ("auto",) + KERNELS
GRADED_KERNELS = ("dense-dot", "sparse-dot")  # declare graded spikes: exact in the simulator, not on Loihi 2
SPARSE_KERNELS = ("sparse", "sparse-dot")  # Lava's Sparse process; the others are Dense
MERGE_MODES = ("auto", "all", "hidden", "split")


def is_count(value) -> bool:
    """A whole number >= 1: an int or NumPy integer, not a bool (which Python counts as an int)."""
    return not isinstance(value, bool) and isinstance(value, (int, np.integer)) and value >= 1


def available_cores() -> int:
    """CPU cores this process may run on (its affinity where the OS reports it): the most parts worth making."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class NeuronGroup:
    """Populations (contiguous in the global LIF order) that one neuron process runs."""
    name: str
    populations: tuple[str, ...]
    lo: int
    hi: int
    model: str = "cuba_lif"

    @property
    def size(self) -> int:
        return self.hi - self.lo


@dataclass
class SynapseGroup:
    """Projections that one Dense or Sparse process runs."""
    source: str  # INPUT or the name of a NeuronGroup
    target: str  # the name of a NeuronGroup
    projections: list[LoweredProjection]
    weight_exp: int
    sign_mode: str
    shape: tuple[int, int] = (0, 0)  # (replicas * target size, replicas * source size)
    replicas: int = 1
    kind: str = "dense"
    # One of `parts` processes that a group is split into by target rows (see split_rows): it holds rows
    # [lo, hi) of `shape` (replicas included) and `part_nnz` stored weights. None: the whole group.
    rows: tuple[int, int] | None = None
    parts: int = 1
    part_nnz: int | None = None

    @property
    def nnz(self) -> int:
        if self.part_nnz is not None:
            return self.part_nnz
        return sum(p.weights.nnz for p in self.projections) * self.replicas

    def kernel_cost(self, kind: str | None = None) -> float:
        kind = kind or self.kind
        rows, cols = self.shape
        if kind == "dense":
            per = COST_GATHER_S if rows * cols <= GATHER_CACHED_ELEMENTS else COST_GATHER_UNCACHED_S
            return rows * cols * ASSUMED_SPIKE_RATE * per
        if kind == "dense-dot":
            return COST_DOT_CALL_S + rows * cols * COST_DOT_S
        if kind == "sparse-dot":
            return COST_SPARSE_DOT_CALL_S + self.nnz * COST_SPARSE_DOT_NONZERO_S
        return COST_SPARSE_CALL_S + self.nnz * ASSUMED_SPIKE_RATE * COST_SPARSE_NONZERO_S

    def step_cost(self) -> float:
        """Modelled seconds per step: its process, and its kernel, which its sibling parts (on other cores)
        speed up by :data:`PARALLEL_PART_GAIN` each."""
        return COST_PROCESS_S + self.kernel_cost() / parallel_speedup(self.parts)


def parallel_speedup(parts: int) -> float:
    return 1 + PARALLEL_PART_GAIN * (parts - 1)


@dataclass
class Layout:
    lowered: LoweredNetwork
    readout: str
    replicas: int
    neuron_groups: list[NeuronGroup]
    synapse_groups: list[SynapseGroup] = field(default_factory=list)

    def neuron_group(self, name: str) -> NeuronGroup:
        return next(g for g in self.neuron_groups if g.name == name)

    def neuron_group_of(self, population: str) -> NeuronGroup:
        return next(g for g in self.neuron_groups if population in g.populations)

    def local_slice(self, population: str) -> tuple[int, int]:
        """``[start, stop)`` of ``population`` inside its neuron process (replica 0)."""
        group = self.neuron_group_of(population)
        lo, hi = self.lowered.lif_slices[population]
        return lo - group.lo, hi - group.lo

    @property
    def process_count(self) -> int:
        """Processes inside the hierarchical process (sources, sinks and monitors not counted)."""
        return len(self.neuron_groups) + len(self.synapse_groups)

    def step_cost(self) -> float:
        """Modelled seconds per step of the whole network."""
        return COST_PROCESS_S * len(self.neuron_groups) + sum(g.step_cost() for g in self.synapse_groups)

    def weights(self, group: SynapseGroup) -> sp.csr_matrix:
        """The group's projections at their place in (target process x source process), tiled per replica."""
        target = self.neuron_group(group.target)
        if group.source == INPUT:
            col0, n_cols = 0, self.lowered.n_input
        else:
            source = self.neuron_group(group.source)
            col0, n_cols = source.lo, source.size
        if not group.projections:  # a link that only keeps a process connected (link_unreached)
            return sp.csr_matrix((group.shape[0], group.shape[1]), dtype=np.int32)
        blocks = [p.weights.tocoo() for p in group.projections]
        rows = np.concatenate([b.row + p.rows[0] - target.lo for b, p in zip(blocks, group.projections)])
        cols = np.concatenate([b.col + p.cols[0] - col0 for b, p in zip(blocks, group.projections)])
        # int32, as Lava's fixed_pt models hold weights: 8-bit mantissas, and no copy to cast later.
        data = np.concatenate([b.data for b in blocks]).astype(np.int32)
        one = sp.csr_matrix((data, (rows, cols)), shape=(target.size, n_cols))
        return block_diagonal(one, self.replicas, group.rows)

    def stored_per_row(self, group: SynapseGroup) -> np.ndarray:
        """Stored weights in each row of the group's matrix (replicas included), without building it."""
        target = self.neuron_group(group.target)
        counts = np.zeros(target.size, np.int64)
        for p in group.projections:
            lo = p.rows[0] - target.lo
            counts[lo:lo + p.weights.shape[0]] += np.diff(p.weights.indptr)
        return np.tile(counts, self.replicas)


def block_diagonal(one: sp.csr_matrix, copies: int, rows: tuple[int, int] | None = None) -> sp.csr_matrix:
    """``copies`` copies of ``one`` along the diagonal, built from its CSR arrays directly (``sp.kron`` goes
    through COO and took 0.55 s for 16 copies of a 521 x 512 matrix; this takes a tenth of that). With
    ``rows = (lo, hi)`` only those rows hold weights, the shape kept (a part's output then adds zero to the
    neurons of the other parts); the other rows' weights are never copied."""
    one = one.tocsr()
    one.sum_duplicates()
    n_rows, n_cols = one.shape
    lo, hi = rows or (0, n_rows * copies)
    counts = np.tile(np.diff(one.indptr), copies)
    counts[:lo] = 0
    counts[hi:] = 0
    indptr = np.concatenate([[0], np.cumsum(counts)])
    data = np.empty(indptr[-1], one.data.dtype)
    indices = np.empty(indptr[-1], one.indices.dtype)
    # Each copy k holds its rows [k * n_rows, (k + 1) * n_rows) that fall inside [lo, hi), as rows a..b of
    # `one`; written in place, one pass over the weights (tens of millions at H = 2048).
    for k in range(copies):
        a, b = max(lo - k * n_rows, 0), min(hi - k * n_rows, n_rows)
        if a < b:
            src, dst = slice(one.indptr[a], one.indptr[b]), slice(indptr[k * n_rows + a], indptr[k * n_rows + b])
            data[dst] = one.data[src]
            np.add(one.indices[src], k * n_cols, out=indices[dst])
    return sp.csr_matrix((data, indices, indptr.astype(indices.dtype)), shape=(n_rows * copies, n_cols * copies))


def split_rows(layout: Layout, group: SynapseGroup, parts: int) -> list[SynapseGroup]:
    """``group`` as up to ``parts`` groups of consecutive target rows with about equal stored weights (fewer
    where rows run out; the group itself for one part)."""
    if parts < 2:
        return [group]
    counts = layout.stored_per_row(group)
    ends = np.concatenate([[0], np.cumsum(counts)])
    cuts = [0, *(int(np.searchsorted(ends, ends[-1] * k / parts)) for k in range(1, parts)), counts.size]
    ranges = [(lo, hi) for lo, hi in zip(cuts, cuts[1:]) if ends[hi] > ends[lo]]
    if len(ranges) < 2:
        return [group]
    return [dataclasses.replace(group, rows=rows, parts=len(ranges), part_nnz=int(ends[rows[1]] - ends[rows[0]]))
            for rows in ranges]


def part_count(group: SynapseGroup, parts: int | str, cores: int) -> int:
    """How many parts ``group`` becomes (``group`` comes from :func:`synapse_groups`, so it holds weights):
    ``parts``, or for "auto" the count up to ``cores`` (and :data:`MAX_AUTO_PARTS`) with the lowest modelled
    step cost; always 1 for a Dense group (its kernel computes every row of its matrix, held or not)."""
    if group.kind not in SPARSE_KERNELS:
        return 1
    if parts != "auto":
        return parts
    whole = group.kernel_cost()
    return min(range(1, min(cores, MAX_AUTO_PARTS) + 1),
               key=lambda k: k * COST_PROCESS_S + whole / parallel_speedup(k))


def default_readout(net: LoweredNetwork) -> str:
    return list(net.lif_slices)[-1]


def plan(net: LoweredNetwork, readout: str | None = None, replicas: int = 1, merge: str = "auto",
         synapses: str = "auto", separate_readout: bool = False, hardware: bool = False,
         parts: int | str = "auto") -> Layout:
    """The cheapest exact layout of ``net`` (see the module docstring). ``parts`` splits every Sparse group
    into that many; "auto" as many as the cost model picks, up to the available cores (none for ``hardware``:
    the split serves the simulator's parallelism)."""
    if not net.lif_slices:
        raise InputError("the network has no LIF population to build Lava processes for")
    readout = readout or default_readout(net)
    if readout not in net.lif_slices:
        raise InputError("unknown readout population", found=readout, allowed=", ".join(net.lif_slices))
    if replicas < 1:
        raise InputError("replicas must be >= 1", found=replicas, allowed=">= 1")
    if merge not in MERGE_MODES:
        raise InputError("unknown neuron grouping", found=merge, allowed=", ".join(MERGE_MODES))
    if synapses not in SYNAPSE_CHOICES:
        raise InputError("unknown synapse kernel", found=synapses, allowed=", ".join(SYNAPSE_CHOICES))
    if hardware and synapses in GRADED_KERNELS:
        raise InputError(f"the {synapses} kernel declares graded spikes, which Loihi 2 would read differently",
                         allowed="dense, sparse or auto with hardware=True")
    if merge == "all" and separate_readout:
        raise InputError("merge='all' puts the readout in a shared process, so it cannot be separate",
                         allowed="merge='hidden' or 'split' with separate_readout")
    if parts != "auto" and not is_count(parts):
        raise InputError("synapse parts must be a whole number >= 1 or 'auto'", found=parts,
                         allowed="'auto' or an int >= 1")
    kernels = KERNELS if synapses == "auto" else (synapses,)
    if hardware:
        kernels = tuple(k for k in kernels if k not in GRADED_KERNELS)
    cores = 1 if hardware else available_cores()
    candidates = []
    for runs in candidate_runs(net, readout, merge, separate_readout):
        layout = Layout(net, readout, replicas, _groups_from_runs(net, runs))
        layout.synapse_groups = [part for group in synapse_groups(layout, kernels)
                                 for part in split_rows(layout, group, part_count(group, parts, cores))]
        candidates.append(layout)
    for layout in candidates:
        link_unreached(layout)
    return min(candidates, key=Layout.step_cost)


def link_unreached(layout: Layout) -> None:
    """Give every neuron process no synapse connects (a population fed by nothing, or split off because its
    neuron model differs) an empty synapse from the readout's process: Lava compiles only the processes
    connected to the one it runs, and a synapse without weights changes no value."""
    readout = layout.neuron_group_of(layout.readout)
    for name in unreachable_groups(layout):
        target = layout.neuron_group(name)
        layout.synapse_groups.append(SynapseGroup(readout.name, name, [], 0, "excitatory",
                                                  (layout.replicas * target.size, layout.replicas * readout.size),
                                                  layout.replicas, "sparse"))


def unreachable_groups(layout: Layout) -> list[str]:
    """Neuron groups no chain of synapses links (in either direction) to the readout's group."""
    links: dict[str, set[str]] = {g.name: set() for g in layout.neuron_groups}
    links[INPUT] = set()
    for g in layout.synapse_groups:
        links[g.source].add(g.target)
        links[g.target].add(g.source)
    # One connected component through the readout's process: Lava compiles what is connected to the process
    # it runs, so a part reached only from the input port would be left out.
    seen, todo = set(), [layout.neuron_group_of(layout.readout).name]
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(links[node])
    return [g.name for g in layout.neuron_groups if g.name not in seen]


def lowered_group(net: LoweredNetwork, population: str) -> int:
    """Index of the lowering's neuron group (one model and process key) that runs ``population``."""
    first = net.lif_slices[population][0]
    return next(k for k, g in enumerate(net.groups) if first in g.index)


def population_model(net: LoweredNetwork, population: str) -> str:
    """The registered name of a population's neuron model."""
    return net.groups[lowered_group(net, population)].model.name


def candidate_runs(net: LoweredNetwork, readout: str, merge: str, separate_readout: bool) -> list[list[list[str]]]:
    """Splits of the populations into runs of consecutive populations, one neuron process each."""
    names = list(net.lif_slices)
    # Populations of different models (or of one model with different process-wide values, such as
    # ATRLIF's threshold step) never share a process: those cuts are forced.
    forced = {i for i in range(1, len(names))
              if lowered_group(net, names[i]) != lowered_group(net, names[i - 1])}
    if separate_readout:
        at = names.index(readout)
        forced |= {i for i in (at, at + 1) if 0 < i < len(names)}
    named = {"all": set(), "hidden": {i for i in (names.index(readout), names.index(readout) + 1)
                                      if 0 < i < len(names)}, "split": set(range(1, len(names)))}
    if merge != "auto":
        cut_sets = [named[merge] | forced]
    elif len(names) <= MAX_ENUMERATED_POPULATIONS:
        free = [i for i in range(1, len(names)) if i not in forced]
        cut_sets = [forced | set(c) for r in range(len(free) + 1) for c in itertools.combinations(free, r)]
    else:
        cut_sets = [cuts | forced for cuts in named.values()]
    splits = []
    for cuts in cut_sets:
        bounds = [0, *sorted(cuts), len(names)]
        runs = [names[a:b] for a, b in zip(bounds, bounds[1:])]
        if runs not in splits:
            splits.append(runs)
    return splits


def _groups_from_runs(net: LoweredNetwork, runs: list[list[str]]) -> list[NeuronGroup]:
    groups = []
    for run in runs:
        lo, hi = net.lif_slices[run[0]][0], net.lif_slices[run[-1]][1]
        name = run[0] if len(run) == 1 else f"{run[0]}..{run[-1]}"
        groups.append(NeuronGroup(name, tuple(run), lo, hi, population_model(net, run[0])))
    return groups


def shift_exact(proj: LoweredProjection) -> bool:
    """True when ``floor(mantissa_sum * 2**weight_exp)`` never rounds for this projection.

    A non-negative exponent shifts left; a negative one divides exactly when
    every mantissa is a multiple of ``2**-weight_exp``.
    """
    if proj.weight_exp >= 0:
        return True
    # A multiple of 2**k has its k low bits clear, negative ones too (two's complement). The mask tests that
    # five times faster than a remainder (2.7 M int64 mantissas: 5.7 against 28.7 ms), and plan runs it for
    # every projection of every candidate layout.
    return not np.any(np.asarray(proj.weights.data) & ((1 << -proj.weight_exp) - 1))


def synapse_groups(layout: Layout, kernels=KERNELS) -> list[SynapseGroup]:
    """Greedy first fit of the projections into exact synapse groups, in projection order, and their kernels.

    Projections without synapses are dropped since they add nothing.
    """
    net = layout.lowered
    groups: list[SynapseGroup] = []
    for proj in net.projections:
        if proj.weights.nnz == 0:
            continue
        source = INPUT if proj.source == "input" else _group_at(layout, proj.cols[0]).name
        target = _group_at(layout, proj.rows[0]).name
        home = next((g for g in groups if (g.source, g.target, g.weight_exp, g.sign_mode)
                     == (source, target, proj.weight_exp, proj.sign_mode) and _fits(g, proj)), None)
        if home is None:
            groups.append(SynapseGroup(source, target, [proj], proj.weight_exp, proj.sign_mode))
        else:
            home.projections.append(proj)
    for group in groups:
        rows = layout.neuron_group(group.target).size
        cols = net.n_input if group.source == INPUT else layout.neuron_group(group.source).size
        group.shape = (layout.replicas * rows, layout.replicas * cols)
        group.replicas = layout.replicas
        allowed = [k for k in kernels
                   if k in SPARSE_KERNELS or group.shape[0] * group.shape[1] <= MAX_DENSE_ELEMENTS]
        group.kind = min(allowed or ["sparse"], key=group.kernel_cost)
    return groups


def _fits(group: SynapseGroup, proj: LoweredProjection) -> bool:
    # Two projections on one synapse would add their mantissas, which Lava then clips.
    if any(_overlap(proj.rows, o.rows) and _overlap(proj.cols, o.cols) for o in group.projections):
        return False
    if shift_exact(proj):
        return True
    return not any(_overlap(proj.rows, o.rows) for o in group.projections if not shift_exact(o))


def _group_at(layout: Layout, lif_index: int) -> NeuronGroup:
    return next(g for g in layout.neuron_groups if g.lo <= lif_index < g.hi)


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def group_params(net: LoweredNetwork, group: NeuronGroup) -> dict[str, np.ndarray]:
    """The fixed-point parameters of a layout group's neurons (all of one lowering group)."""
    lowered = net.groups[lowered_group(net, group.populations[0])]
    at = np.searchsorted(lowered.index, np.arange(group.lo, group.hi))
    return {k: v[at].copy() for k, v in lowered.params.items()}


def state_resets(layout: Layout) -> dict[tuple[str, str | int, str], np.ndarray]:
    """The reset value of every element of every state Var, keyed ``("neurons", group name, Var)`` (each
    neuron model's ``lava_reset``, tiled per replica) or ``("synapses", group index, "a_buff")`` (the one-step
    buffer, zero)."""
    resets = {}
    for group in layout.neuron_groups:
        for var, value in neurons.get(group.model).lava_reset(group_params(layout.lowered, group)).items():
            resets["neurons", group.name, var] = np.tile(value, layout.replicas)
    for index, group in enumerate(layout.synapse_groups):
        resets["synapses", index, "a_buff"] = np.zeros(group.shape[0], np.int64)
    return resets


def window_resets(layout: Layout) -> int | None:
    """How many Lava ``Reset`` processes a ``reset_interval`` adds (one per state Var), or None where a neuron
    model's Lava process cannot be reset in a run (``lava_reset_in_run``)."""
    if not all(neurons.get(g.model).lava_reset_in_run for g in layout.neuron_groups):
        return None
    return len(state_resets(layout))


@dataclass(frozen=True)
class BatchPlan:
    """How a batch runs in Lava: ``replicas`` samples side by side per build, and either one build per
    ``replicas`` samples or, ``in_sequence``, one build whose rounds of ``replicas`` samples follow each other.
    Between rounds the state goes back to its reset value: ``reset_in_network``, by Lava ``Reset`` processes
    inside the network at the end of a one-step longer window per round; otherwise by ``Network.reset``."""
    replicas: int
    in_sequence: bool
    reset_in_network: bool = False

    def samples_per_build(self, batch: int) -> int:
        return batch if self.in_sequence else self.replicas


def reset_elements(layout: Layout) -> int:
    """Elements ``Network.reset`` sets: every state Var of every neuron process and every synapse's buffer."""
    return sum(v.size for v in state_resets(layout).values())


def replica_sizes(batch: int, cap: int) -> list[int]:
    """The replica counts a batch plan weighs: powers of two up to ``cap`` and ``cap``, each narrowed to the
    fewest replicas that keep its number of rounds (64 samples at a cap of 12: 11 replicas in 6 rounds, not 12
    whose last round is two thirds silent)."""
    powers = {min(cap, 1 << k) for k in range(cap.bit_length() + 1)} | {cap}
    return sorted({-(-batch // -(-batch // r)) for r in powers})


def best_batch_plan(net: LoweredNetwork, batch: int, steps: int) -> BatchPlan:
    """The batch plan that runs ``batch`` samples of ``steps`` steps in the least modelled time.

    A build costs :data:`COST_BUILD_S` and :data:`COST_BUILD_WEIGHT_S` per stored weight. More replicas share
    it but widen every process (block-diagonal synapses cost per stored weight), up to
    :data:`MAX_REPLICA_NEURONS` and :data:`MAX_REPLICA_WEIGHTS`; a sequence shares one build among all
    rounds but pays a reset between them: ``Network.reset`` (:data:`COST_SET_ELEMENT_S` per element), or
    ``Reset`` processes (one more step per round, and a process each at every step). Small networks run as
    replicas; networks whose weights cap the replicas, in rounds.
    """
    weights = sum(p.weights.nnz for p in net.projections)
    cap = max(1, min(batch, MAX_REPLICA_NEURONS // max(net.n_lif, 1), MAX_REPLICA_WEIGHTS // max(weights, 1)))
    sizes = replica_sizes(batch, cap)

    layouts = {r: plan(net, replicas=r) for r in sizes}  # each size's layout serves its three options

    def total_s(option: BatchPlan) -> float:
        layout = layouts[option.replicas]
        rounds = -(-batch // option.replicas)
        build_s = COST_BUILD_S + weights * option.replicas * COST_BUILD_WEIGHT_S
        if option.reset_in_network:
            resets = window_resets(layout)
            if resets is None:
                return float("inf")
            window_s = (steps + 1) * (layout.step_cost() + resets * COST_PROCESS_S)
            return build_s + rounds * (window_s + COST_RUN_CALL_S)
        run_s = steps * layout.step_cost()
        if option.in_sequence:
            return build_s + rounds * (run_s + COST_RUN_CALL_S) + (rounds - 1) * reset_elements(
                layout) * COST_SET_ELEMENT_S
        return rounds * (build_s + run_s)

    options = [BatchPlan(r, False) for r in sizes] + [BatchPlan(r, True, by) for r in sizes for by in (False, True)]
    return min(options, key=total_s)
