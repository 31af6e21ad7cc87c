"""The Lava backend against the NumPy reference, its process grouping, and the watchdog.

Every test here runs real Lava (no mocks).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
import scipy.sparse as sp

import rsnn2chip  # noqa: F401 - must precede any lava import
from netgen import random_inputs, random_lowered_network
from rsnn2chip import fixedpoint as fx
from rsnn2chip.backends import lava as lava_backend
from rsnn2chip.backends import reference
from rsnn2chip.backends.plan import LoweredNetwork, LoweredProjection, single_group
from rsnn2chip.neurons import cuba_lif
from rsnn2chip.backends.watchdog import run_with_watchdog
from rsnn2chip.lava import layout
from rsnn2chip.errors import BackendError, InputError

pytestmark = pytest.mark.lava

STEPS = 48


# --- bit-exactness against the reference -----------------------------------

@pytest.mark.lava
@pytest.mark.parametrize("seed", range(5))
def test_random_network_matches_reference(seed):
    rng = np.random.default_rng(seed)
    net = random_lowered_network(rng, n_pops=3, n_input_pops=2, n_projections=9)
    inputs = random_inputs(rng, net, batch=2, steps=STEPS)
    spikes, probes = lava_backend.simulate(net, inputs, STEPS, probes=("u", "v"))
    ref_spikes, ref_probes = reference.simulate(net, inputs, STEPS, probes=("u", "v"))
    assert spikes.dtype == bool and spikes.shape == ref_spikes.shape
    assert ref_spikes.any(), "a network that never spikes tests little"
    np.testing.assert_array_equal(spikes, ref_spikes)
    for name in ("u", "v"):
        assert probes[name].dtype == np.int32
        np.testing.assert_array_equal(probes[name], ref_probes[name], err_msg=name)


@pytest.mark.lava
def test_merged_groups_match_reference():
    """Networks where several projections share one synapse process still run bit-exactly."""
    rng = np.random.default_rng(11)
    net = random_lowered_network(rng, n_pops=4, n_input_pops=2, n_projections=14, exp_range=(0, 1), strong=0.0)
    groups = [g.projections for g in lava_backend.layout(net).synapse_groups]
    assert max(len(g) for g in groups) >= 2 and len(groups) < len(net.projections)
    inputs = random_inputs(rng, net, batch=3, steps=STEPS)
    spikes, probes = lava_backend.simulate(net, inputs, STEPS, probes=("v",))
    ref_spikes, ref_probes = reference.simulate(net, inputs, STEPS, probes=("v",))
    assert ref_spikes.any()
    np.testing.assert_array_equal(spikes, ref_spikes)
    np.testing.assert_array_equal(probes["v"], ref_probes["v"])


@pytest.mark.lava
def test_random_networks_reach_wrap_and_saturation():
    """The generator really drives u through its 24-bit wrap and v into saturation."""
    wrapped = saturated = False
    for seed in range(5):
        rng = np.random.default_rng(seed)
        net = random_lowered_network(rng, n_pops=3, n_input_pops=2, n_projections=9)
        _, probes = reference.simulate(net, random_inputs(rng, net, 2, STEPS), STEPS, probes=("u", "v"))
        wrapped |= bool((np.abs(np.diff(probes["u"].astype(np.int64), axis=1)) > fx.MAX_UV).any())
        saturated |= bool((np.abs(probes["v"]) == fx.MAX_UV - 1).any())
    assert wrapped and saturated


@pytest.mark.lava
def test_overlapping_same_key_projections_match_reference():
    """Two projections onto the same rows with one exponent: summing first would floor differently."""
    rng = np.random.default_rng(7)
    n, n_in = 6, 4
    params = {"du": np.full(n, 4095), "dv": np.full(n, 4095), "vth": np.full(n, 5),
              "bias_mant": np.zeros(n, np.int64), "bias_exp": np.zeros(n, np.int64)}
    weights = [sp.csr_matrix(rng.integers(-255, 0, (n, n_in)) | 1) for _ in range(2)]  # odd, so floors bite
    projs = [LoweredProjection(f"p{i}", "input", (0, n), (0, n_in), fx.lava_weights(w, "inhibitory"),
                               -3, "inhibitory") for i, w in enumerate(weights)]
    net = LoweredNetwork(n_in, n, {"in": (0, n_in)}, {"a": (0, n)}, single_group(cuba_lif.MODEL, params), projs)
    assert len(layout.plan(net).synapse_groups) == 2
    inputs = random_inputs(rng, net, 1, 16, rate=0.7)
    _, probes = lava_backend.simulate(net, inputs, 16, probes=("u",))
    _, ref = reference.simulate(net, inputs, 16, probes=("u",))
    np.testing.assert_array_equal(probes["u"], ref["u"])


@pytest.mark.lava
def test_network_without_projections_and_empty_edges():
    rng = np.random.default_rng(3)
    net = random_lowered_network(rng, n_pops=2, n_input_pops=1, n_projections=0)
    inputs = random_inputs(rng, net, 1, 10)
    spikes, probes = lava_backend.simulate(net, inputs, 10, probes=("v",))
    ref_spikes, ref_probes = reference.simulate(net, inputs, 10, probes=("v",))
    np.testing.assert_array_equal(spikes, ref_spikes)
    np.testing.assert_array_equal(probes["v"], ref_probes["v"])
    empty_spikes, empty_probes = lava_backend.simulate(net, inputs[:0], 10, probes=("u",))
    assert empty_spikes.shape == (0, 10, net.n_lif) and empty_probes["u"].shape == (0, 10, net.n_lif)


@pytest.mark.lava
def test_bad_inputs_are_rejected_before_running():
    net = random_lowered_network(np.random.default_rng(0))
    with pytest.raises(InputError):
        lava_backend.simulate(net, np.zeros((1, 5, net.n_input + 1)), 5)
    with pytest.raises(InputError):
        lava_backend.simulate(net, np.zeros((1, 5, net.n_input)), 5, probes=("w",))


# --- grouping (the layout's synapse groups, all neurons in one process) --------

def _proj(name, source, rows, cols, exp=0, mode="excitatory", value=1):
    shape = (rows[1] - rows[0], cols[1] - cols[0])
    return LoweredProjection(name, source, rows, cols, sp.csr_matrix(np.full(shape, value, np.int64)), exp, mode)


def _net(projs, n_lif=12, n_input=8):
    params = {k: np.zeros(n_lif, np.int64) for k in ("du", "dv", "vth", "bias_mant", "bias_exp")}
    return LoweredNetwork(n_input, n_lif, {"in": (0, n_input)}, {"all": (0, n_lif)},
                          single_group(cuba_lif.MODEL, params), projs)


def _groups(net):
    return [[p.name for p in g.projections] for g in layout.plan(net, merge="all").synapse_groups]


def test_grouping_merges_disjoint_rows_with_same_key():
    projs = [_proj("a", "lif", (0, 4), (0, 4)), _proj("b", "lif", (4, 8), (0, 4)),
             _proj("c", "lif", (8, 12), (4, 12)), _proj("i", "input", (0, 4), (0, 8)),
             _proj("j", "input", (4, 12), (0, 8))]
    assert _groups(_net(projs)) == [["a", "b", "c"], ["i", "j"]]
    assert lava_backend.process_count(_net(projs)) == 5  # lif, 2 synapses, source, extractor
    assert lava_backend.process_count(_net(projs), probes=("u", "v")) == 7


def test_grouping_never_merges_shared_synapses_or_different_keys():
    projs = [_proj("a", "lif", (0, 6), (0, 4)), _proj("b", "lif", (4, 8), (0, 4)),  # synapses overlap
             _proj("c", "lif", (8, 12), (0, 4), exp=1),  # other exponent
             _proj("d", "lif", (8, 12), (0, 4), mode="mixed", value=2),  # other sign mode
             _proj("e", "input", (8, 12), (0, 4)),  # other source
             _proj("f", "lif", (8, 12), (0, 4))]  # fits with a
    groups = layout.plan(_net(projs), merge="all").synapse_groups
    assert [[p.name for p in g.projections] for g in groups] == [["a", "f"], ["b"], ["c"], ["d"], ["e"]]
    for group in groups:
        assert len({(p.source, p.weight_exp, p.sign_mode) for p in group.projections}) == 1


def test_grouping_keeps_process_count_small_for_a_layered_network():
    """A 16-layer chain collapses to 2 synapse processes when its sums are exact, 3 when they round."""
    size, layers = 4, 16

    def chain(exp, value):
        projs = [_proj("in", "input", (0, size), (0, size))]
        for k in range(layers):
            rows = (k * size, (k + 1) * size)
            projs.append(_proj(f"rec{k}", "lif", rows, rows, exp, value=value))
            if k:
                projs.append(_proj(f"ff{k}", "lif", rows, ((k - 1) * size, k * size), exp, value=value))
        return _net(projs, n_lif=size * layers, n_input=size)

    assert len(_groups(chain(exp=0, value=1))) == 2  # left shifts: ff and rec may share rows
    assert len(_groups(chain(exp=-2, value=3))) == 3  # 3 * 2**-2 floors: ff and rec rows stay apart


# --- watchdog ------------------------------------------------------------------

def _run_faulty(before_send: bool):
    from faulty_lava.process import Faulty
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    from lava.proc.io.sink import RingBuffer

    proc = Faulty(shape=(2,), fail_at=3, before_send=before_send)
    # The sink waits for every step's output, which is what turns an error
    # before the send into a hang.
    proc.s_out.connect(RingBuffer(shape=(2,), buffer=10).a_in)
    proc.run(condition=RunSteps(num_steps=10), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
    proc.stop()  # never reached; stop() would hang after a model error


@pytest.mark.lava
@pytest.mark.parametrize("before_send", [True, False], ids=["hangs", "reports"])
def test_watchdog_surfaces_error_raised_inside_lava_model(before_send):
    start = time.monotonic()
    with pytest.raises(BackendError) as info:
        run_with_watchdog(_run_faulty, (before_send,), timeout=8, what="faulty run")
    elapsed = time.monotonic() - start
    assert elapsed < 11
    text = str(info.value)
    if before_send:
        assert "did not finish within 8.0 s" in text
    else:  # Lava's own report, found before the timeout
        assert elapsed < 8 and "RuntimeError: 1 Exception(s) occurred" in text
    assert "ValueError: faulty model exploded at step 3" in text
    assert "models.py" in text  # the traceback of the model, not just its message


def _sleep_with_grandchild(pid_file):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    with open(pid_file, "w") as f:
        f.write(str(child.pid))
    time.sleep(60)


@pytest.mark.lava
def test_watchdog_timeout_kills_all_descendants(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    start = time.monotonic()
    # 4 s leaves a loaded CI machine time to start the grandchild before the watchdog fires.
    with pytest.raises(BackendError, match="did not finish within 4.0 s"):
        run_with_watchdog(_sleep_with_grandchild, (str(pid_file),), timeout=4, what="sleeper")
    assert time.monotonic() - start < 12
    grandchild = int(pid_file.read_text())
    # SIGKILL is delivered asynchronously; the grandchild must be gone within moments, not instantly.
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)


def _raise_plain():
    raise KeyError("no such thing")


@pytest.mark.lava
def test_watchdog_reports_child_exception_and_returns_results():
    with pytest.raises(BackendError) as info:
        run_with_watchdog(_raise_plain, (), timeout=20, what="plain")
    assert "KeyError: 'no such thing'" in str(info.value) and "_raise_plain" in str(info.value)
    assert run_with_watchdog(np.arange, (5,), timeout=20, what="arange").tolist() == [0, 1, 2, 3, 4]


def _die_hard():
    os.kill(os.getpid(), 9)


@pytest.mark.lava
def test_watchdog_reports_a_killed_child():
    with pytest.raises(BackendError, match=r"crashed \(child exit code -9\)"):
        run_with_watchdog(_die_hard, (), timeout=20, what="doomed")


@pytest.mark.lava
def test_simulate_timeout_is_enforced():
    net = random_lowered_network(np.random.default_rng(1))
    inputs = random_inputs(np.random.default_rng(1), net, 1, 5000)
    with pytest.raises(BackendError, match="did not finish"):
        lava_backend.simulate(net, inputs, 5000, timeout=1.0)


def _alive(pid: int) -> bool:
    # The grandchild was reparented away from us; a zombie counts as dead.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        return os.path.exists(f"/proc/{pid}")
