"""Sparse recurrent layer types: SC-ML motif layers and their equal-size baselines.

All three keep one trainable value per synapse that exists, listed by the index
buffers ``syn_post`` / ``syn_pre``, so the recurrent projection enters the IR with
exactly those synapses (see ``docs/scml.md``).

* ``scml``: ``size / motif_size`` motifs of contiguous neurons. Every motif
  has the same ``intra_types`` (k x k, row = post, column = pre, self-loops on
  the diagonal); neuron ``i`` of motif ``m`` links to neuron ``i`` of motifs
  ``m + 1`` (``inter_types[0][i]``) and ``m - 1`` (``inter_types[1][i]``) on a
  ring. Types are ``+1`` excitatory, ``-1`` inhibitory, ``0`` none. A synapse's
  weight is ``type * softplus(raw)``, so its sign never changes in training.
* ``random_sparse``: ``n_synapses`` recurrent synapses drawn uniformly (from
  ``mask_seed``), free signed weights. :func:`matching_random_sparse` gives the
  baseline with an SC-ML layer's synapse count.
* ``self_recurrent``: one free signed self-loop per neuron.
"""
from __future__ import annotations

import abc
import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rsnn2chip.errors import ModelError, Problem
from rsnn2chip.nn.layers import (SpikingLayer, check_numeric_options, is_number, is_positive_int, layer_label,
                                 register_layer)

TYPE_VALUES = (-1, 0, 1)  # inhibitory, none, excitatory
FORWARD, BACKWARD = 0, 1  # rows of inter_types: links to motif m + 1 and to motif m - 1


def _integer_at_least(minimum: int):
    return lambda s: None if float(s).is_integer() and s >= minimum else f"must be an integer >= {minimum}"


# --------------------------------------------------------------------------- SC-ML structure

def motif_synapses(size: int, motif_size: int, intra_types, inter_types) -> tuple[np.ndarray, ...]:
    """``(post, pre, sign)`` int64 arrays of every synapse of an SC-ML layer, sorted by (post, pre).

    Inputs must already be valid (see :meth:`SCMLLayer.check_options`). Passing all-ones types
    lists every candidate position, which an architecture search can use.
    """
    k, n_motifs = motif_size, size // motif_size
    intra = np.asarray(intra_types, np.int64).reshape(k, k)
    inter = np.asarray(inter_types, np.int64).reshape(2, k)
    motif_base = np.arange(n_motifs) * k
    posts, pres, signs = [], [], []
    post_i, pre_i = np.nonzero(intra)
    for base in motif_base:
        posts.append(base + post_i)
        pres.append(base + pre_i)
        signs.append(intra[post_i, pre_i])
    for row, step in ((FORWARD, 1), (BACKWARD, -1)):
        for m, base in enumerate(motif_base):
            neighbour = (m + step) % n_motifs
            # A ring of 1 has no neighbour; on a ring of 2 both directions reach the same motif,
            # so only the forward row links it (a synapse cannot exist twice).
            if neighbour == m or (row == BACKWARD and neighbour == (m + 1) % n_motifs):
                continue
            i = np.flatnonzero(inter[row])
            posts.append(neighbour * k + i)
            pres.append(base + i)
            signs.append(inter[row, i])
    return _sorted_synapses(posts, pres, signs, size)


def _sorted_synapses(posts, pres, signs, size):
    post, pre, sign = (np.concatenate(a).astype(np.int64) if a else np.zeros(0, np.int64)
                       for a in (posts, pres, signs))
    order = np.argsort(post * size + pre, kind="stable")
    return post[order], pre[order], sign[order]


def scml_synapse_count(cfg: dict) -> int:
    """Recurrent synapses of a valid ``scml`` layer config: linear in ``size`` for a fixed motif."""
    post, _, _ = motif_synapses(cfg["size"], cfg["motif_size"], cfg["intra_types"], cfg["inter_types"])
    return int(post.size)


def matching_random_sparse(scml_cfg: dict, mask_seed: int = 0) -> dict:
    """A ``random_sparse`` layer config with the same name, size, neurons and synapse count as ``scml_cfg``."""
    problems = SCMLLayer.check_options(scml_cfg, layer_label(scml_cfg, 0))
    if problems:
        raise ModelError(problems=problems)
    keep = {key: copy.deepcopy(scml_cfg[key]) for key in ("name", "size", "neuron", "init_scale") if key in scml_cfg}
    return {**keep, "type": "random_sparse", "n_synapses": scml_synapse_count(scml_cfg), "mask_seed": mask_seed}


# --------------------------------------------------------------------------- validation of type matrices

def _is_type(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value in TYPE_VALUES


def check_type_matrix(where: str, key: str, value, shape: tuple[int, int], meaning: str) -> list[Problem]:
    """``value`` must be ``shape[0]`` lists of ``shape[1]`` types."""
    allowed = f"{shape[0]} lists of {shape[1]} values in {list(TYPE_VALUES)} ({meaning})"
    rows_ok = isinstance(value, (list, tuple)) and len(value) == shape[0]
    if not rows_ok or not all(isinstance(row, (list, tuple)) and len(row) == shape[1] for row in value):
        return [Problem(f"{key} has the wrong shape", where=where, found=_shape_of(value), allowed=allowed,
                        fix=f"give {key} as nested lists")]
    bad = [(r, c, v) for r, row in enumerate(value) for c, v in enumerate(row) if not _is_type(v)]
    if bad:
        r, c, v = bad[0]
        return [Problem(f"{key} holds a value that is not a connection type", where=where,
                        found=f"{v!r} at [{r}][{c}] ({len(bad)} bad)", allowed=allowed,
                        fix="use 1 (excitatory), -1 (inhibitory) or 0 (no synapse)")]
    return []


def _shape_of(value) -> str:
    if not isinstance(value, (list, tuple)):
        return type(value).__name__
    lengths = [len(row) if isinstance(row, (list, tuple)) else type(row).__name__ for row in value]
    return f"{len(value)} rows, row lengths {lengths[:8]}"


def _as_int_lists(matrix) -> list[list[int]]:
    return [[int(v) for v in row] for row in matrix]


# --------------------------------------------------------------------------- layers

class SparseRecurrentLayer(SpikingLayer, abc.ABC):
    """Dense input weights plus a recurrent projection over a fixed list of synapses.

    Subclasses set ``syn_post`` / ``syn_pre`` (int64 buffers) in ``__init__`` via
    :meth:`set_synapses` and define :meth:`synapse_weights`, the signed weight of each.
    """

    def set_synapses(self, post: np.ndarray, pre: np.ndarray, persistent: bool) -> None:
        # Persistent when drawn at random, so a checkpoint carries the exact structure it was trained with.
        self.register_buffer("syn_post", torch.as_tensor(post, dtype=torch.long), persistent=persistent)
        self.register_buffer("syn_pre", torch.as_tensor(pre, dtype=torch.long), persistent=persistent)

    @property
    def n_recurrent_synapses(self) -> int:
        return int(self.syn_post.numel())

    def recurrent_fan_in(self) -> float:
        return self.n_recurrent_synapses / self.size

    def init_synapse_weights(self) -> torch.Tensor:
        """Gaussian signed weights, scaled by the mean recurrent fan-in (see :meth:`init_weights`)."""
        return self.init_weights(self.n_recurrent_synapses, 1, fan_in=self.recurrent_fan_in()).flatten()

    @abc.abstractmethod
    def synapse_weights(self) -> torch.Tensor:
        """Signed weight of every synapse, in the order of ``syn_post``/``syn_pre``."""

    def effective_recurrent_weights(self) -> torch.Tensor:
        """The dense ``(size, size)`` recurrent matrix, zero where no synapse exists."""
        values = self.synapse_weights()
        return values.new_zeros((self.size, self.size)).index_put((self.syn_post, self.syn_pre), values)

    def recurrent_current(self, prev_spikes: torch.Tensor) -> torch.Tensor:
        # Gather/scatter over the synapse list: O(batch * synapses) per step, which is what keeps
        # an SC-ML layer linear in its size (a dense matmul would be quadratic).
        values = self.synapse_weights().to(prev_spikes.dtype)
        contributions = prev_spikes[:, self.syn_pre] * values
        return prev_spikes.new_zeros(prev_spikes.shape).index_add(1, self.syn_post, contributions)

    def incoming_weights(self, pre_name: str) -> list[tuple[str, torch.Tensor]]:
        return super().incoming_weights(pre_name) + [(self.name, self.effective_recurrent_weights())]


@register_layer("scml")
class SCMLLayer(SparseRecurrentLayer):
    """Sparsely-connected recurrent motif layer (module docstring; ``docs/scml.md``).

    ``w_rec_raw`` holds one raw value per synapse; the magnitude is ``softplus(raw)``:
    smooth, strictly positive, so the sign fixed by the synapse's type survives any
    optimizer step and no synapse of a non-'none' type silently disappears.
    """

    REQUIRED = ("motif_size", "intra_types", "inter_types")
    OPTIONS = {**SpikingLayer.OPTIONS, **{key: (None, None) for key in REQUIRED}}

    def __init__(self, cfg: dict, in_features: int, learn_voltage_decay: bool = False):
        cfg = {**cfg, "intra_types": _as_int_lists(cfg["intra_types"]),
               "inter_types": _as_int_lists(cfg["inter_types"])}
        super().__init__(cfg, in_features, learn_voltage_decay)
        self.motif_size = int(cfg["motif_size"])
        post, pre, sign = motif_synapses(self.size, self.motif_size, cfg["intra_types"], cfg["inter_types"])
        self.set_synapses(post, pre, persistent=False)  # a function of the arch alone
        self.register_buffer("syn_sign", torch.as_tensor(sign, dtype=torch.float32), persistent=False)
        self.w_rec_raw = nn.Parameter(inverse_softplus(self.init_synapse_weights().abs()))

    @classmethod
    def check_options(cls, cfg: dict, where: str) -> list[Problem]:
        problems = check_numeric_options(where, cfg, SpikingLayer.OPTIONS)
        missing = [key for key in cls.REQUIRED if key not in cfg]
        if missing:
            return problems + [Problem("scml layer keys missing", where=where, found=missing,
                                       allowed=list(cls.REQUIRED))]
        k = cfg["motif_size"]
        if not is_positive_int(k):
            return problems + [Problem("motif_size must be a positive integer", where=where, found=repr(k))]
        size = cfg.get("size")
        if is_positive_int(size) and size % k:
            problems.append(Problem("motif_size must divide the layer size", where=where,
                                    found=f"size {size}, motif_size {k}",
                                    allowed=f"a divisor of {size}: {_divisors(size)}",
                                    fix="change motif_size, or pad size to a multiple of it"))
        problems += check_type_matrix(where, "intra_types", cfg["intra_types"], (k, k),
                                      "row = post neuron, column = pre neuron within a motif")
        problems += check_type_matrix(where, "inter_types", cfg["inter_types"], (2, k),
                                      "row 0: neuron i -> neuron i of motif m+1; row 1: of motif m-1")
        return problems

    def synapse_weights(self) -> torch.Tensor:
        return self.syn_sign.to(self.w_rec_raw.dtype) * F.softplus(self.w_rec_raw)

    def ir_population(self):
        pop = super().ir_population()
        pop.motif_size = self.motif_size
        return pop


def inverse_softplus(magnitude: torch.Tensor) -> torch.Tensor:
    # Floor the magnitude so log(expm1(.)) stays finite for a weight drawn at ~0.
    magnitude = magnitude.clamp_min(1e-6)
    return magnitude + torch.log(-torch.expm1(-magnitude))


def _divisors(n: int) -> list[int]:
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


@register_layer("random_sparse")
class RandomSparseLayer(SparseRecurrentLayer):
    """``n_synapses`` recurrent synapses at uniformly drawn (post, pre) positions; free signed weights."""

    OPTIONS = {**SpikingLayer.OPTIONS, "n_synapses": (None, _integer_at_least(0)),
               "mask_seed": (0, _integer_at_least(0))}

    def __init__(self, cfg: dict, in_features: int, learn_voltage_decay: bool = False):
        super().__init__(cfg, in_features, learn_voltage_decay)
        self.set_synapses(*self.draw_synapses(int(cfg["n_synapses"]), int(cfg["mask_seed"])), persistent=True)
        self.w_rec = nn.Parameter(self.init_synapse_weights())

    @classmethod
    def check_options(cls, cfg: dict, where: str) -> list[Problem]:
        problems = check_numeric_options(where, cfg, cls.OPTIONS)
        count, size = cfg.get("n_synapses"), cfg.get("size")
        if "n_synapses" not in cfg:
            problems.append(Problem("random_sparse needs n_synapses", where=where,
                                    fix="set n_synapses, or build the config with matching_random_sparse()"))
        elif is_number(count) and is_positive_int(size) and count > size * size:
            problems.append(Problem("n_synapses exceeds the size * size possible recurrent synapses", where=where,
                                    found=count, allowed=f"0..{size * size}"))
        return problems

    def draw_synapses(self, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        generator = torch.Generator().manual_seed(seed)
        flat = torch.randperm(self.size * self.size, generator=generator)[:count].sort().values.numpy()
        return flat // self.size, flat % self.size

    def synapse_weights(self) -> torch.Tensor:
        return self.w_rec


@register_layer("self_recurrent")
class SelfRecurrentLayer(SparseRecurrentLayer):
    """One recurrent synapse per neuron, onto itself: the sparsest recurrence there is."""

    def __init__(self, cfg: dict, in_features: int, learn_voltage_decay: bool = False):
        super().__init__(cfg, in_features, learn_voltage_decay)
        diagonal = np.arange(self.size)
        self.set_synapses(diagonal, diagonal, persistent=False)
        self.w_rec = nn.Parameter(self.init_synapse_weights())

    def synapse_weights(self) -> torch.Tensor:
        return self.w_rec
