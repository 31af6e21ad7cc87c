"""The user example of docs/lava.md runs as written (real Lava, real files)."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch

import rsnn2chip  # noqa: F401 - must precede any lava import
from rsnn2chip import artifact
from rsnn2chip.backends.watchdog import run_with_watchdog
from rsnn2chip.compiler import compile_graph
from rsnn2chip.nn import RSNN, example_arch
from rsnn2chip.targets import load_target

DOC = Path(__file__).resolve().parents[1] / "docs" / "lava.md"


def example_code() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert blocks, "docs/lava.md lost its example"
    return blocks[0]


def _run_in(directory: str, code: str) -> str:
    os.chdir(directory)
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(code, str(DOC), "exec"), {"__name__": "__docs__"})
    return buf.getvalue()


@pytest.mark.lava
def test_lava_doc_example_runs(tmp_path):
    torch.manual_seed(0)
    model = RSNN(example_arch("doc", input_size=6, sizes=(24, 4)))
    with torch.no_grad():
        next(iter(model.parameters())).mul_(3.0)  # an untrained network that fires
    artifact.save(compile_graph(model.to_ir(), load_target("loihi2-sim")), tmp_path / "net.r2c")
    printed = run_with_watchdog(_run_in, (str(tmp_path), example_code()), 180, "docs/lava.md example")
    assert "identical to the reference" in printed
