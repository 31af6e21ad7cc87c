"""The Python 3.11 import fix for lava: applied where needed, a no-op where not."""
import subprocess
import sys
import textwrap
from pathlib import Path

from rsnn2chip import _lava_compat

REPO = Path(__file__).resolve().parent.parent


def _python(code: str, extra_path: Path | None = None) -> subprocess.CompletedProcess:
    path = [str(REPO)] + ([str(extra_path)] if extra_path else [])
    env_code = f"import sys; sys.path[:0] = {path!r}\n" + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", env_code], capture_output=True, text=True, timeout=300)


def test_unpatched_lava_fails_on_this_python():
    # Proves the hook is needed here: without rsnn2chip, lava's var_model does not import.
    result = _python("import lava.magma.compiler.var_model")
    assert result.returncode != 0
    assert "mutable default" in result.stderr


def test_hook_rewrites_every_bytencoder_default():
    result = _python("""
        import rsnn2chip
        from rsnn2chip import _lava_compat
        import lava.magma.compiler.var_model as vm
        a, b = vm.CoreEncoder(), vm.CoreEncoder()
        print(_lava_compat.fields_rewritten(), a.p is not b.p)  # each instance gets its own encoder
    """)
    assert result.returncode == 0, result.stderr
    source = Path(_spec_origin()).read_text()
    expected = source.count("ByteEncoder = ByteEncoder()")
    assert expected > 0
    assert result.stdout.split() == [str(expected), "True"]


def _spec_origin() -> str:
    import importlib.util
    return importlib.util.find_spec("lava.magma.compiler").submodule_search_locations[0] + "/var_model.py"


def test_netx_imports_after_rsnn2chip():
    result = _python("""
        import rsnn2chip
        import lava.lib.dl.netx
        from lava.proc.lif.process import LIF
        print("ok")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")


def test_hook_is_a_noop_where_lava_is_already_fixed(tmp_path):
    # A lava whose var_model already uses default_factory: the hook must load it unchanged.
    pkg = tmp_path / "lava" / "magma" / "compiler"
    pkg.mkdir(parents=True)
    for d in (tmp_path / "lava", tmp_path / "lava" / "magma", pkg):
        (d / "__init__.py").write_text("")
    (pkg / "var_model.py").write_text(textwrap.dedent("""
        from dataclasses import dataclass, field

        class ByteEncoder:
            pass

        @dataclass
        class LoihiAddress:
            p: ByteEncoder = field(default_factory=ByteEncoder)
        MARKER = "already fixed"
    """))
    result = _python("""
        import sys
        sys.path.insert(0, sys.path.pop(1))  # the fake lava first
        import rsnn2chip
        from rsnn2chip import _lava_compat
        import lava.magma.compiler.var_model as vm
        print(vm.MARKER, _lava_compat.fields_rewritten(), vm.__file__.startswith(sys.path[0]))
    """, extra_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["already", "fixed", "0", "True"]


def test_patch_source_leaves_other_text_alone():
    fixed = "    x: ByteEncoder = field(default_factory=ByteEncoder)\n"
    assert _lava_compat.patch_source(fixed) == (fixed, 0)
    broken = "from __future__ import annotations\nclass A:\n    x: ByteEncoder = ByteEncoder()\n"
    patched, n = _lava_compat.patch_source(broken)
    assert n == 1
    assert patched.startswith("from __future__ import annotations\n")
    assert patched.count("\n") == broken.count("\n")  # tracebacks keep true line numbers


def test_install_is_idempotent():
    assert _lava_compat.install() is False  # rsnn2chip's import already installed it
    assert sum(isinstance(f, _lava_compat.LavaPy311Finder) for f in sys.meta_path) == 1
