"""Bring a model from another SNN framework: export it to NIR with its conventions checked.

snnTorch, Norse and rsnn2chip each discretise the same leaky integrate-and-fire
ODE, but not identically. Where a framework's convention is one Loihi's CUBA-LIF
can represent, the exporter here writes NIR that the NIR frontend turns into
exactly the framework's dynamics (tests/test_byom.py runs both and compares
spikes). Where it cannot (reset by subtraction, snnTorch's delayed reset, a
nonzero reset value), it warns with a :class:`ConventionWarning` that names the
difference and the module, and lists it in the graph's ``metadata["conventions"]``,
which the NIR frontend warns about again when the file is compiled.
See docs/byom.md.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

# Every difference a framework's model can have from Loihi's CUBA-LIF, with what it does
# to the deployed network and how to avoid it. Keys are the names warnings carry.
DIFFERENCES = {
    "reset-by-subtraction": (
        "the framework subtracts the threshold from v after a spike; Loihi sets v to zero, so "
        "a neuron that overshot the threshold fires less often on chip",
        "train with reset to zero (snnTorch: reset_mechanism='zero')"),
    "reset-delay": (
        "the framework applies the reset one step late, so every spike is followed by a silent step "
        "whose input is lost; Loihi resets within the step and integrates the next input at once, so "
        "a strongly driven neuron fires up to twice as often on chip",
        "train with reset_delay=False (snnTorch), which is Loihi's order"),
    "no-reset": (
        "the framework never resets v; Loihi always resets v to zero after a spike",
        "train with reset to zero"),
    "reset-value": (
        "the framework resets v to a nonzero value; Loihi resets v to zero",
        "train with v_reset = 0"),
    "bias-onset": (
        "NIR, snnTorch and Norse add a layer's bias from the step its input arrives; on chip a population "
        "that answers d steps late (one per weight layer) gets its bias d steps before its first input, so "
        "its first steps differ",
        "nothing to do for a long input; for short ones, train without biases or with the layer's delay "
        "(rsnn2chip's RSNN)"),
    "synaptic-delay": (
        "NIR, snnTorch and Norse apply a feed-forward weight within the step, Loihi one step later per "
        "projection; here paths with different numbers of weight layers meet (or a connection feeds back "
        "across layers), so their inputs arrive at the chip's neurons misaligned in time",
        "give every path into a population the same number of weight layers, or build the network with "
        "rsnn2chip's RSNN, which trains with Loihi's delays"),
}


class ConventionWarning(UserWarning):
    """A convention of the source framework that the deployed network cannot follow."""

    def __init__(self, name: str, where: str, detail: str = ""):
        effect, fix = DIFFERENCES[name]
        self.name, self.where = name, where
        text = f"{name}: {where}: {effect}" + (f" ({detail})" if detail else "") + f"; fix: {fix}"
        super().__init__(text)


@dataclass(frozen=True)
class Difference:
    name: str
    where: str
    detail: str = ""

    def text(self) -> str:
        return str(ConventionWarning(self.name, self.where, self.detail))


def finish(graph, framework: str, dt: float, differences: list[Difference]):
    """Record ``dt``, the framework and its differences in the NIR metadata, and warn about each."""
    graph.metadata = dict(graph.metadata or {})
    graph.metadata.update(dt=float(dt), framework=framework)
    if differences:
        graph.metadata["conventions"] = [d.text() for d in differences]
    for d in differences:
        warnings.warn(ConventionWarning(d.name, d.where, d.detail), stacklevel=3)
    return graph


def write_nir(graph, path):
    """``nir.write`` to ``path`` atomically; returns ``graph``."""
    import io

    import nir

    from rsnn2chip.fileio import atomic_write_bytes

    buf = io.BytesIO()
    nir.write(buf, graph)
    atomic_write_bytes(path, buf.getvalue())
    return graph
