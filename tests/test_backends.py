"""Every registered backend, through the one interface, against the reference.

Parametrized by the registry: a new backend is tested here by being registered.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import rsnn2chip  # noqa: F401 - must precede any lava import
from rsnn2chip import backends
from rsnn2chip.backends import backend_names, get_backend
from rsnn2chip.compiler import compile_graph
from rsnn2chip.errors import InputError, TargetError
from rsnn2chip.nn import RSNN, example_arch
from rsnn2chip.targets import load_target, target_from_dict

STEPS = 25
NEEDS = {"lava": pytest.mark.lava}


def _compiled(seed=0):
    torch.manual_seed(seed)
    model = RSNN(example_arch("agree", input_size=6, sizes=(20, 12, 4)))
    with torch.no_grad():
        next(iter(model.parameters())).mul_(3.0)  # an untrained network that fires
    return compile_graph(model.to_ir(), load_target("loihi2-sim"))


@pytest.mark.parametrize("name", [pytest.param(n, marks=NEEDS.get(n, ())) for n in backend_names()])
def test_backend_agrees_with_the_reference(name):
    art = _compiled()
    x = (np.random.default_rng(0).random((3, STEPS, 6)) < 0.4).astype(np.int8)
    expected = backends.run(art, x, STEPS, backend="reference", probes=("u", "v"))
    assert sum(expected.spike_counts().values()) > 20
    with get_backend(name).open(art) as session:
        first = session.run(x, STEPS, probes=("u", "v"))
        again = session.run(x[1:], STEPS)  # a session runs many times, each from the reset state
    assert first.backend == name and backends.first_divergence(expected, first) is None
    for var in ("u", "v"):
        for pop, values in expected.probes[var].items():
            np.testing.assert_array_equal(first.probes[var][pop], values, err_msg=f"{var} {pop}")
    for pop, spikes in expected.spikes.items():
        np.testing.assert_array_equal(again.spikes[pop], spikes[1:])


def test_registry_names_and_refusals():
    assert backend_names()[:2] == ["reference", "lava"]
    for name in backend_names():
        backend = get_backend(name)
        assert backend.name == name and backend.summary
    with pytest.raises(InputError, match="unknown backend"):
        get_backend("board")
    with pytest.raises(InputError, match="takes no option"):
        get_backend("reference").open(_compiled(), timeout=3)
    with pytest.raises(InputError, match="unknown probe"):
        backends.run(_compiled(), np.zeros((5, 6)), 5, probes=("w",))


def test_lava_backend_reads_the_target_simulator():
    # The session's model tag is the target's; a simulator Lava does not have is refused when the target is read.
    compiled = _compiled()
    with get_backend("lava").open(compiled) as session:
        assert session.select_tag == compiled.target.info.select_tag == "fixed_pt"
    data = copy.deepcopy(load_target("loihi2-sim").data)
    data["target"]["simulator"] = "board-x"
    with pytest.raises(TargetError, match="board-x"):
        target_from_dict(data, "a board target")


def test_reference_batch_equals_each_sample_alone():
    """A batch and its samples one at a time give the same spikes and voltages, dense and sparse stacks both."""
    torch.manual_seed(3)
    model = RSNN(example_arch("wide", input_size=40, sizes=(700, 5)))
    with torch.no_grad():
        next(iter(model.parameters())).mul_(3.0)
    art = compile_graph(model.to_ir(), load_target("loihi2-sim"))
    x = (np.random.default_rng(1).random((3, STEPS, 40)) < 0.3).astype(np.int8)
    batched = backends.run(art, x, STEPS, backend="reference", probes=("v",))
    assert sum(batched.spike_counts().values()) > 100
    for i in range(3):
        single = backends.run(art, x[i:i + 1], STEPS, backend="reference", probes=("v",))
        for pop, spikes in batched.spikes.items():
            np.testing.assert_array_equal(single.spikes[pop][0], spikes[i], err_msg=pop)
            np.testing.assert_array_equal(single.probes["v"][pop][0], batched.probes["v"][pop][i], err_msg=pop)


@pytest.mark.parametrize("density", [0.05, 0.9])
@pytest.mark.parametrize("grid", [1, 2])
@pytest.mark.parametrize("binary", [False, True])
def test_reference_synaptic_kernel_equals_the_integer_product(density, grid, binary):
    """The compiled sum, dense (int16, or int8 where every mantissa is even) or CSR, is NumPy's exact integer
    product, shifted per part as Lava shifts sums; binary spikes take the four-rows-a-pass path, payloads not.
    About 300 sources send, more than one int16 block of dense rows (252 int8 rows, 124 int16 ones)."""
    import scipy.sparse as sp

    from rsnn2chip.backends.reference import _Stack, accumulate, int16_block, narrowest_rows
    from rsnn2chip.jit import compiled

    rng = np.random.default_rng(int(density * 100))
    n_source, rows = 600, 50
    matrix = sp.random(n_source, rows, density=density, format="csr", random_state=rng,
                       data_rvs=lambda k: rng.integers(-256 // grid, 255 // grid, k) * grid).astype(np.int64)
    parts = np.array([(0, 0, 20, -3), (20, 30, 60, 2)], np.int64)  # second part: global rows 30..59
    spikes = (rng.integers(-127, 128, (4, n_source)) * (rng.random((4, n_source)) < 0.5))
    if binary:
        spikes = (spikes != 0).astype(np.int64)
    expected = np.zeros((4, 60), np.int64)
    full = spikes @ matrix.toarray()
    expected[:, 0:20] += full[:, 0:20] >> 3
    expected[:, 30:60] += full[:, 20:50] << 2
    dense, shift = narrowest_rows(matrix.toarray().astype(np.int16))
    assert (dense.dtype, shift) == ((np.int8, 1) if grid == 2 else (np.int16, 0))
    block, largest = int16_block(dense), np.abs(dense.astype(np.int64)).max()
    assert block % 4 == 0 and block * largest <= 32767 < (block + 4) * largest
    assert (spikes != 0).sum(axis=1).min() > block  # several blocks a sample
    for weights, part_shift in ((dense, shift), (matrix, 0)):
        for acc_type in (np.int32, np.int64):
            a_in = np.zeros((4, 60), np.int64)
            shifted = parts + np.array([0, 0, 0, part_shift])
            _Stack("input", weights, shifted, np.zeros(rows, acc_type), np.zeros(n_source, np.int64)).add_to(
                spikes, a_in)
            np.testing.assert_array_equal(a_in, expected)
    assert compiled(accumulate) is compiled(accumulate)  # compiled once per process


def test_reference_int16_blocks_stay_exact_at_the_largest_mantissas():
    """600 senders of -128 and 126 (int8's extremes; np.abs(-128) is -128 in int8) sum exactly: a block sized
    by 126 instead of 128 would hold 260 rows, and -128 * 260 leaves int16."""
    from rsnn2chip.backends.reference import _Stack

    weights = np.tile(np.array([-128, 126, 0], np.int8), (600, 1))
    a_in = np.zeros((1, 3), np.int64)
    _Stack("lif", weights, np.array([(0, 0, 3, 0)], np.int64), np.zeros(3, np.int32),
           np.zeros(600, np.int64)).add_to(np.ones((1, 600), bool), a_in)
    np.testing.assert_array_equal(a_in, [[-128 * 600, 126 * 600, 0]])
