"""Norse -> NIR for chains of Norse cells, including the recurrent ones Norse's exporter skips.

Norse (1.1) steps a ``LIFCell``/``LIFRecurrentCell`` as ``i += W x (+ W_rec z[t-1])``,
``v += dt tau_mem_inv (v_leak - v + i)``, then decays ``i`` by ``dt tau_syn_inv``:
the input current jumps by ``W x`` itself. NIR's forward-Euler ``CubaLIF`` adds
``dt / tau_syn * w_in * W x``, so this exporter writes ``w_in = tau_syn / dt``
(``norse.torch.to_nir`` writes ``w_in = 1``, which under NIR's equations is
``dt / tau_syn`` times weaker input than Norse simulates). ``LIFBoxCell`` and
``LIBoxCell`` integrate their input directly and are NIR's ``LIF`` and ``LI``
as they stand. Like snnTorch, Norse applies feed-forward weights within the
step and recurrent ones a step later, so the only timing difference on chip is
a shift by each layer's depth (docs/byom.md).

The model is a chain: a ``torch.nn.Sequential`` or ``norse.torch.SequentialState``
whose children are the supported modules of :data:`converters`.
"""
from __future__ import annotations

import numpy as np

from rsnn2chip.errors import ModelError, Problem
from rsnn2chip.interop import Difference, finish

NORSE_DT = 1e-3  # Norse's default integration step


def _vec(value, size: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(value.detach().cpu() if hasattr(value, "detach") else value,
                                      dtype=np.float64), (size,)).copy()


def _reset(where: str, p, found: list[Difference]) -> None:
    if np.any(np.asarray(p.v_reset) != 0):
        found.append(Difference("reset-value", where, f"v_reset={np.asarray(p.v_reset).ravel()[:3]}"))
    method = getattr(getattr(p, "reset_method", None), "__name__", "reset_value")
    if method == "reset_subtract":
        found.append(Difference("reset-by-subtraction", where, "reset_method=reset_subtract"))


def _cuba(where: str, p, size: int, dt: float, found: list[Difference]):
    import nir
    _reset(where, p, found)
    tau_syn = 1 / _vec(p.tau_syn_inv, size)
    return nir.CubaLIF(tau_syn=tau_syn, tau_mem=1 / _vec(p.tau_mem_inv, size), r=np.ones(size),
                       v_leak=_vec(p.v_leak, size), v_threshold=_vec(p.v_th, size), w_in=tau_syn / dt)


def _weights(w) -> np.ndarray:
    return np.asarray(w.detach().cpu(), dtype=np.float64)


class _Chain:
    """Builds a flat NIR graph: each module adds nodes and returns the node that carries its output."""

    def __init__(self, n_inputs: int, dt: float):
        import nir
        self.dt = dt
        self.nodes = {"input": nir.Input(input_type=np.array([n_inputs]))}
        self.edges: list[tuple[str, str]] = []
        self.differences: list[Difference] = []
        self.problems: list[Problem] = []

    def add(self, name: str, node, source: str) -> str:
        self.nodes[name] = node
        self.edges.append((source, name))
        return name

    def linear(self, name, module, source, size):
        import nir
        w = _weights(module.weight)
        node = (nir.Affine(weight=w, bias=_weights(module.bias)) if module.bias is not None
                else nir.Linear(weight=w))
        return self.add(name, node, source), w.shape[0]

    def lif_cell(self, name, module, source, size):
        return self.add(name, _cuba(f"LIFCell '{name}'", module.p, size, self.dt, self.differences), source), size

    def lif_recurrent_cell(self, name, module, source, size):
        import nir
        hidden = module.hidden_size
        w_in = self.add(f"{name}.w_in", nir.Linear(weight=_weights(module.input_weights)), source)
        lif = self.add(f"{name}.lif", _cuba(f"LIFRecurrentCell '{name}'", module.p, hidden, self.dt,
                                            self.differences), w_in)
        self.add(f"{name}.w_rec", nir.Linear(weight=_weights(module.recurrent_weights)), lif)
        self.edges.append((f"{name}.w_rec", lif))
        return lif, hidden

    def lif_box_cell(self, name, module, source, size):
        import nir
        _reset(f"LIFBoxCell '{name}'", module.p, self.differences)
        p = module.p
        node = nir.LIF(tau=1 / _vec(p.tau_mem_inv, size), r=np.ones(size), v_leak=_vec(p.v_leak, size),
                       v_threshold=_vec(p.v_th, size))
        return self.add(name, node, source), size

    def li_box_cell(self, name, module, source, size):
        import nir
        p = module.p
        return self.add(name, nir.LI(tau=1 / _vec(p.tau_mem_inv, size), r=np.ones(size),
                                     v_leak=_vec(p.v_leak, size)), source), size


def converters() -> dict:
    """Module type -> the ``_Chain`` method that writes it."""
    import torch
    from norse.torch import LIBoxCell, LIFBoxCell, LIFCell, LIFRecurrentCell
    return {torch.nn.Linear: _Chain.linear, LIFCell: _Chain.lif_cell, LIFRecurrentCell: _Chain.lif_recurrent_cell,
            LIFBoxCell: _Chain.lif_box_cell, LIBoxCell: _Chain.li_box_cell}


def to_nir(model, n_inputs: int, dt: float = NORSE_DT):
    """Export a chain of Norse cells to a ``nir.NIRGraph`` (see the module docstring)."""
    import nir
    import norse

    table = converters()
    chain = _Chain(n_inputs, dt)
    source, size = "input", n_inputs
    for name, module in model.named_children():
        convert = table.get(type(module))
        if convert is None:
            chain.problems.append(Problem("module rsnn2chip cannot export from Norse", where=f"module '{name}'",
                                          found=type(module).__name__,
                                          allowed=", ".join(t.__name__ for t in table),
                                          fix="deploy dense LIF networks; see docs/byom.md"))
            continue
        source, size = convert(chain, name, module, source, size)
    if chain.problems:
        raise ModelError(problems=chain.problems)
    chain.add("output", nir.Output(output_type=np.array([size])), source)
    graph = nir.NIRGraph(nodes=chain.nodes, edges=chain.edges)
    return finish(graph, f"norse {norse.__version__}", dt, chain.differences)


def write(model, n_inputs: int, path, dt: float = NORSE_DT):
    """:func:`to_nir`, written to ``path`` atomically; returns the NIR graph."""
    from rsnn2chip.interop import write_nir

    return write_nir(to_nir(model, n_inputs, dt), path)


def run(model, inputs):
    """Norse's own simulation of a chain (``SequentialState``): ``(T, n_inputs)`` -> output ``(T, n_out)``."""
    import torch

    state, out = None, []
    with torch.no_grad():
        for x_t in torch.as_tensor(inputs, dtype=torch.float32):
            y, state = model(x_t[None], state)
            out.append(y[0].numpy().copy())
    return np.array(out)
