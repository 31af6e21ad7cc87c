"""Frontends turn a model file into the IR.

Each frontend module exposes ``NAME``, ``sniff(path) -> bool`` (cheap, reads
only the file's first bytes or structure, never executes anything) and
``load(path) -> networkx.DiGraph``. :func:`load_network` picks the first
frontend whose ``sniff`` accepts the file.
"""
from __future__ import annotations

import importlib
import math
from pathlib import Path

import numpy as np

from rsnn2chip import ir
from rsnn2chip.errors import CheckpointError, ModelError, Problem
from rsnn2chip.safeio import check_readable_file

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


MAX_HDF5_OBJECTS = 100_000  # netx and NIR files of real networks hold a few hundred
# What h5py raises on a damaged file: a flipped byte inside a dataset surfaces as OSError only when
# that dataset's data is read, so every read of a user's file is guarded, not only the open.
HDF5_READ_ERRORS = (OSError, RuntimeError, ValueError, KeyError, TypeError)


def check_hdf5(path: Path, what: str) -> None:
    """Before a frontend reads data: every dataset fits in memory, the file stays small in objects, and no
    dataset keeps its data in another file (external or virtual storage could read any file on the machine)."""
    import h5py
    from rsnn2chip.preflight import check_fits

    total, count, chunks = 0, 0, 0
    problems: list[str] = []

    def visit(name, obj):
        nonlocal total, count, chunks
        count += 1
        if count > MAX_HDF5_OBJECTS:
            return True  # stops the walk
        if isinstance(obj, h5py.Dataset):
            if obj.is_virtual or obj.external:
                problems.append(name)
            total += int(np.prod(obj.shape or (), dtype=object)) * obj.dtype.itemsize if obj.shape is not None else 0
            if obj.chunks and obj.shape:
                chunks += math.prod(-(-n // c) for n, c in zip(obj.shape, obj.chunks))
        return None

    try:
        with h5py.File(path, "r") as f:
            f.visititems(visit)
    except HDF5_READ_ERRORS as exc:
        raise CheckpointError(f"cannot read {what} ({type(exc).__name__}: {exc})", file=str(path)) from None
    if count > MAX_HDF5_OBJECTS:
        raise CheckpointError(f"{what} holds too many groups and datasets", file=str(path),
                              found=f"more than {MAX_HDF5_OBJECTS:,}", allowed=f"at most {MAX_HDF5_OBJECTS:,}")
    if problems:
        raise CheckpointError(f"{what} keeps data outside the file (external or virtual datasets)", file=str(path),
                              where=", ".join(problems[:5]), allowed="datasets stored in the file itself")
    check_fits(total, f"the datasets of {what}", file=str(path), error=CheckpointError)
    # A written chunk takes file bytes (its data and its index entry), so a file that declares more chunks
    # than it has bytes has damaged shapes; HDF5 would spend minutes decoding fill for each.
    size = path.stat().st_size
    if chunks > size:
        raise CheckpointError(f"{what} is damaged: its datasets declare more data chunks than the file has bytes",
                              file=str(path), found=f"{chunks:,} chunks", allowed=f"at most {size:,} (the file size)",
                              fix="copy or export the file again")
    check_hdf5_data_readable(path, what)


def _read_every_dataset(path: str) -> None:
    """Read each dataset, each attempt on its own: one that raises must not hide a later one that crashes.
    Raised errors are the frontend's to name; here they would only print a traceback, as a crash would
    print a faulthandler dump where one is enabled (pytest, ``python -X faulthandler``)."""
    import faulthandler

    import h5py

    faulthandler.disable()

    def read(name, obj):
        if isinstance(obj, h5py.Dataset):
            try:
                obj[()]
            except Exception:  # noqa: BLE001 - see the docstring
                pass

    try:
        with h5py.File(path, "r") as f:
            f.visititems(read)
    except Exception:  # noqa: BLE001 - see the docstring
        pass


def check_hdf5_data_readable(path: Path, what: str) -> None:
    """Every dataset's data is read once in a forked child first: the HDF5 C library can crash the whole
    process (SIGSEGV) on damaged data, which no ``except`` can catch. Errors it raises are left to the
    frontend's own guarded reads, which name them."""
    import multiprocessing

    child = multiprocessing.get_context("fork").Process(target=_read_every_dataset, args=(str(path),), daemon=True)
    child.start()
    child.join()
    if child.exitcode is not None and child.exitcode < 0:
        raise CheckpointError(f"{what} is damaged: the HDF5 library crashed reading its data "
                              f"(signal {-child.exitcode})", file=str(path),
                              fix="copy or export the file again; it is not readable as written")


def check_finite(graph, path: Path) -> None:
    """Every float weight and neuron parameter a frontend read is finite: NaN would otherwise reach the
    quantizer (an integer cast) or an exported file."""
    problems = []
    for pop in ir.populations(graph, "lif"):
        for name in pop.neuron.names():
            if not np.isfinite(getattr(pop.neuron, name)).all():
                problems.append(Problem("neuron parameter holds NaN or infinity", file=str(path),
                                        where=f"population {pop.name}", resource=name, allowed="finite values"))
    for proj in ir.projections(graph):
        if not np.isfinite(proj.weight.data).all():
            problems.append(Problem("weights hold NaN or infinity", file=str(path), where=f"projection {proj.name}",
                                    found=f"{int((~np.isfinite(proj.weight.data)).sum())} non-finite weights",
                                    allowed="finite values", fix="fix or retrain the model that wrote the file"))
    if problems:
        raise ModelError(problems=problems)


def frontends():
    return [importlib.import_module(name) for name in FRONTEND_MODULES]


def load_network(path: str | Path):
    path = check_readable_file(path, "model file", CheckpointError,
                               fix="check the path; `rsnn2chip train` writes model.pt")
    for frontend in frontends():
        if frontend.sniff(path):
            graph = frontend.load(path)
            check_finite(graph, path)
            return graph
    names = ", ".join(f.NAME for f in frontends())
    raise CheckpointError("not a model file rsnn2chip can read", file=str(path),
                          allowed=f"one of: {names}",
                          fix="pass a checkpoint written by `rsnn2chip train` (model.pt), a NIR graph or a lava-dl "
                              "netx .net file; models from snnTorch, Norse or plain PyTorch: docs/byom.md")
