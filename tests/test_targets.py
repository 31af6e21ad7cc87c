"""Targets: typed parsing, value ranges, extends, neuron models and rule lists, old embedded targets, the CLI."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from lava.utils.weightutils import SignMode, truncate_weights

from rsnn2chip import fixedpoint as fx
from rsnn2chip import ir
from rsnn2chip.cli import main
from rsnn2chip.compiler import compile_graph
from rsnn2chip.errors import DesignRuleError, TargetError
from rsnn2chip.passes import checks
from rsnn2chip.passes.quantize import QuantizationConfig, quantize_weights
from rsnn2chip.targets import load_target, load_target_file, target_from_dict

from conftest import cli_json, lif, small_graph, small_target

REPO = Path(__file__).resolve().parent.parent
LOIHI2 = (REPO / "targets" / "loihi2-sim.toml").read_text()


def write(tmp_path: Path, text: str, name: str = "t.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def target_error(path: Path) -> TargetError:
    with pytest.raises(TargetError) as err:
        load_target_file(path)
    return err.value


# --------------------------------------------------------------------------- typed access

def test_every_section_is_typed_and_read_once():
    t = load_target("loihi2-sim")
    assert (t.name, t.chip.cores, t.chip.mesh, t.core.neurons, t.synapse_encoding.weight_bits) == \
        ("loihi2-sim", 120, (8, 15), 8192, 8)
    assert t.synapse_encoding.bits_per_synapse == 8 + 13 + 0
    assert t.core.neuron_models == ("cuba_lif", "atrlif") and t.core.accumulator_bits == 16
    assert t.info.select_tag == "fixed_pt" and isinstance(t.energy.synaptic_op_pj, float)
    assert load_target("loihi1-sim").core.neuron_models == ("cuba_lif",)
    assert t.core.limit("input_axons") == 4096
    with pytest.raises(KeyError, match="not a per-core resource"):
        t.core.limit("cores")
    with pytest.raises(AttributeError):
        t.core.neurons = 1  # frozen: a pass cannot change a limit for the passes after it


# --------------------------------------------------------------------------- value ranges (issue 15)

@pytest.mark.parametrize("old, new, key, allowed", [
    ("synaptic_op_pj = 23.6", "synaptic_op_pj = nan", "energy.synaptic_op_pj", "finite"),
    ("mesh_hop_ns = 5.3", "mesh_hop_ns = inf", "time.mesh_hop_ns", "finite"),
    ("mesh_hop_pj = 3.5", "mesh_hop_pj = -1.0", "energy.mesh_hop_pj", ">= 0.0"),
    ("weight_bits = 8", "weight_bits = 0", "synapse_encoding.weight_bits", "1..8"),
    ("weight_bits = 8", "weight_bits = 9", "synapse_encoding.weight_bits", "1..8"),
    ("neurons = 8192", "neurons = 0", "core.neurons", "1..2147483648"),
    ("input_axons = 4096", "input_axons = -3", "core.input_axons", "1..2147483648"),
    ("cores = 120", "cores = 0", "chip.cores", "1..65536"),
    ("mesh = [8, 15]", "mesh = [100000, 100000]", "chip.mesh", "1..65536"),
    ("weight_exp_min = -8", "weight_exp_min = 9", "quantization.weight_exp_min", "<= quantization.weight_exp_max"),
    ("simulator = \"lava-fixed_pt\"", "simulator = \"lava-floating_pt\"", "target.simulator", "lava-fixed_pt"),
    ("accumulator_bits = 16", "accumulator_bits = 1", "core.accumulator_bits", "2..64"),
    ('neuron_models = ["cuba_lif", "atrlif"]', "neuron_models = []", "core.neuron_models", "non-empty"),
])
def test_a_bad_value_is_one_error_naming_the_key_and_the_allowed_range(tmp_path, old, new, key, allowed):
    assert old in LOIHI2
    path = write(tmp_path, LOIHI2.replace(old, new))
    err = target_error(path)
    [problem] = err.problems  # one error, not one per core or per layer
    assert key in problem.message and allowed in problem.message and problem.file == str(path)


def test_neurons_zero_is_refused_before_any_compile(tmp_path):
    # It used to load, and a compile then gave one "motifs of <= 0 neurons" error per core.
    path = write(tmp_path, LOIHI2.replace("neurons = 8192", "neurons = 0"))
    assert "must be in 1..2147483648, found 0" in str(target_error(path))


def test_every_problem_in_a_file_is_listed(tmp_path):
    text = LOIHI2.replace("weight_bits = 8", "weight_bits = 0").replace("chips = 1", "chips = 1\nsockets = 2")
    err = target_error(write(tmp_path, text.replace("mesh_hop_pj = 3.5", "mesh_hop_pj = nan")))
    assert len(err.problems) == 3
    assert "3 problems found" in err.render()


def test_unreadable_target_files_are_clear_errors(tmp_path):
    assert "not found" in str(target_error(tmp_path / "missing.toml"))
    (tmp_path / "dir.toml").mkdir()
    assert "directory" in str(target_error(tmp_path / "dir.toml"))
    assert "not valid TOML" in str(target_error(write(tmp_path, "[chip\n")))


# --------------------------------------------------------------------------- extends

def test_the_two_chip_target_extends_loihi2_sim():
    text = (REPO / "targets" / "loihi2-sim-2chip.toml").read_text()
    assert 'extends = "loihi2-sim"' in text and "[core]" not in text
    one, two = load_target("loihi2-sim"), load_target("loihi2-sim-2chip")
    assert (two.name, two.chip.chips, two.total_cores) == ("loihi2-sim-2chip", 2, 240)
    assert two.core == one.core and two.synapse_encoding == one.synapse_encoding and two.drc == one.drc
    assert "extends" not in two.data["target"]  # artifacts embed the resolved target


def test_extends_overrides_only_the_keys_given_and_resolves_paths_next_to_the_file(tmp_path):
    write(tmp_path, LOIHI2.replace('name = "loihi2-sim"', 'name = "base"'), "base.toml")
    child = write(tmp_path, '[target]\nextends = "base.toml"\nname = "small-cores"\ndescription = "d"\n'
                            '[core]\nneurons = 256\n', "child.toml")
    t = load_target_file(child)
    base = load_target_file(tmp_path / "base.toml")
    assert (t.name, t.core.neurons, t.core.synapse_memory_bits) == ("small-cores", 256, base.core.synapse_memory_bits)
    assert t.energy == base.energy and t.info.simulator == base.info.simulator


def test_extends_does_not_inherit_the_name(tmp_path):
    err = target_error(write(tmp_path, '[target]\nextends = "loihi2-sim"\n[chip]\nchips = 4\n'))
    assert "missing key target.name" in str(err) and "missing key target.description" in str(err)


def test_extends_errors_name_the_problem(tmp_path):
    assert "unknown target" in str(target_error(write(tmp_path, '[target]\nextends = "loihi9"\nname = "x"\n')))
    write(tmp_path, '[target]\nextends = "b.toml"\nname = "a"\ndescription = "a"\n', "a.toml")
    write(tmp_path, '[target]\nextends = "a.toml"\nname = "b"\ndescription = "b"\n', "b.toml")
    assert "cycle" in str(target_error(tmp_path / "a.toml"))
    assert "must name a target" in str(target_error(write(tmp_path, "[target]\nextends = 3\n")))


# --------------------------------------------------------------------------- what passes take from the target

def test_quantization_honours_weight_bits_on_the_grid_lava_keeps():
    rng = np.random.default_rng(0)
    for signs in ((0.0, 1.0), (-1.0, 0.0), (-1.0, 1.0)):
        w = sp.csr_matrix(rng.uniform(*signs, (20, 30)))
        for bits in (8, 6, 3):
            q = quantize_weights(w, 64.0, (-8, 7), weight_bits=bits)
            lo, hi, step = fx.weight_grid(q.sign_mode, bits)
            m = q.mantissa.toarray()
            assert m.min() >= lo and m.max() <= hi and (m % step == 0).all()
            assert np.abs(m).max() > hi // 2  # the exponent still uses the range it has
            # Lava's own truncation at this width, and at 8 bits, leaves the mantissas as they are.
            mode = {"excitatory": SignMode.EXCITATORY, "inhibitory": SignMode.INHIBITORY,
                    "mixed": SignMode.MIXED}[q.sign_mode]
            assert np.array_equal(truncate_weights(m, mode, bits), m)
            assert np.array_equal(fx.lava_weights(q.mantissa, q.sign_mode).toarray(), m)


def test_a_target_with_fewer_weight_bits_compiles_coarser_weights():
    eight = compile_graph(small_graph(1), small_target(enc={"weight_bits": 8}))
    four = compile_graph(small_graph(1), small_target(enc={"weight_bits": 4}))
    for p8, p4 in zip(ir.projections(eight.graph), ir.projections(four.graph)):
        step = fx.weight_grid(p4.quant.sign_mode, 4)[2]
        assert (p4.quant.mantissa.data % step == 0).all()
        assert p4.quant.stats["rms_rel_error"] >= p8.quant.stats["rms_rel_error"]
    assert four.target.data["synapse_encoding"]["weight_bits"] == 4


def test_the_rule_list_is_the_targets(tmp_path):
    rng = np.random.default_rng(0)
    g = ir.new_graph("clip")
    ir.add_population(g, ir.Population("input", 10, "input"))
    ir.add_population(g, ir.Population("a", 10, "a", lif()))
    ir.add_projection(g, ir.Projection("input", "a", sp.csr_matrix(rng.uniform(0.01, 0.2, (10, 10)))))
    qcfg = QuantizationConfig(weight_clip_percentile=50.0)
    every = small_target()
    assert every.drc.rules is not None and [r.__name__ for r in checks.rules_for(every)] == list(every.drc.rules)
    assert [w["rule"] for w in compile_graph(copy.deepcopy(g), every, qcfg=qcfg).warnings] == ["weight_clipping"]
    data = copy.deepcopy(every.data)
    data["drc"]["rules"] = [r for r in data["drc"]["rules"] if r != "weight_clipping"]
    assert compile_graph(copy.deepcopy(g), target_from_dict(data, "no clipping rule"), qcfg=qcfg).warnings == []
    data["drc"]["rules"] = ["core_neurons", "core_neurnos"]
    with pytest.raises(TargetError) as err:
        compile_graph(copy.deepcopy(g), target_from_dict(data, "typo"))
    [p] = err.value.problems
    assert p.found == "core_neurnos" and "core_neurons" in p.allowed and p.file == "typo"


def test_an_unlisted_neuron_model_fails_the_compile_by_name():
    with pytest.raises(DesignRuleError) as err:
        compile_graph(small_graph(2), small_target(neuron_models=["atrlif"]))
    assert {p.rule for p in err.value.problems} == {"neuron_models"}
    assert {p.found for p in err.value.problems} == {"cuba_lif"} and len(err.value.problems) == 2  # rec, out


# --------------------------------------------------------------------------- old artifacts, the CLI

def test_a_target_embedded_before_the_new_keys_still_loads():
    # What artifacts written before neuron_models, accumulator_bits and [drc] embedded.
    old = copy.deepcopy(load_target("loihi2-sim").data)
    for key in ("neuron_models", "accumulator_bits"):
        old["core"].pop(key)
    old.pop("drc")
    t = target_from_dict(old, "old artifact (embedded target)")
    assert t.core.neuron_models == ("cuba_lif",) and t.core.accumulator_bits == 16 and t.drc.rules is None
    assert [r.__name__ for r in checks.rules_for(t)] == list(checks.RULES)  # every rule, as before
    assert t.data["core"]["neuron_models"] == ["cuba_lif"]  # re-embedded complete
    compiled = compile_graph(small_graph(3), t)
    assert target_from_dict(compiled.target.data, "again") == t


def test_targets_command_lists_neuron_models(capsys, monkeypatch):
    code, out = cli_json(capsys, ["targets"])
    assert code == 0
    rows = {r["name"]: r for r in out["targets"]}
    assert rows["loihi2-sim"]["neuron_models"] == ["cuba_lif", "atrlif"]
    assert rows["loihi1-sim"]["neuron_models"] == ["cuba_lif"]
    assert rows["loihi2-sim-2chip"]["chips"] == 2 and rows["loihi2-sim-2chip"]["neuron_models"] == ["cuba_lif", "atrlif"]
    assert "neuron_models" in rows["loihi2-sim"]["design_rules"] and rows["loihi1-sim"]["weight_bits"] == 8
    monkeypatch.setenv("COLUMNS", "200")  # the table as a wide terminal shows it
    assert main(["targets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any("neuron models" in line for line in lines)
    at = next(i for i, line in enumerate(lines) if "loihi2-sim-2chip" in line)
    assert "cuba_lif" in lines[at] and "atrlif" in lines[at + 1]
    assert "atrlif" not in next(line for line in lines if "loihi1-sim" in line)
