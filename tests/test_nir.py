"""NIR in and out: conventions, round trips, and graphs shaped like snnTorch's and Norse's exports."""
from __future__ import annotations

import warnings

import nir
import numpy as np
import pytest
import torch

import rsnn2chip  # noqa: F401
from rsnn2chip import artifact, backends, ir
from rsnn2chip.backends import float_ir
from rsnn2chip.cli import main as cli_main
from rsnn2chip.compiler import compile_graph
from rsnn2chip.errors import ModelError
from rsnn2chip.exporters import nir as nir_export
from rsnn2chip.frontends import load_network
from rsnn2chip.frontends import nir as nir_frontend
from rsnn2chip.nn import RSNN, example_arch
from rsnn2chip.targets import load_target

DT = 1e-4  # snnTorch's export dt


def rsnn(seed: int) -> RSNN:
    torch.manual_seed(seed)
    arch = example_arch(input_size=8, sizes=(12, 10, 4))
    arch["layers"][0]["neuron"].update(bias=0.05, voltage_decay=[0.1 + 0.02 * i for i in range(12)])
    arch["layers"][1].update(recurrent_density=0.5, mask_seed=seed)
    arch["layers"][2]["neuron"].update(current_decay=1.0, threshold=0.7)
    return RSNN(arch).double()


def spikes_in(seed, batch, steps, channels, rate=0.3):
    return np.random.default_rng(seed).random((batch, steps, channels)) < rate


# --------------------------------------------------------------------------- an independent NIR reference

def nir_euler(graph: nir.NIRGraph, x: np.ndarray, dt: float):
    """Forward-Euler NIR for flat graphs, every neuron input computed from the previous step's outputs.

    Written from NIR's equations, not from our IR, so it checks the conventions
    rather than restating them. Returns spikes and v per neuron node.
    """
    nodes, preds = graph.nodes, {n: [] for n in graph.nodes}
    for s, d in graph.edges:
        preds[d].append(s)
    neurons = [n for n, v in nodes.items() if isinstance(v, (nir.CubaLIF, nir.LIF, nir.LI))]
    size = {n: len(np.atleast_1d(getattr(nodes[n], "tau", getattr(nodes[n], "tau_mem", None)))) for n in neurons}
    state = {n: {"i": np.zeros(size[n]), "v": np.zeros(size[n]), "s": np.zeros(size[n])} for n in neurons}
    out = {n: {"s": [], "v": []} for n in neurons}

    def value(name, prev_x):
        node = nodes[name]
        if isinstance(node, nir.Input):
            return prev_x
        if name in state:
            return state[name]["s"]
        total = sum(value(p, prev_x) for p in preds[name])
        return node.weight @ total + (node.bias if isinstance(node, nir.Affine) else 0)

    prev_x = np.zeros(x.shape[1])
    for t in range(x.shape[0]):
        inputs = {n: sum(value(p, prev_x) for p in preds[n]) for n in neurons}
        for n in neurons:
            node, s = nodes[n], state[n]
            if isinstance(node, nir.CubaLIF):
                s["i"] = s["i"] + dt / node.tau_syn * (-s["i"] + node.w_in * inputs[n])
                s["v"] = s["v"] + dt / node.tau_mem * (node.v_leak - s["v"] + node.r * s["i"])
            else:
                s["v"] = s["v"] + dt / node.tau * (node.v_leak - s["v"] + node.r * inputs[n])
            fired = s["v"] > node.v_threshold if not isinstance(node, nir.LI) else np.zeros(size[n], bool)
            s["v"] = np.where(fired, 0.0, s["v"])
            s["s"] = fired.astype(float)
            out[n]["s"].append(fired)
            out[n]["v"].append(s["v"].copy())
        prev_x = x[t].astype(float)
    return {n: {k: np.array(v) for k, v in d.items()} for n, d in out.items()}


def snntorch_cuba(n, alpha, beta, threshold=1.0, dt=DT):
    """nir.CubaLIF as snntorch.export_nir writes a Synaptic layer."""
    tau_syn, tau_mem = np.full(n, dt / (1 - alpha)), np.full(n, dt / (1 - beta))
    return nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, r=tau_mem / dt, v_leak=np.zeros(n),
                       v_threshold=np.full(n, threshold), w_in=tau_syn / dt)


def norse_style_graph(seed=0, n_in=6, n_h=16, n_out=3, hidden_bias=0.0):
    """Affine -> CubaLIF with a recurrent Affine cycle -> Affine -> LI, flat, as Norse writes it."""
    rng = np.random.default_rng(seed)
    beta = 0.9
    return nir.NIRGraph(nodes={
        "input": nir.Input(np.array([n_in])),
        "fc_in": nir.Affine(rng.normal(0.4, 0.5, (n_h, n_in)), np.full(n_h, hidden_bias)),
        "lif": snntorch_cuba(n_h, 0.8, beta),
        "fc_rec": nir.Affine(rng.normal(0, 0.3, (n_h, n_h)), np.zeros(n_h)),
        "fc_out": nir.Affine(rng.normal(0, 0.5, (n_out, n_h)), rng.normal(0, 0.05, n_out)),
        "li": nir.LI(tau=np.full(n_out, DT / (1 - beta)), r=np.full(n_out, 1 / (1 - beta)), v_leak=np.zeros(n_out)),
        "output": nir.Output(np.array([n_out])),
    }, edges=[("input", "fc_in"), ("fc_in", "lif"), ("lif", "fc_rec"), ("fc_rec", "lif"), ("lif", "fc_out"),
              ("fc_out", "li"), ("li", "output")])


def snntorch_style_graph(seed=0, n_in=6, n_h=16, n_out=3):
    """Linear -> RSynaptic (a nested graph with its own Input/Output) -> Linear -> Synaptic, as snnTorch writes it."""
    rng = np.random.default_rng(seed)
    rsynaptic = nir.NIRGraph(nodes={
        "input": nir.Input(np.array([n_h])), "lif": snntorch_cuba(n_h, 0.7, 0.85),
        "w_rec": nir.Linear(rng.normal(0, 0.3, (n_h, n_h))), "output": nir.Output(np.array([n_h]))},
        edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")])
    return nir.NIRGraph(nodes={
        "input": nir.Input(np.array([n_in])), "fc1": nir.Linear(rng.normal(0.4, 0.5, (n_h, n_in))),
        "rsyn": rsynaptic, "fc2": nir.Linear(rng.normal(0.2, 0.5, (n_out, n_h))),
        "out_lif": snntorch_cuba(n_out, 0.5, 0.8, threshold=0.5), "output": nir.Output(np.array([n_out]))},
        edges=[("input", "fc1"), ("fc1", "rsyn"), ("rsyn", "fc2"), ("fc2", "out_lif"), ("out_lif", "output")])


# --------------------------------------------------------------------------- round trips

@pytest.mark.parametrize("seed", [0, 1])
def test_rsnn_to_nir_and_back_gives_the_same_float_forward_pass(tmp_path, seed):
    model = rsnn(seed)
    x = spikes_in(seed, 3, 60, 8)
    with torch.no_grad():
        expected = model(torch.tensor(x, dtype=torch.float64))
    nir_export.export(model.to_ir(), tmp_path / "m.nir")
    assert nir_frontend.sniff(tmp_path / "m.nir")
    graph = load_network(tmp_path / "m.nir")
    assert [p.name for p in ir.populations(graph)] == ["input", *model.layers]
    assert graph.graph["output"] == "output"
    spikes, _ = float_ir.simulate(graph, x)
    assert sum(int(s.sum()) for s in spikes.values()) > 100
    for name in model.layers:
        np.testing.assert_array_equal(spikes[name], expected[name].numpy().astype(bool), err_msg=name)


def test_float_ir_simulator_matches_rsnn_on_its_own_ir():
    model = rsnn(3)
    x = spikes_in(3, 2, 40, 8)
    with torch.no_grad():
        expected = model(torch.tensor(x, dtype=torch.float64))
    spikes, probes = float_ir.simulate(model.to_ir(), x, probes=("v",))
    for name in model.layers:
        np.testing.assert_array_equal(spikes[name], expected[name].numpy().astype(bool))
    assert probes["v"]["hidden0"].shape == (2, 40, 12)


def test_export_conventions():
    graph = rsnn(0).to_ir()
    g = nir_export.to_nir(graph, dt=1e-3)
    assert g.metadata["dt"] == 1e-3 and g.metadata["synaptic_delay_steps"] == 1
    hidden = ir.population(graph, "hidden0").neuron
    node = g.nodes["hidden0"]
    assert isinstance(node, nir.CubaLIF) and node.tau_syn.shape == (12,)
    np.testing.assert_allclose(node.tau_syn, np.broadcast_to(1e-3 / hidden.current_decay, (12,)))
    np.testing.assert_allclose(node.tau_mem, 1e-3 / hidden.voltage_decay)  # per-neuron here
    np.testing.assert_allclose(node.r * 1e-3 / node.tau_mem, 1.0)
    np.testing.assert_allclose(node.w_in * 1e-3 / node.tau_syn, 1.0)
    np.testing.assert_allclose(node.v_leak * hidden.voltage_decay, np.broadcast_to(hidden.bias, (12,)))
    assert ("hidden0", "hidden0->hidden0") in g.edges and ("hidden0->hidden0", "hidden0") in g.edges  # a cycle
    # the last layer is called "output", so the Output node gets another name
    assert isinstance(g.nodes["output"], nir.CubaLIF) and isinstance(g.nodes["output_1"], nir.Output)


def test_export_refuses_decay_zero():
    graph = rsnn(0).to_ir()
    ir.population(graph, "hidden1").neuron.voltage_decay = np.zeros(1)
    with pytest.raises(ModelError, match=r"(?s)voltage_decay must lie in \(0, 1\].*population hidden1"):
        nir_export.to_nir(graph)


def test_deployed_values_are_the_quantized_parameters():
    art = compile_graph(rsnn(0).to_ir(), load_target("loihi2-sim"))
    g = nir_export.to_nir(art.graph, values="deployed")
    pop = ir.population(art.graph, "hidden0")
    threshold = pop.fixed.vth * 64 / pop.state_scale
    np.testing.assert_allclose(g.nodes["hidden0"].v_threshold, np.broadcast_to(threshold, (12,)))
    q = art.graph.edges["input", "hidden0"]["proj"].quant
    np.testing.assert_allclose(g.nodes["input->hidden0"].weight,
                               q.mantissa.toarray() * 2.0 ** q.weight_exp * 64 / pop.state_scale)


# --------------------------------------------------------------------------- graphs from other tools

@pytest.mark.parametrize("make", [norse_style_graph, snntorch_style_graph])
def test_import_follows_nir_equations(make):
    """Without Affine biases on synaptic currents our import is NIR's Euler dynamics exactly."""
    graph = make()
    flat = graph if make is norse_style_graph else nir_frontend_flat(graph)
    x = spikes_in(5, 1, 80, 6, rate=0.4)[0]
    reference = nir_euler(flat, x, DT)
    imported = nir_frontend.graph_from_nir(graph, dt=DT)
    spikes, probes = float_ir.simulate(imported, x[None], probes=("v",))
    name_of = {"lif": "lif", "li": "li"} if make is norse_style_graph else {"lif": "rsyn.lif", "out_lif": "out_lif"}
    assert reference[next(iter(name_of))]["s"].sum() > 20
    for ref_name, our_name in name_of.items():
        np.testing.assert_array_equal(spikes[our_name][0], reference[ref_name]["s"], err_msg=our_name)
        np.testing.assert_allclose(probes["v"][our_name][0], reference[ref_name]["v"], rtol=1e-9, atol=1e-9)


def nir_frontend_flat(graph):
    """The snnTorch graph with its nested RSynaptic inlined by hand, for the reference simulator."""
    inner = graph.nodes["rsyn"]
    return nir.NIRGraph(nodes={"input": graph.nodes["input"], "fc1": graph.nodes["fc1"], "lif": inner.nodes["lif"],
                               "w_rec": inner.nodes["w_rec"], "fc2": graph.nodes["fc2"],
                               "out_lif": graph.nodes["out_lif"], "output": graph.nodes["output"]},
                        edges=[("input", "fc1"), ("fc1", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "fc2"),
                               ("fc2", "out_lif"), ("out_lif", "output")])


@pytest.mark.parametrize("make", [norse_style_graph, snntorch_style_graph])
def test_foreign_graph_compiles_and_runs_on_reference_backend(tmp_path, make):
    nir.write(tmp_path / "net.nir", make())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = load_network(tmp_path / "net.nir")
    art = compile_graph(graph, load_target("loihi2-sim"))
    x = spikes_in(7, 2, 60, 6, rate=0.4)
    result = backends.run(art, x, 60, probes=("v",))
    hidden = "lif" if make is norse_style_graph else "rsyn.lif"
    assert result.spikes[hidden].sum() > 50
    float_spikes, float_probes = float_ir.simulate(graph, x, probes=("v",))
    # quantization moves individual spikes, not the activity level
    assert abs(int(result.spikes[hidden].sum()) - int(float_spikes[hidden].sum())) < 0.25 * float_spikes[hidden].sum()
    if make is norse_style_graph:
        assert graph.graph["nir"]["nonspiking"] == ["li"]
        assert not result.spikes["li"].any()
        v = result.probes["v"]["li"] / ir.population(art.graph, "li").state_scale
        assert np.corrcoef(v.ravel(), float_probes["v"]["li"].ravel())[0, 1] > 0.95


def test_affine_bias_on_synaptic_current_is_folded_with_a_warning():
    graph = norse_style_graph(hidden_bias=0.1)
    with pytest.warns(UserWarning, match="steady-state"):
        imported = nir_frontend.graph_from_nir(graph, dt=DT)
    pop = ir.population(imported, "lif")
    a = DT / graph.nodes["lif"].tau_syn[0]
    gain = a * (DT / graph.nodes["lif"].tau_mem[0]) * graph.nodes["lif"].r[0] * graph.nodes["lif"].w_in[0]
    np.testing.assert_allclose(pop.neuron.bias, gain * 0.1 / a)
    assert imported.graph["nir"]["notes"]
    # on a LIF (no synaptic current) the same bias is exact and silent
    lif_graph = nir.NIRGraph.from_list(nir.Affine(np.ones((2, 3)), np.full(2, 0.5)),
                                       nir.LIF(tau=np.full(2, 2 * DT), r=np.full(2, 2.0), v_leak=np.zeros(2),
                                               v_threshold=np.ones(2)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message="bias-onset")  # timing, warned by name; the value is exact
        imported = nir_frontend.graph_from_nir(lif_graph, dt=DT)
    np.testing.assert_allclose(ir.population(imported, "lif").neuron.bias, 0.5)


def test_li_round_trips_as_li():
    graph = nir_frontend.graph_from_nir(norse_style_graph(), dt=DT)
    back = nir_export.to_nir(graph, dt=DT)
    assert isinstance(back.nodes["li"], nir.LI)
    again = nir_frontend.graph_from_nir(back)
    np.testing.assert_allclose(ir.population(again, "li").neuron.threshold, ir.population(graph, "li").neuron.threshold)


# --------------------------------------------------------------------------- dt and refusals

def test_dt_sources(monkeypatch):
    graph = norse_style_graph()
    tau_mem = graph.nodes["lif"].tau_mem[0]
    decay = lambda g: float(ir.population(g, "lif").neuron.voltage_decay[0])  # noqa: E731
    assert decay(nir_frontend.graph_from_nir(graph)) == pytest.approx(DT / tau_mem)
    monkeypatch.setenv(nir_frontend.DT_ENV, "5e-5")
    assert decay(nir_frontend.graph_from_nir(graph)) == pytest.approx(5e-5 / tau_mem)
    graph.metadata["dt"] = 2e-4
    assert decay(nir_frontend.graph_from_nir(graph)) == pytest.approx(2e-4 / tau_mem)
    assert decay(nir_frontend.graph_from_nir(graph, dt=1e-5)) == pytest.approx(1e-5 / tau_mem)


def test_refusals_name_the_node():
    g = norse_style_graph()
    g.nodes["thr"] = nir.Threshold(np.ones(3))
    g.edges.append(("li", "thr"))
    g.nodes["lif"].tau_syn[:] = DT / 2  # faster than one step
    with pytest.raises(ModelError) as info:
        nir_frontend.graph_from_nir(g, dt=DT)
    text = str(info.value)
    assert "node thr (Threshold)" in text and "unsupported NIR node type" in text
    assert "node lif (CubaLIF)" in text and "tau_syn must be finite and at least dt" in text


def test_a_second_output_is_kept_and_the_readout_named():
    g = norse_style_graph()
    g.nodes["output2"] = nir.Output(np.array([g.nodes["lif"].tau_mem.shape[0]]))
    g.edges.append(("lif", "output2"))
    with pytest.warns(UserWarning, match="2 Output populations"):
        imported = nir_frontend.graph_from_nir(g, dt=DT)
    assert len(imported.graph["outputs"]) == 2 and imported.graph["output"] == imported.graph["outputs"][0]


def test_algebraic_loop_and_dangling_output_refused():
    loop = nir.NIRGraph(nodes={"input": nir.Input(np.array([2])), "a": nir.Linear(np.eye(2)),
                               "b": nir.Linear(np.eye(2)),
                               "lif": nir.LIF(np.ones(2) * DT, np.ones(2), np.zeros(2), np.ones(2)),
                               "output": nir.Output(np.array([2]))},
                        edges=[("input", "a"), ("a", "b"), ("b", "a"), ("b", "lif"), ("lif", "output")])
    with pytest.raises(ModelError, match="algebraic loop"):
        nir_frontend.graph_from_nir(loop)
    dangling = nir.NIRGraph.from_list(nir.Linear(np.ones((2, 2))))
    with pytest.raises(ModelError, match="Output must be fed by a neuron"):
        nir_frontend.graph_from_nir(dangling)


def test_cli_compiles_and_runs_a_nir_file(tmp_path):
    nir.write(tmp_path / "net.nir", snntorch_style_graph())
    np.save(tmp_path / "x.npy", spikes_in(0, 1, 30, 6).astype(np.int8))
    assert cli_main(["compile", str(tmp_path / "net.nir"), "--target", "loihi2-sim", "-o", str(tmp_path / "n.r2c")]) == 0
    names = [p.name for p in ir.populations(artifact.load(tmp_path / "n.r2c").graph)]
    assert names == ["input", "rsyn.lif", "out_lif"]
    assert cli_main(["run", str(tmp_path / "n.r2c"), "--input", str(tmp_path / "x.npy"), "--json"]) == 0
