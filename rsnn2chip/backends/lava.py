"""The Lava backend: runs a :class:`LoweredNetwork` in Lava's bit-accurate CPU simulator.

It builds :class:`rsnn2chip.lava.Network` (the public hierarchical process,
see docs/lava.md), feeds it from a ``RingBuffer`` and reads every neuron
process with an ``Extractor``. A batch runs as replicas of the network side
by side in one build (block-diagonal weights), a chunk of
:func:`replicas_per_build` samples at a time: a build costs seconds, which
the replicas share, and the number per build minimises the modelled time.
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


def replicas_per_build(net: LoweredNetwork, batch: int, steps: int) -> int:
    from rsnn2chip.lava.layout import best_replicas
    return best_replicas(net, batch, steps)


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


def default_timeout(net: LoweredNetwork, steps: int, batch: int = 1, probes=()) -> float:
    """A generous limit for :func:`simulate`; a healthy run takes a small fraction of it."""
    per_build = replicas_per_build(net, batch, steps)
    builds = -(-batch // per_build)
    width = max(1.0, per_build * net.n_lif / 1000)
    per_build_s = _BUILD_TIMEOUT_S + steps * process_count(net, probes, per_build) * _STEP_TIMEOUT_S * width
    return _BASE_TIMEOUT_S + builds * per_build_s


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
    if timeout is None:
        timeout = default_timeout(net, steps, batch, probes)
    return run_with_watchdog(_run_batch, (net, inputs, steps, probes, select_tag), timeout,
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


def _run_batch(net, inputs, steps, probes, select_tag):
    spikes, recorded = _empty(inputs.shape[0], steps, net.n_lif, probes)
    width = replicas_per_build(net, inputs.shape[0], steps)
    for start in range(0, inputs.shape[0], width):
        chunk = slice(start, start + width)
        spikes[chunk], chunk_probes = run_replicas(net, inputs[chunk, :steps], steps, probes, select_tag)
        for name in probes:
            recorded[name][chunk] = chunk_probes[name]
    return spikes, recorded


def run_replicas(net: LoweredNetwork, x: np.ndarray, steps: int, probes=(), select_tag: str = "fixed_pt",
                 **network_options) -> tuple[np.ndarray, dict]:
    """One Lava build with one replica per sample of ``x`` ``(R, steps, n_input)``; call in a watchdog.

    ``network_options`` go to :class:`rsnn2chip.lava.Network` (``merge``, ``synapses``, ...).
    """
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc import io
    from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel
    from lava.proc.monitor.process import Monitor

    from rsnn2chip.lava import Network
    from rsnn2chip.lava.neurons import probe_var

    replicas = x.shape[0]
    network = Network(net, replicas=replicas, **network_options)
    if network.has_input:
        data = np.ascontiguousarray(x.transpose(0, 2, 1).reshape(replicas * net.n_input, steps), dtype=np.int32)
        io.source.RingBuffer(data=data).s_out.connect(network.inp)
    sinks, monitors = {}, {}
    for group in network.layout.neuron_groups:
        process = network.neurons[group.name]
        # Not a RingBuffer sink: Lava's Var.get moves arrays one element per
        # message (~0.1 ms each); an Extractor hands over one vector per step.
        sinks[group] = Extractor(shape=process.s_out.shape, buffer_size=steps)
        process.s_out.connect(sinks[group].in_port)
        for name in probes:
            # One Monitor per variable: Monitor's bookkeeping supports one probe only.
            monitors[group, name] = Monitor()
            monitors[group, name].probe(getattr(process, probe_var(group.model, name)), steps)
    # The runtime's INFO report of a model's traceback is not needed: the
    # watchdog records it in the failing process itself, also when Lava hangs.
    # Extractor's models carry no tag; name the synchronous one.
    run_cfg = Loihi2SimCfg(select_tag=select_tag, exception_proc_model_map={Extractor: PyLoihiExtractorModel})
    network.run(condition=RunSteps(num_steps=steps), run_cfg=run_cfg)
    spikes, recorded = _empty(replicas, steps, net.n_lif, probes)
    for group, sink in sinks.items():
        received = np.stack([sink.receive() for _ in range(steps)])
        spikes[:, :, group.lo:group.hi] = _per_replica(received, replicas).astype(bool)
        for name in probes:
            monitor = monitors[group, name]
            process = network.neurons[group.name]
            # Monitor stores floats; u and v are 24-bit, so the float64 values are exact.
            var = probe_var(group.model, name)
            values = np.asarray(monitor.get_data()[process.name][var]).astype(np.int64).astype(np.int32)
            recorded[name][:, :, group.lo:group.hi] = _per_replica(values, replicas)
    # Not in a finally: after a model error stop() waits forever for the dead
    # process; the watchdog kills what is left instead.
    network.stop()
    return spikes, recorded


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
