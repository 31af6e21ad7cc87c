"""Small builders shared by tests (real components only)."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from rsnn2chip import ir
from rsnn2chip.neurons.cuba_lif import CubaLIF


def small_graph(seed: int = 0, n_in: int = 6, n_rec: int = 16, n_out: int = 4, motif_size: int | None = 4,
                per_neuron_decay: bool = True) -> ir.nx.DiGraph:
    """input -> recurrent (motifs) -> readout, random float weights of both signs."""
    rng = np.random.default_rng(seed)
    g = ir.new_graph(f"small{seed}")
    ir.add_population(g, ir.Population("input", n_in, "input"))
    vdecay = rng.uniform(0.02, 0.2, n_rec) if per_neuron_decay else 0.1
    ir.add_population(g, ir.Population("rec", n_rec, "rec", CubaLIF(0.3, vdecay, 1.0, 0.01), motif_size))
    ir.add_population(g, ir.Population("out", n_out, "out", CubaLIF(0.3, 0.1, 1.0, 0.0)))
    ir.add_projection(g, ir.Projection("input", "rec", sp.csr_matrix(rng.uniform(0, 0.8, (n_rec, n_in)))))
    rec = rng.normal(0, 0.3, (n_rec, n_rec)) * (rng.random((n_rec, n_rec)) < 0.3)
    ir.add_projection(g, ir.Projection("rec", "rec", sp.csr_matrix(rec)))
    ir.add_projection(g, ir.Projection("rec", "out", sp.csr_matrix(rng.normal(0.1, 0.3, (n_out, n_rec)))))
    return g


def random_spikes(seed: int, steps: int, channels: int, rate: float = 0.3, batch: int | None = None) -> np.ndarray:
    shape = (steps, channels) if batch is None else (batch, steps, channels)
    return (np.random.default_rng(seed).random(shape) < rate).astype(np.int8)
