"""The project stands alone: nothing in it points at files outside the repository."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# A reference to a sibling of the checkout or to this machine's absolute paths.
OUTSIDE = re.compile(r"\.\./shared/|shared/reference/|/work/(main|wt|shared)\b")


def test_no_file_refers_outside_the_repository():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    this = Path(__file__).relative_to(ROOT).as_posix()
    offenders = []
    for name in files:
        path = ROOT / name
        if name == this or not path.is_file() or path.suffix in {".png", ".npz", ".pt", ".r2c", ".net", ".nir"}:
            continue
        text = path.read_text(errors="ignore")
        offenders += [f"{name}:{text[:m.start()].count(chr(10)) + 1}: {m.group(0)}" for m in OUTSIDE.finditer(text)]
    assert not offenders, "\n".join(offenders)


def test_every_doc_the_readme_lists_exists():
    readme = (ROOT / "README.md").read_text()
    for doc in set(re.findall(r"`(docs/[\w/.-]+\.md)`", readme)):
        assert (ROOT / doc).is_file(), doc
