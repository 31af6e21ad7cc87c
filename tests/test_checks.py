"""Design rules: one network per rule that breaks exactly that rule, what an error says, all errors at once."""
from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from rsnn2chip.neurons.atrlif import ATRLIF
from rsnn2chip import ir
from rsnn2chip.checkpoint import save_checkpoint
from rsnn2chip.cli import main
from rsnn2chip.compiler import compile_graph
from rsnn2chip.errors import DesignRuleError, Problem
from rsnn2chip.frontends import load_network
from rsnn2chip.neurons.atrlif import ATRLIF
from rsnn2chip.nn import RSNN
from rsnn2chip.nn.network import example_arch
from rsnn2chip.passes import checks
from rsnn2chip.passes.partition import partition
from rsnn2chip.passes.place import build_core_graph
from rsnn2chip.passes.quantize import QuantizationConfig, quantize
from rsnn2chip.passes.resources import network_demand
from rsnn2chip.targets import load_target, load_target_file

from conftest import lif, small_target

REPO = Path(__file__).resolve().parent.parent


def net(name: str, n_in: int, pops: list[tuple[str, int, object, int | None]],
        projections: list[tuple[str, str, np.ndarray, int]]) -> ir.nx.DiGraph:
    """A network from (name, size, neuron, motif size) populations and (pre, post, weights, delay) projections."""
    g = ir.new_graph(name)
    ir.add_population(g, ir.Population("input", n_in, "input"))
    for pop_name, size, neuron, motif in pops:
        ir.add_population(g, ir.Population(pop_name, size, pop_name, neuron, motif))
    for pre, post, w, delay in projections:
        ir.add_projection(g, ir.Projection(pre, post, sp.csr_matrix(w), delay))
    return g


def problems_of(graph, target, qcfg=QuantizationConfig()) -> list:
    """Every problem (errors and warnings) the compile pipeline reports."""
    try:
        compiled = compile_graph(graph, target, qcfg=qcfg)
    except DesignRuleError as err:
        return err.problems
    return [Problem(**w) for w in compiled.warnings]


def rules(problems) -> list[str]:
    return sorted(p.rule if hasattr(p, "rule") else p["rule"] for p in problems)


def ones(rows, cols, value=0.3):
    return np.full((rows, cols), value)


# --------------------------------------------------------------------------- one network per rule

def test_every_rule_has_a_test_here():
    tested = {"core_neurons", "core_synapse_memory_bits", "core_input_axons", "core_output_axons",
              "core_neuron_profiles", "core_threshold_profiles", "chip_cores", "weight_exponent_range",
              "synaptic_delay", "accumulator_range", "weight_clipping", "neuron_models", "weight_bits"}
    assert set(checks.RULES) == tested


def test_core_neurons():
    # One motif of 16 neurons on cores of 8.
    g = net("neurons", 2, [("big", 16, lif(), 16)], [("input", "big", ones(16, 2), 1)])
    [p] = problems_of(g, small_target(neurons=8))
    assert (p.rule, p.resource, p.found, p.allowed) == ("core_neurons", "neurons", 16, 8)
    assert "motifs of <= 8 neurons" in p.fix


def test_core_synapse_memory_bits():
    # One neuron listening to 60 channels: 60 * 21 bits + 60 headers * 32 + 64 bits state = 3244 bits > 2000.
    g = net("memory", 60, [("wide", 1, lif(), None)], [("input", "wide", ones(1, 60), 1)])
    [p] = problems_of(g, small_target(synapse_memory_bits=2000))
    assert (p.rule, p.found, p.allowed) == ("core_synapse_memory_bits", 3244, 2000)
    # Headers shrink with the fan-in: 36 * (21 + 32) + 64 = 1972 <= 2000.
    assert "cut the fan-in of layer wide to <= 36 synapses per neuron" in p.fix


def test_core_input_axons():
    g = net("axons", 20, [("wide", 1, lif(), None)], [("input", "wide", ones(1, 20), 1)])
    [p] = problems_of(g, small_target(input_axons=16))
    assert (p.rule, p.found, p.allowed) == ("core_input_axons", 20, 16)
    assert "20 distinct presynaptic" in p.fix and "sparser" in p.fix


def test_core_output_axons():
    # Cores of one neuron: the hub's spikes go to 10 cores, one output axon each.
    g = net("fanout", 1, [("hub", 1, lif(), None), ("spread", 10, lif(), None)],
            [("input", "hub", ones(1, 1), 1), ("hub", "spread", ones(10, 1), 1)])
    [p] = problems_of(g, small_target(neurons=1, output_axons=8))
    assert (p.rule, p.found, p.allowed) == ("core_output_axons", 10, 8)
    assert "layer hub" in p.where and "fan-out of layer hub" in p.fix


def test_core_neuron_profiles():
    # One motif whose 8 neurons have 8 different voltage decays (as intrinsic plasticity leaves them).
    g = net("profiles", 2, [("ip", 8, lif(voltage_decay=np.linspace(0.05, 0.4, 8)), 8)],
            [("input", "ip", ones(8, 2), 1)])
    [p] = problems_of(g, small_target(neuron_profiles=4))
    assert (p.rule, p.found, p.allowed) == ("core_neuron_profiles", 8, 4)
    assert "share them within each motif" in p.fix


def test_core_threshold_profiles():
    g = net("thresholds", 2, [("th", 4, lif(threshold=[1.0, 0.8, 0.6, 0.4]), 4)], [("input", "th", ones(4, 2), 1)])
    [p] = problems_of(g, small_target(threshold_profiles=2))
    assert (p.rule, p.found, p.allowed) == ("core_threshold_profiles", 4, 2)


def test_chip_cores():
    # Three motifs of 8 neurons on cores of 8, one chip of 2 cores.
    g = net("chips", 2, [("l", 24, lif(), 8)], [("input", "l", ones(24, 2), 1)])
    [p] = problems_of(g, small_target(neurons=8, chip={"cores": 2, "chips": 1, "mesh": [1, 2]}))
    assert (p.rule, p.resource, p.found, p.allowed) == ("chip_cores", "cores", 3, 2)
    assert "chip.chips >= 2" in p.fix and "loihi2-sim-2chip" in p.fix


def test_weight_exponent_range():
    # An IR quantized for one target (exponent 3 is fine on loihi2-sim) checked against a target whose
    # exponent range stops at 0; compile_graph itself clips exponents into the target's range.
    g = net("exponent", 2, [("a", 2, lif(), None)], [("input", "a", ones(2, 2, 0.5), 1)])
    quantize(g, load_target("loihi2-sim"))
    [proj] = ir.projections(g)
    assert proj.quant.weight_exp > 0
    narrow = small_target(quant={"weight_exp_min": -8, "weight_exp_max": 0})
    demand = network_demand(g)
    cores = build_core_graph(demand, partition(demand, narrow), narrow)
    [p] = checks.run_checks(checks.CheckContext(g, demand, cores, narrow))
    assert (p.rule, p.found, p.allowed) == ("weight_exponent_range", proj.quant.weight_exp, "-8..0")
    assert p.where == "projection input->a"


def test_synaptic_delay():
    g = net("delay", 2, [("a", 2, lif(), None)], [("input", "a", ones(2, 2), 3)])
    [p] = problems_of(g, small_target())
    assert (p.rule, p.found, p.allowed, p.where) == ("synaptic_delay", 3, 1, "projection input->a")


def test_accumulator_range_is_a_warning_at_the_targets_width():
    # 200 full-scale synapses onto one neuron: 200 * 255 * 2**exp > 2**15 - 1.
    g = net("act", 200, [("sum", 1, lif(), None)], [("input", "sum", ones(1, 200, 0.5), 1)])
    [p] = problems_of(g, small_target(input_axons=4096, synapse_memory_bits=1_000_000))
    assert (p.rule, p.severity, p.allowed) == ("accumulator_range", "warning", 32767)
    assert p.found > 32767 and "layer sum" in p.where and "16-bit" in p.message
    # The limit is the target's: a 24-bit accumulator holds the same input.
    assert p.found <= (1 << 23) - 1
    assert problems_of(g, small_target(input_axons=4096, synapse_memory_bits=1_000_000, accumulator_bits=24)) == []



def test_neuron_models_rejects_a_model_the_target_does_not_list_by_name():
    g = net("models", 2, [("plain", 2, lif(), None), ("adaptive", 2, ATRLIF(0.3, 0.1, 1.0, 0.0, 1 / 16, 1 / 128, 0.5), None)],
            [("input", "plain", ones(2, 2), 1), ("input", "adaptive", ones(2, 2), 1)])
    [p] = problems_of(g, small_target(neuron_models=["cuba_lif"]))
    assert (p.rule, p.found, p.allowed) == ("neuron_models", "atrlif", "cuba_lif")
    assert "population adaptive" in p.where and "'atrlif'" in p.message
    assert problems_of(g, small_target(neuron_models=["cuba_lif", "atrlif"])) == []
    [p] = problems_of(net("lif", 2, [("a", 2, lif(), None)], [("input", "a", ones(2, 2), 1)]),
                      small_target(neuron_models=["atrlif"]))
    assert (p.rule, p.found) == ("neuron_models", "cuba_lif")


def test_weight_bits_checks_mantissas_read_already_quantized():
    # Compile quantizes onto the target's grid; a network quantized for 8 bits is then checked on a 6-bit target.
    g = net("bits", 4, [("a", 3, lif(), None)], [("input", "a", np.array([[0.3, 0.1, 0.05, 0.2]] * 3), 1)])
    quantize(g, small_target())
    [proj] = ir.projections(g)
    assert (proj.quant.mantissa.data % 4 != 0).any()
    narrow = small_target(enc={"weight_bits": 6})
    demand = network_demand(g)
    cores = build_core_graph(demand, partition(demand, narrow), narrow)
    [p] = checks.weight_bits(checks.CheckContext(g, demand, cores, narrow))
    assert (p.rule, p.where) == ("weight_bits", "projection input->a")
    assert p.allowed == "multiples of 4 in 0..252 (excitatory)"
    # Compiled for the 6-bit target, the same network passes: quantization honours weight_bits.
    fresh = net("bits", 4, [("a", 3, lif(), None)], [("input", "a", np.array([[0.3, 0.1, 0.05, 0.2]] * 3), 1)])
    assert "weight_bits" not in rules(problems_of(fresh, narrow))
    assert all((p.quant.mantissa.data % 4 == 0).all() for p in ir.projections(fresh))


def test_weight_clipping_is_a_warning():
    rng = np.random.default_rng(0)
    g = net("clip", 10, [("a", 10, lif(), None)], [("input", "a", rng.uniform(0.01, 0.2, (10, 10)), 1)])
    [p] = problems_of(g, small_target(), QuantizationConfig(weight_clip_percentile=50.0))
    assert (p.rule, p.severity) == ("weight_clipping", "warning") and p.where == "projection input->a"


# --------------------------------------------------------------------------- what an error says

def test_an_error_names_layer_motif_core_resource_amounts_and_a_concrete_fix():
    # Motifs of 32 neurons with fan-in 40: one motif needs 32 * (40 * 21 + 64) + 40 * 32 = 30208 bits.
    g = net("named", 40, [("ok", 4, lif(), None), ("dense", 64, lif(), 32)],
            [("input", "ok", ones(4, 40), 1), ("input", "dense", ones(64, 40), 1)])
    target = small_target(synapse_memory_bits=20_000)
    with pytest.raises(DesignRuleError) as err:
        compile_graph(g, target)
    problems = err.value.problems
    assert rules(problems) == ["core_synapse_memory_bits", "core_synapse_memory_bits"]
    p = problems[0]
    assert p.where.startswith("core 1 (chip 0) holding layer dense (dense motif 0, neurons 0-31)")
    assert (p.resource, p.found, p.allowed, p.severity) == ("synapse_memory_bits", 30208, 20000, "error")
    # Concrete: the motif size that fits, 20 * (40 * 21 + 64) + 40 * 32 = 19360 <= 20000, and the fan-in
    # that fits, 32 * (25 * 21 + 64) + 25 * 32 = 19648 <= 20000.
    assert "split layer dense into motifs of <= 20 neurons" in p.fix
    assert "cut the fan-in of layer dense to <= 25 synapses per neuron" in p.fix
    text = p.render()
    for label in ("[core_synapse_memory_bits]", "where:", "resource:", "found:", "allowed:", "fix:"):
        assert label in text
    assert "core 2" in problems[1].where and "motif 1" in problems[1].where


def test_several_violations_are_all_listed_at_once():
    g = net("many", 20, [("big", 16, lif(), 16), ("wide", 1, lif(), None), ("late", 2, lif(), None)],
            [("input", "big", np.pad(ones(16, 2), ((0, 0), (0, 18))), 1), ("input", "wide", ones(1, 20), 1),
             ("big", "late", ones(2, 16), 2)])
    target = small_target(neurons=8, input_axons=16, chip={"cores": 2, "chips": 1, "mesh": [1, 2]})
    with pytest.raises(DesignRuleError) as err:
        compile_graph(g, target)
    assert rules(err.value.problems) == ["chip_cores", "core_input_axons", "core_neurons", "synaptic_delay"]
    assert err.value.render().startswith("4 problems found:")


# --------------------------------------------------------------------------- the CLI

@pytest.fixture(scope="module")
def tight_target_and_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("checks")
    text = (REPO / "targets" / "loihi2-sim.toml").read_text().replace("input_axons = 4096", "input_axons = 8")
    toml = d / "tight.toml"
    toml.write_text(text.replace('name = "loihi2-sim"', 'name = "tight"'))
    model = d / "model.pt"
    # 12 inputs + 4 recurrent sources per hidden neuron > 8 input axons: every hidden neuron breaks the rule.
    save_checkpoint(model, RSNN(example_arch("tight", input_size=12, sizes=(4, 2))))
    return toml, model


def test_compile_exits_non_zero_and_json_lists_the_same_problems(tight_target_and_model, tmp_path, capsys):
    toml, model = tight_target_and_model
    out = tmp_path / "net.r2c"
    assert main(["compile", str(model), "--target", str(toml), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "4 problems found" in err and "core input axons over limit" in err and not out.exists()
    assert main(["compile", str(model), "--target", str(toml), "-o", str(out), "--json"]) == 2
    payload = json.loads(capsys.readouterr().out)
    with pytest.raises(DesignRuleError) as direct:
        compile_graph(load_network(model), load_target_file(toml))
    assert payload["error"] == "DesignRuleError"
    # The same problems, and the command names the model they were found in.
    expected = [dict(p.to_dict(), file=str(model)) for p in direct.value.problems]
    assert payload["problems"] == json.loads(json.dumps(expected))
    assert rules(payload["problems"]) == ["core_input_axons"] * 4
    assert not out.exists()


def test_compile_json_reports_the_mapping(tight_target_and_model, tmp_path, capsys):
    _, model = tight_target_and_model
    out = tmp_path / "ok.r2c"
    assert main(["compile", str(model), "-o", str(out), "--mapper", "auto", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["mapper"] in ("greedy", "metis") and result["cores"] >= result["lower_bound"] >= 1
    spikes = tmp_path / "spikes.npy"
    np.save(spikes, np.arange(6.0))
    assert main(["compile", str(model), "-o", str(out), "--spike-counts", str(spikes), "--json"]) == 0
    capsys.readouterr()
    np.save(spikes, np.arange(5.0))
    assert main(["compile", str(model), "-o", str(out), "--spike-counts", str(spikes), "--json"]) == 2
    assert "wrong length" in capsys.readouterr().out
