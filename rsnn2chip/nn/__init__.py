"""Trainable spiking networks in torch whose float dynamics equal the IR's neuron models."""
from __future__ import annotations

import os

import torch

from rsnn2chip.nn.layers import LAYER_TYPES, SpikingLayer, register_layer
from rsnn2chip.nn.network import RSNN, check_arch, example_arch
from rsnn2chip.nn.neuron import Neuron, spike_fn
# Imported for its registrations: archs and checkpoints name these layer types.
from rsnn2chip.nn.scml import SCMLLayer, matching_random_sparse, motif_synapses, scml_synapse_count

__all__ = ["LAYER_TYPES", "SpikingLayer", "register_layer", "RSNN", "check_arch", "example_arch",
           "Neuron", "spike_fn", "prepare_torch",
           "SCMLLayer", "matching_random_sparse", "motif_synapses", "scml_synapse_count"]


# Environment variable that sets torch's CPU threads for rsnn2chip (default 1, see prepare_torch).
THREADS_ENV = "RSNN2CHIP_TORCH_THREADS"


def prepare_torch() -> None:
    """Process-wide torch settings for simulating or training spiking networks.

    Decaying u and v traces of silent neurons sink into the denormal range,
    where x86 arithmetic is up to ~100x slower; flushing them to zero costs
    nothing measurable in accuracy (they are ~1e-38 in float32).

    One CPU thread unless ``RSNN2CHIP_TORCH_THREADS`` says otherwise: a spiking network steps through time
    with small matrix products (batch x hidden), far too small to share between threads, and torch's
    threads spin at every barrier. Measured on a 2-core machine with other work running (docs/training.md):
    a (32, 128) x (128, 128) linear took 0.21 ms with 1 thread and 12.8 ms with 2.
    """
    torch.set_flush_denormal(True)
    threads = os.environ.get(THREADS_ENV, "").strip()
    torch.set_num_threads(int(threads) if threads.isdigit() and int(threads) > 0 else 1)
