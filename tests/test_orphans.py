"""Killing the CLI during a Lava run leaves no process and no shared-memory segment behind."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rsnn2chip import artifact
from rsnn2chip.compiler import compile_graph
from rsnn2chip.targets import load_target

from conftest import random_spikes, small_graph

ROOT = Path(__file__).resolve().parents[1]
SHM = Path("/dev/shm")


def _children() -> dict[int, list[int]]:
    """ppid -> pids of every live (not zombie) process."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z":
            tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def _descendants(pid: int) -> set[int]:
    tree, found, todo = _children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _shm_of(pids) -> set[str]:
    """The /dev/shm segments these processes map (other programs on the machine have their own)."""
    names = set()
    for pid in pids:
        try:
            maps = Path(f"/proc/{pid}/maps").read_text()
        except OSError:
            continue
        names |= {line.split("/dev/shm/", 1)[1].split(" ")[0] for line in maps.splitlines() if "/dev/shm/" in line}
    return names


@pytest.mark.lava
@pytest.mark.parametrize("sig", [signal.SIGKILL, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)])
def test_killing_the_cli_during_a_lava_run_leaves_nothing_behind(tmp_path, sig):
    net = tmp_path / "net.r2c"
    artifact.save(compile_graph(small_graph(), load_target("loihi2-sim")), net)
    x = tmp_path / "x.npy"
    np.save(x, random_spikes(0, 20, 6))
    cli = subprocess.Popen([sys.executable, "-m", "rsnn2chip", "run", str(net), "--input", str(x), "--backend",
                            "lava", "--steps", "500000", "--timeout", "600"],
                           cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: set[int] = set()
    try:
        # Lava is running once the watchdog child has its runtime processes (3 populations -> several).
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and cli.poll() is None:
            seen |= _descendants(cli.pid)
            if len(seen) >= 4:
                break
            time.sleep(0.2)
        assert cli.poll() is None, "the run ended before it could be killed"
        assert len(seen) >= 4, f"Lava did not start within 120 s (saw {sorted(seen)})"
        time.sleep(1.0)
        seen |= _descendants(cli.pid)
        shm_during = _shm_of(seen)
        assert shm_during, "Lava's processes map no shared memory; the check below would test nothing"
        cli.send_signal(sig)
        cli.wait(timeout=30)
        deadline = time.monotonic() + 15
        while any(_alive(p) for p in seen) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = sorted(p for p in seen if _alive(p))
        assert not left, f"processes left behind after {sig.name}: {left}"
        deadline = time.monotonic() + 15
        while any((SHM / name).exists() for name in shm_during) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = sorted(name for name in shm_during if (SHM / name).exists())
        assert not left, f"shared memory left behind: {left}"
    finally:
        for pid in [cli.pid, *seen]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        cli.wait(timeout=30)
