"""How a class is read from the output population: one rule for float, QAT, reference and Lava.

A readout names what it reads from the output population over each sample's *window*, the steps
``[0, length + depth)`` (every projection delays by one step, so the last input step reaches the output
``depth`` steps later), and how that becomes a score per class:

* ``spike_count``: the output neurons fire; the score is the number of spikes in the window. A chip can
  apply it by counting spikes.
* ``membrane``: the output neurons never fire (a leaky integrator: the compiler gives them the largest
  threshold Loihi has); the score is the sum of their membrane voltage ``v`` over the window, which a
  chip reads by probing ``v``. This is the usual readout of recurrent SNNs on temporal tasks (e.g.
  Cramer et al. 2020, Bellec et al. 2020): it passes a graded, always-differentiable signal to the loss.

The predicted class is the argmax of the scores (ties -> lowest index, as ``argmax`` does everywhere).
Training takes the cross-entropy of ``logits``: the counts themselves for ``spike_count``, the *mean*
voltage over the window for ``membrane`` (the sum divided by the window length, which keeps the logits'
scale independent of the sample's length and leaves the argmax unchanged).

Steps after a sample's window (batch padding) never count, so a prediction does not depend on which other
samples share its batch. ``rsnn2chip eval`` on a .r2c and soft-LIF training classify compiled networks with
:func:`classify`, the same rule on a backend's run.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
import numpy as np
import torch

from rsnn2chip import ir
from rsnn2chip.errors import InputError


@dataclass(frozen=True)
class Readout:
    name: str
    # What the output population provides: "spikes" (it fires) or "v" (it never fires; v is probed).
    reads: str
    doc: str

    @property
    def output_fires(self) -> bool:
        return self.reads == "spikes"

    def logits(self, trace: torch.Tensor, lengths: torch.Tensor, depth: int) -> torch.Tensor:
        """``trace`` ``(B, T, n)`` (spikes or v of the output layer) -> ``(B, n)`` training logits."""
        mask = window_mask(trace.shape[1], lengths, depth)
        summed = (trace * mask[:, :, None].to(trace.dtype)).sum(dim=1)
        if self.output_fires:
            return summed
        return summed / mask.sum(dim=1, keepdim=True).to(trace.dtype)

    def scores(self, trace: np.ndarray, lengths: np.ndarray, depth: int) -> np.ndarray:
        """Integer scores ``(B, n)`` from a compiled run's trace ``(B, T, n)`` (0/1 spikes or integer v)."""
        window = np.arange(trace.shape[1])[None, :] < (np.asarray(lengths)[:, None] + depth)
        return (trace.astype(np.int64) * window[:, :, None]).sum(axis=1)

    def describe(self) -> dict:
        return {"kind": self.name, "reads": self.reads, "window": "length + depth", "doc": self.doc}


READOUTS: dict[str, Readout] = {
    "spike_count": Readout("spike_count", "spikes",
                           "class = argmax over output neurons of spikes in steps [0, length + depth)"),
    "membrane": Readout("membrane", "v",
                        "class = argmax over non-firing output neurons of the summed membrane voltage v "
                        "in steps [0, length + depth)"),
}


def window_mask(steps: int, lengths: torch.Tensor, depth: int) -> torch.Tensor:
    """``(B, steps)`` True inside each sample's readout window."""
    return torch.arange(steps, device=lengths.device)[None, :] < (lengths[:, None] + depth)


def output_population(graph: nx.DiGraph) -> str:
    """The population the class is read from: the graph's ``output``, else the last LIF one."""
    lif = [p.name for p in ir.populations(graph, "lif")]
    if not lif:
        raise InputError("the compiled network has no LIF population to read a class from")
    out = graph.graph.get("output")
    return out if out in lif else lif[-1]


def compiled_readout(graph: nx.DiGraph) -> tuple[Readout, str]:
    """The readout of a compiled network and its output population: ``membrane`` when that population
    never fires (its v is read), else ``spike_count``."""
    output = output_population(graph)
    return READOUTS["spike_count" if ir.population(graph, output).fires else "membrane"], output


def run_probes(readout: Readout) -> tuple[str, ...]:
    """What a backend run must record for ``readout`` besides spikes."""
    return () if readout.output_fires else ("v",)


def trace_of(readout: Readout, result, output: str) -> np.ndarray:
    """The output population's readout trace from a backend ``RunResult``."""
    return result.spikes[output] if readout.output_fires else result.probes["v"][output]


def readout_depth(graph: nx.DiGraph, output: str) -> int:
    """Steps from an input spike to the output population (sum of projection delays on the shortest path)."""
    lengths = []
    for src in (p.name for p in ir.populations(graph, "input")):
        try:
            lengths.append(nx.shortest_path_length(graph, src, output, weight=lambda u, v, d: d["proj"].delay))
        except nx.NetworkXNoPath:
            continue
    if not lengths:
        raise InputError("the output population is not reachable from any input", where=output)
    return int(min(lengths))


def predicted_classes(graph, result) -> tuple[np.ndarray, Readout]:
    """Class of each sample of a backend run, read over the whole run (``RunResult`` of every step)."""
    readout, output = compiled_readout(graph)
    trace = trace_of(readout, result, output)
    return readout.scores(trace, np.full(trace.shape[0], trace.shape[1]), 0).argmax(axis=1), readout


# --------------------------------------------------------------------------- classifying compiled runs

@dataclass
class Tally:
    """Correct answers and spikes counted over the samples classified so far."""

    readout: Readout
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


def tally_for(art) -> Tally:
    readout, output = compiled_readout(art.graph)
    return Tally(readout, output, readout_depth(art.graph, output))


def classify(session, x: np.ndarray, lengths: np.ndarray, labels: np.ndarray, tally: Tally) -> np.ndarray:
    """Run one batch ``x`` (B, T, channels; T covers each length plus ``tally.depth``) in an opened backend
    ``session`` (``rsnn2chip.backends.get_backend(name).open(art)``), add it to ``tally`` and return the
    predicted classes. A sample's window is its first ``length + depth`` steps."""
    result = session.run(x, x.shape[1], probes=run_probes(tally.readout))
    window = np.arange(x.shape[1])[None, :] < (np.asarray(lengths)[:, None] + tally.depth)  # (B, T)
    predicted = tally.readout.scores(trace_of(tally.readout, result, tally.output), lengths, tally.depth).argmax(1)
    tally.samples += len(labels)
    tally.correct += int((predicted == np.asarray(labels)).sum())
    for name, s in result.spikes.items():
        tally.spikes[name] = tally.spikes.get(name, 0) + int((s * window[:, :, None]).sum())
        tally.slots[name] = tally.slots.get(name, 0) + int(window.sum()) * s.shape[2]
    return predicted
