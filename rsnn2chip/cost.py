"""Energy and time *estimates* of a run on a target, from its per-operation figures.

Counting follows what a Loihi core does when a neuron spikes (see docs/reports.md):

* **synaptic op**: one per synapse a spike reaches (each spike of source ``i``
  costs ``fan-out(i)`` ops, input channels included); synapses whose weight
  quantized to zero are not stored, so they cost nothing;
* **neuron update**: every LIF neuron is updated every step; the update of a
  neuron that spikes is *active* (``neuron_spike_update_pj``), the others *idle*
  (``neuron_update_pj``);
* **spike message** ("spike within a tile"): one per spike and per distinct core
  its synapses reach, its own core included, because the router delivers one
  message per destination core and the core fans it out; input channels send
  one per core they reach;
* **mesh hop**: a message to another core also travels ``hops`` mesh links
  (Manhattan distance on the mesh, a full mesh span per chip crossed, as in
  ``passes/place.py``).

Energy is the sum of counts times the target's ``[energy]`` figures. Time per
step is a barrier model: cores run in parallel and a step ends when the
busiest core is done, each core's time being the sum of its own work (synaptic
ops it performs, neurons it updates, messages it sends and the hops they
travel, times the target's ``[time]`` figures). ``serial_time`` (every
operation one after another) bounds it from above. Input spikes cost energy
but no core time: the host link is not modelled. These are estimates from
published per-operation figures, not measurements.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from rsnn2chip import ir
from rsnn2chip.artifact import CompiledNetwork
from rsnn2chip.errors import ArtifactError
from rsnn2chip.passes.place import core_of_neuron, hop_distance
from rsnn2chip.passes.resources import network_demand
from rsnn2chip.targets import Target

# operation -> (energy field, time field) of the target's ``energy`` and ``time`` sections.
OPERATIONS = {
    "synaptic_ops": ("synaptic_op_pj", "synaptic_op_ns"),
    "neuron_updates_idle": ("neuron_update_pj", "neuron_update_ns"),
    "neuron_updates_spiking": ("neuron_spike_update_pj", "neuron_update_ns"),
    "spike_messages": ("spike_in_tile_pj", "spike_in_tile_ns"),
    "mesh_hops": ("mesh_hop_pj", "mesh_hop_ns"),
}


@dataclass
class ChipLayout:
    """Where every neuron sits and what each source's spikes reach.

    Sources are numbered as in ``passes/resources.py``: LIF neurons first (IR
    order), then input channels.
    """

    n_lif: int
    n_input: int
    n_cores: int
    core_of: np.ndarray  # (n_lif,) core of each LIF neuron
    fanout: sp.csr_matrix  # (n_sources, n_cores) synapses of each source onto each core
    positions: np.ndarray  # (n_cores, 3) chip, row, col
    target: Target
    source_slices: dict[str, tuple[int, int]]  # population -> [lo, hi) among sources

    @property
    def n_sources(self) -> int:
        return self.n_lif + self.n_input

    def dest_cores(self) -> np.ndarray:
        """(n_sources,) distinct cores each source's synapses reach."""
        return np.diff(self.fanout.indptr).astype(np.int64)

    def hops(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Mesh hops between cores ``a`` and ``b`` (element-wise); never an n x n matrix, which 16k cores
        would make gigabytes."""
        return hop_distance(self.positions[a], self.positions[b], self.target).astype(np.int64)

    def remote_hops(self) -> np.ndarray:
        """(n_sources,) hops summed over the distinct *other* cores a source reaches (0 for inputs)."""
        coo = self.fanout.tocoo()
        lif = coo.row < self.n_lif
        return np.bincount(coo.row[lif], weights=self.hops(self.core_of[coo.row[lif]], coo.col[lif]),
                           minlength=self.n_sources).astype(np.int64)

    def home(self, values: np.ndarray) -> sp.csr_matrix:
        """(n_lif, n_cores) with ``values[i]`` at (i, core of i): sums per-neuron values per core."""
        return sp.csr_matrix((np.asarray(values, np.float64), (np.arange(self.n_lif), self.core_of)),
                             shape=(self.n_lif, self.n_cores))


def layout(art: CompiledNetwork) -> ChipLayout:
    g, cores = art.graph, art.cores
    lif_slices = ir.neuron_offsets(g, "lif")
    n_lif = ir.total_neurons(g, "lif")
    ids = sorted(cores.nodes)
    if ids != list(range(len(ids))):
        raise ArtifactError("the artifact's core graph must number its cores 0..n-1", found=ids[:5],
                            fix="recompile the network with this rsnn2chip version")
    core_of = core_of_neuron(cores, lif_slices, n_lif)
    demand = network_demand(g)
    onehot = sp.csr_matrix((np.ones(n_lif), (np.arange(n_lif), core_of)), shape=(n_lif, len(ids)))
    fanout = (demand.incoming.T.astype(np.float64) @ onehot).tocsr()
    fanout.eliminate_zeros()
    fanout.sort_indices()
    positions = np.array([[cores.nodes[c]["chip"], *cores.nodes[c]["position"]] for c in ids], np.int64)
    positions = positions.reshape(len(ids), 3)
    sources = dict(lif_slices)
    sources.update({name: (n_lif + lo, n_lif + hi) for name, (lo, hi) in ir.neuron_offsets(g, "input").items()})
    return ChipLayout(n_lif, demand.n_input, len(ids), core_of, fanout, positions, art.target, sources)


def source_spikes(lay: ChipLayout, activity, sample: int) -> np.ndarray:
    """(steps, n_sources) spikes of one sample, in source order."""
    out = np.zeros((activity.steps, lay.n_sources), np.float64)
    for name, (lo, hi) in lay.source_slices.items():
        out[:, lo:hi] = activity.spikes[name][sample]
    return out


def _per_core(m: sp.spmatrix, spikes: np.ndarray) -> np.ndarray:
    """``spikes @ m`` as (steps, n_cores), keeping ``m`` sparse."""
    return np.asarray(m.T @ spikes.T).T.reshape(spikes.shape[0], m.shape[1])


def work_matrices(lay: ChipLayout) -> dict[str, tuple[sp.csr_matrix, slice]]:
    """Per operation, the (sources x cores) matrix that turns a step's spikes into each core's count of it,
    and which sources it reads. Built once per estimate, reused for every sample."""
    lif = slice(0, lay.n_lif)
    return {"synaptic_ops": (lay.fanout, slice(None)),
            "neuron_updates_spiking": (lay.home(np.ones(lay.n_lif)), lif),
            "spike_messages": (lay.home(lay.dest_cores()[lif]), lif),
            "mesh_hops": (lay.home(lay.remote_hops()[lif]), lif)}


def per_step_core_work(lay: ChipLayout, spikes: np.ndarray, mats: dict | None = None) -> dict[str, np.ndarray]:
    """Operations of each core at each step, ``(steps, n_cores)`` per operation, for one sample."""
    mats = mats or work_matrices(lay)
    work = {op: _per_core(m, spikes[:, cols]) for op, (m, cols) in mats.items()}
    neurons = np.bincount(lay.core_of, minlength=lay.n_cores).astype(np.float64)
    work["neuron_updates_idle"] = neurons[None, :] - work["neuron_updates_spiking"]
    return work


def input_messages(lay: ChipLayout, spikes: np.ndarray) -> float:
    """Messages input channels send (one per spike and destination core); they cost energy, not core time."""
    return float(spikes[:, lay.n_lif:].sum(axis=0) @ lay.dest_cores()[lay.n_lif:])


def _figures(target) -> tuple[dict, dict]:
    energy = {op: float(getattr(target.energy, e)) for op, (e, _) in OPERATIONS.items()}
    time = {op: float(getattr(target.time, t)) for op, (_, t) in OPERATIONS.items()}
    return energy, time


def estimate(art: CompiledNetwork, activity, lay: ChipLayout | None = None) -> dict:
    """JSON-safe cost estimate per inference (one sample of ``steps`` steps) and per step."""
    lay = lay or layout(art)
    e_pj, t_ns = _figures(art.target)
    counts = {op: 0.0 for op in OPERATIONS}
    barrier_ns = serial_ns = 0.0
    mats = work_matrices(lay)
    for b in range(activity.batch):
        spikes = source_spikes(lay, activity, b)
        work = per_step_core_work(lay, spikes, mats)
        core_ns = sum(work[op] * t_ns[op] for op in OPERATIONS)  # (steps, n_cores)
        barrier_ns += float(core_ns.max(axis=1, initial=0.0).sum())
        serial_ns += float(core_ns.sum())
        for op in OPERATIONS:
            counts[op] += float(work[op].sum())
        counts["spike_messages"] += input_messages(lay, spikes)
    return _summarise(art.target, counts, barrier_ns, serial_ns, max(activity.batch, 1), activity.steps, e_pj, t_ns)


def _summarise(target, counts, barrier_ns, serial_ns, batch, steps, e_pj, t_ns) -> dict:
    per_inf = {op: counts[op] / batch for op in OPERATIONS}
    ops = {op: {"count_per_inference": per_inf[op], "count_per_step": per_inf[op] / max(steps, 1),
                "energy_pj_each": e_pj[op], "time_ns_each": t_ns[op],
                "energy_pj_per_inference": per_inf[op] * e_pj[op]} for op in OPERATIONS}
    energy_pj = sum(o["energy_pj_per_inference"] for o in ops.values())
    return {
        "estimate": True, "batch": batch, "steps": steps, "operations": ops,
        "per_inference": {"energy_pj": energy_pj, "time_ns": barrier_ns / batch, "serial_time_ns": serial_ns / batch},
        "per_step": {"energy_pj": energy_pj / max(steps, 1), "time_ns": barrier_ns / batch / max(steps, 1),
                     "serial_time_ns": serial_ns / batch / max(steps, 1)},
        "sources": {"energy": target.energy.source or "not given", "energy_uncertain": target.energy.uncertain,
                    "time": target.time.source or "not given", "time_uncertain": target.time.uncertain},
        "model": "counts x per-operation figures of the target; time = sum over steps of the busiest core's "
                 "work (barrier per step); serial_time = every operation one after another. See docs/reports.md.",
    }
