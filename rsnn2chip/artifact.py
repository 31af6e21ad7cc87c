"""The compiled artifact (``.r2c``): one versioned, self-describing file.

It is a zip archive holding ``manifest.json`` (format, version, provenance,
the target description, the IR's metadata, the core mapping as NetworkX
node-link JSON, warnings, the SHA-256 of the arrays and, over all of that, the
SHA-256 of the manifest itself) and ``arrays.npz`` (the IR's arrays, read
without pickle). It is written atomically and validated when read: sizes,
checksums, then every value (``artifact_check.py``).
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

from rsnn2chip import __version__, ir
from rsnn2chip.artifact_check import Checker, check_ir_arrays, check_ir_meta, check_manifest_types, check_mapping
from rsnn2chip.errors import ArtifactError, Problem, R2CError
from rsnn2chip.fileio import atomic_write_bytes, plain
from rsnn2chip.safeio import ZIP_READ_ERRORS, check_readable_file, check_zip_members, load_npz_bytes, read_member
from rsnn2chip.targets import Target, target_from_dict

FORMAT = "rsnn2chip.artifact"
VERSION = 2  # 2: manifest_sha256 covers the whole manifest
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


def canonical_json(obj) -> bytes:
    """The bytes the manifest checksum is computed over: key order and spacing fixed."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def manifest_checksum(manifest: dict) -> str:
    """SHA-256 of the whole manifest except the checksum itself (it includes the arrays' checksum)."""
    return hashlib.sha256(canonical_json({k: v for k, v in manifest.items() if k != "manifest_sha256"})).hexdigest()


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
    text = json.dumps(manifest, indent=1)
    # Checksummed as it will be read back (JSON turns tuples into lists, keys into strings).
    manifest = json.loads(text)
    manifest["manifest_sha256"] = manifest_checksum(manifest)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr(MANIFEST, json.dumps(manifest, indent=1))
        z.writestr(ARRAYS, array_bytes)
    atomic_write_bytes(path, out.getvalue())


def _model_file_kind(path: Path) -> str | None:
    """The model format ``path`` holds (a torch checkpoint, NIR, netx), or None: reads headers and names only.

    Artifacts and checkpoints are both zips: a checkpoint is told by the pickle torch.save writes, and a zip
    that cannot be opened is a damaged one of either, not a model file."""
    from rsnn2chip.frontends import frontends

    with path.open("rb") as handle:
        is_zip = handle.read(4) == b"PK\x03\x04"
    if is_zip:
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except ZIP_READ_ERRORS:
            return None
        return "a torch checkpoint (model.pt)" if any(n.endswith("data.pkl") for n in names) else None
    return next((f.NAME for f in frontends() if f.sniff(path)), None)  # the checkpoint frontend sniffs zips only


def _refuse_model_file(path: Path) -> None:
    """Raise the error that says to compile first when ``path`` is not an artifact but a model file."""
    kind = _model_file_kind(path)
    if kind:
        raise ArtifactError("a model file where a compiled network (.r2c) belongs", file=str(path), found=kind,
                            allowed="an artifact written by `rsnn2chip compile`",
                            fix=f"compile it first: `rsnn2chip compile {path} --target TARGET -o "
                                f"{path.with_suffix('.r2c').name}`")


def load(path: str | Path) -> CompiledNetwork:
    """Read and validate an artifact; every problem is an :class:`ArtifactError` naming the file and entry.

    Order matters: sizes are bounded before anything is read, the checksums are
    checked before anything is parsed into arrays, and every array is checked
    (artifact_check) before it reaches SciPy or a backend.
    """
    path = Path(path)
    fix = ("pass an artifact written by `rsnn2chip compile`, or recompile: "
           f"`rsnn2chip compile MODEL --target TARGET -o {path.with_suffix('.r2c').name}`")
    check_readable_file(path, "artifact", ArtifactError, fix)
    file = str(path)
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if names != {MANIFEST, ARRAYS}:
                _refuse_model_file(path)
                raise ArtifactError("not an rsnn2chip artifact (missing manifest or arrays)" if not
                                    {MANIFEST, ARRAYS} <= names else "artifact holds unexpected members",
                                    file=file, found=sorted(names)[:10], allowed=[MANIFEST, ARRAYS], fix=fix)
            check_zip_members(z, file, ArtifactError)
            manifest_bytes = read_member(z, MANIFEST, file, ArtifactError, limit=MAX_MANIFEST_BYTES)
            manifest = _parse_manifest(manifest_bytes, file, fix)
            _check_manifest(manifest, path, fix)
            if _member_sha256(z, ARRAYS) != manifest["arrays_sha256"]:
                raise ArtifactError("artifact is corrupt: array checksum mismatch", file=file, where=ARRAYS, fix=fix)
            array_bytes = read_member(z, ARRAYS, file, ArtifactError)
    except ZIP_READ_ERRORS as exc:
        _refuse_model_file(path)
        raise ArtifactError(f"not a readable rsnn2chip artifact ({type(exc).__name__}: {exc})",
                            file=file, fix=fix) from None
    if hashlib.sha256(array_bytes).hexdigest() != manifest["arrays_sha256"]:
        raise ArtifactError("artifact is corrupt: array checksum mismatch", file=file, where=ARRAYS, fix=fix)
    # Object arrays would need unpickling: refused from their header, never loaded.
    arrays = load_npz_bytes(array_bytes, f"{file} ({ARRAYS})", ArtifactError)
    c = Checker(file)
    pops = check_ir_meta(manifest["ir"], c)
    if pops is not None:
        check_ir_arrays(manifest["ir"], pops, arrays, c)
        check_mapping(manifest["mapping"], pops, manifest["target"], c)
    _raise(c, fix)
    try:
        graph = ir.from_serializable(manifest["ir"], arrays)
        target = target_from_dict(manifest["target"], f"{path} (embedded target)")
        cores = json_graph.node_link_graph(manifest["mapping"], directed=True)
    except R2CError:
        raise
    except (KeyError, ValueError, TypeError, AttributeError, nx.NetworkXError) as exc:
        raise ArtifactError(f"artifact content is inconsistent ({type(exc).__name__}: {exc})", file=file,
                            fix=fix) from None
    return CompiledNetwork(graph, target, cores, manifest["provenance"], manifest["warnings"])


MAX_MANIFEST_BYTES = 256 << 20
MAX_PROBLEMS = 12


def _raise(c: Checker, fix: str) -> None:
    if not c.problems:
        return
    problems = c.problems[:MAX_PROBLEMS]
    for p in problems:
        p.fix = fix
    if len(c.problems) > MAX_PROBLEMS:
        problems.append(Problem(f"... and {len(c.problems) - MAX_PROBLEMS} more problems", file=c.file))
    raise ArtifactError(problems=problems)


def _member_sha256(z: zipfile.ZipFile, name: str) -> str:
    """Streamed, so a member that decompresses to gigabytes costs time, not memory, before it is refused."""
    h = hashlib.sha256()
    with z.open(name) as member:
        for chunk in iter(lambda: member.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _parse_manifest(payload: bytes, file: str, fix: str):
    try:
        return json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ArtifactError(f"artifact manifest is not valid JSON ({type(exc).__name__}: {exc})", file=file,
                            where=MANIFEST, fix=fix) from None


def _check_manifest(manifest, path: Path, fix: str) -> None:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArtifactError("not an rsnn2chip artifact", file=str(path), found=manifest.get("format")
                            if isinstance(manifest, dict) else type(manifest).__name__, allowed=FORMAT, fix=fix)
    version = manifest.get("version")
    if version != VERSION:
        # repr: the string "2" must not read as the integer 2 that is allowed
        raise ArtifactError("unsupported artifact version", file=str(path), where="manifest.json: version",
                            found=repr(version), allowed=repr(VERSION),
                            fix=fix + " with this rsnn2chip version")
    c = Checker(str(path))
    check_manifest_types(manifest, c)
    _raise(c, fix)
    if manifest_checksum(manifest) != manifest["manifest_sha256"]:
        raise ArtifactError("artifact is corrupt: manifest checksum mismatch", file=str(path), where=MANIFEST,
                            fix=fix)
