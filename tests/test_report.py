"""The report's numbers against networks built to produce known ones.

The network (``known_network``): input ``in`` (3 channels) -> ``a`` (one motif
of 4 neurons) <-> ``b`` (one motif of 3), on a target whose cores hold 4
neurons, so ``a`` and ``b`` each fill one core whatever the mapper does.
Every expected number below is worked out by hand in the comments.
"""
from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from rsnn2chip import activity, artifact, ir, report
from rsnn2chip.cli import main
from rsnn2chip.compiler import compile_graph
from rsnn2chip.neurons.cuba_lif import CubaLIF
from rsnn2chip.targets import load_target_file
from rsnn2chip.viz import tables

# 18 bits per synapse (8 weight + 10 index), 32 per input axon; no neuron state in synapse memory.
# Energy and time figures are round numbers so the cost can be checked by hand.
TARGET_TOML = """
[target]
name = "known"
description = "small cores for hand-checked reports"
simulator = "lava-fixed_pt"
[chip]
cores = 4
chips = 1
mesh = [1, 4]
[core]
neurons = 4
synapse_memory_bits = 1024
neuron_state_bits = 0
shared_memory = false
input_axons = 8
output_axons = 8
neuron_profiles = 2
threshold_profiles = 2
[synapse_encoding]
weight_bits = 8
index_bits = 10
delay_bits = 0
header_bits_per_axon = 32
[quantization]
weight_exp_min = -8
weight_exp_max = 0
[energy]
synaptic_op_pj = 10.0
neuron_update_pj = 1.0
neuron_spike_update_pj = 2.0
spike_in_tile_pj = 3.0
mesh_hop_pj = 4.0
source = "round test figures"
uncertain = true
[time]
synaptic_op_ns = 1.0
neuron_update_ns = 0.5
spike_in_tile_ns = 2.0
mesh_hop_ns = 5.0
source = "round test figures"
"""
STEPS = 10


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    path = tmp_path_factory.mktemp("target") / "known.toml"
    path.write_text(TARGET_TOML)
    return load_target_file(path)


def _csr(shape, entries) -> sp.csr_matrix:
    m = np.zeros(shape)
    for (r, c), w in entries.items():
        m[r, c] = w
    return sp.csr_matrix(m)


def known_network() -> ir.nx.DiGraph:
    """Threshold 1 gives state scale 2**17, so a float weight w is the integer w * 2048 (see quantize.py)."""
    g = ir.new_graph("known")
    ir.add_population(g, ir.Population("in", 3, "in"))
    # Two voltage decays -> two neuron profiles on a's core; 0.1 and 0.2 are not multiples of 1/4096.
    ir.add_population(g, ir.Population("a", 4, "layer_a", CubaLIF(0.5, [0.1, 0.1, 0.2, 0.2], 1.0, 0.0), 4))
    ir.add_population(g, ir.Population("b", 3, "layer_b", CubaLIF(0.5, 0.1, 1.0, 0.0), 3))
    # in -> a, 12 synapses: 0.5 * 2048 = 1024 needs exponent 3 but the target stops at 0, so the two 0.5s clip
    # to mantissa 255; 0.05 * 2048 = 102.4 -> 102.
    w_in = np.full((4, 3), 0.05)
    w_in[0, :2] = 0.5
    ir.add_projection(g, ir.Projection("in", "a", sp.csr_matrix(w_in)))
    # a -> a: a0 -> a1, a1 -> a2, a2 -> a3 (0.1 * 2048 = 204.8 -> 205).
    ir.add_projection(g, ir.Projection("a", "a", _csr((4, 4), {(1, 0): 0.1, (2, 1): 0.1, (3, 2): 0.1})))
    # a -> b: a0 -> b0, b1, b2; a1 -> b2; a3 -> b0 with 0.0001 * 2048 = 0.2 -> 0: rounded away, not stored.
    ir.add_projection(g, ir.Projection("a", "b", _csr((3, 4), {(0, 0): 0.1, (1, 0): 0.1, (2, 0): 0.1, (2, 1): 0.1,
                                                               (0, 3): 0.0001})))
    # b -> a: b0 -> a0, inhibitory.
    ir.add_projection(g, ir.Projection("b", "a", _csr((4, 3), {(0, 0): -0.1})))
    return g


@pytest.fixture(scope="module")
def compiled(target):
    return compile_graph(known_network(), target)


def core_holding(art, pop: str) -> int:
    return next(c for c, d in art.cores.nodes(data=True) if any(s[0] == pop for s in d["slices"]))


def spike_pattern() -> activity.Activity:
    """in0: steps 0, 1; in1: 0. a0: 0-4; a1: 5, 6; a2: 0-6; a3: 0-3. b0: 7-9; b1: 9."""
    times = {"in": {0: [0, 1], 1: [0]}, "a": {0: range(5), 1: [5, 6], 2: range(7), 3: range(4)},
             "b": {0: [7, 8, 9], 1: [9]}}
    sizes = {"in": 3, "a": 4, "b": 3}
    spikes = {}
    for pop, per_neuron in times.items():
        s = np.zeros((1, STEPS, sizes[pop]), bool)
        for n, ts in per_neuron.items():
            s[0, list(ts), n] = True
        spikes[pop] = s
    return activity.Activity(spikes, "hand-made", "known")


def moved_apart(compiled) -> artifact.CompiledNetwork:
    """The compiled network with a's core at mesh column 0 and b's at column 3: every crossing is 3 hops."""
    art = artifact.CompiledNetwork(compiled.graph, compiled.target, compiled.cores.copy(), compiled.provenance,
                                   compiled.warnings)
    for pop, col in (("a", 0), ("b", 3)):
        node = art.cores.nodes[core_holding(art, pop)]
        node["chip"], node["position"] = 0, [0, col]
    return art


@pytest.fixture
def far_apart(compiled):
    return moved_apart(compiled)


# --------------------------------------------------------------------------- cores

def test_per_core_numbers_are_the_hand_computed_ones(compiled):
    rep = report.build(compiled)
    assert rep["totals"]["cores"] == 2
    rows = {r["core"]: r for r in rep["cores"]}
    a, b = rows[core_holding(compiled, "a")], rows[core_holding(compiled, "b")]
    # core a: synapses 12 (in) + 3 (a->a) + 1 (b->a) = 16; input axons: in0-2, a0-2, b0 = 7;
    # output axons (neuron, destination core): a0 -> a, b; a1 -> a, b; a2 -> a = 5;
    # memory 16 * 18 + 7 * 32 = 512 bits; profiles: 2 decays -> 2; one threshold.
    assert {k: v["used"] for k, v in a["resources"].items()} == {
        "neurons": 4, "synapse_memory_bits": 512, "input_axons": 7, "output_axons": 5, "neuron_profiles": 2,
        "threshold_profiles": 1}
    assert a["synapses"] == 16 and a["layers"] == ["layer_a"]
    # core b: synapses a0->b0,b1,b2 and a1->b2 = 4 (a3->b0 was rounded to zero, so it is not stored);
    # input axons a0, a1 = 2; output axons b0 -> a = 1; memory 4 * 18 + 2 * 32 = 136.
    assert {k: v["used"] for k, v in b["resources"].items()} == {
        "neurons": 3, "synapse_memory_bits": 136, "input_axons": 2, "output_axons": 1, "neuron_profiles": 1,
        "threshold_profiles": 1}
    assert a["resources"]["synapse_memory_bits"]["percent"] == 50.0
    assert b["resources"]["synapse_memory_bits"]["percent"] == 100 * 136 / 1024
    assert a["resources"]["input_axons"]["percent"] == 87.5
    assert (a["utilisation_percent"], a["bottleneck"]) == (100.0, "neurons")
    assert (b["utilisation_percent"], b["bottleneck"]) == (75.0, "neurons")
    assert rep["core_summary"]["busiest"] == a["core"] and rep["core_summary"]["emptiest"] == b["core"]
    assert rep["limits"]["input_axons"] == 8


# --------------------------------------------------------------------------- quantization

def test_quantization_diagnostics_count_exactly_the_clipped_and_zeroed_weights(compiled):
    rep = report.build(compiled)
    proj = {p["name"]: p for p in rep["projections"]}
    p = proj["in->a"]
    assert (p["clipped"], p["synapses"], p["weight_exp"], p["sign_mode"]) == (2, 12, 0, "excitatory")
    assert p["clipped_fraction"] == 2 / 12 and p["zeroed"] == 0
    assert (p["mantissa_min"], p["mantissa_max"], p["mantissa_range_used"]) == (102, 255, 1.0)
    represented = np.array([255] * 2 + [102] * 10) / 2048
    exact = np.array([0.5] * 2 + [0.05] * 10)
    assert p["rms_rel_error"] == pytest.approx(np.linalg.norm(represented - exact) / np.linalg.norm(exact), rel=1e-12)
    assert p["max_abs_error"] == pytest.approx(0.5 - 255 / 2048, rel=1e-12)
    q = proj["a->b"]
    assert (q["zeroed"], q["synapses"], q["synapses_stored"], q["clipped"]) == (1, 5, 4, 0)
    assert (q["mantissa_min"], q["mantissa_max"]) == (0, 205)
    assert proj["b->a"]["sign_mode"] == "inhibitory" and proj["b->a"]["mantissa_min"] == -205
    # The report recounts per synapse; it must agree with what the quantize pass recorded.
    for proj_ir in ir.projections(compiled.graph):
        stats = proj_ir.quant.stats
        assert proj[proj_ir.name]["clipped_fraction"] == stats["clipped_fraction"]
        assert proj[proj_ir.name]["zeroed_fraction"] == stats["zeroed_fraction"]


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_huge_stored_float_weights_give_finite_errors_without_warnings(compiled):
    """An artifact written before compile refused float weights beyond 1e100 can hold them: squaring them for
    the error norm overflowed (inf / inf, and a NumPy warning on the user's screen)."""
    graph = copy.deepcopy(compiled.graph)
    proj = next(p for p in ir.projections(graph) if p.name == "in->a")
    proj.weight = sp.csr_matrix(proj.weight, dtype=np.float64)
    proj.weight.data[0] = 1e300
    row = report.projection_diagnostics(graph, proj)
    assert row["rms_rel_error"] == pytest.approx(1.0) and row["max_abs_error"] == pytest.approx(1e300)


def test_parameter_conversions_that_lost_precision_are_named(compiled):
    layers = {layer["layer"]: layer for layer in report.build(compiled)["layers"]}
    a = layers["layer_a"]
    assert a["params_lost_precision"] == ["voltage_decay"]
    decay = next(p for p in a["params"] if p["param"] == "voltage_decay")
    assert decay["max_abs_error"] == pytest.approx(0.4 / 4096, rel=1e-9)  # 0.1 * 4096 = 409.6 -> 410
    assert sorted(p["name"] for p in a["projections"]) == ["a->a", "b->a", "in->a"]


# --------------------------------------------------------------------------- traffic

def test_static_traffic_counts_crossing_synapses_and_weighs_them_by_hops(far_apart):
    rep = report.build(far_apart)
    a, b = core_holding(far_apart, "a"), core_holding(far_apart, "b")
    s = rep["traffic"]["static"]
    assert s["synapses"][a][b] == 4 and s["synapses"][b][a] == 1  # a0 -> 3, a1 -> 1; b0 -> a0
    assert s["axons"][a][b] == 2 and s["axons"][b][a] == 1
    assert s["synapses"][a][a] == 3 and s["local_synapses"] == 3
    assert s["intercore_synapses"] == 5 and s["intercore_axons"] == 3
    assert rep["traffic"]["hops"][a][b] == 3
    assert s["hop_weighted_synapses"] == 15
    assert s["input_synapses_per_core"][a] == 12 and s["input_synapses_per_core"][b] == 0
    assert [(e["src"], e["dst"], e["synapses"], e["hops"]) for e in rep["traffic"]["edges"]] == [(a, b, 4, 3),
                                                                                               (b, a, 1, 3)]


def test_measured_traffic_counts_one_message_per_spike_and_destination_core(far_apart):
    rep = report.build(far_apart, spike_pattern())
    a, b = core_holding(far_apart, "a"), core_holding(far_apart, "b")
    m = rep["traffic"]["measured"]
    assert m["messages"][a][b] == 5 + 2  # a0 (5 spikes) and a1 (2) reach b; a3's synapse was not stored
    assert m["messages"][b][a] == 3  # b0; b1 reaches nothing
    assert m["messages"][a][a] == 5 + 2 + 7  # a0 -> a1, a1 -> a2, a2 -> a3
    assert m["synaptic_events"][a][b] == 5 * 3 + 2 * 1
    assert (m["intercore_messages"], m["local_messages"], m["intercore_synaptic_events"]) == (10, 14, 20)
    assert m["hop_weighted_messages"] == 10 * 3
    assert m["input_messages_per_core"][a] == 3 and m["input_synaptic_events_per_core"][a] == 3 * 4
    assert rep["activity"]["populations"][1] == {"population": "a", "layer": "layer_a", "kind": "lif", "neurons": 4,
                                                 "spikes": 18, "rate": 18 / 40, "max_rate": 0.7, "silent_neurons": 0}


# --------------------------------------------------------------------------- cost

def test_cost_estimate_equals_the_hand_computation(far_apart):
    c = report.build(far_apart, spike_pattern())["cost"]
    counts = {k: v["count_per_inference"] for k, v in c["operations"].items()}
    # synaptic ops: inputs 3 spikes x 4 synapses = 12; a0 5 x 4; a1 2 x 2; a2 7 x 1; a3 4 x 0; b0 3 x 1 -> 46
    # neuron updates: 7 neurons x 10 steps = 70, of which 22 spiking
    # spike messages: a0 5 x 2 cores, a1 2 x 2, a2 7 x 1, b0 3 x 1 = 24, plus 3 input spikes x 1 core = 27
    # mesh hops: (a0 5 + a1 2 + b0 3) x 3 hops = 30
    assert counts == {"synaptic_ops": 46, "neuron_updates_idle": 48, "neuron_updates_spiking": 22,
                      "spike_messages": 27, "mesh_hops": 30}
    assert c["per_inference"]["energy_pj"] == 46 * 10 + 48 * 1 + 22 * 2 + 27 * 3 + 30 * 4  # 753
    # Busiest core per step (ns): step 0, core a: 10 synaptic ops + 4 updates x 0.5 + 3 messages x 2 + 3 hops x 5
    # = 33; step 1: 6 + 2 + 6 + 15 = 29; steps 2-6: 2 + 2 + 6 + 15 = 25; steps 7-9, core b: 1.5 + 2 + 15 = 18.5.
    assert c["per_inference"]["time_ns"] == 33 + 29 + 5 * 25 + 3 * 18.5
    # Serial: 46 x 1 + 70 x 0.5 + 24 x 2 + 30 x 5 (input messages cost no core time).
    assert c["per_inference"]["serial_time_ns"] == 46 + 35 + 48 + 150
    assert c["per_step"]["energy_pj"] == pytest.approx(75.3, rel=1e-12)
    assert c["estimate"] is True and c["sources"]["energy"] == "round test figures"


# --------------------------------------------------------------------------- CLI, formats, activity files

@pytest.fixture(scope="module")
def files(compiled, tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    art_path = d / "known.r2c"
    artifact.save(moved_apart(compiled), art_path)
    act_path = activity.save(spike_pattern(), d / "run")
    return art_path, act_path


def test_text_and_json_carry_the_same_numbers(files, capsys, monkeypatch):
    art_path, act_path = files
    assert main(["report", str(art_path), "--activity", str(act_path), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["cost"]["per_inference"]["energy_pj"] == 753
    monkeypatch.setenv("COLUMNS", "400")  # wide enough that rich wraps no cell
    assert main(["report", str(art_path), "--activity", str(act_path), "--rows", "1000"]) == 0
    text = capsys.readouterr().out
    lines = {line for _, _, specs in tables.sections(rep) for spec in specs for row in spec.rows for cell in row
             for line in cell.split("\n")}
    missing = [line for line in lines if line not in text]
    assert not missing
    for shown in ("4/4", "(100.00%)", "512/1,024", "(50.00%)", "2/12 (16.67%)", "1/5 (20.00%)", "0.753"):
        assert shown in text


def test_run_saves_activity_that_the_report_reads(compiled, files, tmp_path):
    art_path, _ = files
    x = tmp_path / "x.npy"
    np.save(x, (np.random.default_rng(1).random((2, 12, 3)) < 0.5).astype(np.int8))
    for dest in (tmp_path / "run", tmp_path / "run.npz", tmp_path / "run"):  # the second "run" replaces the first
        assert main(["run", str(art_path), "--input", str(x), "--save-activity", str(dest)]) == 0
    act = activity.load(tmp_path / "run")
    assert act.batch == 2 and act.steps == 12 and set(act.spikes) == {"in", "a", "b"}
    np.testing.assert_array_equal(act.spikes["in"], np.load(x).astype(bool))
    assert (tmp_path / "run" / "meta.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "run.npz", "x.npy"]  # no temporaries left
    single = activity.load(tmp_path / "run.npz")
    for pop in act.spikes:
        np.testing.assert_array_equal(single.spikes[pop], act.spikes[pop])
    rep = report.build(compiled, act)
    assert rep["activity"]["populations"][0]["spikes"] == int(np.load(x).sum())


def test_activity_of_another_network_is_refused(files, tmp_path, capsys):
    art_path, _ = files
    wrong = spike_pattern()
    wrong.spikes["b"] = np.zeros((1, STEPS, 5), bool)
    activity.save(wrong, tmp_path / "wrong.npz")
    assert main(["report", str(art_path), "--activity", str(tmp_path / "wrong.npz")]) == 2
    assert "population b has shape" in capsys.readouterr().err


def test_pictures_are_written_as_png_and_svg(files, tmp_path):
    art_path, act_path = files
    assert main(["report", str(art_path), "--activity", str(act_path), "-o", str(tmp_path / "out")]) == 0
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == sorted([f"{n}.{e}" for n in ("mesh", "layers", "traffic", "traffic_matrix", "activity")
                                                  for e in ("png", "svg")]
                           + ["report.txt"])
    assert (tmp_path / "out" / "mesh.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "out" / "mesh.svg").read_text().lstrip().startswith("<?xml")


# --------------------------------------------------------------------------- HTML

SECTIONS = ("summary", "why-cores", "cores", "quantization", "traffic", "cost", "activity", "sources")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def html_report(files, tmp_path_factory):
    art_path, act_path = files
    out = tmp_path_factory.mktemp("html")
    assert main(["report", str(art_path), "--activity", str(act_path), "--format", "html", "-o", str(out)]) == 0
    return out / "report.html"


def test_html_is_one_self_contained_file(html_report):
    page = html_report.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", page)
    assert "<script" not in page and "url(" not in page and "@import" not in page
    assert page.count('src="data:image/png;base64,') == 5
    for sid in SECTIONS:
        assert f'<section id="{sid}">' in page


def _chromium(*args, user_dir: Path) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={user_dir}"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium missing: run `make setup-browser`")
def test_html_renders_in_headless_chromium(html_report, tmp_path):
    url = html_report.resolve().as_uri()
    dom = _chromium("--dump-dom", url, user_dir=tmp_path / "profile-dom").stdout
    for sid in SECTIONS:
        assert f'id="{sid}"' in dom, sid
    assert len(re.findall(r"<img\b", dom)) == 5
    assert 'id="cores-table"' in dom and 'class="busiest"' in dom and 'class="emptiest"' in dom
    shot = tmp_path / "out.png"
    _chromium(f"--screenshot={shot}", "--window-size=1200,2000", url, user_dir=tmp_path / "profile-shot")
    from matplotlib.image import imread
    pixels = imread(shot)
    assert pixels.shape[:2] == (2000, 1200)
    # A blank page is one colour; the rendered report has text, tables and images.
    assert pixels[..., :3].std() > 0.05
    assert len(np.unique(pixels[..., :3].reshape(-1, 3), axis=0)) > 100


# --------------------------------------------------------------------------- why this many cores

MANY_CORES_TOML = TARGET_TOML.replace('name = "known"', 'name = "many"').replace(
    "cores = 4\nchips = 1\nmesh = [1, 4]", "cores = 48\nchips = 1\nmesh = [6, 8]").replace(
    "neurons = 4\n", "neurons = 8\n").replace("synapse_memory_bits = 1024", "synapse_memory_bits = 4096").replace(
    "input_axons = 8\n", "input_axons = 96\n").replace("output_axons = 8\n", "output_axons = 96\n").replace(
    "neuron_profiles = 2", "neuron_profiles = 4").replace("threshold_profiles = 2", "threshold_profiles = 4")


def many_core_network(seed: int = 0) -> ir.nx.DiGraph:
    """240 neurons in motifs of 4 behind 40 inputs, sparse random wiring: 30+ cores of 8 neurons."""
    rng = np.random.default_rng(seed)
    g = ir.new_graph("many")
    ir.add_population(g, ir.Population("in", 40, "in"))
    ir.add_population(g, ir.Population("hidden", 200, "hidden", CubaLIF(0.5, 0.1, 1.0, 0.0), 4))
    ir.add_population(g, ir.Population("out", 40, "out", CubaLIF(0.5, 0.1, 1.0, 0.0)))
    for pre, post, shape, density in (("in", "hidden", (200, 40), 0.1), ("hidden", "hidden", (200, 200), 0.03),
                                      ("hidden", "out", (40, 200), 0.05)):
        w = sp.random(*shape, density=density, random_state=rng, data_rvs=lambda k: rng.uniform(0.05, 0.3, k))
        ir.add_projection(g, ir.Projection(pre, post, sp.csr_matrix(w)))
    return g


@pytest.fixture(scope="module")
def many_cores(tmp_path_factory):
    path = tmp_path_factory.mktemp("many") / "many.toml"
    path.write_text(MANY_CORES_TOML)
    art = compile_graph(many_core_network(), load_target_file(path))
    assert art.cores.number_of_nodes() >= 30
    art_path = path.with_name("many.r2c")
    artifact.save(art, art_path)
    return art, art_path


def test_core_count_is_explained(many_cores, compiled):
    art, _ = many_cores
    c = report.build(art)["core_count"]
    lb = art.cores.graph["lower_bound"]
    assert c["lower_bound"] == lb["cores"] and c["cores"] == art.cores.number_of_nodes()
    assert c["bound_by"] == max((r for r in lb if r != "cores"), key=lambda r: lb[r])
    assert sum(c["binding_cores"].values()) == c["cores"]
    assert c["cores"] > c["lower_bound"] and "above the bound" in " ".join(c["reasons"])
    assert any("--mapper auto" in way for way in c["lower_it"])
    at_bound = report.build(compiled)["core_count"]  # a and b fill one core each: 2 = the bound
    assert at_bound["cores"] == at_bound["lower_bound"] == 2 and "meets the bound" in at_bound["reasons"][-1]


def test_neuron_ranges_per_core_in_text_and_html(many_cores, tmp_path, capsys):
    art, art_path = many_cores
    rep = report.build(art)
    ranges = [r for row in rep["cores"] for r in row["neuron_ranges"]]
    assert ranges[0].startswith("hidden[") and sum(int(r.split(":")[1][:-1]) - int(r.split("[")[1].split(":")[0])
                                                   for r in ranges) == 240
    capsys.readouterr()
    assert main(["report", str(art_path), "--rows", "100"]) == 0
    text = capsys.readouterr().out
    assert "binding resource" in text and rep["cores"][0]["neuron_ranges"][0] in text


def test_auto_mapper_lists_what_it_tried(target):
    rep = report.build(compile_graph(known_network(), target, mapper="auto"))
    spec = tables.mappers_table(rep)
    assert [row[0] for row in spec.rows] == ["greedy", "rcm", "metis"]
    assert sum(row[-1] == "yes" for row in spec.rows) == 1


def test_layer_picture_names_neurons_when_there_are_no_motifs(target):
    from rsnn2chip.viz import figures
    g = known_network()
    for pop in ir.populations(g, "lif"):
        pop.motif_size = None
    title = figures.core_layers(report.build(compile_graph(g, target))).axes[0].get_title()
    assert "one square per neuron" in title and "motif" not in title


@pytest.fixture(scope="module")
def many_cores_html(many_cores, tmp_path_factory):
    _, art_path = many_cores
    out = tmp_path_factory.mktemp("many-html")
    assert main(["report", str(art_path), "--format", "html", "-o", str(out)]) == 0
    return out / "report.html"


def test_html_of_a_30_core_network_says_why_so_many_cores(many_cores_html):
    page = many_cores_html.read_text()
    assert '<section id="why-cores">' in page and 'id="core-count-table"' in page
    assert "lower bound" in page and "what would lower it" in page and 'id="figure-traffic_matrix"' in page


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium missing: run `make setup-browser`")
def test_30_core_report_renders_why_in_headless_chromium(many_cores_html, tmp_path):
    dom = _chromium("--dump-dom", many_cores_html.resolve().as_uri(), user_dir=tmp_path / "profile").stdout
    why = dom[dom.index('id="why-cores"'):dom.index('id="cores"')]
    assert "above the bound" in why and "what would lower it" in why
    assert 'id="figure-traffic_matrix"' in dom and "hidden[" in dom



def test_compile_with_auto_prints_the_mappers_it_tried(tmp_path, capsys):
    import torch
    from rsnn2chip.checkpoint import save_checkpoint
    from rsnn2chip.nn import RSNN, example_arch
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "model.pt", RSNN(example_arch(input_size=6, sizes=(12, 3))))
    capsys.readouterr()
    assert main(["compile", str(tmp_path / "model.pt"), "--mapper", "auto", "--json"]) == 0
    assert sorted(json.loads(capsys.readouterr().out)["mapper_candidates"]) == ["greedy", "metis", "rcm"]
    assert main(["compile", str(tmp_path / "model.pt"), "--mapper", "auto"]) == 0
    assert "--mapper auto" in capsys.readouterr().out
