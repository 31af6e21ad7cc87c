"""``Network``: a compiled rsnn2chip network as one hierarchical Lava process.

Kept alone in this folder because Lava's process-model discovery executes
every module next to a Process definition. The plan (which processes, which
weights) comes from :mod:`rsnn2chip.lava.layout`; this module only creates
Lava's standard processes from it and wires them.
"""
from __future__ import annotations

from pathlib import Path

from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.sub.model import AbstractSubProcessModel
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from rsnn2chip import neurons
from rsnn2chip.backends.plan import LoweredNetwork, lower
from rsnn2chip.errors import InputError
from rsnn2chip.lava.layout import (GRADED_KERNELS, INPUT, SPARSE_KERNELS, Layout, group_params, is_count, plan,
                                   state_resets, window_resets)
from rsnn2chip.lava.neurons import neuron_process
from rsnn2chip.lava.population import PopulationView


class Network(AbstractProcess):
    """A compiled network (``.r2c`` path, :class:`~rsnn2chip.artifact.CompiledNetwork` or lowered network).

    Ports: ``inp`` takes the input channels (``replicas * n_input``; graded payloads for a network
    compiled from graded input), ``out``
    sends the spikes of the neuron process that holds the readout population:
    ``readout.select(data)`` picks the readout's columns. With
    ``separate_readout=True`` that process holds the readout alone, so
    ``out`` is exactly the readout (``replicas * readout size``); by default
    the cheapest layout decides. ``populations[name]`` gives every
    population's process and slice, for probing spikes and ``u`` / ``v``.
    Built from Lava's standard processes only: each neuron model's own (``LIF``, ``ATRLIF``), ``Dense``
    and ``Sparse``.

    ``replicas`` runs that many independent copies side by side (batched
    evaluation). ``merge`` and ``synapses`` override the layout choice
    (see :mod:`rsnn2chip.lava.layout`); ``hardware=True`` keeps to what
    Loihi 2 runs as the simulator does (no ``dense-dot`` or ``sparse-dot`` kernel, no automatic parts), for
    ``Loihi2HwCfg``. ``synapse_parts`` splits every ``Sparse`` process by target rows into that many, which
    Lava runs on separate cores; by default ("auto") only heavy ones, up to the cores available.
    ``input_message_bits`` > 0 makes the input synapses
    take graded spikes of that many bits.

    ``reset_interval`` (as in netx's ``Network``) sets every state Var back to its reset value after every
    ``reset_interval`` steps, from the end of step ``reset_interval`` on, so that samples can follow each other in
    one run, each in a window of its own. Exact: unlike a ``LIFReset``, it also empties the synapses' one-step
    buffers, so no spike crosses into the next window. It adds one Lava ``Reset`` process per state Var, each
    writing one vector per reset (not one element per message, as :meth:`reset` does).
    """

    def __init__(self, network, *, readout: str | None = None, replicas: int = 1, merge: str = "auto",
                 synapses: str = "auto", separate_readout: bool = False, hardware: bool = False,
                 input_message_bits: int = 0, reset_interval: int | None = None,
                 synapse_parts: int | str = "auto", name: str | None = None) -> None:
        lowered, readout = _lowered(network, readout)
        layout = plan(lowered, readout, replicas, merge, synapses, separate_readout, hardware, synapse_parts)
        # A graded input's synapses read payloads of the recorded width unless told otherwise.
        input_message_bits = input_message_bits or max(
            [p.payload_bits for p in lowered.projections if p.source == INPUT], default=0)
        super().__init__(name=name or "rsnn2chip_network", replicas=replicas)
        self.layout = layout
        self.neurons = {g.name: neuron_process(g.model, group_params(lowered, g), replicas, f"neurons[{g.name}]")
                        for g in layout.neuron_groups}
        self.synapses = [_synapse_process(layout, g, input_message_bits if g.source == INPUT else 0, i)
                         for i, g in enumerate(layout.synapse_groups)]
        self.populations = {
            pop: PopulationView(pop, self.neurons[layout.neuron_group_of(pop).name], *layout.local_slice(pop),
                                layout.neuron_group_of(pop).size)
            for pop in lowered.lif_slices}
        self.inp = InPort(shape=(replicas * lowered.n_input,))
        readout_process = self.populations[layout.readout].process
        self.out = OutPort(shape=readout_process.s_out.shape)
        for group, synapse in zip(layout.synapse_groups, self.synapses):
            if group.source == INPUT:
                self.inp.connect(synapse.s_in)
            else:
                self.neurons[group.source].s_out.connect(synapse.s_in)
            synapse.a_out.connect(self.neurons[group.target].a_in)
        readout_process.s_out.connect(self.out)
        self.resets = [] if reset_interval is None else self._window_resets(reset_interval)

    def _state_vars(self):
        """``(Var, reset value per element)`` for every state Var (:func:`~rsnn2chip.lava.layout.state_resets`)."""
        for (kind, key, var), value in state_resets(self.layout).items():
            process = self.neurons[key] if kind == "neurons" else self.synapses[key]
            yield getattr(process, var), value

    def _window_resets(self, interval: int) -> list:
        from lava.proc.io.reset import Reset

        if not is_count(interval):
            raise InputError("reset_interval must be a whole number of steps >= 1", found=interval,
                             allowed="an int >= 1, or None for no reset")
        if window_resets(self.layout) is None:
            models = sorted({g.model for g in self.layout.neuron_groups
                             if not neurons.get(g.model).lava_reset_in_run})
            raise InputError("this network's neuron state cannot be reset inside a Lava run", found=models,
                             allowed="CUBA-LIF networks", fix="run samples in separate runs with reset()")
        resets = []
        for var, value in self._state_vars():
            # One value per Var (lava_reset_in_run). Reset fires in the management phase after step t when
            # (t - 1) % interval == offset: the end of every window of `interval` steps.
            reset = Reset(reset_value=int(value.flat[0]), interval=int(interval), offset=int(interval) - 1)
            reset.connect_var(var)
            resets.append(reset)
        return resets

    def reset(self) -> None:
        """Set every state Var back to its value in a new build: each neuron model's ``lava_reset`` and every
        synapse's one-step buffer. Between runs only; Lava moves each element in its own message (~30 us)."""
        for var, value in self._state_vars():
            var.set(value)

    @property
    def readout(self) -> PopulationView:
        return self.populations[self.layout.readout]

    @property
    def has_input(self) -> bool:
        """Whether any synapse reads ``inp`` (Lava cannot compile a source wired to an unused port)."""
        return any(g.source == INPUT for g in self.layout.synapse_groups)

    def sub_processes(self) -> dict[str, AbstractProcess]:
        procs = {f"neurons_{i}": p for i, p in enumerate(self.neurons.values())}
        procs.update({f"synapses_{i}": p for i, p in enumerate(self.synapses)})
        procs.update({f"resets_{i}": p for i, p in enumerate(self.resets)})
        return procs


@implements(proc=Network, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class NetworkModel(AbstractSubProcessModel):
    """Expands ``Network`` into the processes it created (Lava finds them as attributes)."""

    def __init__(self, proc: Network) -> None:
        for attr, process in proc.sub_processes().items():
            setattr(self, attr, process)


def _lowered(network, readout: str | None) -> tuple[LoweredNetwork, str | None]:
    if isinstance(network, LoweredNetwork):
        return network, readout
    if isinstance(network, (str, Path)):
        from rsnn2chip import artifact
        network = artifact.load(network)
    graph = network.graph
    lowered = lower(graph)
    if readout is None and graph.graph.get("output") in lowered.lif_slices:
        readout = graph.graph["output"]
    return lowered, readout


def _synapse_process(layout: Layout, group, num_message_bits: int, index: int):
    from lava.proc.dense.process import Dense
    from lava.proc.sparse.process import Sparse
    from lava.utils.weightutils import SignMode

    if group.kind in GRADED_KERNELS:
        # Lava's Dense and Sparse then compute weights.dot(s_in): for 0/1 spikes the same integer sum.
        num_message_bits = max(num_message_bits, 1)
    options = dict(weight_exp=group.weight_exp, num_weight_bits=8, sign_mode=SignMode[group.sign_mode.upper()],
                   num_message_bits=num_message_bits, name=f"synapses[{index}]:{group.source}->{group.target}")
    weights = layout.weights(group)
    if group.kind in SPARSE_KERNELS:
        return Sparse(weights=weights, **options)
    return Dense(weights=weights.toarray(), **options)
