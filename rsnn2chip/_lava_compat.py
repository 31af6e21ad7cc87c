"""Make lava-nc 0.10 importable on Python 3.11 without touching site-packages.

Python 3.11 rejects dataclass fields whose default is an unhashable instance
(``x: ByteEncoder = ByteEncoder()`` in ``lava/magma/compiler/var_model.py``),
so ``import lava.magma...`` fails. Lava is archived and will not be fixed
upstream, and we must not edit installed files, so this module installs a
meta-path finder that rewrites that one module's source as it is loaded.
Where the module is already fixed (or a future lava changes it), the pattern
is absent and the source is compiled unchanged.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import re
import sys

TARGET_MODULE = "lava.magma.compiler.var_model"
_MUTABLE_DEFAULT = re.compile(r"^([ \t]+\w+: ByteEncoder) = ByteEncoder\(\)[ \t]*$", re.MULTILINE)


def patch_source(source: str) -> tuple[str, int]:
    """Return ``(patched_source, n_fields_rewritten)``; unchanged when nothing matches."""
    # No import line is added: the module starts with a __future__ import,
    # which must stay first, and line numbers in tracebacks stay true.
    return _MUTABLE_DEFAULT.subn(
        r"\1 = __import__('dataclasses').field(default_factory=ByteEncoder)", source
    )


class _PatchingLoader(importlib.machinery.SourceFileLoader):
    fields_rewritten = 0

    def source_to_code(self, data, path, *, _optimize=-1):  # noqa: D401 - importlib API
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
        patched, count = patch_source(text)
        type(self).fields_rewritten += count
        return compile(patched, path, "exec", dont_inherit=True, optimize=_optimize)

    def get_code(self, fullname):
        # Bypass the bytecode cache: a cached .pyc of the unpatched source would
        # skip source_to_code, and ours must never be written back either.
        source = self.get_source(fullname)
        return self.source_to_code(source.encode("utf-8"), self.get_filename(fullname))


class LavaPy311Finder(importlib.abc.MetaPathFinder):
    """Finds ``lava.magma.compiler.var_model`` and loads it through the patching loader."""

    def find_spec(self, fullname, path, target=None):
        if fullname != TARGET_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return spec
        loader = _PatchingLoader(fullname, spec.origin)
        return importlib.util.spec_from_file_location(fullname, spec.origin, loader=loader)


def install() -> bool:
    """Install the finder once. Returns True if it was newly installed."""
    if any(isinstance(f, LavaPy311Finder) for f in sys.meta_path):
        return False
    if sys.version_info < (3, 11):
        return False  # lava's own supported Pythons accept the original source
    sys.meta_path.insert(0, LavaPy311Finder())
    return True


def fields_rewritten() -> int:
    """How many dataclass fields the hook has rewritten in this interpreter."""
    return _PatchingLoader.fields_rewritten
