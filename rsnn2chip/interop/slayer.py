"""lava-dl slayer -> netx HDF5, the file the netx frontend compiles (docs/byom.md).

slayer exports one block at a time (``block.export_hdf5(group)``); netx reads a
``layer`` group whose members are named 0, 1, 2, ... in network order. A CUBA
block learns its neuron shape on its first forward pass, so :func:`export_netx`
runs one pass over a blank sample first; the sample's values change no weight
and no neuron parameter, only the shape the export writes.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from rsnn2chip.fileio import atomic_write_bytes


def export_netx(blocks, path: str | Path, input_shape) -> Path:
    """Write slayer ``blocks`` (in network order) as a netx file; ``input_shape`` is the first block's input
    without batch and time axes (an int for a flat input). The file is written atomically."""
    import h5py
    import torch

    with torch.no_grad():
        x = torch.zeros(1, *np.atleast_1d(input_shape), 1)
        for block in blocks:
            x = block(x)
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        layers = f.create_group("layer")
        for i, block in enumerate(blocks):
            block.export_hdf5(layers.create_group(str(i)))
    return atomic_write_bytes(path, buf.getvalue())
