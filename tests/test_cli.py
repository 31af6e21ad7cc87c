import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rsnn2chip.checkpoint import save_checkpoint
from rsnn2chip.cli import COMMANDS, build_parser, main
from rsnn2chip.nn import RSNN
from rsnn2chip.nn.network import example_arch

from conftest import random_spikes

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def model_and_input(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    model = d / "model.pt"
    save_checkpoint(model, RSNN(example_arch("cli", input_size=8, sizes=(24, 5))))
    x = d / "x.npy"
    np.save(x, random_spikes(0, 30, 8))
    return model, x


@pytest.fixture(scope="module")
def compiled(model_and_input):
    model, _ = model_and_input
    out = model.with_suffix(".r2c")
    assert main(["compile", str(model), "--target", "loihi2-sim", "-o", str(out)]) == 0
    return out


def _json(capsys):
    return json.loads(capsys.readouterr().out)


def test_compile_writes_a_loadable_artifact_and_json(model_and_input, tmp_path, capsys):
    model, _ = model_and_input
    out = tmp_path / "net.r2c"
    assert main(["compile", str(model), "-o", str(out), "--json"]) == 0
    result = _json(capsys)
    assert result["artifact"] == str(out) and result["cores"] >= result["lower_bound"] >= 1
    assert out.is_file() and [p.name for p in tmp_path.iterdir()] == ["net.r2c"]


def test_report_json_has_the_summary(compiled, capsys):
    assert main(["report", str(compiled), "--json"]) == 0
    s = _json(capsys)
    assert [p["name"] for p in s["populations"]] == ["input", "hidden0", "output"]
    assert s["totals"]["neurons"] == 29
    assert {"weight_exp", "clipped_fraction", "zeroed_fraction", "rms_rel_error"} <= set(s["projections"][0])
    assert s["mapping"]["n_cores"] == len(s["cores"])
    assert s["provenance"]["source_sha256"]


def test_run_reference_counts_spikes(compiled, model_and_input, capsys):
    _, x = model_and_input
    assert main(["run", str(compiled), "--input", str(x), "--steps", "40", "--json"]) == 0
    result = _json(capsys)
    assert result["reference"]["steps"] == 40
    # The counts of the same run made through the library, on the input zero-padded to 40 steps.
    from rsnn2chip import artifact
    from rsnn2chip.backends import run as run_backend
    padded = np.zeros((40, 8), np.int8)
    padded[:30] = np.load(x)
    direct = run_backend(artifact.load(compiled), padded, 40).spike_counts()
    assert result["reference"]["spike_counts"] == direct
    assert set(direct) == {"hidden0", "output"} and sum(direct.values()) > 0


def test_run_saves_spikes_atomically(compiled, model_and_input, tmp_path):
    _, x = model_and_input
    out = tmp_path / "spikes.npz"
    assert main(["run", str(compiled), "--input", str(x), "--save-spikes", str(out)]) == 0
    with np.load(out) as z:
        assert z["reference/hidden0"].shape == (1, 30, 24)


def test_targets_lists_the_files(capsys):
    assert main(["targets", "--json"]) == 0
    names = [t["name"] for t in _json(capsys)["targets"]]
    assert {"loihi1-sim", "loihi2-sim"} <= set(names)


@pytest.mark.parametrize("argv, expected", [
    (["compile", "missing.pt"], "model file not found"),
    (["compile", "{model}", "--target", "loihi9"], "unknown target"),
    (["run", "{artifact}", "--input", "{bad_input}"], "wrong number of channels"),
    (["run", "{artifact}", "--input", "missing.npy"], "input file not found"),
    (["report", "{model}"], "a model file where a compiled network (.r2c) belongs"),
])
def test_user_errors_exit_2_without_traceback(argv, expected, model_and_input, compiled, tmp_path, capsys):
    model, _ = model_and_input
    bad_input = tmp_path / "bad.npy"
    np.save(bad_input, np.zeros((10, 3), np.int8))
    argv = [a.format(model=model, artifact=compiled, bad_input=bad_input) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_json_errors_are_machine_readable(capsys):
    assert main(["compile", "missing.pt", "--json"]) == 2
    payload = _json(capsys)
    assert payload["error"] == "CheckpointError" and payload["problems"][0]["file"] == "missing.pt"


def test_debug_shows_the_traceback_and_keeps_the_exit_status(capsys):
    assert main(["compile", "missing.pt", "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "CheckpointError" in err and "missing.pt" in err


def test_malformed_target_file_names_the_key(model_and_input, tmp_path, capsys):
    model, _ = model_and_input
    text = (REPO / "targets" / "loihi2-sim.toml").read_text().replace("input_axons = 4096", "input_axons = \"many\"")
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    assert main(["compile", str(model), "--target", str(bad)]) == 2
    assert "core.input_axons" in capsys.readouterr().err


def test_every_command_has_help_with_an_example(capsys):
    parser = build_parser()
    for name in COMMANDS:
        with pytest.raises(SystemExit):
            parser.parse_args([name, "--help"])
        assert "example:" in capsys.readouterr().out


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "rsnn2chip", "--version"], capture_output=True, text=True,
                            cwd=REPO)
    assert result.returncode == 0 and result.stdout.startswith("rsnn2chip ")


@pytest.mark.lava
def test_compare_reports_identical_for_lava_and_reference(compiled, model_and_input, capsys):
    _, x = model_and_input
    assert main(["run", str(compiled), "--input", str(x), "--steps", "40", "--compare", "--json"]) == 0
    result = _json(capsys)
    assert result["comparison"] == "identical"
    assert result["lava"]["spike_counts"] == result["reference"]["spike_counts"]
    assert sum(result["lava"]["spike_counts"].values()) > 0  # a silent network would agree trivially


def test_a_light_command_does_not_load_torch():
    # Each command loads only its own module; `targets` must not pay for torch and lava.
    code = "import sys; from rsnn2chip.cli import main; main(['targets', '--json']); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"
