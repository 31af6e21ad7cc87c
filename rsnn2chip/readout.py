"""Reading a class out of a compiled network: spike counts of its output population.

``rsnn2chip eval`` (on a .r2c) and soft-LIF training (spiking accuracy of the
converted network) both run a compiled network on a backend and take, per
sample, the output neuron that spiked most while the sample lasted plus the
steps its spikes need to reach the output. This module is that one rule, as
training applies it (``train.readout_counts``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from rsnn2chip import ir
from rsnn2chip.artifact import CompiledNetwork
from rsnn2chip.backends import run as run_backend
from rsnn2chip.errors import InputError


def output_population(graph: nx.DiGraph) -> str:
    """The population whose spike counts give the class: the graph's ``output``, else the last LIF one."""
    lif = [p.name for p in ir.populations(graph, "lif")]
    if not lif:
        raise InputError("the compiled network has no LIF population to read a class from")
    out = graph.graph.get("output")
    return out if out in lif else lif[-1]


def readout_depth(graph: nx.DiGraph, output: str) -> int:
    """Steps from an input spike to the output population (sum of projection delays on the shortest path)."""
    inputs = [p.name for p in ir.populations(graph, "input")]
    lengths = []
    for src in inputs:
        try:
            lengths.append(nx.shortest_path_length(graph, src, output, weight=lambda u, v, d: d["proj"].delay))
        except nx.NetworkXNoPath:
            continue
    if not lengths:
        raise InputError("the output population is not reachable from any input", where=output)
    return int(min(lengths))


@dataclass
class Tally:
    """Correct answers and spikes counted over the samples classified so far."""

    output: str
    depth: int
    samples: int = 0
    correct: int = 0
    spikes: dict[str, int] = field(default_factory=dict)  # population -> spikes inside the windows
    slots: dict[str, int] = field(default_factory=dict)  # population -> neuron-steps inside the windows

    @property
    def accuracy(self) -> float:
        return self.correct / max(self.samples, 1)

    def spike_rate(self) -> dict[str, float]:
        return {k: self.spikes[k] / self.slots[k] if self.slots[k] else 0.0 for k in self.spikes}

    @property
    def mean_spike_rate(self) -> float:
        return sum(self.spikes.values()) / max(sum(self.slots.values()), 1)


def tally_for(art: CompiledNetwork) -> Tally:
    output = output_population(art.graph)
    return Tally(output, readout_depth(art.graph, output))


def classify(art: CompiledNetwork, x: np.ndarray, lengths: np.ndarray, labels: np.ndarray, tally: Tally,
             backend: str = "reference") -> np.ndarray:
    """Run one batch ``x`` (B, T, channels; T covers each length plus ``tally.depth``), add it to ``tally``
    and return the predicted classes.

    A sample's window is its first ``length + depth`` steps: its own input and
    the steps its last spikes need to reach the output.
    """
    result = run_backend(art, x, x.shape[1], backend=backend)
    window = np.arange(x.shape[1])[None, :] < (np.asarray(lengths)[:, None] + tally.depth)  # (B, T)
    counts = (result.spikes[tally.output] * window[:, :, None]).sum(axis=1)
    predicted = counts.argmax(axis=1)
    tally.samples += len(labels)
    tally.correct += int((predicted == np.asarray(labels)).sum())
    for name, s in result.spikes.items():
        tally.spikes[name] = tally.spikes.get(name, 0) + int((s * window[:, :, None]).sum())
        tally.slots[name] = tally.slots.get(name, 0) + int(window.sum()) * s.shape[2]
    return predicted
