"""Trainable spiking networks in torch whose float dynamics equal the IR's neuron models."""
from __future__ import annotations

import torch

from rsnn2chip.nn.layers import LAYER_TYPES, SpikingLayer, register_layer
from rsnn2chip.nn.network import RSNN, check_arch, example_arch
from rsnn2chip.nn.neuron import Neuron, spike_fn
# Imported for its registrations: archs and checkpoints name these layer types.
from rsnn2chip.nn.scml import SCMLLayer, matching_random_sparse, motif_synapses, scml_synapse_count

__all__ = ["LAYER_TYPES", "SpikingLayer", "register_layer", "RSNN", "check_arch", "example_arch",
           "Neuron", "spike_fn", "prepare_torch",
           "SCMLLayer", "matching_random_sparse", "motif_synapses", "scml_synapse_count"]


def prepare_torch() -> None:
    """Process-wide torch settings for simulating or training spiking networks.

    Decaying u and v traces of silent neurons sink into the denormal range,
    where x86 arithmetic is up to ~100x slower; flushing them to zero costs
    nothing measurable in accuracy (they are ~1e-38 in float32).
    """
    torch.set_flush_denormal(True)
