"""The HRMAS supernet: every architecture choice of an SC-ML layer relaxed into a softmax mixture (DARTS).

Per searched layer, one set of architecture parameters (alphas):

* ``alpha_size`` (one logit per candidate motif size k);
* per candidate k, ``alpha_types[j]`` of shape ``(k*k + 2*k, 3)``: logits over (excitatory, inhibitory, none)
  for every ordered intra-motif pair (post, pre), self-loops included, then for the k forward and k backward
  lateral links (the rows of ``inter_types``, docs/scml.md).

A candidate's synapse at position p has one magnitude per signed type, ``softplus(raw_exc)`` and
``softplus(raw_inh)`` (each candidate operation owns its weights, as in DARTS), and the expected signed weight
``q_exc[p] * softplus(raw_exc) - q_inh[p] * softplus(raw_inh)``, with ``q = softmax(alpha_types[j][p] / T)``.
One shared magnitude would make the weight ``(q_exc - q_inh) * m``: zero at uniform alphas, so the supernet
would start without recurrence and its magnitudes without gradient (measured, docs/hrmas.md). The layer's
recurrent matrix is ``sum_k softmax(alpha_size / T)[k] * W_k``, where ``W_k`` holds candidate k's synapses at
the positions of :func:`rsnn2chip.nn.motif_synapses` (all motifs share the alphas and, as in an ``scml``
layer, each synapse its own magnitudes). The temperature ``T`` is annealed by the search loop, so the mixture
ends close to its own argmax and discretisation changes little. Discretisation takes the argmax of every
softmax and returns a plain ``scml`` layer config.

The unstructured control (``unstructured_search``) has no motifs: logits over the three types for every
(post, pre) pair of the layer and two dense magnitude matrices; it discretises to an ``scml`` layer with a
single motif of the whole layer (``motif_size = size``), which holds exactly that free wiring.
"""
from __future__ import annotations

import abc
import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rsnn2chip.errors import ModelError
from rsnn2chip.nn.layers import DEFAULT_INIT_SCALE, LAYER_TYPES, SpikingLayer, with_defaults
from rsnn2chip.nn.network import ARCH_FORMAT, ARCH_VERSION, LayerChain, chain_to_ir
from rsnn2chip.nn.scml import inverse_softplus, motif_synapses
from rsnn2chip.search.space import SEARCH_LAYER_TYPES, Space

# Column order of every alpha_types tensor, and the connection type each column stands for.
TYPE_NAMES = ("exc", "inh", "none")
TYPE_OF_COLUMN = (1, -1, 0)
TYPES_NP = np.asarray(TYPE_OF_COLUMN)
ALPHA_PREFIX = "alpha_"


def normalised_entropy(p: torch.Tensor) -> torch.Tensor:
    """Entropy of each distribution along the last axis, divided by log(choices)."""
    return -(p * torch.log(p.clamp_min(1e-12))).sum(-1) / math.log(p.shape[-1])


def candidate_positions(size: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(post, pre, position)`` of every candidate synapse of motif size ``k``.

    ``position`` indexes the layer's type logits: ``i*k + j`` for the intra pair (post i, pre j), then
    ``k*k + row*k + i`` for lateral link i of ``inter_types`` row ``row``. ``motif_synapses`` copies each
    synapse's type value from the matrices it is given, so handing it position numbers (+1, as 0 means
    "no synapse") instead of types labels every synapse with its position, with the wiring rule written once.
    """
    intra = np.arange(k * k).reshape(k, k) + 1
    inter = k * k + np.arange(2 * k).reshape(2, k) + 1
    post, pre, label = motif_synapses(size, k, intra, inter)
    return post, pre, label - 1


class SearchLayer(SpikingLayer, abc.ABC):
    """A spiking layer whose recurrent matrix is a mixture; subclasses define the mixture."""

    def __init__(self, cfg: dict, in_features: int):
        super().__init__(with_defaults(cfg, {"init_scale": (DEFAULT_INIT_SCALE, None)}), in_features)
        self._w_rec: torch.Tensor | None = None
        # Softmax temperature of every choice; the search loop anneals it (a function of the step, so a
        # resumed search recomputes it rather than storing it).
        self.temperature = 1.0

    def probs(self, alpha: torch.Tensor) -> torch.Tensor:
        return F.softmax(alpha / self.temperature, dim=-1)

    def magnitude_pair(self, shape: tuple[int, ...], fan_in: float) -> tuple[nn.Parameter, nn.Parameter]:
        """Raw excitatory and inhibitory magnitudes, drawn independently as an scml layer draws its own."""
        def draw():
            return nn.Parameter(inverse_softplus(self.init_weights(math.prod(shape), 1, fan_in).abs().reshape(shape)))
        return draw(), draw()

    @staticmethod
    def signed_mixture(q: torch.Tensor, raw_exc: torch.Tensor, raw_inh: torch.Tensor) -> torch.Tensor:
        """Expected weight of (exc, inh, none) with probabilities ``q[..., :2]`` and the two magnitudes."""
        return q[..., 0] * F.softplus(raw_exc) - q[..., 1] * F.softplus(raw_inh)

    @staticmethod
    def kept_raw(types: np.ndarray, raw_exc: torch.Tensor, raw_inh: torch.Tensor) -> torch.Tensor:
        """The raw magnitude of each synapse's chosen type, for the synapses the argmax keeps."""
        chosen = torch.where(torch.as_tensor(types > 0, device=raw_exc.device), raw_exc, raw_inh).detach()
        return chosen[torch.as_tensor(types != 0, device=raw_exc.device)]

    def type_entropies(self) -> torch.Tensor:
        """The normalised entropy of each type softmax of the candidate that would be kept."""
        return normalised_entropy(self.probs(self.chosen_type_alphas()))

    def entropies(self) -> dict[str, torch.Tensor]:
        """Entropy of each kind of choice discretisation reads, in units of its maximum (1 uniform, 0 decided).

        ``types``: the mean of :meth:`type_entropies`.
        """
        return {"types": self.type_entropies().mean()}

    @abc.abstractmethod
    def chosen_type_alphas(self) -> torch.Tensor:
        """The type logits of the candidate discretisation keeps."""

    @abc.abstractmethod
    def mixed_recurrent_weights(self) -> torch.Tensor:
        """The softmax-weighted ``(size, size)`` recurrent matrix of the current alphas."""

    @abc.abstractmethod
    def discretise(self) -> dict:
        """The argmax architecture as a plain layer config for ``rsnn2chip train``."""

    @abc.abstractmethod
    def discrete_raw_weights(self) -> torch.Tensor:
        """The searched raw magnitudes of the synapses the argmax keeps, in the discrete layer's order."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The mixture is built once per forward pass, not once per time step.
        self._w_rec = self.mixed_recurrent_weights()
        try:
            return super().forward(x)
        finally:
            self._w_rec = None

    def recurrent_current(self, prev_spikes: torch.Tensor) -> torch.Tensor:
        return F.linear(prev_spikes, self._w_rec.to(prev_spikes.dtype))

    def incoming_weights(self, pre_name: str) -> list[tuple[str, torch.Tensor]]:
        return super().incoming_weights(pre_name) + [(self.name, self.mixed_recurrent_weights())]

    def base_cfg(self) -> dict:
        return {key: copy.deepcopy(self.cfg[key]) for key in ("name", "size", "neuron", "init_scale")}

    @staticmethod
    def argmax_types(alpha: torch.Tensor) -> np.ndarray:
        return np.asarray(TYPE_OF_COLUMN)[alpha.detach().argmax(dim=-1).cpu().numpy()]


class SCMLSearchLayer(SearchLayer):
    """Motif size, intra-motif types and lateral-link types, all relaxed (module docstring)."""

    TYPE = "scml_search"

    def __init__(self, cfg: dict, in_features: int, alpha_init_sd: float = 1e-3):
        super().__init__(cfg, in_features)
        self.candidates = [int(k) for k in cfg["motif_sizes"]]
        bad = [k for k in self.candidates if self.size % k]
        if bad:
            raise ModelError("candidate motif sizes must divide the layer size", where=f"layer {self.name!r}",
                             found=bad, allowed=[d for d in range(1, self.size + 1) if self.size % d == 0])
        self.alpha_size = nn.Parameter(torch.randn(len(self.candidates)) * alpha_init_sd)
        self.raw_exc, self.raw_inh = nn.ParameterList(), nn.ParameterList()
        self.alpha_types = nn.ParameterList()
        for j, k in enumerate(self.candidates):
            post, pre, position = candidate_positions(self.size, k)
            self.register_buffer(f"post_{j}", torch.as_tensor(post), persistent=False)
            self.register_buffer(f"pre_{j}", torch.as_tensor(pre), persistent=False)
            self.register_buffer(f"position_{j}", torch.as_tensor(position), persistent=False)
            raw_exc, raw_inh = self.magnitude_pair((len(post),), fan_in=len(post) / self.size)
            self.raw_exc.append(raw_exc)
            self.raw_inh.append(raw_inh)
            self.alpha_types.append(nn.Parameter(torch.randn(k * k + 2 * k, 3) * alpha_init_sd))

    def size_probs(self) -> torch.Tensor:
        return self.probs(self.alpha_size)

    def entropies(self) -> dict[str, torch.Tensor]:
        more = {"size": normalised_entropy(self.size_probs())} if len(self.candidates) > 1 else {}
        return {**super().entropies(), **more}

    def chosen_type_alphas(self) -> torch.Tensor:
        return self.alpha_types[self.chosen()]

    def candidate_weights(self, j: int) -> torch.Tensor:
        """Candidate j's dense expected recurrent matrix W_k (before the motif-size mixture)."""
        q = self.probs(self.alpha_types[j])[getattr(self, f"position_{j}")]
        values = self.signed_mixture(q, self.raw_exc[j], self.raw_inh[j])
        dense = values.new_zeros((self.size, self.size))
        return dense.index_put((getattr(self, f"post_{j}"), getattr(self, f"pre_{j}")), values)

    def mixed_recurrent_weights(self) -> torch.Tensor:
        p = self.size_probs()
        return sum(p[j] * self.candidate_weights(j) for j in range(len(self.candidates)))

    def chosen(self) -> int:
        return int(self.alpha_size.detach().argmax())

    def discrete_raw_weights(self) -> torch.Tensor:
        j = self.chosen()
        types = TYPES_NP[self.alpha_types[j].argmax(-1).cpu().numpy()][getattr(self, f"position_{j}").cpu().numpy()]
        return self.kept_raw(types, self.raw_exc[j], self.raw_inh[j])

    def discretise(self) -> dict:
        j = self.chosen()
        k = self.candidates[j]
        types = self.argmax_types(self.alpha_types[j])
        return {**self.base_cfg(), "type": "scml", "motif_size": k,
                "intra_types": types[:k * k].reshape(k, k).tolist(),
                "inter_types": types[k * k:].reshape(2, k).tolist()}

    def alpha_summary(self, decimals: int = 4) -> dict:
        """JSON-safe softmax probabilities: motif sizes, and (exc, inh, none) per position per candidate."""
        with torch.no_grad():
            return {"candidates": self.candidates,
                    "size_probs": np.round(self.size_probs().double().cpu().numpy(), decimals).tolist(),
                    "type_probs": {str(k): np.round(self.probs(a).double().cpu().numpy(), decimals).tolist()
                                   for k, a in zip(self.candidates, self.alpha_types)}}


class UnstructuredSearchLayer(SearchLayer):
    """No motifs: the type of every (post, pre) pair of the layer is a softmax choice of its own."""

    TYPE = "unstructured_search"

    def __init__(self, cfg: dict, in_features: int, alpha_init_sd: float = 1e-3):
        super().__init__(cfg, in_features)
        n = self.size
        self.raw_exc, self.raw_inh = self.magnitude_pair((n, n), fan_in=n)
        self.alpha_types = nn.Parameter(torch.randn(n, n, 3) * alpha_init_sd)

    def mixed_recurrent_weights(self) -> torch.Tensor:
        return self.signed_mixture(self.probs(self.alpha_types), self.raw_exc, self.raw_inh)

    def chosen_type_alphas(self) -> torch.Tensor:
        return self.alpha_types

    def discrete_raw_weights(self) -> torch.Tensor:
        # Row-major boolean indexing keeps the scml layer's (post, pre) synapse order.
        return self.kept_raw(TYPES_NP[self.alpha_types.argmax(-1).cpu().numpy()], self.raw_exc, self.raw_inh)

    def discretise(self) -> dict:
        n = self.size
        return {**self.base_cfg(), "type": "scml", "motif_size": n,
                "intra_types": self.argmax_types(self.alpha_types).tolist(), "inter_types": [[0] * n, [0] * n]}

    def alpha_summary(self, decimals: int = 3) -> dict:
        with torch.no_grad():
            return {"candidates": [self.size], "size_probs": [1.0],
                    "type_probs": {str(self.size): np.round(
                        self.probs(self.alpha_types).reshape(-1, 3).double().cpu().numpy(), decimals).tolist()}}


SEARCH_LAYERS = {"scml_search": SCMLSearchLayer, "unstructured_search": UnstructuredSearchLayer}
assert set(SEARCH_LAYERS) == set(SEARCH_LAYER_TYPES)


def is_alpha(name: str) -> bool:
    """``layers.hidden.alpha_size``, ``layers.hidden.alpha_types.0``: any dotted segment starting with alpha_."""
    return any(part.startswith(ALPHA_PREFIX) for part in name.split("."))


class Supernet(LayerChain):
    """A chain of layers like :class:`rsnn2chip.nn.RSNN`, searched layers mixed; built from a resolved Space.

    It quacks like an RSNN where training code needs it to (``forward`` -> dict with ``logits``,
    ``layers``, ``output_layer``), so ``train.evaluate`` and the readout rule apply unchanged.
    """

    def __init__(self, space: Space):
        super().__init__()
        self.name = space.name
        self.input_size = int(space.input_size)
        self.readout_name = space.readout
        self.layers = nn.ModuleDict()
        in_features = self.input_size
        for cfg in space.layers:
            if cfg["type"] in SEARCH_LAYERS:
                layer = SEARCH_LAYERS[cfg["type"]](cfg, in_features, space.search.alpha_init_sd)
            else:
                layer = LAYER_TYPES[cfg["type"]].from_arch(cfg, in_features)
            self.layers[layer.name] = layer
            in_features = layer.size
        self.set_output_firing()

    def searched(self) -> dict[str, SearchLayer]:
        return {name: layer for name, layer in self.layers.items() if isinstance(layer, SearchLayer)}

    def alpha_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if is_alpha(name)]

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if not is_alpha(name)]

    def alpha_summary(self) -> dict:
        return {name: layer.alpha_summary() for name, layer in self.searched().items()}

    def set_temperature(self, temperature: float) -> None:
        for layer in self.searched().values():
            layer.temperature = float(temperature)

    def entropy(self) -> torch.Tensor:
        """Mean normalised entropy over every searched layer's kinds of choice (1 uniform, 0 decided)."""
        return torch.stack([h for layer in self.searched().values() for h in layer.entropies().values()]).mean()

    def entropy_summary(self) -> dict:
        """Per searched layer: the mean entropy of each kind of choice, and of the least decided type softmax."""
        with torch.no_grad():
            return {name: {**{kind: float(h) for kind, h in layer.entropies().items()},
                           "types_max": float(layer.type_entropies().max())}
                    for name, layer in self.searched().items()}

    def discretise(self, keep_intrinsic: bool = False, intrinsic_layers: list[str] | None = None) -> dict:
        """The argmax architecture as a plain RSNN arch (usable by ``rsnn2chip train``).

        With ``keep_intrinsic`` the arch's ``voltage_decay`` of ``intrinsic_layers`` (default: all) is the
        adapted per-neuron value; the adapted ``input_gain`` has no arch key and travels separately
        (:meth:`intrinsic_state`).
        """
        layers = []
        for name, layer in self.layers.items():
            cfg = layer.discretise() if isinstance(layer, SearchLayer) else layer.arch()
            if keep_intrinsic and (intrinsic_layers is None or name in intrinsic_layers):
                cfg["neuron"] = {**cfg["neuron"],
                                 "voltage_decay": [float(v) for v in layer.neuron.voltage_decay.detach().cpu()]}
            layers.append(cfg)
        return {"format": ARCH_FORMAT, "version": ARCH_VERSION, "name": self.name, "input_size": self.input_size,
                "layers": layers, "readout": self.readout_name}

    def inherited_model(self):
        """The argmax network *with the supernet's weights and neuron state* (not re-initialised).

        Each discrete synapse keeps its candidate's magnitude, so the only change is the architecture
        update itself (the softmax mixture replaced by its argmax): the accuracy drop this causes is the
        risk HRMAS's IP step is meant to repair. For measurement; the deliverable is the retrained network.
        """
        from rsnn2chip.nn import RSNN
        arch = self.discretise()
        model = RSNN(arch)
        state = model.state_dict()
        own = self.state_dict()
        with torch.no_grad():
            for name, layer in self.layers.items():
                prefix = f"layers.{name}."
                for key, value in own.items():
                    if key.startswith(prefix) and key in state and state[key].shape == value.shape:
                        state[key].copy_(value)
                if isinstance(layer, SearchLayer):  # plain layers (the readout) were copied above
                    state[prefix + "w_rec_raw"].copy_(layer.discrete_raw_weights())
        return model

    def intrinsic_state(self, layers: list[str] | None = None) -> dict[str, torch.Tensor]:
        """``voltage_decay`` and ``input_gain`` per layer, keyed as in the discrete network's state_dict."""
        state = {}
        for name, layer in self.layers.items():
            if layers is None or name in layers:
                for key in ("voltage_decay", "input_gain"):
                    state[f"layers.{name}.neuron.{key}"] = getattr(layer.neuron, key).detach().cpu().clone()
        return state

    def to_ir(self):
        """The mixed network as IR (expected weights): for inspection, not for deployment."""
        return chain_to_ir(self)


def synapse_count(arch_layer: dict) -> int:
    """Recurrent synapses of a discrete layer config (SC-ML, random sparse, dense or none)."""
    from rsnn2chip.nn.scml import scml_synapse_count
    kind = arch_layer["type"]
    if kind == "scml":
        return scml_synapse_count(arch_layer)
    if kind == "random_sparse":
        return int(arch_layer["n_synapses"])
    if kind == "self_recurrent":
        return int(arch_layer["size"])
    if kind == "lif_recurrent":
        density = float(arch_layer.get("recurrent_density", 1.0))
        if density >= 1.0:
            return int(arch_layer["size"]) ** 2
        generator = torch.Generator().manual_seed(int(arch_layer.get("mask_seed", 0)))
        size = int(arch_layer["size"])
        return int((torch.rand(size, size, generator=generator) < density).sum())
    return 0
