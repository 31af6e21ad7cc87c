"""Reading and writing model checkpoints (``model.pt``) without executing anything.

A checkpoint is a ``torch.save`` of a plain dict::

    {"format": "rsnn2chip.checkpoint", "version": 1,
     "arch": <RSNN arch, see rsnn2chip.nn.network>,
     "state_dict": {name: tensor},
     "meta": {JSON-safe provenance: tool, tool_version, torch_version, created, ...}}

Only plain containers, numbers, strings and tensors go in, so it loads with
``torch.load(weights_only=True)``, which refuses any pickled object or code
instead of running it: a model file from someone else is safe to inspect.
"""
from __future__ import annotations

import datetime as _dt
import json
import pickle
import re
import warnings
import zipfile
from pathlib import Path

import torch

import rsnn2chip
from rsnn2chip.errors import CheckpointError, ModelError, Problem
from rsnn2chip.fileio import atomic_write
from rsnn2chip.nn.network import RSNN
from rsnn2chip.preflight import check_arch_fits
from rsnn2chip.safeio import ZIP_READ_ERRORS, check_expansion, check_readable_file, check_zip_members

CHECKPOINT_FORMAT = "rsnn2chip.checkpoint"
CHECKPOINT_VERSION = 1
# torch.save has written zip archives since torch 1.6; the legacy format is
# bare pickle, which we never unpickle.
ZIP_MAGIC = b"PK\x03\x04"
RETRAIN_FIX = "re-save the model with `rsnn2chip train` (or rsnn2chip.checkpoint.save_checkpoint)"
# A model from another framework is not a checkpoint; say how it does come in.
FOREIGN_FIX = ("if this is your own model from another tool, bring it as NIR (snnTorch and Norse: "
               "rsnn2chip.interop.snntorch/norse.write; any NIR tool: nir.write) or as a lava-dl netx .net file, "
               "and a plain PyTorch RSNN through rsnn2chip's RSNN class: see docs/byom.md")


# --------------------------------------------------------------------------- save

def provenance() -> dict:
    return {"tool": "rsnn2chip", "tool_version": rsnn2chip.__version__, "torch_version": torch.__version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def json_safe(meta: dict) -> dict:
    """A deep copy of ``meta`` that survives JSON (and therefore the safe loader)."""
    try:
        return json.loads(json.dumps(meta))
    except (TypeError, ValueError) as err:
        raise TypeError(f"checkpoint meta must be JSON-safe (plain dicts, lists, str, numbers): {err}") from None


def save_checkpoint(path: str | Path, model: RSNN, meta: dict | None = None) -> Path:
    """Write ``model`` to ``path`` atomically: readers see the old file or the new one, never half of one."""
    path = Path(path)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "arch": json_safe(model.arch()),
        "state_dict": {key: value.detach().cpu().clone() for key, value in model.state_dict().items()},
        # Provenance last so a caller cannot misstate which tool wrote the file; the
        # JSON round trip also turns str subclasses (torch.__version__ is one) into
        # plain str, which the safe loader would otherwise refuse.
        "meta": json_safe({**(meta or {}), **provenance()}),
    }
    atomic_write(path, lambda handle: torch.save(payload, handle))
    return path


# --------------------------------------------------------------------------- load

def load_checkpoint(path: str | Path) -> dict:
    """The checkpoint dict, after checking that it is ours and that its weights fit its arch."""
    payload, _ = load_checked(Path(path))
    return payload


def model_from_checkpoint(path: str | Path) -> RSNN:
    _, model = load_checked(Path(path))
    return model


def load_checked(path: Path) -> tuple[dict, RSNN]:
    payload = read_payload(path)
    check_payload(path, payload)
    return payload, build_model(path, payload)


def read_payload(path: Path):
    check_readable_zip(path)
    try:
        with zipfile.ZipFile(path) as z:
            # torch allocates each storage at the size its zip member declares.
            check_zip_members(z, str(path), CheckpointError)
    except ZIP_READ_ERRORS as err:
        raise CheckpointError("checkpoint file is truncated or corrupt", file=str(path),
                              found=f"{type(err).__name__}: {first_line(err)}",
                              fix="copy the file again or " + RETRAIN_FIX) from None
    try:
        with warnings.catch_warnings():
            # torch announces that it checks a sparse tensor's invariants; state_dict_problems refuses it anyway.
            warnings.filterwarnings("ignore", message="Validating sparse tensor invariants", category=UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise refused_error(path, err) from None
    except Exception as err:  # torch reports a damaged archive as RuntimeError, EOFError, KeyError...
        raise CheckpointError("checkpoint file is truncated or corrupt", file=str(path),
                              found=f"{type(err).__name__}: {first_line(err)}",
                              fix="copy the file again or " + RETRAIN_FIX) from None


def check_readable_zip(path: Path) -> None:
    check_readable_file(path, "checkpoint file", CheckpointError,
                        fix="check the path; `rsnn2chip train` writes model.pt")
    try:
        with path.open("rb") as handle:
            head = handle.read(len(ZIP_MAGIC))
    except OSError as err:
        raise CheckpointError("cannot read checkpoint file", file=str(path), found=str(err)) from None
    if head != ZIP_MAGIC:
        raise CheckpointError("not a PyTorch checkpoint: the file is not a zip archive, so nothing was unpickled",
                              file=str(path), found=f"first bytes {head!r}", allowed=f"first bytes {ZIP_MAGIC!r}",
                              fix="pass a model.pt written by `rsnn2chip train`")


def refused_error(path: Path, err: pickle.UnpicklingError) -> CheckpointError:
    """The safe loader stopped before building anything, so no code from the file has run."""
    text = str(err)
    blocked = re.search(r"GLOBAL (\S+)", text)
    reason = re.search(r"WeightsUnpickler error:\s*(.+)", text)
    if blocked:
        found = f"pickled reference to {blocked.group(1)}"
    else:
        found = reason.group(1).strip() if reason else first_line(text)
    return CheckpointError(
        "checkpoint holds Python objects or code, which the safe loader (weights_only=True) refused; "
        "nothing in the file was executed (a whole model saved with torch.save(model) looks like this)",
        file=str(path), found=found, allowed="plain dicts/lists, numbers, strings and tensors",
        fix="only load files from a source you trust; " + FOREIGN_FIX + "; or " + RETRAIN_FIX)


def first_line(err) -> str:
    lines = [line for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def check_payload(path: Path, payload) -> None:
    check_expansion(payload, str(path), "checkpoint", CheckpointError)
    if not isinstance(payload, dict) or "format" not in payload:
        found = f"dict with keys {sorted(map(str, payload))[:10]}" if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError("a PyTorch file, but not an rsnn2chip checkpoint (no 'format' entry; a bare "
                              "state_dict looks like this)", file=str(path), found=found,
                              allowed=f"a dict with format={CHECKPOINT_FORMAT!r}",
                              fix=FOREIGN_FIX + "; or " + RETRAIN_FIX)
    if payload["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError("a PyTorch file, but not an rsnn2chip checkpoint", file=str(path),
                              found=f"format={payload['format']!r}", allowed=f"format={CHECKPOINT_FORMAT!r}",
                              fix=RETRAIN_FIX)
    if payload.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError("unsupported checkpoint version", file=str(path),
                              found=repr(payload.get("version")), allowed=CHECKPOINT_VERSION,
                              fix="use the rsnn2chip version that wrote it, or " + RETRAIN_FIX)
    for key, kind in (("arch", dict), ("state_dict", dict), ("meta", dict)):
        if not isinstance(payload.get(key), kind):
            raise CheckpointError(f"checkpoint entry '{key}' is missing or not a {kind.__name__}", file=str(path),
                                  found=type(payload.get(key)).__name__, fix=RETRAIN_FIX)


def build_model(path: Path, payload: dict) -> RSNN:
    check_arch_fits(payload["arch"], str(path), CheckpointError)
    try:
        model = RSNN(payload["arch"])
    except ModelError as err:
        for problem in err.problems:
            problem.file = str(path)
        raise CheckpointError(problems=err.problems) from None
    problems = state_dict_problems(path, model, payload["state_dict"])
    if problems:
        raise CheckpointError(problems=problems)
    model.load_state_dict(payload["state_dict"], strict=True)
    return model


def state_dict_problems(path: Path, model: RSNN, state: dict) -> list[Problem]:
    """Missing/unexpected keys and shape mismatches between ``state`` and what the arch builds."""
    expected = model.state_dict()
    file, fix = str(path), "the weights were saved for a different arch; " + RETRAIN_FIX
    problems = []
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    if missing:
        problems.append(Problem("state_dict lacks tensors the arch needs", file=file, where="state_dict",
                                found=missing, fix=fix))
    if unexpected:
        problems.append(Problem("state_dict has tensors the arch does not use", file=file, where="state_dict",
                                found=unexpected, fix=fix))
    for key, want in expected.items():
        have = state.get(key)
        if key in state and not isinstance(have, torch.Tensor):
            problems.append(Problem("state_dict entry is not a tensor", file=file, where=key,
                                    found=type(have).__name__, fix=fix))
        elif key in state and not plain_tensor_like(have, want):
            # Checked before anything reads the values: a meta tensor has none, a sparse one
            # fails most operations, and loading a complex one would silently drop its imaginary part.
            problems.append(Problem("state_dict tensor is not a plain dense CPU tensor of the expected dtype",
                                    file=file, where=key,
                                    found=f"layout {have.layout}, device {have.device.type}, dtype {have.dtype}",
                                    allowed=f"layout torch.strided, device cpu, dtype {expected_dtype_text(want)}",
                                    fix="save the weights themselves, dense and real (tensor.to_dense().cpu()); "
                                        "a meta tensor holds no values; or " + RETRAIN_FIX))
        elif key in state and have.shape != want.shape:
            problems.append(Problem("state_dict tensor has the wrong shape", file=file, where=key,
                                    found=tuple(have.shape), allowed=tuple(want.shape), fix=fix))
        elif key in state and have.is_floating_point() and not torch.isfinite(have).all():
            problems.append(Problem("state_dict tensor holds NaN or infinity", file=file, where=key,
                                    fix="the training diverged; " + RETRAIN_FIX))
    return problems


def plain_tensor_like(have: torch.Tensor, want: torch.Tensor) -> bool:
    """``have`` is dense, on the CPU and of a dtype that ``want`` can take without losing meaning."""
    if have.layout != torch.strided or have.device.type != "cpu":
        return False
    if want.is_floating_point():
        return have.is_floating_point()  # any float width converts; complex, integer and quantized do not
    return have.dtype == want.dtype


def expected_dtype_text(want: torch.Tensor) -> str:
    return "a real floating-point type (float32 as saved)" if want.is_floating_point() else str(want.dtype)
