"""Bad input of every class issue 15 lists: exit 2 with a named cause, no traceback, no output, in bounded time.

The crafted files come from tests/corpus.py (one per class). Each case runs the real CLI in this process
(so a case whose bomb is too big to build for real can shrink the memory budget the preflight sees); a few
run as a subprocess too, to show the installed entry point exits cleanly. Hypothesis then mutates each format
at random and checks that the readers answer with their own error or a valid object, never anything else.
"""
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

import corpus
from rsnn2chip import artifact, preflight
from rsnn2chip.cli import main
from rsnn2chip.errors import R2CError

ROOT = Path(__file__).resolve().parents[1]
CASE_SECONDS = 60


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    corpus.build_base(d)
    return d


def _cli(argv) -> int:
    """``rsnn2chip ARGV`` in this process; argparse's own refusals exit 2 through SystemExit."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def _hidden_leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp"))


@pytest.mark.parametrize("case", corpus.CASES, ids=lambda c: c.name)
def test_bad_input_exits_2_with_a_named_cause(case, corpus_dir, capsys, monkeypatch):
    argv = case.make(corpus_dir)
    if case.budget is not None:
        monkeypatch.setattr(preflight, "available_bytes", lambda: case.budget)
    capsys.readouterr()
    start = time.monotonic()
    code = _cli(argv)
    elapsed = time.monotonic() - start
    captured = capsys.readouterr()
    err = captured.err + captured.out
    assert code == 2, f"exit {code} for {argv}:\n{err}"
    assert "error" in err and case.expect in err, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert elapsed < CASE_SECONDS
    for name in case.outputs:
        assert not (corpus_dir / name).exists(), f"{name} was written"
    assert not _hidden_leftovers(corpus_dir)


def test_argparse_refusals_name_the_option(corpus_dir, capsys):
    """Out-of-range numbers are refused by argparse, reported as any user error: exit 2, JSON under --json."""
    argv = ["run", str(corpus_dir / "net.r2c"), "--input", str(corpus_dir / "x.npy"), "--steps", "0"]
    assert main(argv) == 2
    assert "argument --steps: must be an integer >= 1, got 0" in capsys.readouterr().err
    assert main(argv + ["--json"]) == 2
    problem = json.loads(capsys.readouterr().out)["problems"][0]
    assert problem["message"] == "argument --steps: must be an integer >= 1, got 0"
    assert problem["where"] == "rsnn2chip run"


def test_an_empty_output_path_is_refused_not_defaulted(corpus_dir, capsys):
    """``-o ""`` once meant "no -o" and overwrote MODEL.r2c next to the model."""
    default = corpus_dir / "model.r2c"
    before = default.read_bytes() if default.exists() else None
    assert main(["compile", str(corpus_dir / "model.pt"), "-o", ""]) == 2
    assert "argument -o/--output: is an empty path" in capsys.readouterr().err
    assert (default.read_bytes() if default.exists() else None) == before


def test_options_that_choose_a_data_set_sample_are_refused_with_input(corpus_dir, capsys):
    """``run --input x.npy --index 3`` once ran x.npy and dropped --index without a word."""
    argv = ["run", str(corpus_dir / "net.r2c"), "--input", str(corpus_dir / "x.npy"), "--index", "3"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--index choose a sample of --data" in err and "drop --index" in err


SUBPROCESS_CASES = ["artifact-index-1e6-run", "artifact-index-2e31-report", "artifact-index-negative-export",
                    "yaml-alias-bomb", "npy-header-1e12-rows", "checkpoint-pickle", "timeout-0"]


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_the_installed_cli_exits_2_cleanly(name, corpus_dir):
    case = next(c for c in corpus.CASES if c.name == name)
    argv = case.make(corpus_dir)
    proc = subprocess.run([sys.executable, "-m", "rsnn2chip", *argv], capture_output=True, text=True,
                          timeout=CASE_SECONDS, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2, proc.stderr
    assert case.expect in proc.stderr + proc.stdout and "Traceback" not in proc.stderr


def _limited_write(limit: int):
    import resource
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.parametrize("argv, target", [
    (["compile", "{d}/model.pt", "-o", "{out}/net.r2c"], "net.r2c"),
    (["report", "{d}/net.r2c", "--format", "html", "-o", "{out}/report"], "report"),
])
def test_a_full_disk_is_a_clear_error_and_leaves_nothing(argv, target, corpus_dir, tmp_path):
    """RLIMIT_FSIZE makes every write past 4 kB fail (EFBIG), as a full disk would (ENOSPC)."""
    argv = [a.format(d=corpus_dir, out=tmp_path) for a in argv]
    proc = subprocess.run([sys.executable, "-m", "rsnn2chip", *argv], capture_output=True, text=True,
                          timeout=CASE_SECONDS, preexec_fn=_limited_write(4096),
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2, proc.stderr
    assert "cannot write output" in proc.stderr and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == [], "a partial output or temporary was left behind"


def test_an_existing_report_survives_a_failed_rewrite(corpus_dir, tmp_path):
    report = tmp_path / "report"
    assert main(["report", str(corpus_dir / "net.r2c"), "--format", "html", "-o", str(report),
                 "--image-formats", "png"]) == 0
    before = {p.name: p.read_bytes() for p in report.iterdir()}
    proc = subprocess.run([sys.executable, "-m", "rsnn2chip", "report", str(corpus_dir / "net.r2c"), "--format",
                           "html", "-o", str(report), "--image-formats", "png,svg"], capture_output=True, text=True,
                          timeout=CASE_SECONDS, preexec_fn=_limited_write(4096),
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2
    assert {p.name: p.read_bytes() for p in report.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["report"]


# --------------------------------------------------------------------------- hypothesis: random mutations

FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])
# No subnormal floats: torch.set_flush_denormal(True), set by training code, changes how the CPU treats them.
FLOATS = st.floats(allow_nan=True, allow_subnormal=False)
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-2 ** 63, 2 ** 63) | FLOATS
                           | st.text(max_size=8), lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)


def _paths(obj, prefix=()):
    """Every (path, value) in a JSON document."""
    yield prefix, obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def _set(obj, path, value):
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value


def _loads_or_refuses(load, path, error=R2CError):
    try:
        return load(path)
    except error as exc:
        assert exc.problems and all(p.message for p in exc.problems)
        return None


@FUZZ
@given(data=st.data())
def test_mutated_manifests_are_loaded_or_refused(corpus_dir, tmp_path_factory, data):
    manifest, payload = corpus._read_artifact(corpus_dir)
    paths = [p for p, _ in _paths(manifest) if p]
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        try:
            _set(manifest, path, data.draw(JSON_VALUES))
        except (KeyError, IndexError, TypeError):
            continue
    out = tmp_path_factory.mktemp("m") / "net.r2c"
    try:
        corpus.write_artifact(out, manifest, payload)
    except ValueError:  # NaN/inf written as JSON NaN is fine; a value JSON cannot encode is not a case
        return
    loaded = _loads_or_refuses(artifact.load, out)
    if loaded is not None:  # whatever loads must run
        from rsnn2chip.backends import run as run_backend
        run_backend(loaded, np.load(corpus_dir / "x.npy"), 5)


ARRAY_DTYPES = st.sampled_from([np.int8, np.int32, np.int64, np.uint64, np.float32, np.float64, np.bool_])


@st.composite
def arrays(draw):
    shape = draw(st.lists(st.integers(0, 5), max_size=2))
    dtype = draw(ARRAY_DTYPES)
    values = draw(st.lists(st.integers(-2 ** 31, 2 ** 31) | FLOATS, min_size=int(np.prod(shape)),
                           max_size=int(np.prod(shape))))
    with np.errstate(all="ignore"):
        return np.array(values, dtype=np.float64).astype(dtype).reshape(shape)


@FUZZ
@given(data=st.data())
def test_mutated_artifact_arrays_are_loaded_or_refused(corpus_dir, tmp_path_factory, data):
    manifest, payload = corpus._read_artifact(corpus_dir)
    content = corpus._arrays(payload)
    for _ in range(data.draw(st.integers(1, 3))):
        key = data.draw(st.sampled_from(sorted(content)))
        if data.draw(st.booleans()):
            content[key] = data.draw(arrays())
        else:  # a small change of an existing value: the likeliest kind of damage
            a = content[key].copy()
            if a.size:
                with np.errstate(all="ignore"):
                    a.flat[data.draw(st.integers(0, a.size - 1))] = data.draw(st.integers(-2 ** 31, 2 ** 31 - 1))
            content[key] = a
    out = tmp_path_factory.mktemp("a") / "net.r2c"
    corpus.write_artifact(out, manifest, corpus._npz_bytes(content))
    loaded = _loads_or_refuses(artifact.load, out)
    if loaded is not None:
        from rsnn2chip.backends import run as run_backend
        run_backend(loaded, np.load(corpus_dir / "x.npy"), 5)


def _load_checkpoint(path):
    from rsnn2chip.checkpoint import model_from_checkpoint
    return model_from_checkpoint(path)


def _load_npz_dataset(path):
    from rsnn2chip.data import load_dataset
    return load_dataset(str(path), "train")


def _load_nir(path):
    from rsnn2chip.frontends import load_network
    return load_network(path)


# Each file kind the tool reads, damaged byte by byte: zip (artifact, checkpoint, npz) and HDF5 (NIR).
# zipfile, zlib, numpy's header tokenizer and h5py each raise their own kinds on such bytes.
DAMAGEABLE = {"net.r2c": artifact.load, "model.pt": _load_checkpoint, "data.npz": _load_npz_dataset,
              "net.nir": _load_nir}


@pytest.mark.parametrize("name", sorted(DAMAGEABLE))
@FUZZ
@given(cut=st.integers(0, 4000), flips=st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(1, 255)),
                                                max_size=4))
# Byte 43 of the artifact is the first byte of its first member's deflate stream (30-byte local
# header + "manifest.json"): a flip there raised zlib.error, found by CI.
@example(cut=0, flips=[(43, 2)])
def test_damaged_file_bytes_are_refused(name, corpus_dir, tmp_path_factory, cut, flips):
    raw = bytearray((corpus_dir / name).read_bytes())
    for offset, mask in flips:
        raw[offset % len(raw)] ^= mask
    if cut:
        raw = raw[:-cut]
    out = tmp_path_factory.mktemp("b") / name
    out.write_bytes(bytes(raw))
    _loads_or_refuses(DAMAGEABLE[name], out)


@FUZZ
@given(data=st.data())
def test_mutated_datasets_are_loaded_or_refused(corpus_dir, tmp_path_factory, data):
    from rsnn2chip.data import load_dataset
    with np.load(corpus_dir / "data.npz") as npz:
        content = {k: npz[k] for k in npz.files}
    names = ["X", "lengths", "y", "split", "events", "sample_index", "n_channels"]
    for _ in range(data.draw(st.integers(1, 3))):
        content[data.draw(st.sampled_from(names))] = data.draw(arrays())
    out = tmp_path_factory.mktemp("d") / "data.npz"
    np.savez(out, **content)
    _loads_or_refuses(lambda p: load_dataset(str(p), data.draw(st.sampled_from(["train", "val", "test"]))), out)


YAML_TEXT = st.text(alphabet=st.sampled_from(list("abc:-[]{}&*!#|>'\" \n0123456789.,")), max_size=120)


@FUZZ
@given(text=YAML_TEXT)
def test_random_arch_yaml_is_loaded_or_refused(tmp_path_factory, text):
    from rsnn2chip.commands.train import read_arch
    from rsnn2chip.nn import RSNN
    out = tmp_path_factory.mktemp("y") / "arch.yaml"
    out.write_text(text)
    arch = _loads_or_refuses(lambda p: read_arch(str(p)), out)
    if arch is not None:
        _loads_or_refuses(RSNN, arch)


@FUZZ
@given(data=st.data())
def test_mutated_checkpoints_are_loaded_or_refused(corpus_dir, tmp_path_factory, data):
    import torch
    from rsnn2chip.checkpoint import model_from_checkpoint
    payload = torch.load(corpus_dir / "model.pt", weights_only=True)
    arch_paths = [p for p, _ in _paths(payload["arch"]) if p]
    for _ in range(data.draw(st.integers(1, 3))):
        if data.draw(st.booleans()):
            try:
                _set(payload["arch"], data.draw(st.sampled_from(arch_paths)), data.draw(JSON_VALUES))
            except (KeyError, IndexError, TypeError):
                pass
        else:
            key = data.draw(st.sampled_from(sorted(payload["state_dict"])))
            payload["state_dict"][key] = torch.as_tensor(data.draw(arrays()))
    out = tmp_path_factory.mktemp("c") / "model.pt"
    torch.save(payload, out)
    _loads_or_refuses(model_from_checkpoint, out)


@FUZZ
@given(data=st.data())
def test_mutated_nir_files_are_loaded_or_refused(corpus_dir, tmp_path_factory, data):
    import shutil

    import h5py
    from rsnn2chip.frontends import load_network
    out = tmp_path_factory.mktemp("n") / "net.nir"
    shutil.copy(corpus_dir / "net.nir", out)
    with h5py.File(out, "r+") as f:
        names = []
        f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        for _ in range(data.draw(st.integers(1, 2))):
            name = data.draw(st.sampled_from(names))
            if name in f:
                del f[name]
                if data.draw(st.booleans()):
                    f.create_dataset(name, data=data.draw(arrays()))
    _loads_or_refuses(load_network, out)


# NIR files damaged by the byte-damage probe that made h5py's C library die with SIGSEGV on reading a
# dataset; in the second, an earlier dataset raises first, which must not end the child's reading. A crash on
# corrupted heap data need not happen on every read, so the test asks for a refusal, not for the signal.
@pytest.mark.parametrize("name", ["segfaulting_hdf5.nir", "segfaulting_hdf5_after_an_error.nir"])
def test_a_file_that_crashes_the_hdf5_library_is_refused(name):
    """The file is read in a forked child first, so the tool refuses it instead of dying with it."""
    from rsnn2chip.errors import CheckpointError
    from rsnn2chip.frontends import load_network
    with pytest.raises(CheckpointError):
        load_network(ROOT / "tests" / "data" / name)


def test_a_file_declaring_more_chunks_than_bytes_is_refused_before_reading():
    """A damaged shape in this probe-found NIR file declares a million gzip chunks in 69 kB; reading them
    took HDF5 17 to 107 s. The declared chunk count is checked against the file size first."""
    from rsnn2chip.errors import CheckpointError
    from rsnn2chip.frontends import load_network
    with pytest.raises(CheckpointError, match="more data chunks than the file has bytes"):
        load_network(ROOT / "tests" / "data" / "damaged_chunk_count.nir")


@pytest.mark.parametrize("text", ["name: x\x1f\n", "\x00"])
def test_yaml_with_control_characters_is_refused(tmp_path, text):
    """PyYAML's reader refuses non-printable characters while the loader is being built."""
    from rsnn2chip.commands.train import read_arch
    from rsnn2chip.errors import InputError
    (tmp_path / "arch.yaml").write_text(text)
    with pytest.raises(InputError, match="not valid YAML"):
        read_arch(str(tmp_path / "arch.yaml"))


def test_a_sparse_checkpoint_is_refused_without_torch_warnings(corpus_dir):
    """torch warns that it validates a sparse tensor's invariants; the refusal alone must reach the user."""
    import warnings
    case = next(c for c in corpus.CASES if c.name == "checkpoint-sparse-tensor-eval")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _cli(case.make(corpus_dir)) == 2
    assert not caught, [str(w.message) for w in caught]


# ---- output-path safety: a saved activity directory replaces only an earlier saved activity
def _tree(d: Path) -> dict:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("compare", [False, True], ids=["run", "compare"])
def test_save_activity_keeps_a_directory_holding_other_files(corpus_dir, tmp_path, capsys, compare):
    run_dir = tmp_path / "run"
    (run_dir / "sub").mkdir(parents=True)
    (run_dir / "precious.txt").write_text("mine")
    (run_dir / "sub" / "p.txt").write_text("mine too")
    before = _tree(run_dir)
    argv = ["run", str(corpus_dir / "net.r2c"), "--input", str(corpus_dir / "x.npy"), "--save-activity", str(run_dir)]
    assert _cli(argv + ["--compare"] * compare) == 2
    err = capsys.readouterr().err
    assert "holds files this command did not write" in err and "precious.txt, sub" in err, err
    assert _tree(run_dir) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"], "a working directory was left"


def test_save_activity_replaces_an_earlier_saved_activity(corpus_dir, tmp_path):
    from rsnn2chip import activity
    run_dir = tmp_path / "run"
    argv = ["run", str(corpus_dir / "net.r2c"), "--input", str(corpus_dir / "x.npy"), "--save-activity", str(run_dir)]
    assert _cli(argv) == 0
    assert _cli(argv + ["--steps", "7"]) == 0  # rerunning with the same output is normal
    assert sorted(p.name for p in run_dir.iterdir()) == ["activity.npz", "meta.json"]
    assert activity.load(run_dir).steps == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


@pytest.mark.parametrize("saved", [False, True], ids=["empty", "saved-activity"])
@pytest.mark.parametrize("output", [".", ".."])
def test_save_activity_never_replaces_the_current_directory(corpus_dir, tmp_path, monkeypatch, capsys, output, saved):
    """Swapping the current directory (or one holding it) would leave the shell in a deleted directory."""
    here = tmp_path / "here"
    here.mkdir()
    argv = ["run", str(corpus_dir / "net.r2c"), "--input", str(corpus_dir / "x.npy"), "--save-activity"]
    if saved:
        assert _cli(argv + [str(here)]) == 0
    before = _tree(tmp_path)
    monkeypatch.chdir(here)
    assert _cli(argv + [output]) == 2
    err = capsys.readouterr().err
    assert "it is the current directory, or holds it" in err and "Traceback" not in err, err
    assert _tree(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here"] and not list(here.glob(".*"))


def test_search_into_the_current_directory_keeps_its_files(corpus_dir, tmp_path, monkeypatch, capsys):
    """``-o .`` names the current directory: the run is published into it, beside what it already holds."""
    here = tmp_path / "here"
    here.mkdir()
    (here / "precious.txt").write_text("mine")
    space = corpus._search_space(tmp_path)
    monkeypatch.chdir(here)
    assert _cli(["search", "--space", space, "--data", str(corpus_dir / "data.npz"), "-o", ".", "--no-plots"]) == 0, \
        capsys.readouterr().err
    assert (here / "precious.txt").read_text() == "mine"
    assert (here / "arch.yaml").is_file() and (here / "model.pt").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here", "tiny-space.yaml"]


# ---- audit D: cases that do not fit corpus.Case (an environment variable; output that must stay valid)

@pytest.mark.parametrize("kind", ["missing", "file", "empty"])
def test_a_targets_folder_that_holds_no_target_is_refused(kind, tmp_path, monkeypatch, capsys):
    """An explicitly set $RSNN2CHIP_TARGETS printed an empty table: a typo in the path went unnoticed."""
    folder = {"missing": tmp_path / "nonexistent", "file": tmp_path / "file", "empty": tmp_path}[kind]
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("RSNN2CHIP_TARGETS", str(folder))
    assert _cli(["targets"]) == 2
    err = capsys.readouterr().err
    assert "$RSNN2CHIP_TARGETS" in err and str(folder) in err and "Traceback" not in err, err


def _strict_json(text: str):
    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=refuse)


def test_report_json_stays_strict_json_when_a_number_is_not_finite(corpus_dir, capsys):
    """A NaN in the report was written as the bare word NaN, which strict JSON parsers refuse."""
    def nan_loss(manifest):
        manifest["ir"]["populations"][1]["quant_stats"]["params"][0]["max_rel_error"] = float("nan")
    path = corpus.crafted_artifact("nan-stats.r2c", edit_manifest=nan_loss)(corpus_dir)
    capsys.readouterr()
    assert _cli(["report", str(path), "--json"]) == 0
    printed = capsys.readouterr().out
    assert "NaN" not in printed and "null" in printed
    _strict_json(printed)
    assert _cli(["report", str(path), "--format", "json", "-o", str(corpus_dir / "nan-report")]) == 0
    _strict_json((corpus_dir / "nan-report" / "report.json").read_text())


def test_a_bad_test_sample_found_after_training_keeps_the_trained_model(corpus_dir, capsys):
    """Only the second test sample is unreadable, so training runs; its model and metrics are kept, and the error
    says so and how to score it once the test split is fixed."""
    from rsnn2chip.checkpoint import load_checkpoint

    root = corpus._tonic_root(corpus_dir, "shd-second-test-sample-nan", corpus._tonic_writers()[0],
                              corpus._shd_times(np.nan, ("test",), slice(1, 2)))
    argv = corpus._train_tonic(corpus_dir, "shd", root)
    trained, metrics = corpus_dir / "trained.pt", corpus_dir / "trained.metrics.json"
    capsys.readouterr()
    try:  # other cases of the shared corpus directory require that no trained.pt exists
        assert _cli(argv) == 2
        err = capsys.readouterr().err
        assert "times hold NaN" in err and "Traceback" not in err, err
        assert f"its best model is saved in {trained}" in err and "rsnn2chip eval" in err, err
        load_checkpoint(trained)
        assert json.loads(metrics.read_text())["evaluations"]
    finally:
        trained.unlink(missing_ok=True)
        metrics.unlink(missing_ok=True)
