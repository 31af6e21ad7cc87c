"""rsnn2chip.lava.Network: its layout rules (no Lava) and its runs against the reference (real Lava)."""
from __future__ import annotations

import copy
import dataclasses
import functools
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import yaml

import rsnn2chip  # noqa: F401 - must precede any lava import
from netgen import random_inputs, random_lowered_network
from test_atrlif import atrlif_params
from rsnn2chip.backends import lava as lava_backend
from rsnn2chip.backends import reference
from rsnn2chip.backends.plan import LoweredNetwork, LoweredProjection, NeuronGroup, lower, single_group
from rsnn2chip.backends.watchdog import run_with_watchdog
from rsnn2chip.compiler import compile_graph
from rsnn2chip.errors import InputError
from rsnn2chip.lava import layout as lay
from rsnn2chip.neurons import atrlif, cuba_lif
from rsnn2chip.nn import RSNN
from rsnn2chip.targets import load_target

ARCH_DIR = Path(__file__).resolve().parents[1] / "examples" / "arch"
STEPS = 30


def _params(n):
    return {"du": np.full(n, 1000), "dv": np.full(n, 300), "vth": np.full(n, 50),
            "bias_mant": np.zeros(n, np.int64), "bias_exp": np.zeros(n, np.int64)}


def _proj(name, source, rows, cols, weights, exp=0, mode="mixed"):
    return LoweredProjection(name, source, rows, cols, sp.csr_matrix(np.asarray(weights, np.int64)), exp, mode)


def _chain(exp=-2, recurrent_weight=6, forward_weight=8):
    """input(2) -> a(2) -> b(2, recurrent) -> out(2), all projections with one exponent."""
    slices = {"a": (0, 2), "b": (2, 4), "out": (4, 6)}
    w = np.full((2, 2), 8)
    projs = [_proj("in-a", "input", (0, 2), (0, 2), w, exp),
             _proj("a-b", "lif", (2, 4), (0, 2), np.full((2, 2), forward_weight), exp),
             _proj("b-b", "lif", (2, 4), (2, 4), np.full((2, 2), recurrent_weight), exp),
             _proj("b-out", "lif", (4, 6), (2, 4), w, exp)]
    return LoweredNetwork(2, 6, {"in": (0, 2)}, slices,
                          single_group(cuba_lif.MODEL, {k: np.concatenate([v] * 3) for k, v in _params(2).items()}),
                          projs)


# --------------------------------------------------------------------------- layout rules (no Lava)

def test_shift_exact_merges_overlapping_rows_only_when_the_floor_cannot_differ():
    exact = lay.plan(_chain(recurrent_weight=4), merge="all")  # mantissas 8 and 4: multiples of 2**2
    assert len(exact.synapse_groups) == 2  # input, and one for all three lif projections
    one_inexact = lay.plan(_chain(recurrent_weight=6), merge="all")  # 6 is not, but it is alone on its rows
    assert len(one_inexact.synapse_groups) == 2
    inexact = lay.plan(_chain(recurrent_weight=6, forward_weight=6), merge="all")  # a-b and b-b must stay apart
    assert len(inexact.synapse_groups) == 3
    assert any({p.name for p in g.projections} == {"a-b", "b-out"} for g in inexact.synapse_groups)
    positive = lay.plan(_chain(exp=1, recurrent_weight=6), merge="all")  # left shifts never round
    assert len(positive.synapse_groups) == 2
    # Negative mantissas: -8 and -124 are multiples of 2**2, -6 and -127 are not.
    assert lay.shift_exact(_proj("neg", "lif", (0, 2), (0, 2), [[-8, -124], [4, 0]], exp=-2))
    assert not lay.shift_exact(_proj("neg", "lif", (0, 2), (0, 2), [[-8, -6], [4, 0]], exp=-2))
    assert not lay.shift_exact(_proj("neg", "lif", (0, 2), (0, 2), [[-127, 0], [0, 0]], exp=-1))


def test_projections_on_the_same_synapses_never_share_a_process():
    net = _chain(exp=0)
    net.projections.append(_proj("b-b again", "lif", (2, 4), (2, 4), np.full((2, 2), 2)))
    layout = lay.plan(net, merge="all")
    homes = [g for g in layout.synapse_groups if any(p.name.startswith("b-b") for p in g.projections)]
    assert len(homes) == 2


def test_candidate_splits_and_separate_readout():
    net = _chain()
    runs = lay.candidate_runs(net, "out", "auto", separate_readout=False)
    assert len(runs) == 4 and [["a", "b", "out"]] in runs and [["a"], ["b"], ["out"]] in runs
    separate = lay.candidate_runs(net, "out", "auto", separate_readout=True)
    assert all(r[-1] == ["out"] for r in separate) and len(separate) == 2
    layout = lay.plan(net, separate_readout=True)
    assert layout.neuron_group_of("out").populations == ("out",)
    with pytest.raises(InputError, match="cannot be separate"):
        lay.plan(net, merge="all", separate_readout=True)


def test_small_networks_share_processes_and_large_ones_get_narrow_matrices():
    small = lay.plan(_chain(recurrent_weight=4))
    assert len(small.neuron_groups) == 1
    big = _two_layers_of(2048)
    # Dense matrices pay for their zeros: no block of zero rows the size of a layer, "a" keeps a process of its own.
    layout = lay.plan(big, synapses="dense")
    assert layout.neuron_group_of("a").populations == ("a",)
    # A CSR product pays per stored weight only and beats both Dense kernels on these 4 M weights.
    auto = lay.plan(big)
    assert "sparse-dot" in {g.kind for g in auto.synapse_groups}
    assert auto.step_cost() < min(layout.step_cost(), lay.plan(big, synapses="dense-dot").step_cost())
    assert {g.kind for g in lay.plan(big, hardware=True).synapse_groups} <= {"dense", "sparse"}


def _two_layers_of(n):
    """12 -> a(n) -> b(n, recurrent) -> out(9), the a-b and b-b blocks dense: the netx bench's shape."""
    rng = np.random.default_rng(0)
    slices = {"a": (0, n), "b": (n, 2 * n), "out": (2 * n, 2 * n + 9)}
    dense = sp.csr_matrix(np.full((n, n), 2))
    projs = [_proj("in-a", "input", (0, n), (0, 12), rng.integers(-50, 50, (n, 12)) * 2),
             LoweredProjection("a-b", "lif", (n, 2 * n), (0, n), dense, 0, "mixed"),
             LoweredProjection("b-b", "lif", (n, 2 * n), (n, 2 * n), dense, 0, "mixed"),
             _proj("b-out", "lif", (2 * n, 2 * n + 9), (n, 2 * n), np.full((9, n), 2))]
    return LoweredNetwork(12, 2 * n + 9, {"in": (0, 12)}, slices,
                          single_group(cuba_lif.MODEL, {k: np.concatenate([v] * 3)[:2 * n + 9]
                                                        for k, v in _params(n).items()}), projs)


def test_a_process_nothing_connects_gets_an_empty_link_to_the_readout():
    net = _chain()
    net.projections = [p for p in net.projections if p.name != "a-b"]  # "a" feeds nothing... but is fed
    net.projections = [p for p in net.projections if p.name != "in-a"]  # ...and now is fed by nothing
    layout = lay.plan(net, merge="split")
    assert not lay.unreachable_groups(layout)
    [link] = [g for g in layout.synapse_groups if not g.projections]
    assert link.target == layout.neuron_group_of("a").name and layout.weights(link).nnz == 0


def test_parts_split_a_group_by_rows_into_balanced_pieces_of_the_same_matrix():
    net = random_lowered_network(np.random.default_rng(3), n_pops=3, n_input_pops=1, n_projections=10)
    whole, split = (lay.plan(net, merge="all", replicas=2, synapses="sparse-dot", parts=k) for k in (1, 3))
    for group in whole.synapse_groups:
        parts = [g for g in split.synapse_groups if (g.source, g.target, g.weight_exp, g.sign_mode, g.kind)
                 == (group.source, group.target, group.weight_exp, group.sign_mode, group.kind)
                 and g.projections == group.projections]
        matrices = [split.weights(g) for g in parts]
        np.testing.assert_array_equal(sum(m.toarray() for m in matrices), whole.weights(group).toarray())
        if group.kind in lay.SPARSE_KERNELS and len(parts) > 1:
            held = [set(np.flatnonzero(np.diff(m.indptr))) for m in matrices]
            assert not set.intersection(*held), "a row in two parts would floor its sum twice"
            assert [m.nnz for m in matrices] == [g.nnz for g in parts] and sum(g.nnz for g in parts) == group.nnz
            assert max(g.nnz for g in parts) < 0.6 * group.nnz, "parts balance the stored weights"
        else:
            assert parts == [group]
    assert split.process_count > whole.process_count


def test_automatic_parts_follow_the_cost_and_the_cores():
    big = _two_layers_of(2048)
    [heavy] = [g for g in lay.plan(big, parts=1).synapse_groups if g.nnz > 1e6]
    assert heavy.kind == "sparse-dot"
    assert lay.part_count(heavy, "auto", cores=1) == 1
    assert lay.part_count(heavy, "auto", cores=2) == 2  # 8 M stored weights: a second core pays
    assert lay.part_count(heavy, "auto", cores=64) == lay.MAX_AUTO_PARTS
    assert lay.part_count(heavy, 5, cores=1) == 5
    small = lay.plan(_chain(), parts=1).synapse_groups[0]
    assert lay.part_count(small, "auto", cores=8) == 1  # a tiny kernel: an extra process costs more
    assert len(lay.plan(big, hardware=True).synapse_groups) == len(lay.plan(big, parts=1, hardware=True).synapse_groups)
    for bad in (0, -1, 1.5, True, "two"):
        with pytest.raises(InputError, match="synapse parts"):
            lay.plan(_chain(), parts=bad)


def test_replicas_tile_the_matrices_block_diagonally():
    net = _chain(recurrent_weight=4)
    one, three = lay.plan(net, merge="all"), lay.plan(net, merge="all", replicas=3)
    for g1, g3 in zip(one.synapse_groups, three.synapse_groups):
        w1, w3 = one.weights(g1).toarray(), three.weights(g3).toarray()
        np.testing.assert_array_equal(w3, np.kron(np.eye(3, dtype=int), w1))
        assert g3.nnz == 3 * g1.nnz


def test_bad_options_are_refused():
    net = _chain()
    for kwargs in ({"readout": "nope"}, {"replicas": 0}, {"merge": "some"}, {"synapses": "conv"},
                   {"synapses": "dense-dot", "hardware": True}, {"synapses": "sparse-dot", "hardware": True}):
        with pytest.raises(InputError):
            lay.plan(net, **kwargs)


# --------------------------------------------------------------------------- runs in Lava

def _arch(path: Path, n_in: int = 10, n_out: int = 5) -> dict:
    arch = yaml.safe_load(path.read_text())
    arch["input_size"] = n_in
    arch["layers"][-1]["size"] = n_out
    return arch


def _archs() -> dict[str, dict]:
    archs = {p.stem: _arch(p) for p in sorted(ARCH_DIR.glob("*.yaml"))}
    sparse = copy.deepcopy(archs["rsnn_fsdd"])
    sparse["layers"][0].update(recurrent_density=0.2, mask_seed=3)
    archs["lif_recurrent_density_0.2"] = sparse
    deep = copy.deepcopy(archs["rsnn_fsdd"])
    deep["layers"].insert(1, copy.deepcopy(deep["layers"][0]) | {"name": "hidden2", "size": 40})
    archs["two_hidden_layers"] = deep
    return archs


def _compiled(arch: dict, seed: int = 0):
    torch.manual_seed(seed)
    model = RSNN(arch)
    with torch.no_grad():  # make the untrained networks fire: stronger input weights
        next(iter(model.parameters())).mul_(3.0)
    return compile_graph(model.to_ir(), load_target("loihi2-sim"))


DEFAULT_ARCHS = ("scml_fsdd", "lif_recurrent_density_0.2", "two_hidden_layers")  # the rest run with -m slow


@pytest.mark.lava
@pytest.mark.parametrize("name", [pytest.param(n, marks=() if n in DEFAULT_ARCHS else pytest.mark.slow)
                                  for n in sorted(_archs())])
def test_every_arch_type_matches_the_reference(name):
    net = lower(_compiled(_archs()[name]).graph)
    inputs = random_inputs(np.random.default_rng(1), net, batch=3, steps=STEPS, rate=0.4)
    spikes, _ = lava_backend.simulate(net, inputs, STEPS)
    ref, _ = reference.simulate(net, inputs, STEPS)
    assert ref.sum() > 20, "a network that hardly spikes tests little"
    np.testing.assert_array_equal(spikes, ref)


@pytest.mark.lava
@pytest.mark.parametrize("synapses,merge,parts", [("dense", "all", 1), ("dense-dot", "split", 1),
                                                  ("sparse", "hidden", 2), ("sparse-dot", "all", 3)])
def test_every_kernel_grouping_and_split_matches_the_reference(synapses, merge, parts):
    rng = np.random.default_rng(5)
    net = random_lowered_network(rng, n_pops=3, n_input_pops=2, n_projections=12)
    inputs = random_inputs(rng, net, batch=2, steps=STEPS)
    spikes, probes = run_with_watchdog(
        lava_backend.run_build, (net, inputs, STEPS, ("u", "v")), 120, "Lava run")  # default layout
    forced, _ = run_with_watchdog(_run_forced, (net, inputs, synapses, merge, parts), 120, "Lava run")
    forced_layout = lay.plan(net, merge=merge, synapses=synapses, parts=parts, replicas=2)
    assert parts == 1 or any(g.parts == parts for g in forced_layout.synapse_groups), "no group was split"
    ref, ref_probes = reference.simulate(net, inputs, STEPS, probes=("u", "v"))
    assert ref.sum() > 20
    np.testing.assert_array_equal(spikes, ref)
    np.testing.assert_array_equal(forced, ref)
    for var in ("u", "v"):
        np.testing.assert_array_equal(probes[var], ref_probes[var], err_msg=var)


@pytest.mark.lava
@pytest.mark.parametrize("reset_in_network,parts", [(False, 1), (True, 1), (True, 3)],
                         ids=["Network.reset", "Reset-processes", "Reset-processes-3-parts"])
def test_rounds_in_one_build_equal_separate_runs(reset_in_network, parts):
    """Five samples as rounds of two replicas in one build (the last round padded), reset between rounds by
    Var.set or by Lava Reset processes in the network (which also empty every part's buffer): every sample's
    spikes, u and v are the reference's, as if it had a build of its own."""
    rng = np.random.default_rng(11)
    net = random_lowered_network(rng, n_pops=3, n_input_pops=2, n_projections=12)
    inputs = random_inputs(rng, net, batch=5, steps=STEPS, rate=0.4)
    spikes, probes = run_with_watchdog(
        functools.partial(lava_backend.run_build, synapses="sparse-dot", synapse_parts=parts),
        (net, inputs, STEPS, ("u", "v"), "fixed_pt", 2, reset_in_network), 180, "Lava rounds")
    split = lay.plan(net, replicas=2, synapses="sparse-dot", parts=parts)
    assert parts == 1 or any(g.parts == parts for g in split.synapse_groups), "no group was split"
    ref, ref_probes = reference.simulate(net, inputs, STEPS, probes=("u", "v"))
    assert ref[:, -1].sum() > 0, "no spike at a round's last step: the synapse buffers' reset goes untested"
    np.testing.assert_array_equal(spikes, ref)
    for var in ("u", "v"):
        np.testing.assert_array_equal(probes[var], ref_probes[var], err_msg=var)


def test_sim_config_names_the_models_lava_selects_for_every_process():
    """sim_config lists each process with the model Lava's own search and selection give it, so the compiler
    skips the search: every leaf process of a network with LIF and ATRLIF groups, Dense and Sparse synapses,
    Reset processes, a source and a sink maps to the same model either way."""
    from lava.magma.compiler.compiler_graphs import ProcGroupDiGraphs
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc import io
    from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel

    from rsnn2chip.lava import Network
    from rsnn2chip.lava.run_config import sim_config

    rng = np.random.default_rng(5)
    mixed = random_lowered_network(rng, n_pops=3, n_input_pops=2, n_projections=12)
    n_atr = next(iter(mixed.lif_slices.values()))[1]  # the first population is ATRLIF, the others CUBA-LIF
    mixed = dataclasses.replace(mixed, groups=[
        NeuronGroup(atrlif.MODEL, np.arange(n_atr), atrlif_params(rng, n_atr, "refractory")),
        NeuronGroup(cuba_lif.MODEL, np.arange(n_atr, mixed.n_lif),
                    {k: v[n_atr:] for k, v in mixed.groups[0].params.items()})])
    kinds = set()
    for net, options in ((mixed, {"merge": "split", "synapses": "dense"}),
                         (mixed, {"synapses": "sparse-dot", "synapse_parts": 2}),
                         (_chain(), {"reset_interval": 11})):
        network = Network(net, **options)
        source = io.source.RingBuffer(data=np.zeros((net.n_input, 4), np.int32))
        source.s_out.connect(network.inp)
        sink = Extractor(shape=network.out.shape, buffer_size=4)
        network.out.connect(sink.in_port)
        processes = [network, source, sink, *network.sub_processes().values()]
        exceptions = {Extractor: PyLoihiExtractorModel}
        fast = sim_config("fixed_pt", processes, exceptions)
        searched = ProcGroupDiGraphs._map_proc_to_model(
            [network, source, sink], Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=exceptions), [])
        named = ProcGroupDiGraphs._map_proc_to_model([network, source, sink], fast, [])
        assert searched == named and len(named) == len(processes) - 1  # the leaves: all but the Network
        assert all(p in fast.exception_proc_model_map or type(p) in exceptions for p in named), \
            "a process left to Lava's search"
        kinds |= {type(p).__name__ for p in named}
    assert kinds == {"LIF", "ATRLIF", "Dense", "Sparse", "Reset", "RingBuffer", "Extractor"}


def test_atrlif_rules_out_reset_processes():
    """Lava's ATRLIF model computes in its state's own dtype, which a Reset's int64 write would change."""
    from rsnn2chip.lava import Network

    rng = np.random.default_rng(5)
    net = random_lowered_network(rng, n_pops=3, n_input_pops=2, n_projections=12)
    net = dataclasses.replace(net, groups=[NeuronGroup(atrlif.MODEL, np.arange(net.n_lif),
                                                       atrlif_params(rng, net.n_lif, "refractory"))])
    assert lay.window_resets(lay.plan(net)) is None
    assert not lay.best_batch_plan(net, 64, 100).reset_in_network
    with pytest.raises(InputError, match="cannot be reset inside a Lava run"):
        Network(net, reset_interval=31)


def test_reset_interval_must_be_a_positive_whole_number():
    from rsnn2chip.lava import Network

    for bad in (0, -3, 2.5, True):
        with pytest.raises(InputError, match="reset_interval must be"):
            Network(_chain(), reset_interval=bad)


def test_large_networks_run_their_batch_in_sequence_and_small_ones_as_replicas():
    small = random_lowered_network(np.random.default_rng(0), n_pops=2, n_input_pops=1)
    assert lay.best_batch_plan(small, 64, 100) == lay.BatchPlan(replicas=64, in_sequence=False)
    # 2 x 2,000 x 2,000 weights: MAX_REPLICA_WEIGHTS caps the replicas a build, so the batch shares one build.
    wide = random_lowered_network(np.random.default_rng(0), n_pops=2, n_input_pops=1, size_range=(2000, 2000),
                                  n_projections=2, density=1.0)
    cap = lay.MAX_REPLICA_WEIGHTS // sum(p.weights.nnz for p in wide.projections)
    assert 1 < cap < 64
    plan = lay.best_batch_plan(wide, 64, 100)
    assert plan.in_sequence and plan.replicas <= cap and plan.samples_per_build(64) == 64


def test_replica_sizes_are_powers_of_two_and_the_cap_with_no_wholly_silent_replica():
    assert lay.replica_sizes(64, 12) == [1, 2, 4, 8, 11]  # 12 would leave 8 of its 72 slots silent; 11, 2
    assert lay.replica_sizes(5, 5) == [1, 2, 3, 5]  # 4 replicas take 2 rounds, as 3 do
    assert lay.replica_sizes(1, 1) == [1]


def _run_forced(net, inputs, synapses, merge, parts):
    return lava_backend.run_build(net, inputs, STEPS, synapses=synapses, merge=merge, synapse_parts=parts)


def _run_out_port(net, inputs):
    """Source -> Network(separate_readout, 2 replicas, hardware) -> Extractor on ``out``, as a user wires it."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc import io
    from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel

    from rsnn2chip.lava import Network

    replicas = inputs.shape[0]
    network = Network(net, replicas=replicas, separate_readout=True, hardware=True)
    data = inputs.transpose(0, 2, 1).reshape(replicas * net.n_input, STEPS).astype(np.int32)
    io.source.RingBuffer(data=data).s_out.connect(network.inp)
    sink = Extractor(shape=network.out.shape, buffer_size=STEPS)
    network.out.connect(sink.in_port)
    network.run(condition=RunSteps(num_steps=STEPS), run_cfg=Loihi2SimCfg(
        select_tag="fixed_pt", exception_proc_model_map={Extractor: PyLoihiExtractorModel}))
    out = np.stack([sink.receive() for _ in range(STEPS)])
    kinds = {g.kind for g in network.layout.synapse_groups}
    network.stop()
    return out, [network.readout.select(out, r) for r in range(replicas)], kinds


@pytest.mark.lava
def test_out_port_is_exactly_the_readout_of_every_replica():
    rng = np.random.default_rng(7)
    net = random_lowered_network(rng, n_pops=3, n_input_pops=1, n_projections=12)
    inputs = random_inputs(rng, net, batch=2, steps=STEPS)
    out, per_replica, kinds = run_with_watchdog(_run_out_port, (net, inputs), 120, "Lava run")
    ref, _ = reference.simulate(net, inputs, STEPS)
    lo, hi = net.lif_slices[lay.default_readout(net)]
    assert out.shape == (STEPS, 2 * (hi - lo)) and not kinds & set(lay.GRADED_KERNELS)
    assert ref[:, :, lo:hi].sum() > 20
    for r in range(2):
        np.testing.assert_array_equal(per_replica[r].astype(bool), ref[r, :, lo:hi])
