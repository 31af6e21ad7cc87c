"""snnTorch -> NIR, through snnTorch's own exporter, with the conventions checked.

snnTorch (1.0) discretises with ``syn = alpha syn + x``, ``mem = beta mem + syn``
and exports ``tau = dt / (1 - beta)``, ``r = tau / dt``, ``w_in = tau_syn / dt``
with ``dt = 1e-4``, which the NIR frontend reads back as exactly those updates.
Feed-forward weights act within the step and recurrent ones one step later, as
Loihi's; the one-step synaptic delay of every projection on chip therefore shifts
a layered network by its depth and changes nothing else (docs/byom.md).

What snnTorch does not write into NIR, and Loihi cannot do, is checked on the
modules themselves: the reset mechanism (``"zero"`` is Loihi's; ``"subtract"``
and ``"none"`` are not) and ``reset_delay`` (snnTorch's default ``True`` resets
one step late; ``False`` is Loihi's order).
"""
from __future__ import annotations

import copy

import numpy as np

from rsnn2chip.errors import ModelError
from rsnn2chip.interop import Difference, finish

# snnTorch's exporter hard-codes this time step (snntorch/export_nir.py).
SNNTORCH_DT = 1e-4
RESETS = {"zero": None, "subtract": "reset-by-subtraction", "none": "no-reset"}
# Per-neuron parameters snnTorch's exporter needs as vectors (a scalar fails NIR's type check).
VECTOR_PARAMS = ("beta", "alpha", "threshold")


def neuron_types() -> tuple:
    import snntorch as snn
    return (snn.Leaky, snn.Synaptic, snn.RLeaky, snn.RSynaptic)


def differences(model) -> list[Difference]:
    """The conventions of ``model``'s snnTorch neurons that Loihi cannot follow."""
    found = []
    for name, module in model.named_modules():
        if not isinstance(module, neuron_types()):
            continue
        where = f"{type(module).__name__} '{name}'"
        reset = RESETS.get(module.reset_mechanism, "no-reset")
        if reset:
            found.append(Difference(reset, where, f"reset_mechanism={module.reset_mechanism!r}"))
        if module.reset_mechanism != "none" and getattr(module, "reset_delay", False):
            found.append(Difference("reset-delay", where, "reset_delay=True, snnTorch's default"))
    return found


def _vectorised(model, sample):
    """A copy of ``model`` whose scalar beta/alpha/threshold are one value per neuron.

    The sizes come from running the copy once on ``sample`` and recording each
    neuron module's input width, so the user's model is never modified.
    """
    import torch

    model = copy.deepcopy(model)
    widths, hooks = {}, []

    def record(module, args, output):  # a forward hook; returning None keeps the output
        widths.setdefault(module, int(args[0].shape[-1]))

    for module in model.modules():
        if isinstance(module, neuron_types()):
            hooks.append(module.register_forward_hook(record))
    with torch.no_grad():
        model(sample[None])
    for hook in hooks:
        hook.remove()
    for module, width in widths.items():
        for name in VECTOR_PARAMS:
            value = getattr(module, name, None)
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                full = torch.full((width,), float(value))
                setattr(module, name, torch.nn.Parameter(full) if isinstance(value, torch.nn.Parameter) else full)
        if hasattr(module, "reset_hidden"):
            module.reset_hidden()
    return model


def to_nir(model, sample):
    """Export an snnTorch ``model`` to a ``nir.NIRGraph``, warning about each convention Loihi cannot follow.

    ``sample`` is one input step, ``(n_inputs,)`` or ``(1, n_inputs)``. Scalar
    ``beta``/``alpha``/``threshold`` are expanded per neuron on a copy.
    """
    import snntorch
    import torch
    from snntorch.export_nir import export_to_nir

    sample = torch.as_tensor(sample, dtype=torch.float32)
    sample = sample[0] if sample.ndim == 2 and sample.shape[0] == 1 else sample
    if sample.ndim != 1:
        raise ModelError("sample must be one input step", where="rsnn2chip.interop.snntorch.to_nir",
                         found=tuple(sample.shape), allowed="(n_inputs,) or (1, n_inputs)")
    found = differences(model)
    graph = export_to_nir(_vectorised(model, sample), sample)
    return finish(graph, f"snntorch {snntorch.__version__}", SNNTORCH_DT, found)


def write(model, sample, path):
    """:func:`to_nir`, written to ``path`` atomically; returns the NIR graph."""
    from rsnn2chip.interop import write_nir

    return write_nir(to_nir(model, sample), path)


def run(model, inputs):
    """snnTorch's own simulation: ``inputs`` ``(T, n_inputs)`` -> output spikes ``(T, n_outputs)``.

    For models whose neurons keep their state (``init_hidden=True``) and whose
    ``forward(x_t)`` returns the output spikes (or a tuple starting with them), as
    snnTorch's NIR export requires. Used to check a deployment against its source.
    """
    import torch
    from snntorch import utils

    utils.reset(model)
    out = []
    with torch.no_grad():
        for x_t in torch.as_tensor(inputs, dtype=torch.float32):
            y = model(x_t[None])
            out.append((y[0] if isinstance(y, tuple) else y)[0].numpy().copy())
    utils.reset(model)
    return np.array(out)
