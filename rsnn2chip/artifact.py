"""The compiled artifact (``.r2c``): one versioned, self-describing file.

It is a zip archive holding ``manifest.json`` (format, version, provenance,
the target description, the IR's metadata, the core mapping as NetworkX
node-link JSON, warnings) and ``arrays.npz`` (the IR's arrays, loaded with
``allow_pickle=False``). It is written atomically and validated when read.
"""
from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx
import numpy as np
from networkx.readwrite import json_graph

from rsnn2chip import __version__, fixedpoint as fx, ir
from rsnn2chip.errors import ArtifactError, R2CError
from rsnn2chip.fileio import atomic_write_bytes, plain
from rsnn2chip.targets import Target, target_from_dict

FORMAT = "rsnn2chip.artifact"
VERSION = 1
MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"


@dataclass
class CompiledNetwork:
    graph: nx.DiGraph  # quantized IR
    target: Target
    cores: nx.DiGraph  # core graph (see passes/place.py)
    provenance: dict = field(default_factory=dict)
    warnings: list[dict] = field(default_factory=list)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def provenance_for(source: str | Path, **extra) -> dict:
    return {"source": str(source), "source_sha256": sha256_file(source), "tool": "rsnn2chip",
            "tool_version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **extra}


def save(artifact: CompiledNetwork, path: str | Path) -> None:
    meta, arrays = ir.to_serializable(artifact.graph)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    array_bytes = buf.getvalue()
    manifest = plain({
        "format": FORMAT, "version": VERSION, "tool_version": __version__,
        "provenance": artifact.provenance, "target": artifact.target.data, "ir": meta,
        "mapping": json_graph.node_link_data(artifact.cores), "warnings": artifact.warnings,
        "arrays_sha256": hashlib.sha256(array_bytes).hexdigest(),
    })
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr(MANIFEST, json.dumps(manifest, indent=1))
        z.writestr(ARRAYS, array_bytes)
    atomic_write_bytes(path, out.getvalue())


def load(path: str | Path) -> CompiledNetwork:
    path = Path(path)
    fix = ("pass an artifact written by `rsnn2chip compile`, or recompile: "
           f"`rsnn2chip compile MODEL --target TARGET -o {path.with_suffix('.r2c').name}`")
    if not path.is_file():
        raise ArtifactError("artifact not found", file=str(path), fix=fix)
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if MANIFEST not in names or ARRAYS not in names:
                raise ArtifactError("not an rsnn2chip artifact (missing manifest or arrays)", file=str(path),
                                    found=sorted(names), fix=fix)
            manifest = json.loads(z.read(MANIFEST))
            array_bytes = z.read(ARRAYS)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ArtifactError(f"not a readable rsnn2chip artifact ({type(exc).__name__}: {exc})",
                            file=str(path), fix=fix) from None
    _check_manifest(manifest, path, fix)
    if hashlib.sha256(array_bytes).hexdigest() != manifest["arrays_sha256"]:
        raise ArtifactError("artifact is corrupt: array checksum mismatch", file=str(path), fix=fix)
    try:
        with np.load(io.BytesIO(array_bytes), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        # Includes object arrays, which would need unpickling: refused, never loaded.
        raise ArtifactError(f"artifact arrays are unreadable ({exc})", file=str(path), fix=fix) from None
    try:
        graph = ir.from_serializable(manifest["ir"], arrays)
        target = target_from_dict(manifest["target"], f"{path} (embedded target)")
        cores = json_graph.node_link_graph(manifest["mapping"], directed=True)
    except R2CError:
        raise
    except (KeyError, ValueError, TypeError) as exc:
        raise ArtifactError(f"artifact content is inconsistent ({type(exc).__name__}: {exc})", file=str(path),
                            fix=fix) from None
    problems = validate_fixed_point(graph)
    if problems:
        raise ArtifactError("artifact holds values Loihi cannot represent: " + "; ".join(problems),
                            file=str(path), fix=fix)
    return CompiledNetwork(graph, target, cores, manifest["provenance"], manifest.get("warnings", []))


def _check_manifest(manifest, path: Path, fix: str) -> None:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArtifactError("not an rsnn2chip artifact", file=str(path), found=manifest.get("format")
                            if isinstance(manifest, dict) else type(manifest).__name__, allowed=FORMAT, fix=fix)
    version = manifest.get("version")
    if version != VERSION:
        raise ArtifactError("unsupported artifact version", file=str(path), found=version, allowed=VERSION,
                            fix=fix + " with this rsnn2chip version")
    missing = [k for k in ("provenance", "target", "ir", "mapping", "arrays_sha256") if k not in manifest]
    if missing:
        raise ArtifactError(f"artifact manifest lacks {', '.join(missing)}", file=str(path), fix=fix)


def validate_fixed_point(graph: nx.DiGraph) -> list[str]:
    """Every fixed-point value within the range Lava's models accept."""
    problems = []
    for pop in ir.populations(graph, "lif"):
        if pop.fixed is None:
            problems.append(f"population {pop.name} is not quantized")
            continue
        for name, (lo, hi) in pop.model.fixed_ranges.items():
            values = getattr(pop.fixed, name)
            if values.size and (values.min() < lo or values.max() > hi):
                problems.append(f"population {pop.name} {name} outside {lo}..{hi}")
    for proj in ir.projections(graph):
        if proj.quant is None:
            problems.append(f"projection {proj.name} is not quantized")
            continue
        lo, hi = fx.WEIGHT_RANGE.get(proj.quant.sign_mode, (0, -1))
        data = proj.quant.mantissa.data
        if data.size and (data.min() < lo or data.max() > hi):
            problems.append(f"projection {proj.name} mantissa outside {lo}..{hi} ({proj.quant.sign_mode})")
    return problems
