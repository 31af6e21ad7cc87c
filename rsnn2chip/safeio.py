"""Reading untrusted files with every size known and bounded before anything is allocated.

Every file the tool reads goes through these helpers (or, for checkpoints,
torch's ``weights_only`` loader behind :func:`check_zip_members`). They refuse,
with an error naming the file, the entry and the limit:

* a path that is missing, a directory, or unreadable;
* a zip member (``.npz``, ``.r2c``, ``.pt``) whose declared uncompressed size
  does not fit in memory: ``zipfile`` never returns more than the declared
  size, so checking the declaration bounds what reading can allocate;
* a ``.npy`` header declaring an array larger than memory, an object dtype
  (which would need unpickling) or a malformed shape;
* YAML whose anchors and aliases expand past :data:`YAML_MAX_NODES` nodes
  (an "alias bomb": a few hundred bytes that expand to billions of values
  when anything walks the loaded object).

The memory budget is the memory the system reports as available now
(:func:`preflight.available_bytes`).
"""
from __future__ import annotations

import io
import json
import tokenize
import zipfile
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
import yaml

from rsnn2chip.errors import InputError, R2CError
from rsnn2chip.preflight import check_fits, human_bytes

YAML_MAX_BYTES = 16 << 20  # arch and space files, and run results, are a few kB
YAML_MAX_NODES = 1_000_000  # after alias expansion; real files have a few hundred


def check_readable_file(path: str | Path, what: str, error: type[R2CError] = InputError,
                        fix: str | None = None) -> Path:
    """``path`` as a Path if it is an existing, readable regular file; otherwise a clear error."""
    path = Path(path)
    if path.is_dir():
        raise error(f"{what} is a directory, not a file", file=str(path), fix=fix or f"pass the {what} itself")
    if not path.exists():
        raise error(f"{what} not found", file=str(path), fix=fix or "check the path")
    if not path.is_file():
        raise error(f"{what} is not a regular file", file=str(path), fix=fix or f"pass the {what} itself")
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise error(f"cannot read {what} ({exc.strerror or exc})", file=str(path), fix=fix) from None
    return path


# --------------------------------------------------------------------------- zip archives

# What reading a damaged zip can raise: a flipped bit in a deflate stream surfaces
# as zlib.error from the decompressor, and one in a member name flagged UTF-8 as
# UnicodeDecodeError, neither as BadZipFile.
ZIP_READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, UnicodeDecodeError, EOFError, OSError,
                   NotImplementedError, RuntimeError)


def check_zip_members(z: zipfile.ZipFile, file: str, error: type[R2CError] = InputError,
                      budget: int | None = None) -> None:
    """Every member's declared uncompressed size, and their sum, fit the memory budget."""
    total = 0
    for info in z.infolist():
        if info.file_size < 0 or info.compress_size < 0:
            raise error("zip archive declares a negative size", file=file, where=info.filename)
        total += info.file_size
    check_fits(total, f"uncompressed contents of {Path(file).name}", file=file, error=error, budget=budget,
               fix="the archive declares more data than this machine can hold; it is damaged or crafted")


def read_member(z: zipfile.ZipFile, name: str, file: str, error: type[R2CError] = InputError,
                limit: int | None = None) -> bytes:
    """One member's bytes, refusing members declared larger than ``limit`` (or than memory)."""
    info = z.getinfo(name)
    if limit is not None and info.file_size > limit:
        raise error(f"zip member {name} is too large", file=file, where=name,
                    found=human_bytes(info.file_size), allowed=f"at most {human_bytes(limit)}")
    check_fits(info.file_size, f"zip member {name}", file=file, error=error)
    return z.read(name)


# --------------------------------------------------------------------------- npy / npz

NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integers, floats: all any of our formats holds


def npy_header(handle, file: str, where: str, error: type[R2CError], kinds: str = NUMERIC_KINDS,
               fix: str | None = None) -> tuple[tuple[int, ...], np.dtype, bool]:
    """``(shape, dtype, fortran_order)`` from a ``.npy`` header, validated; the handle is left at the data.
    ``fix``: the caller's advice for a refused dtype (how its kind of file is written), else a generic one."""
    try:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle, max_header_size=10000)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle, max_header_size=10000)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, EOFError, OSError, SyntaxError, TypeError, tokenize.TokenError) as exc:
        # numpy parses the header with Python's tokenizer: a damaged one can end inside a bracket.
        raise error(f"not a readable .npy array ({exc})", file=file, where=where,
                    fix="write arrays with numpy.save / numpy.savez") from None
    allowed = "plain " + ", ".join({"b": "bool", "i": "int", "u": "uint", "f": "float", "U": "str"}[k] for k in kinds)
    convert = fix or "save it as a plain numeric array, e.g. numpy.save(path, np.asarray(x, np.float32))"
    if dtype.hasobject:
        raise error("array holds Python objects, which are never unpickled", file=file, where=where,
                    found=f"dtype {dtype}", allowed=allowed, fix=convert)
    if dtype.kind not in kinds or dtype.fields is not None or dtype.subdtype is not None:
        raise error("array has an unsupported dtype", file=file, where=where, found=f"dtype {dtype}",
                    allowed=allowed, fix=convert)
    if not all(isinstance(n, int) and n >= 0 for n in shape):
        raise error("array header declares an invalid shape", file=file, where=where, found=shape,
                    fix="write arrays with numpy.save / numpy.savez")
    nbytes = int(np.prod([int(n) for n in shape], dtype=object)) * dtype.itemsize
    check_fits(nbytes, f"array {where} of shape {shape} and dtype {dtype}", file=file, error=error)
    return tuple(shape), dtype, fortran


def _read_npy(handle, file: str, where: str, error: type[R2CError], kinds: str = NUMERIC_KINDS,
              fix: str | None = None) -> np.ndarray:
    shape, dtype, fortran = npy_header(handle, file, where, error, kinds, fix)
    count = int(np.prod(shape, dtype=np.int64))
    array = np.empty(count, dtype=dtype)
    buffer, got = memoryview(array.view(np.uint8)), 0
    while got < array.nbytes:
        n = handle.readinto(buffer[got:])
        if not n:
            raise error("array data is truncated", file=file, where=where, found=f"{got} bytes",
                        allowed=f"{array.nbytes} bytes for shape {shape}")
        got += n
    return array.reshape(shape[::-1]).transpose() if fortran else array.reshape(shape)


def load_npy(path: str | Path, what: str, error: type[R2CError] = InputError, fix: str | None = None) -> np.ndarray:
    """A ``.npy`` file; its header is checked (dtype, shape, size) before the data is read."""
    path = check_readable_file(path, what, error, fix)
    with path.open("rb") as handle:
        return _read_npy(handle, str(path), path.name, error, fix=fix)


def load_npz_bytes(payload: bytes, file: str, error: type[R2CError] = InputError) -> dict[str, np.ndarray]:
    return _load_npz(io.BytesIO(payload), file, error)


def load_npz(path: str | Path, what: str, error: type[R2CError] = InputError, fix: str | None = None,
             keys: Callable[[list[str]], None] | None = None, kinds: str = NUMERIC_KINDS) -> dict[str, np.ndarray]:
    """A ``.npz`` archive as ``{name: array}``, bounded and without unpickling.

    ``keys``, if given, sees the member names first, so a file with unexpected
    entries is refused before any array is read.
    """
    path = check_readable_file(path, what, error, fix)
    if not zipfile.is_zipfile(path):
        raise error(f"{what} is not a readable .npz file (not a zip archive)", file=str(path),
                    fix=fix or "write it with numpy.savez")
    with path.open("rb") as handle:
        return _load_npz(handle, str(path), error, keys, kinds, fix)


def _load_npz(handle, file: str, error: type[R2CError], keys=None, kinds: str = NUMERIC_KINDS,
              fix: str | None = None) -> dict[str, np.ndarray]:
    try:
        with zipfile.ZipFile(handle) as z:
            check_zip_members(z, file, error)
            names = [n for n in z.namelist()]
            bad = [n for n in names if not n.endswith(".npy")]
            if bad:
                raise error("npz archive holds members that are not .npy arrays", file=file, found=bad[:5],
                            allowed="NAME.npy members only (numpy.savez)")
            if keys is not None:
                keys([n[:-4] for n in names])
            arrays = {}
            for name in names:
                with z.open(name) as member:
                    arrays[name[:-4]] = _read_npy(member, file, name[:-4], error, kinds, fix)
            return arrays
    except ZIP_READ_ERRORS as exc:
        raise error(f"not a readable .npz archive ({type(exc).__name__}: {exc})", file=file,
                    fix="write it with numpy.savez") from None


# --------------------------------------------------------------------------- YAML and JSON text

def read_text(path: str | Path, what: str, error: type[R2CError] = InputError, fix: str | None = None) -> str:
    """A small UTF-8 text file (YAML descriptions, JSON run results), refusing one past :data:`YAML_MAX_BYTES`."""
    path = check_readable_file(path, what, error, fix)
    size = path.stat().st_size
    if size > YAML_MAX_BYTES:
        raise error(f"{what} is too large for a description file", file=str(path), found=human_bytes(size),
                    allowed=f"at most {human_bytes(YAML_MAX_BYTES)}", fix=fix)
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what} is not UTF-8 text ({exc.reason} at byte {exc.start})", file=str(path), fix=fix) from None


def load_yaml(path: str | Path, what: str, error: type[R2CError] = InputError, fix: str | None = None):
    """A YAML document with the safe loader, refusing alias expansion past :data:`YAML_MAX_NODES`."""
    return parse_yaml(read_text(path, what, error, fix), str(path), what, error, fix)


def load_json(path: str | Path, what: str, error: type[R2CError] = InputError, fix: str | None = None):
    return parse_json(read_text(path, what, error, fix), str(path), what, error, fix)


def parse_json(text: str, file: str, what: str, error: type[R2CError] = InputError, fix: str | None = None,
               where: str | None = None):
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # ValueError: bad syntax, or an int past 4300 digits
        raise error(f"{what} is not valid JSON ({type(exc).__name__}: {exc})", file=file, where=where,
                    fix=fix) from None


class _PlacedLoader(yaml.SafeLoader):
    """The safe loader, reporting a scalar Python cannot build as a YAML error at its line and column.

    The resolver types a scalar by its spelling alone, so ``5000 nines`` resolves to int and then
    exceeds Python's 4300-digit conversion limit, and ``2020-13-45`` resolves to a date with no
    month 13: both raise a bare ValueError that would name neither the file nor the place.
    """

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep)
        except ValueError as exc:
            reason = str(exc).split(";")[0]  # drop Python's hint about sys.set_int_max_str_digits
            raise yaml.constructor.ConstructorError(None, None, f"cannot convert this value ({reason})",
                                                    node.start_mark) from None


def parse_yaml(text: str, file: str, what: str, error: type[R2CError] = InputError, fix: str | None = None):
    loader = None
    try:
        loader = _PlacedLoader(text)  # its reader refuses control characters already here
        node = loader.get_single_node()
        if node is None:
            return None
        expanded = _expanded_nodes(node)
        if expanded > YAML_MAX_NODES:
            raise error(f"{what} expands to too many values through YAML anchors and aliases", file=file,
                        found=f"{expanded:,} nodes after alias expansion" if expanded < 10 ** 18 else
                        "more than 10^18 nodes after alias expansion",
                        allowed=f"at most {YAML_MAX_NODES:,}", fix="write the values out instead of nesting aliases")
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise error(f"{what} is not valid YAML: {exc}", file=file, fix=fix) from None
    except RecursionError:
        raise error(f"{what} nests too deeply", file=file, fix=fix) from None
    finally:
        if loader is not None:
            loader.dispose()


def check_expansion(obj, file: str, where: str, error: type[R2CError] = InputError,
                    limit: int = YAML_MAX_NODES) -> None:
    """Refuse nested containers that share children so deeply that walking them (repr, validation)
    would never end: a pickle can build the same alias bomb as YAML."""
    memo: dict[int, int] = {}
    in_progress: set[int] = set()
    cap = 10 ** 18

    def count(value) -> int:
        if not isinstance(value, (dict, list, tuple)):
            return 1
        key = id(value)
        if key in memo:
            return memo[key]
        if key in in_progress:
            return cap
        in_progress.add(key)
        children = [c for kv in value.items() for c in kv] if isinstance(value, dict) else value
        total = 1
        for child in children:
            total = min(cap, total + count(child))
        in_progress.discard(key)
        memo[key] = total
        return total

    try:
        total = count(obj)
    except RecursionError:
        total = cap
    if total > limit:
        raise error("file holds nested values that expand to too many entries (shared or recursive references)",
                    file=file, where=where, found=f"{total:,} entries" if total < cap else "unbounded",
                    allowed=f"at most {limit:,}")


def _expanded_nodes(root: yaml.Node) -> int:
    """Nodes the document has once every alias is replaced by a copy of its anchor (memoised, so linear)."""
    memo: dict[int, int] = {}
    in_progress: set[int] = set()
    cap = 10 ** 18

    def count(node: yaml.Node) -> int:
        key = id(node)
        if key in memo:
            return memo[key]
        if key in in_progress:  # a recursive anchor expands forever
            return cap
        in_progress.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            for child in node.value:
                total = min(cap, total + count(child))
        elif isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                total = min(cap, total + count(k) + count(v))
        in_progress.discard(key)
        memo[key] = total
        return total

    return count(root)
