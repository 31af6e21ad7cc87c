"""The Lava backend: runs a :class:`LoweredNetwork` in Lava's bit-accurate CPU simulator.

It builds :class:`rsnn2chip.lava.Network` (the public hierarchical process,
see docs/lava.md), feeds it from a ``RingBuffer`` and reads every neuron
process with an ``Extractor``. A batch runs by the plan of
:func:`~rsnn2chip.lava.layout.best_batch_plan`: replicas of the network side
by side in one build (block-diagonal weights), and either one build per
round of replicas or one build for all rounds, every state Var set back to
its reset value between them, by ``Network.reset`` (~30 us per element) or
by Lava ``Reset`` processes in the network (a process each, one more step a
round): a build costs seconds, and the plan minimises the modelled time.
The run happens under :func:`~rsnn2chip.backends.watchdog.run_with_watchdog`
because a failing Lava process model can hang the run forever.
"""
from __future__ import annotations

import numpy as np

from rsnn2chip.backends import Backend, Session
from rsnn2chip.backends.plan import LoweredNetwork
from rsnn2chip.backends.watchdog import run_with_watchdog
from rsnn2chip.errors import InputError

PROBES = ("u", "v")
_BASE_TIMEOUT_S = 60.0
_BUILD_TIMEOUT_S = 30.0  # per build
_STEP_TIMEOUT_S = 0.004  # per step and process, ~10x what Lava needs
_SET_TIMEOUT_S = 3e-4  # per element a reset sets, ~10x what Lava needs


def batch_plan(net: LoweredNetwork, batch: int, steps: int):
    from rsnn2chip.lava.layout import best_batch_plan
    return best_batch_plan(net, batch, steps)


def layout(net: LoweredNetwork, replicas: int = 1):
    from rsnn2chip.lava.layout import plan
    return plan(net, replicas=replicas)


def process_count(net: LoweredNetwork, probes=(), replicas: int = 1) -> int:
    """Lava processes one build has: the network's, its source, one sink and one monitor per var per neuron process."""
    if net.n_lif == 0:
        return 0
    plan = layout(net, replicas)
    has_source = any(g.source == "input" for g in plan.synapse_groups)
    return plan.process_count + int(has_source) + len(plan.neuron_groups) * (1 + len(probes))


def default_timeout(net: LoweredNetwork, steps: int, batch: int = 1, probes=(), plan=None) -> float:
    """A generous limit for :func:`simulate` by ``plan`` (default :func:`batch_plan`); a healthy run takes a
    small fraction of it."""
    from rsnn2chip.lava.layout import reset_elements, window_resets

    plan = batch_plan(net, batch, steps) if plan is None else plan
    rounds = -(-batch // plan.replicas)
    builds = 1 if plan.in_sequence else rounds
    width = max(1.0, plan.replicas * net.n_lif / 1000)
    processes, resets_s = process_count(net, probes, plan.replicas), 0.0
    if plan.reset_in_network:  # one more step a round, and a Reset process per state Var at every step
        processes += window_resets(layout(net, plan.replicas)) or 0
    elif plan.in_sequence:
        resets_s = (rounds - 1) * reset_elements(layout(net, plan.replicas)) * _SET_TIMEOUT_S
    step_s = (steps + plan.reset_in_network) * processes * _STEP_TIMEOUT_S * width
    return _BASE_TIMEOUT_S + builds * _BUILD_TIMEOUT_S + rounds * step_s + resets_s


def simulate(net: LoweredNetwork, inputs: np.ndarray, steps: int, probes=(),
             timeout: float | None = None, select_tag: str = "fixed_pt") -> tuple[np.ndarray, dict]:
    """Run ``steps`` steps for each sample of ``inputs`` in Lava.

    Same contract as :func:`rsnn2chip.backends.reference.simulate`: ``inputs``
    is ``(B, steps, n_input)`` of 0/1 spikes or graded payloads; returns spikes ``(B, steps, n_lif)``
    bool and probes ``(B, steps, n_lif)`` int32. Raises
    :class:`~rsnn2chip.errors.BackendError` if Lava fails or exceeds
    ``timeout`` seconds (default :func:`default_timeout`).
    """
    probes = tuple(probes)
    inputs = _check_inputs(net, inputs, steps, probes)
    batch = inputs.shape[0]
    if net.n_lif == 0 or steps == 0 or batch == 0:
        return _empty(batch, steps, net.n_lif, probes)
    plan = batch_plan(net, batch, steps)  # once: the watchdog's child receives it
    if timeout is None:
        timeout = default_timeout(net, steps, batch, probes, plan)
    return run_with_watchdog(_run_batch, (net, inputs, steps, probes, select_tag, plan), timeout,
                             f"Lava simulation ({batch} sample(s), {steps} steps)")


def _check_inputs(net, inputs, steps, probes) -> np.ndarray:
    unknown = [p for p in probes if p not in PROBES]
    if unknown:
        raise InputError("unknown probe", found=unknown, allowed=list(PROBES))
    inputs = np.asarray(inputs)
    if inputs.ndim != 3 or inputs.shape[1] < steps or inputs.shape[2] != net.n_input:
        raise InputError("inputs must be (batch, steps, n_input)", found=inputs.shape,
                         allowed=f"(B, >= {steps}, {net.n_input})")
    return inputs


def _empty(batch, steps, n, probes):
    return (np.zeros((batch, steps, n), bool),
            {name: np.zeros((batch, steps, n), np.int32) for name in probes})


def _run_batch(net, inputs, steps, probes, select_tag, plan):
    spikes, recorded = _empty(inputs.shape[0], steps, net.n_lif, probes)
    width = plan.samples_per_build(inputs.shape[0])
    for start in range(0, inputs.shape[0], width):
        chunk = slice(start, start + width)
        x = inputs[chunk, :steps]
        spikes[chunk], chunk_probes = run_build(net, x, steps, probes, select_tag,
                                                replicas=min(plan.replicas, x.shape[0]),
                                                reset_in_network=plan.reset_in_network)
        for name in probes:
            recorded[name][chunk] = chunk_probes[name]
    return spikes, recorded


def run_build(net: LoweredNetwork, x: np.ndarray, steps: int, probes=(), select_tag: str = "fixed_pt",
              replicas: int | None = None, reset_in_network: bool = False,
              **network_options) -> tuple[np.ndarray, dict]:
    """One Lava build for the samples of ``x`` ``(S, steps, n_input)``; call in a watchdog.

    ``replicas`` samples (default: all ``S``) run side by side; rounds of them follow each other in the
    same build, the network reset between rounds, so every sample runs as in a build of its own: by
    ``Reset`` processes inside it (``reset_in_network``, ``Network(reset_interval=...)``) or else by
    :meth:`rsnn2chip.lava.Network.reset`. ``network_options`` go to :class:`rsnn2chip.lava.Network` (``merge``,
    ``synapses``, ...).
    """
    from lava.magma.core.run_conditions import RunSteps
    from lava.proc import io
    from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel, VarWire

    from rsnn2chip.lava import Network
    from rsnn2chip.lava.neurons import probe_var
    from rsnn2chip.lava.run_config import sim_config

    samples = x.shape[0]
    replicas = replicas or samples
    rounds = -(-samples // replicas)
    # With the reset in the network, each round runs in a window of one step more than its samples: the
    # Reset processes write in the management phase of the window's last step, the same phase in which the
    # probes read u and v, so that step must not be a sample's.
    window = steps + 1 if reset_in_network and rounds > 1 else steps
    if window > steps:
        network_options["reset_interval"] = window
    # Pad the last round with silent samples (every round fills all replicas), and each sample to the window.
    x = np.pad(x, ((0, rounds * replicas - samples), (0, window - steps), (0, 0)))
    network = Network(net, replicas=replicas, **network_options)
    processes = [network, *network.sub_processes().values()]
    if network.has_input:
        # Round k's samples side by side, the rounds one after another in time.
        data = x.reshape(rounds, replicas, window, net.n_input).transpose(1, 3, 0, 2)
        data = np.ascontiguousarray(data.reshape(replicas * net.n_input, rounds * window), dtype=np.int32)
        source = io.source.RingBuffer(data=data)
        source.s_out.connect(network.inp)
        processes.append(source)
    sinks, monitors = {}, {}
    for group in network.layout.neuron_groups:
        process = network.neurons[group.name]
        # Not a RingBuffer sink: Lava's Var.get moves arrays one element per
        # message (~0.1 ms each); an Extractor hands over one vector per step.
        sinks[group] = Extractor(shape=process.s_out.shape, buffer_size=window)
        process.s_out.connect(sinks[group].in_port)
        for name in probes:
            # A VarWire, not a Monitor: Monitor.get_data moves its whole record one element per message,
            # minutes for a membrane readout of 256 replicas; a VarWire hands over one vector per step.
            monitors[group, name] = VarWire(buffer_size=window)
            monitors[group, name].connect_var(getattr(process, probe_var(group.model, name)))
    # Extractor's models carry no tag; name the synchronous one. Every other model as Lava selects it, searched
    # once per Process class instead of once per process (sim_config).
    run_cfg = sim_config(select_tag, [*processes, *sinks.values(), *monitors.values()],
                         {Extractor: PyLoihiExtractorModel})
    spikes, recorded = _empty(rounds * replicas, steps, net.n_lif, probes)
    for k in range(rounds):
        if k and not network.resets:
            network.reset()
        network.run(condition=RunSteps(num_steps=window), run_cfg=run_cfg)
        batch = slice(k * replicas, (k + 1) * replicas)
        for group, sink in sinks.items():
            received = np.stack([sink.receive() for _ in range(window)][:steps])
            spikes[batch, :, group.lo:group.hi] = _per_replica(received, replicas).astype(bool)
        for (group, name), wire in monitors.items():
            # The wire carries floats; u and v are 24-bit, so the float64 values are exact.
            values = np.stack([wire.receive() for _ in range(window)][:steps]).astype(np.int64).astype(np.int32)
            recorded[name][batch, :, group.lo:group.hi] = _per_replica(values, replicas)
    # Not in a finally: after a model error stop() waits forever for the dead
    # process; the watchdog kills what is left instead.
    network.stop()
    # Each VarWire runs a shared-memory manager of its own, which only its __del__ shuts down, and Lava's
    # runtime keeps the wire referenced: left to the interpreter's exit, its shared memory is reported as
    # leaked. This is the shutdown __del__ performs (VarWire has no public close).
    for wire in monitors.values():
        wire._multi_processing.stop()
    return spikes[:samples], {name: values[:samples] for name, values in recorded.items()}


def _per_replica(data: np.ndarray, replicas: int) -> np.ndarray:
    """``(steps, replicas * size)`` -> ``(replicas, steps, size)``."""
    steps, width = data.shape
    return data.reshape(steps, replicas, width // replicas).transpose(1, 0, 2)


class LavaSession(Session):
    """Each ``run`` is one watchdog-guarded Lava run (one build per chunk of replicas)."""

    def __init__(self, backend, compiled, options):
        super().__init__(backend, compiled, options)
        # The target names its simulator; targets.py validates it and maps it to Lava's model tag.
        self.select_tag = compiled.target.info.select_tag

    def simulate(self, inputs, steps, probes):
        return simulate(self.network, inputs, steps, probes, timeout=self.options.get("timeout"),
                        select_tag=self.select_tag)


class LavaBackend(Backend):
    name = "lava"
    summary = "Lava's CPU simulator (Loihi2SimCfg, the target's model tag) via rsnn2chip.lava.Network"
    options = ("timeout",)
    preferred_batch = 256  # a build costs seconds; replicas share it
    session_type = LavaSession


BACKEND = LavaBackend()
