"""A chain of spiking layers described by a JSON-safe ``arch`` dict.

Arch schema (version 1)::

    {"format": "rsnn2chip.arch", "version": 1, "name": str, "input_size": int,
     "layers": [{"type": <a key of LAYER_TYPES>, "name": str, "size": int,
                 "neuron": {"model": <a key of neurons.NEURON_MODELS, default "cuba_lif">,
                            ...that model's parameters, e.g. "current_decay", "voltage_decay",
                            "threshold", "bias"},
                 ...type-specific keys (see each layer class's OPTIONS)}, ...],
     "readout": "spike_count" | "membrane"}

Layers are chained input -> layers[0] -> layers[1] -> ...; each neuron
parameter is one number or a list with one value per neuron (see
docs/neurons.md for each model's parameters and defaults). The arch
records structure and initial values; trained values (weights, adapted
``voltage_decay`` and ``input_gain``) live in the ``state_dict``.
"""
from __future__ import annotations

import copy

import networkx as nx
import torch
from torch import nn

from rsnn2chip import ir
from rsnn2chip.errors import InputError, ModelError, Problem
from rsnn2chip.nn.layers import LAYER_TYPES, check_layer_cfg, is_positive_int
from rsnn2chip.readout import READOUTS, Readout

ARCH_FORMAT = "rsnn2chip.arch"
ARCH_VERSION = 1
INPUT_NAME = "input"
LOGITS_KEY = "logits"
# Under this key the forward pass returns the output layer's voltage (B, T, n) when the readout reads it.
VOLTAGE_KEY = "output_v"
ARCH_KEYS = ("format", "version", "name", "input_size", "layers", "readout")


def check_arch(arch) -> list[Problem]:
    """Every problem with a network arch (empty when it is valid)."""
    if not isinstance(arch, dict):
        return [Problem("arch must be a mapping", found=type(arch).__name__)]
    problems = check_header(arch)
    layers = arch.get("layers")
    if not isinstance(layers, list) or not layers:
        problems.append(Problem("arch needs a non-empty list 'layers'", where="arch.layers", found=repr(layers)))
        return problems
    for index, cfg in enumerate(layers):
        problems += check_layer_cfg(cfg, index)
    problems += check_unique_names(layers)
    return problems


def check_header(arch: dict) -> list[Problem]:
    problems = []
    if arch.get("format") != ARCH_FORMAT:
        problems.append(Problem("not an rsnn2chip arch", where="arch.format", found=repr(arch.get("format")),
                                allowed=repr(ARCH_FORMAT)))
    if arch.get("version") != ARCH_VERSION:
        problems.append(Problem("unsupported arch version", where="arch.version", found=repr(arch.get("version")),
                                allowed=ARCH_VERSION))
    if not isinstance(arch.get("name"), str) or not arch.get("name"):
        problems.append(Problem("arch name must be a non-empty string", where="arch.name",
                                found=repr(arch.get("name"))))
    if not is_positive_int(arch.get("input_size")):
        problems.append(Problem("input_size must be a positive integer", where="arch.input_size",
                                found=repr(arch.get("input_size"))))
    if not isinstance(arch.get("readout"), str) or arch.get("readout") not in READOUTS:
        problems.append(Problem("unknown readout", where="arch.readout", found=repr(arch.get("readout")),
                                allowed=sorted(READOUTS)))
    unknown = sorted(set(arch) - set(ARCH_KEYS), key=str)
    if unknown:
        problems.append(Problem("unknown arch keys", where="arch", found=unknown, allowed=list(ARCH_KEYS),
                                fix="check the spelling"))
    return problems


def check_unique_names(layers: list) -> list[Problem]:
    seen, problems = set(), []
    for index, cfg in enumerate(layers):
        name = cfg.get("name") if isinstance(cfg, dict) else None
        if not isinstance(name, str):
            continue  # check_layer_cfg names the bad value
        if name in seen:
            problems.append(Problem("duplicate layer name", where=f"layer {index} ({name!r})", found=name,
                                    fix="give every layer its own name"))
        seen.add(name)
    return problems


class LayerChain(nn.Module):
    """Layers chained input -> layers[0] -> layers[1] ...; the output is read by the arch's readout.

    Shared by :class:`RSNN` and the architecture-search supernet, so both run and read out identically.
    Subclasses set ``name``, ``input_size``, ``readout_name`` and fill ``layers``, then call
    :meth:`set_output_firing`.
    """

    layers: nn.ModuleDict

    @property
    def output_layer(self) -> str:
        return next(reversed(self.layers.keys()))

    @property
    def readout(self) -> Readout:
        return READOUTS[self.readout_name]

    def set_output_firing(self) -> None:
        self.layers[self.output_layer].fires = self.readout.output_fires

    def readout_trace(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """What the readout reads from a forward pass's outputs: output spikes or output voltage."""
        return outputs[self.output_layer] if self.readout.output_fires else outputs[VOLTAGE_KEY]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``x`` ``(B, T, input_size)`` -> ``{layer name: spikes (B, T, size), "logits": (B, n_out)}``.

        ``x`` holds 0/1 spikes or, for graded input, the payload values. With a membrane readout the output
        layer's entry is all zeros (it never fires) and its voltage is under ``VOLTAGE_KEY``. ``logits`` read
        the whole sequence; training reads each sample's own window (rsnn2chip/readout.py).
        """
        self.check_input(x)
        outputs = {}
        trace = x
        for name, layer in self.layers.items():
            trace = layer(trace)
            outputs[name] = trace if layer.fires else torch.zeros_like(trace)
        if not self.readout.output_fires:
            outputs[VOLTAGE_KEY] = trace
        full = torch.full((x.shape[0],), x.shape[1], dtype=torch.int64, device=x.device)
        outputs[LOGITS_KEY] = self.readout.logits(trace, full, 0)
        return outputs

    def check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise InputError("input spikes have the wrong shape", where=f"network {self.name!r}",
                             found=tuple(x.shape), allowed=f"(batch, steps, {self.input_size})")


class RSNN(LayerChain):
    """Spiking network built from an arch; see the module docstring for the schema."""

    def __init__(self, arch: dict, learn_voltage_decay: bool = False):
        super().__init__()
        problems = check_arch(arch)
        if problems:
            raise ModelError(problems=problems)
        self.name = arch["name"]
        self.input_size = arch["input_size"]
        self.readout_name = arch["readout"]
        self.layers = nn.ModuleDict()
        in_features = self.input_size
        for cfg in arch["layers"]:
            layer = LAYER_TYPES[cfg["type"]].from_arch(cfg, in_features, learn_voltage_decay)
            self.layers[layer.name] = layer
            in_features = layer.size
        self.set_output_firing()

    def arch(self) -> dict:
        return {"format": ARCH_FORMAT, "version": ARCH_VERSION, "name": self.name, "input_size": self.input_size,
                "layers": [layer.arch() for layer in self.layers.values()], "readout": self.readout_name}

    def to_ir(self) -> nx.DiGraph:
        return chain_to_ir(self)


def chain_to_ir(net) -> nx.DiGraph:
    """IR of a layer chain input -> layers[0] -> layers[1] ...; ``net`` has name, input_size, layers, output_layer."""
    graph = ir.new_graph(net.name)
    graph.graph["output"] = net.output_layer
    ir.add_population(graph, ir.Population(INPUT_NAME, net.input_size, layer=INPUT_NAME))
    for layer in net.layers.values():
        ir.add_population(graph, layer.ir_population())
    pre = INPUT_NAME
    for layer in net.layers.values():
        for projection in layer.ir_projections(pre):
            ir.add_projection(graph, projection)
        pre = layer.name
    return graph


def example_arch(name: str = "rsnn", input_size: int = 16, sizes=(32, 8)) -> dict:
    """A small valid arch (recurrent hidden layers, dense output), for tests and as a template."""
    neuron = {"current_decay": 0.5, "voltage_decay": 0.2, "threshold": 1.0, "bias": 0.0}
    layers = [{"type": "lif_recurrent", "name": f"hidden{i}", "size": size, "neuron": copy.deepcopy(neuron)}
              for i, size in enumerate(sizes[:-1])]
    layers.append({"type": "lif_dense", "name": "output", "size": sizes[-1], "neuron": copy.deepcopy(neuron)})
    return {"format": ARCH_FORMAT, "version": ARCH_VERSION, "name": name, "input_size": input_size,
            "layers": layers, "readout": "spike_count"}
