"""Atomic file and directory writes: a reader never sees a half-written artifact, checkpoint or report.

Every output path problem (a read-only or full file system, a parent that is a
file, an output that is a directory, no permission) becomes an
:class:`OutputError` naming the path and the cause, and leaves nothing behind.
"""
from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Collection, Iterator, Mapping

import numpy as np

from rsnn2chip.errors import OutputError

_CAUSES = {
    errno.ENOSPC: ("the disk is full", "free space or write elsewhere"),
    errno.EDQUOT: ("the disk quota is exceeded", "free space or write elsewhere"),
    errno.EFBIG: ("the file exceeds the allowed file size", "write elsewhere or raise the limit (ulimit -f)"),
    errno.EROFS: ("the file system is read-only", "write to a writable directory"),
    errno.EACCES: ("permission denied", "write to a directory you may write to"),
    errno.EPERM: ("permission denied", "write to a directory you may write to"),
    errno.ENOTDIR: ("a parent of the path is a file, not a directory", "choose a path whose parents are directories"),
    errno.EISDIR: ("the output path is a directory", "give a file name, not a directory"),
    errno.ENAMETOOLONG: ("the file name is too long", "use a shorter name"),
}


def output_error(path, exc: OSError, doing: str = "cannot write output") -> OutputError:
    cause, fix = _CAUSES.get(exc.errno, (exc.strerror or str(exc), "check the path"))
    return OutputError(f"{doing}: {cause}", file=str(path), found=f"{type(exc).__name__}: "
                       f"{exc.strerror or exc}", fix=fix)


def check_output_file(path: Path) -> None:
    """Refuse, before any work, an output file path that is a directory or sits under a file."""
    if path.is_dir():
        raise OutputError("cannot write output: the output path is a directory", file=str(path),
                          fix="give a file name, not a directory")
    if path.exists() and not path.is_file():
        # A device or pipe: replacing it by rename would destroy it, not write to it.
        raise OutputError("cannot write output: the output path exists and is not a regular file", file=str(path),
                          fix="give the path of a regular file")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError("cannot write output: a parent of the path is a file, not a directory",
                                  file=str(path), where=str(parent), fix="choose a path whose parents are directories")
            # A read-only or forbidden directory is found now, not after the training or compile it would end.
            try:
                fd, probe = tempfile.mkstemp(prefix=".rsnn2chip-probe.", dir=parent)
            except OSError as exc:
                raise output_error(path, exc) from None
            os.close(fd)
            os.unlink(probe)
            break


def make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(path, exc) from None


def default_mode(directory: bool = False) -> int:
    """The permissions a plain ``open()``/``mkdir()`` would give under the current umask."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(handle)`` on a temporary file beside ``path``, then rename it into place.

    The temporary file sits in the target directory so ``os.replace`` is a
    rename, not a copy; on any failure it is removed and ``path`` is untouched.
    """
    path = Path(path)
    check_output_file(path)
    make_parent(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise output_error(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600; artifacts and reports are meant to be shared like any file.
        os.chmod(tmp, default_mode())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise output_error(path, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def check_distinct_paths(inputs: Mapping[str, str | Path | None], outputs: Mapping[str, str | Path | None]) -> None:
    """Refuse, before any work, an output that is one of the inputs or another output (``{option: path}``), or
    lies inside another output, and an input inside an output (a directory).

    Writing one over the other would destroy the input, or keep only the last of two outputs. An output inside
    an input directory is allowed: nothing is replaced there, only a file added. An input that
    does not exist is a name (a data set, a target), not a file, and cannot be overwritten.
    """
    def same(a: Path, b: Path) -> bool:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)  # also a hard link or a second spelling through a symlink
        return a.resolve() == b.resolve()

    def inside(inner: Path, outer: Path) -> bool:
        return outer.resolve() in inner.resolve().parents

    def refuse(message: str, path: Path, first: str, second: str, found: str, fix: str) -> None:
        raise OutputError(message, file=str(path), where=f"{first} and {second}", found=found, fix=fix)

    existing_inputs = [(option, Path(path)) for option, path in inputs.items() if path is not None
                       and Path(path).exists()]
    given_outputs = [(option, Path(path)) for option, path in outputs.items() if path is not None]
    for index, (out_option, out_path) in enumerate(given_outputs):
        for in_option, in_path in existing_inputs:
            if same(out_path, in_path):
                refuse(f"the output {out_option} is the input {in_option}: writing it would destroy the input",
                       out_path, out_option, in_option, f"{out_path} and {in_path} are the same file",
                       f"give {out_option} a path other than {in_option}'s")
            if inside(in_path, out_path):
                # An output directory is swapped whole or has its files renamed in: either can replace the input.
                refuse(f"the input {in_option} lies inside the output {out_option}, which this command writes as "
                       "a directory", in_path, in_option, out_option, f"{in_path} is inside {out_path}",
                       f"move {in_option} out of {out_path}, or give {out_option} another directory")
        for other_option, other_path in given_outputs[index + 1:]:
            if same(out_path, other_path):
                refuse(f"two outputs, {out_option} and {other_option}, are the same file: the second would "
                       "overwrite the first", out_path, out_option, other_option,
                       f"{out_path} and {other_path} are the same file",
                       f"give {out_option} and {other_option} different paths")
            for (inner_option, inner), (outer_option, outer) in (((out_option, out_path), (other_option, other_path)),
                                                                 ((other_option, other_path), (out_option, out_path))):
                # A directory output is written beside and swapped in whole, so a file written into it first
                # would be lost, or would make the swap refuse the directory after the run.
                if inside(inner, outer):
                    refuse(f"the output {inner_option} lies inside the output {outer_option}, which is written as "
                           "a whole directory", inner, inner_option, outer_option, f"{inner} is inside {outer}",
                           f"give {inner_option} a path outside {outer}")


def check_output_directory(path: str | Path, replaces: Collection[str] = ()) -> Path:
    """Refuse, before any work, a directory :func:`atomic_directory` could not write; return its absolute path.

    The path is made absolute first (``.`` and ``..`` are the directories they name): the hidden working
    sibling is created beside the directory itself. A directory is swapped whole only when it holds nothing
    but ``replaces``, the files an earlier run of the same writer left; anything else in it would be lost.
    The current directory, or one above it, is never swapped: the shell would be left in a deleted directory.
    """
    given = path
    path = Path(os.path.abspath(path))
    if not path.name:
        raise OutputError("cannot write output directory: the path is the file system root", file=str(given),
                          fix="give a directory below the root")
    if path.exists() and not path.is_dir():
        raise OutputError("cannot write output directory: the path exists and is a file", file=str(given),
                          fix="give a directory path, or remove the file")
    check_output_file(path / "x")
    if replaces and path.is_dir():
        cwd = Path.cwd().resolve()
        if path.resolve() == cwd or path.resolve() in cwd.parents:
            raise OutputError("cannot write output directory: it is the current directory, or holds it, and "
                              "replacing it would leave the shell in a deleted directory",
                              file=str(given), found=f"{given} is {path.resolve()}",
                              fix="give a new directory name, e.g. ./run")
        foreign = sorted(entry.name for entry in path.iterdir() if entry.name not in replaces)
        if foreign:
            raise OutputError("cannot write output directory: it holds files this command did not write, and "
                              "replacing the directory would delete them", file=str(given),
                              found=", ".join(foreign[:10]) + (f" ... ({len(foreign)} in all)" if len(foreign) > 10
                                                               else ""),
                              allowed=f"a new or empty directory, or one holding only {', '.join(sorted(replaces))}",
                              fix="give a new directory name, or move those files elsewhere")
    return path


@contextlib.contextmanager
def atomic_directory(path: str | Path, replaces: Collection[str] = ()) -> Iterator[Path]:
    """Yield a fresh directory beside ``path`` to fill; on success its files are moved into ``path``.

    All the writing happens in the hidden sibling, so a failure (full disk, a
    bad value found half-way) or a kill leaves ``path`` as it was: never a
    half-written set of files. A new ``path`` is one rename. Given ``replaces``
    (the names of all the files this writer puts there), an existing ``path``
    holding only those is swapped whole, one holding anything else refused
    (:func:`check_output_directory`); without, the new files are renamed into
    it one by one, keeping files the user put there.
    """
    path = check_output_directory(path, replaces)
    make_parent(path)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as exc:
        raise output_error(path, exc) from None
    try:
        yield tmp
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise output_error(path, exc) from None
        raise
    publish_directory(tmp, path, replaces)


def publish_directory(tmp: Path, path: Path, replaces: Collection[str] = ()) -> None:
    """Move the finished directory ``tmp`` to ``path`` (see :func:`atomic_directory`); ``tmp`` is gone after."""
    if replaces:
        try:
            # Checked again just before the swap: files may have been put there while the work ran.
            path = check_output_directory(path, replaces)
        except OutputError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    old = None
    try:
        tmp.chmod(default_mode(directory=True))  # mkdtemp made it 0700; outputs are as shareable as any file
        if path.exists() and not replaces:
            for entry in sorted(tmp.iterdir()):
                if (path / entry.name).is_dir() and entry.is_dir():
                    publish_directory(entry, path / entry.name)
                else:
                    os.replace(entry, path / entry.name)
            tmp.rmdir()
        else:
            if path.exists():
                old = path.with_name(f".{path.name}.old.{os.getpid()}")
                os.replace(path, old)
            os.replace(tmp, path)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not path.exists():
            os.replace(old, path)
        raise output_error(path, exc) from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def atomic_write_bytes(path: str | Path, payload: bytes) -> Path:
    return atomic_write(path, lambda handle: handle.write(payload))


def plain(obj):
    """numpy scalars and arrays -> Python numbers and lists, recursively, for JSON."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return plain(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _finite_or_null(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite_or_null(v) for v in obj]
    return obj


def json_text(obj, indent: int | None = 1) -> str:
    """``obj`` as strict JSON: numpy values become Python ones (:func:`plain`), and NaN and infinity, which
    JSON has no spelling for (``json.dumps`` would write ``NaN``, which strict parsers refuse), become null."""
    return json.dumps(_finite_or_null(plain(obj)), indent=indent, allow_nan=False, default=str)
