"""Frontends turn a model file into the IR.

Each frontend module exposes ``NAME``, ``sniff(path) -> bool`` (cheap, reads
only the file's first bytes or structure, never executes anything) and
``load(path) -> networkx.DiGraph``. :func:`load_network` picks the first
frontend whose ``sniff`` accepts the file.
"""
from __future__ import annotations

import importlib
from pathlib import Path

from rsnn2chip.errors import CheckpointError

# Order matters only where formats could be confused; each sniff is strict.
FRONTEND_MODULES = ("rsnn2chip.frontends.checkpoint", "rsnn2chip.frontends.netx", "rsnn2chip.frontends.nir")


HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def hdf5_matches(path: str | Path, predicate) -> bool:
    """True if ``path`` is HDF5 and ``predicate(h5py.File)`` holds; reads structure, never data."""
    try:
        with Path(path).open("rb") as handle:
            if handle.read(len(HDF5_MAGIC)) != HDF5_MAGIC:
                return False
        import h5py
        with h5py.File(path, "r") as f:
            return bool(predicate(f))
    except (OSError, ImportError):
        return False


def frontends():
    return [importlib.import_module(name) for name in FRONTEND_MODULES]


def load_network(path: str | Path):
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("model file not found", file=str(path),
                              fix="check the path; `rsnn2chip train` writes model.pt")
    for frontend in frontends():
        if frontend.sniff(path):
            return frontend.load(path)
    names = ", ".join(f.NAME for f in frontends())
    raise CheckpointError("not a model file rsnn2chip can read", file=str(path),
                          allowed=f"one of: {names}",
                          fix="pass a checkpoint written by `rsnn2chip train` (model.pt), a NIR graph or a lava-dl "
                              "netx .net file; models from snnTorch, Norse or plain PyTorch: docs/byom.md")
