"""A corpus of crafted bad inputs, one per class of issue 15, each with the command that reads it.

``build(directory)`` writes valid base files (a checkpoint, an artifact, a dataset, arch and space YAML,
a NIR file, spike input) and, beside them, one crafted file per case; :data:`CASES` says which command
reads each case and which words its error must contain. tests/test_fuzz.py runs them all; to keep the
files for a look or another tool: ``PYTHONPATH=. python tests/corpus.py build/corpus``.
"""
from __future__ import annotations

import hashlib
import io
import json
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


@dataclass
class Case:
    name: str
    make: Callable[[Path], list[str]]  # writes the crafted file(s) under the corpus dir, returns the CLI argv
    expect: str  # words the error message must contain
    budget: int | None = None  # memory the test pretends is available, for bombs too big to build for real
    outputs: tuple[str, ...] = ()  # paths (relative to the corpus dir) that must not exist afterwards


# --------------------------------------------------------------------------- base files

def build_base(d: Path) -> None:
    from rsnn2chip import artifact
    from rsnn2chip.checkpoint import save_checkpoint
    from rsnn2chip.compiler import compile_file
    from rsnn2chip.exporters import exporter
    from rsnn2chip.nn import RSNN
    from rsnn2chip.nn.network import example_arch
    from rsnn2chip.targets import load_target

    from conftest import random_spikes

    d.mkdir(parents=True, exist_ok=True)
    arch = example_arch("corpus", input_size=6, sizes=(12, 3))
    save_checkpoint(d / "model.pt", RSNN(arch))
    (d / "arch.json").write_text(json.dumps(arch))
    import yaml
    (d / "arch.yaml").write_text(yaml.safe_dump(arch))
    artifact.save(compile_file(d / "model.pt", load_target("loihi2-sim")), d / "net.r2c")
    exporter("nir").export(artifact.load(d / "net.r2c").graph, d / "net.nir")
    np.save(d / "x.npy", random_spikes(0, 20, 6))
    rng = np.random.default_rng(0)
    n = 30
    lengths = np.full(n, 10, np.int64)
    np.savez(d / "data.npz", X=(rng.random((n * 10, 6)) < 0.3).astype(np.float32), lengths=lengths,
             y=np.arange(n, dtype=np.int64) % 3)


def build(d: Path) -> list[Case]:
    d = Path(d)
    build_base(d)
    for case in CASES:
        case.make(d)
    return CASES


# --------------------------------------------------------------------------- crafting helpers

def _read_artifact(d: Path) -> tuple[dict, bytes]:
    with zipfile.ZipFile(d / "net.r2c") as z:
        return json.loads(z.read("manifest.json")), z.read("arrays.npz")


def _arrays(payload: bytes) -> dict:
    with np.load(io.BytesIO(payload), allow_pickle=True) as npz:
        return {k: npz[k] for k in npz.files}


def _npz_bytes(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def write_artifact(path: Path, manifest: dict, arrays: bytes, reseal: bool = True, extra: dict | None = None) -> None:
    """An artifact as a hostile tool would write it: checksums recomputed over the edited content."""
    from rsnn2chip.artifact import manifest_checksum
    if reseal:
        manifest["arrays_sha256"] = hashlib.sha256(arrays).hexdigest()
        manifest["manifest_sha256"] = manifest_checksum(manifest)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", json.dumps(manifest))
        z.writestr("arrays.npz", arrays)
        for name, data in (extra or {}).items():
            z.writestr(name, data)


def crafted_artifact(name: str, edit_manifest=None, edit_arrays=None, reseal: bool = True):
    def make(d: Path) -> Path:
        manifest, payload = _read_artifact(d)
        if edit_manifest:
            edit_manifest(manifest)
        if edit_arrays:
            arrays = _arrays(payload)
            edit_arrays(arrays)
            payload = _npz_bytes(arrays)
        write_artifact(d / name, manifest, payload, reseal)
        return d / name
    return make


def first_csr(arrays: dict, part: str = "weight") -> str:
    return sorted(k for k in arrays if k.endswith(f"/{part}.indices"))[0]


def set_index(value: int, part: str = "weight"):
    def edit(arrays):
        key = first_csr(arrays, part)
        arrays[key] = arrays[key].astype(np.int64 if abs(value) >= 2 ** 31 else np.int32)
        arrays[key][0] = value
    return edit


def set_first_data(value, part: str = "weight"):
    def edit(arrays):
        key = first_csr(arrays, part).replace(".indices", ".data")
        arrays[key] = arrays[key].copy()
        arrays[key][0] = value
    return edit


def first_quant(m: dict) -> dict:
    return next(p for p in m["ir"]["projections"] if p["quant"])["quant"]


def npy_header_bytes(shape, dtype="float32") -> bytes:
    """A .npy whose header declares ``shape`` but holds almost no data."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                               "fortran_order": False, "shape": tuple(shape)})
    buf.write(b"\0" * 64)
    return buf.getvalue()


class Touch:
    """Unpickling this creates a file: proof that code from the input ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        import pathlib
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def _torch_save(path: Path, payload) -> None:
    import torch
    torch.save(payload, path)


def _checkpoint_with_arch(d: Path, name: str, edit) -> Path:
    import torch
    payload = torch.load(d / "model.pt", weights_only=True)
    edit(payload)
    _torch_save(d / name, payload)
    return d / name


# --------------------------------------------------------------------------- cases

def _artifact_case(name, expect, edit_manifest=None, edit_arrays=None, reseal=True, commands=("run", "report",
                                                                                            "export")):
    cases = []
    for command in commands:
        def make(d, command=command):
            path = crafted_artifact(f"{name}.r2c", edit_manifest, edit_arrays, reseal)(d)
            return {"run": ["run", str(path), "--input", str(d / "x.npy")],
                    "report": ["report", str(path)],
                    "export": ["export", str(path), "--format", "nir", "-o", str(d / f"{name}.out.nir")]}[command]
        cases.append(Case(f"artifact-{name}-{command}", make, expect, outputs=(f"{name}.out.nir",)))
    return cases


def _file(name: str, content: bytes | str):
    def write(d: Path) -> Path:
        path = d / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return path
    return write


ALIAS_BOMB = "\n".join(["a: &a [x, x, x, x, x, x, x, x, x, x]"] + [
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]"
    for i in range(9)]) + "\nformat: rsnn2chip.arch\n"


def _arch_yaml(d: Path, name: str, edit) -> Path:
    arch = json.loads((d / "arch.json").read_text())
    edit(arch)
    import yaml
    (d / name).write_text(yaml.safe_dump(arch))
    return d / name


def _nir_version(d: Path, name: str, version: bytes) -> Path:
    import shutil

    import h5py
    shutil.copy(d / "net.nir", d / name)
    with h5py.File(d / name, "r+") as f:
        del f["version"]
        f.create_dataset("version", data=version)
    return d / name


def _nir_huge_dataset(d: Path, name: str) -> Path:
    import shutil

    import h5py
    shutil.copy(d / "net.nir", d / name)
    with h5py.File(d / name, "r+") as f:
        f.create_dataset("node/huge", shape=(10 ** 12,), dtype="f8", chunks=(1024,), compression="gzip")
    return d / name


def _nir_external(d: Path, name: str) -> Path:
    import shutil

    import h5py
    shutil.copy(d / "net.nir", d / name)
    with h5py.File(d / name, "r+") as f:
        f.create_dataset("node/outside", shape=(16,), dtype="u1", external=[("/dev/zero", 0, 16)])
    return d / name


def _nir_nan_weight(d: Path, name: str) -> Path:
    import shutil

    import h5py
    shutil.copy(d / "net.nir", d / name)
    with h5py.File(d / name, "r+") as f:
        key = next(k for k in ("node/nodes/hidden0->output/weight", "node/nodes/input->hidden0/weight") if k in f)
        weights = f[key][()]
        weights.flat[0] = np.nan
        del f[key]
        f.create_dataset(key, data=weights)
    return d / name


def _events_npz(d: Path, name: str, lengths) -> Path:
    np.savez(d / name, events=np.zeros((1, 2), np.int64), sample_index=np.zeros(1, np.int64),
             lengths=np.asarray(lengths, np.int64), y=np.zeros(len(lengths), np.int64), n_channels=np.int64(6))
    return d / name


def _npz_members(d: Path, name: str, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(d / name, "w") as z:
        for member, data in members.items():
            z.writestr(member, data)
    return d / name


TRAIN = ["train", "--data", "{d}/data.npz", "--epochs", "1", "--limit", "6", "--arch", "{d}/arch.yaml",
         "-o", "{d}/trained.pt"]


def _train(d: Path, **override) -> list[str]:
    argv = [a.format(d=d) for a in TRAIN]
    for key, value in override.items():
        flag = "--" + key.replace("_", "-")
        if flag in argv:
            argv[argv.index(flag) + 1] = str(value)
        else:
            argv += [flag, str(value)]
    return argv


def _zip_bomb(d: Path) -> list[str]:
    """An artifact whose arrays member inflates to 256 MiB from ~256 kB; the test's budget is 64 MiB."""
    manifest, _ = _read_artifact(d)
    path = d / "bomb.r2c"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", json.dumps(manifest))
        with z.open("arrays.npz", "w") as member:
            chunk = b"\0" * (1 << 20)
            for _ in range(256):
                member.write(chunk)
    return ["run", str(path), "--input", str(d / "x.npy")]


CASES: list[Case] = [
    # ---- crafted artifacts (checksums recomputed unless the case is about the checksum)
    *_artifact_case("index-1e6", "column index out of range", edit_arrays=set_index(10 ** 6)),
    *_artifact_case("index-2e31", "column index out of range", edit_arrays=set_index(2 ** 31 - 1, "mantissa")),
    *_artifact_case("index-negative", "column index out of range", edit_arrays=set_index(-1)),
    *_artifact_case("weight-exp-1000", "weight_exp", edit_manifest=lambda m: first_quant(m).update(weight_exp=1000)),
    *_artifact_case("nan-weights", "NaN or infinity", edit_arrays=set_first_data(np.nan)),
    *_artifact_case("mantissa-range", "weight mantissa outside", edit_arrays=set_first_data(100000, "mantissa"),
                    commands=("run",)),
    *_artifact_case("mapping-empty", "mapping", edit_manifest=lambda m: m.update(mapping={}),
                    commands=("run", "report")),
    *_artifact_case("mapping-malformed", "mapping",
                    edit_manifest=lambda m: m["mapping"].update(nodes=[{"id": 0, "slices": "all"}]),
                    commands=("report",)),
    *_artifact_case("unsealed-manifest", "manifest checksum mismatch", reseal=False,
                    edit_manifest=lambda m: first_quant(m).update(weight_exp=first_quant(m)["weight_exp"] - 1),
                    commands=("run",)),
    *_artifact_case("object-array", "never unpickled",
                    edit_arrays=lambda a: a.update({first_csr(a).replace("indices", "data"):
                                                    np.array([1.0, None], dtype=object)}), commands=("run",)),
    Case("artifact-zip-bomb", _zip_bomb, "more than is available", budget=64 << 20),
    Case("artifact-truncated", lambda d: ["run", str(_file("truncated.r2c", (d / "net.r2c").read_bytes()[:500])(d)),
                                          "--input", str(d / "x.npy")], "not a readable"),
    Case("artifact-is-directory", lambda d: (d / "dir.r2c").mkdir(exist_ok=True) or
         ["report", str(d / "dir.r2c")], "is a directory"),
    # ---- checkpoints
    Case("checkpoint-pickle", lambda d: (_torch_save(d / "evil.pt", {"format": Touch(d / "PWNED")}) or
                                         ["compile", str(d / "evil.pt"), "-o", str(d / "evil.r2c")]),
         "nothing in the file was executed", outputs=("PWNED", "evil.r2c")),
    Case("checkpoint-arch-1e11", lambda d: ["compile", str(_checkpoint_with_arch(
        d, "huge.pt", lambda p: p["arch"]["layers"][0].update(size=10 ** 11))), "-o", str(d / "huge.r2c")],
        "more than is available", outputs=("huge.r2c",)),
    Case("checkpoint-shared-refs", lambda d: ["compile", str(_checkpoint_with_arch(
        d, "refs.pt", lambda p: p["meta"].update(bomb=_nested_shared(40)))), "-o", str(d / "refs.r2c")],
        "expand to too many", outputs=("refs.r2c",)),
    Case("checkpoint-directory", lambda d: (d / "dir.pt").mkdir(exist_ok=True) or
         ["compile", str(d / "dir.pt"), "-o", str(d / "dir-out.r2c")], "is a directory"),
    # ---- spike input (.npy)
    Case("npy-header-1e12-rows", lambda d: ["run", str(d / "net.r2c"), "--input",
                                            str(_file("huge.npy", npy_header_bytes((10 ** 12, 6), "int8"))(d))],
         "more than is available"),
    Case("npy-truncated", lambda d: ["run", str(d / "net.r2c"), "--input",
                                     str(_file("short.npy", npy_header_bytes((1000, 6), "int8"))(d))], "truncated"),
    Case("npy-object", lambda d: (np.save(d / "obj.npy", np.array([Touch(d / "PWNED2")], dtype=object),
                                          allow_pickle=True) or
                                  ["run", str(d / "net.r2c"), "--input", str(d / "obj.npy")]),
         "never unpickled", outputs=("PWNED2",)),
    Case("npy-directory", lambda d: (d / "dir.npy").mkdir(exist_ok=True) or
         ["run", str(d / "net.r2c"), "--input", str(d / "dir.npy")], "is a directory"),
    Case("npy-empty-batch", lambda d: np.save(d / "empty.npy", np.zeros((0, 20, 6), np.int8)) or
         ["run", str(d / "net.r2c"), "--input", str(d / "empty.npy")], "empty batch"),
    Case("steps-1e9", lambda d: ["run", str(d / "net.r2c"), "--input", str(d / "x.npy"), "--steps", "1000000000"],
         "too many time steps"),
    Case("steps-fits-not", lambda d: ["run", str(d / "net.r2c"), "--input", str(d / "x.npy"), "--steps", "1000000"],
         "more than is available", budget=16 << 20),
    # ---- datasets (.npz)
    Case("npz-lengths-1e11", lambda d: _train(d, data=_events_npz(d, "long.npz", [10 ** 11] * 30)),
         "more than is available", outputs=("trained.pt",)),
    Case("npz-header-1e12", lambda d: _train(d, data=_npz_members(d, "hdr.npz", {
        "X.npy": npy_header_bytes((10 ** 12, 6)), "lengths.npy": npy_header_bytes((3,), "int64"),
        "y.npy": npy_header_bytes((3,), "int64")})), "more than is available", outputs=("trained.pt",)),
    Case("npz-member-bomb", lambda d: _train(d, data=_npz_members(d, "bomb.npz", {
        "X.npy": b"\0" * (128 << 20), "lengths.npy": b"", "y.npy": b""})), "more than is available",
        budget=64 << 20, outputs=("trained.pt",)),
    Case("npz-stray-member", lambda d: _train(d, data=_npz_members(d, "stray.npz", {"X.npy": b"", "run.sh": b"x"})),
         "not .npy arrays", outputs=("trained.pt",)),
    Case("npz-not-zip", lambda d: _train(d, data=_file("junk.npz", b"\x93NUMPY garbage")(d)), "not a readable",
         outputs=("trained.pt",)),
    Case("npz-empty-split", lambda d: _train(d, data=np.savez(
        d / "nosplit.npz", X=np.ones((40, 6), np.float32), lengths=np.full(4, 10, np.int64),
        y=np.zeros(4, np.int64), split=np.full(4, 2, np.int64)) or d / "nosplit.npz"), "holds no samples",
        outputs=("trained.pt",)),
    Case("artifact-empty-export-netx", lambda d: ["export", str(_file("empty.r2c", b"")(d)), "--format", "netx",
                                                  "-o", str(d / "empty.net")],
         "not a readable rsnn2chip artifact", outputs=("empty.net",)),
    Case("npy-0d-float", lambda d: ["run", str(d / "net.r2c"), "--input",
                                    str(np.save(d / "zerod.npy", np.array(1.5)) or d / "zerod.npy")],
         "must have shape (T, channels)"),
    Case("train-unknown-target", lambda d: _train(d, target="nope"), "unknown target", outputs=("trained.pt",)),
    Case("npz-one-class", lambda d: _train(d, data=np.savez(
        d / "oneclass.npz", X=np.ones((400, 6), np.float32), lengths=np.full(40, 10, np.int64),
        y=np.zeros(40, np.int64)) or d / "oneclass.npz"), "at least two classes", outputs=("trained.pt",)),
    Case("npz-sample-too-long", lambda d: _train(d, data=np.savez(
        d / "toolong.npz", events=np.zeros((1, 2), np.int64), sample_index=np.zeros(1, np.int64),
        lengths=np.array([300_000] + [10] * 39, np.int64), y=np.arange(40, dtype=np.int64) % 2,
        n_channels=np.int64(6)) or d / "toolong.npz", limit=40), "too long to train on", outputs=("trained.pt",)),
    # ---- arch / space YAML
    Case("yaml-alias-bomb", lambda d: _train(d, arch=_file("bomb.yaml", ALIAS_BOMB)(d)), "aliases",
         outputs=("trained.pt",)),
    Case("yaml-python-tag", lambda d: _train(d, arch=_file("tag.yaml", "!!python/object/apply:os.system ['touch "
                                                                      f"{d}/PWNED3']\n")(d)),
         "not valid YAML", outputs=("trained.pt", "PWNED3")),
    Case("yaml-size-1e11", lambda d: _train(d, arch=_arch_yaml(d, "big.yaml",
                                                               lambda a: a["layers"][0].update(size=10 ** 11))),
         "more than is available", outputs=("trained.pt",)),
    Case("train-diverges", lambda d: _train(d, arch=_arch_yaml(
        d, "diverge.yaml", lambda a: [layer.update(init_scale=1e300) for layer in a["layers"]])),
        "epoch 1, step 1", outputs=("trained.pt",)),
    Case("yaml-recursive", lambda d: _train(d, arch=_file("rec.yaml", "a: &a [*a]\n")(d)), "aliases",
         outputs=("trained.pt",)),
    Case("space-alias-bomb", lambda d: ["search", "--space", str(_file("space-bomb.yaml", ALIAS_BOMB)(d)), "--data",
                                        str(d / "data.npz"), "-o", str(d / "search-out")], "aliases",
         outputs=("search-out",)),
    # ---- NIR / netx HDF5
    Case("nir-version-99", lambda d: ["compile", str(_nir_version(d, "v99.nir", b"99.0")), "-o", str(d / "v99.r2c")],
         "unsupported NIR file version", outputs=("v99.r2c",)),
    Case("nir-huge-dataset", lambda d: ["compile", str(_nir_huge_dataset(d, "huge.nir")), "-o", str(d / "hn.r2c")],
         "more than is available", outputs=("hn.r2c",)),
    Case("nir-external-data", lambda d: ["compile", str(_nir_external(d, "ext.nir")), "-o", str(d / "ext.r2c")],
         "outside the file", outputs=("ext.r2c",)),
    Case("nir-nan-weight-compile", lambda d: ["compile", str(_nir_nan_weight(d, "nanw.nir")), "-o",
                                              str(d / "nanw.r2c")], "NaN or infinity", outputs=("nanw.r2c",)),
    Case("nir-nan-weight-export", lambda d: ["export", str(_nir_nan_weight(d, "nanw.nir")), "--format", "nir", "-o",
                                             str(d / "nanw.out.nir")], "NaN or infinity", outputs=("nanw.out.nir",)),
    # ---- argument semantics
    Case("steps-0", lambda d: ["run", str(d / "net.r2c"), "--input", str(d / "x.npy"), "--steps", "0"], "--steps"),
    Case("steps-negative", lambda d: ["run", str(d / "net.r2c"), "--input", str(d / "x.npy"), "--steps", "-5"],
         "--steps"),
    Case("timeout-0", lambda d: ["run", str(d / "net.r2c"), "--input", str(d / "x.npy"), "--backend", "lava",
                                 "--timeout", "0"], "--timeout"),
    Case("timeout-negative", lambda d: ["run", str(d / "net.r2c"), "--input", str(d / "x.npy"), "--timeout", "-5"],
         "--timeout"),
    Case("timeout-nan", lambda d: ["run", str(d / "net.r2c"), "--input", str(d / "x.npy"), "--timeout", "nan"],
         "--timeout"),
    Case("lr-1e30", lambda d: _train(d, lr="1e30"), "--lr", outputs=("trained.pt",)),
    Case("percentile-150", lambda d: ["compile", str(d / "model.pt"), "--weight-clip-percentile", "150", "-o",
                                      str(d / "p150.r2c")], "--weight-clip-percentile", outputs=("p150.r2c",)),
    Case("epochs-0", lambda d: _train(d, epochs=0), "--epochs", outputs=("trained.pt",)),
    # ---- output paths
    Case("output-is-directory", lambda d: (d / "outdir").mkdir(exist_ok=True) or
         ["compile", str(d / "model.pt"), "-o", str(d / "outdir")], "is a directory"),
    Case("output-parent-is-file", lambda d: ["compile", str(d / "model.pt"), "-o", str(d / "x.npy" / "net.r2c")],
         "parent of the path is a file"),
    Case("output-is-device", lambda d: ["compile", str(d / "model.pt"), "-o", "/dev/null"], "not a regular file"),
    Case("report-dir-is-file", lambda d: ["report", str(d / "net.r2c"), "--format", "html", "-o", str(d / "x.npy")],
         "is a file"),
]


def _nested_shared(depth: int) -> list:
    """2^depth entries once expanded, from ``depth`` lists that each hold the previous one twice."""
    value: list = ["x"]
    for _ in range(depth):
        value = [value, value]
    return value


# ---- checkpoints, YAML files and the HRMAS search space (tensor kinds, huge YAML ints, space ranges, --resume)

def _checkpoint_tensor(kind: str, convert):
    """The first state_dict tensor turned into a ``kind`` tensor (meta, sparse, complex)."""
    def make(d: Path) -> Path:
        def edit(payload):
            key = next(iter(payload["state_dict"]))
            payload["state_dict"][key] = convert(payload["state_dict"][key])
        return _checkpoint_with_arch(d, f"{kind}.pt", edit)
    return make


def _tensor_kind_cases(kind: str, convert, expect: str) -> list[Case]:
    make = _checkpoint_tensor(kind, convert)
    return [Case(f"checkpoint-{kind}-tensor-compile", lambda d: ["compile", str(make(d)), "-o", str(d / f"{kind}.r2c")],
                 expect, outputs=(f"{kind}.r2c",)),
            Case(f"checkpoint-{kind}-tensor-eval", lambda d: ["eval", str(make(d)), "--data", str(d / "data.npz")],
                 expect)]


TINY_NEURON = {"current_decay": 0.5, "voltage_decay": 0.2, "threshold": 1.0, "bias": 0.0}
TINY_SPACE = {"format": "rsnn2chip.search-space", "version": 1, "name": "tiny", "input_size": "auto",
              "layers": [{"type": "scml_search", "name": "hidden", "size": 8, "neuron": TINY_NEURON,
                          "motif_sizes": [2, 4]},
                         {"type": "lif_dense", "name": "output", "size": "auto", "neuron": TINY_NEURON}],
              "search": {"epochs": 1, "min_steps": 0, "batch_size": 4, "warmup_steps": 0, "probe_samples": 4},
              "retrain": {"epochs": 1, "batch_size": 4}}


def _search(d: Path, space: Path, out: str, *extra: str) -> list[str]:
    return ["search", "--space", str(space), "--data", str(d / "data.npz"), "-o", str(d / out), "--limit", "6",
            "--no-plots", *extra]


def _space_case(name: str, section: str, values: dict, expect: str) -> Case:
    def make(d: Path) -> list[str]:
        import yaml
        space = json.loads(json.dumps(TINY_SPACE))
        space.setdefault(section, {}).update(values)
        (d / f"space-{name}.yaml").write_text(yaml.safe_dump(space))
        return _search(d, d / f"space-{name}.yaml", f"search-{name}")
    return Case(f"space-{name}", make, expect, outputs=(f"search-{name}", f".search-{name}.partial"))


def _finished_search(d: Path, name: str, damage: str, write: Callable[[Path], object]) -> list[str]:
    """A copy of a finished tiny search run with its file ``damage`` rewritten by ``write``, resumed."""
    import shutil

    import yaml
    from rsnn2chip.cli import main
    if not (d / "search-done" / "result.json").exists():
        (d / "space-tiny.yaml").write_text(yaml.safe_dump(TINY_SPACE))
        assert main(_search(d, d / "space-tiny.yaml", "search-done")) == 0
    shutil.rmtree(d / name, ignore_errors=True)
    shutil.copytree(d / "search-done", d / name)
    write(d / name / damage)
    if damage != "result.json":  # a finished run's result would be returned before the log is read
        (d / name / "result.json").unlink()
    return _search(d, d / "space-tiny.yaml", name, "--resume")


CASES += [
    *_tensor_kind_cases("meta", lambda t: t.to("meta"), "device meta"),
    *_tensor_kind_cases("sparse", lambda t: t.to_sparse(), "layout torch.sparse_coo"),
    *_tensor_kind_cases("complex", lambda t: t.to(__import__("torch").complex64), "dtype torch.complex64"),
    Case("yaml-int-5000-digits", lambda d: _train(d, arch=_file("bigint.yaml", "format: rsnn2chip.arch\ninput_size: "
                                                                 + "9" * 5000 + "\n")(d)),
         "line 2, column 13", outputs=("trained.pt",)),
    _space_case("alpha-betas-2", "search", {"alpha_betas": [2, 3]}, "search.alpha_betas"),
    _space_case("seed-2e70", "search", {"seed": 2 ** 70}, "search.seed is out of range"),
    _space_case("lr-zero", "search", {"lr": 0}, "search.lr is a learning rate"),
    _space_case("tau-range-reversed", "ip", {"tau_range": [50, 1]}, "ip.tau_range"),
    _space_case("gain-range-empty", "ip", {"gain_range": [0, 0]}, "ip.gain_range"),
    _space_case("temperature-rising", "search", {"temperature_start": 0.01, "temperature_end": 5.0},
                "temperature_end must not exceed"),
    Case("search-resume-result-not-json", lambda d: _finished_search(d, "search-bad-json", "result.json",
                                                                     lambda p: p.write_text("{bad\n")),
         "search result is not valid JSON"),
    Case("search-resume-result-list", lambda d: _finished_search(d, "search-list", "result.json",
                                                                 lambda p: p.write_text("[1]\n")),
         "search result is not a JSON object"),
    Case("search-resume-log-not-json", lambda d: _finished_search(d, "search-bad-log", "search_log.jsonl",
                                                                  lambda p: p.write_text("{bad\n")),
         "search log is not valid JSON"),
    Case("search-resume-state-incomplete", lambda d: _finished_search(
        d, "search-bad-state", "search_state.pt", lambda p: _torch_save(p, {"format": "rsnn2chip.search-state"})),
        "search checkpoint lacks entries"),
    Case("search-resume-state-wrong-shape", lambda d: _finished_search(
        d, "search-state-shape", "search_state.pt",
        _tampered_state(lambda s: s["model"].update({next(iter(s["model"])): __import__("torch").zeros(3)}))),
        "search checkpoint does not fit this search"),
    Case("search-resume-state-nan", lambda d: _finished_search(
        d, "search-state-nan", "search_state.pt",
        _tampered_state(lambda s: next(v for v in s["model"].values() if v.is_floating_point()).fill_(float("nan")))),
        "search checkpoint holds NaN or infinity"),
    Case("search-resume-state-step-beyond", lambda d: _finished_search(
        d, "search-state-step", "search_state.pt", _tampered_state(lambda s: s.update(step=10 ** 9))),
        "search checkpoint's progress is out of range"),
]


def _tampered_state(change: Callable[[dict], object]) -> Callable[[Path], None]:
    """Rewrites a search checkpoint with ``change`` applied to its loaded payload."""
    def write(path: Path) -> None:
        import torch
        state = torch.load(path, weights_only=True)
        change(state)
        _torch_save(path, state)
    return write


# ---- output-path safety: an output that is an input or another output, a directory without a name
def _copy_of(d: Path, source: str, name: str) -> str:
    """A private copy of a base file, so a case that overwrote its input would not spoil the others."""
    import shutil
    shutil.copy(d / source, d / name)
    return str(d / name)


def _search_space_in(d: Path) -> str:
    d.mkdir(exist_ok=True)
    return _search_space(d)


def _search_space(d: Path) -> str:
    from test_search import tiny_space
    import yaml
    (d / "tiny-space.yaml").write_text(yaml.safe_dump(tiny_space()))
    return str(d / "tiny-space.yaml")


CASES += [
    Case("compile-output-is-model", lambda d: ["compile", _copy_of(d, "model.pt", "same.pt"), "-o", str(d / "same.pt")],
         "the output -o/--output is the input MODEL"),
    Case("compile-output-is-nir", lambda d: ["compile", _copy_of(d, "net.nir", "same.nir"), "-o", str(d / "same.nir")],
         "the output -o/--output is the input MODEL"),
    Case("export-output-is-nir", lambda d: ["export", _copy_of(d, "net.nir", "same-x.nir"), "--format", "nir", "-o",
                                            str(d / "same-x.nir")], "the output -o/--output is the input ARTIFACT"),
    Case("export-output-is-artifact", lambda d: ["export", _copy_of(d, "net.r2c", "same.r2c"), "--format", "nir",
                                                 "-o", str(d / "same.r2c")],
         "the output -o/--output is the input ARTIFACT"),
    Case("run-save-spikes-is-input", lambda d: ["run", str(d / "net.r2c"), "--input", _copy_of(d, "x.npy", "same.npy"),
                                                "--save-spikes", str(d / "same.npy")],
         "the output --save-spikes is the input --input"),
    Case("run-save-spikes-is-save-activity", lambda d: ["run", str(d / "net.r2c"), "--input", str(d / "x.npy"),
                                                        "--save-spikes", str(d / "twice.npz"), "--save-activity",
                                                        str(d / "." / "twice.npz")],
         "two outputs, --save-spikes and --save-activity, are the same file", outputs=("twice.npz",)),
    Case("run-save-spikes-inside-save-activity", lambda d: ["run", str(d / "net.r2c"), "--input", str(d / "x.npy"),
                                                            "--save-activity", str(d / "act"), "--save-spikes",
                                                            str(d / "act" / "spikes.npz")],
         "the output --save-spikes lies inside the output --save-activity", outputs=("act",)),
    Case("search-space-inside-output", lambda d: ["search", "--space", _search_space_in(d / "run-dir"), "--data",
                                                  str(d / "data.npz"), "-o", str(d / "run-dir")],
         "the input --space lies inside the output -o/--output"),
    Case("train-metrics-is-output", lambda d: _train(d, output=d / "twice.pt", metrics=d / "twice.pt"),
         "two outputs, -o/--output and --metrics, are the same file", outputs=("twice.pt",)),
    Case("train-output-is-arch", lambda d: _train(d, arch=_copy_of(d, "arch.yaml", "same-arch.yaml"),
                                                  output=d / "same-arch.yaml"),
         "the output -o/--output is the input --arch"),
    Case("save-activity-root", lambda d: ["run", str(d / "net.r2c"), "--input", str(d / "x.npy"), "--save-activity",
                                          "/"], "the path is the file system root"),
    Case("report-output-root", lambda d: ["report", str(d / "net.r2c"), "--format", "json", "-o", "/"],
         "the path is the file system root"),
    Case("search-output-root", lambda d: ["search", "--space", _search_space(d), "--data", str(d / "data.npz"),
                                          "-o", "/"], "the path is the file system root"),
]


# ---- dataset loaders and input arrays (audit C)

def _tonic_root(d: Path, name: str, write, edit) -> Path:
    """A root folder holding one tonic-format set (tests/test_data.py writes it), then ``edit(root)`` breaks it."""
    import shutil

    root = d / name
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    write(root)
    edit(root)
    return root


def _train_tonic(d: Path, dataset: str, root: Path) -> list[str]:
    import yaml

    arch = yaml.safe_load((d / "arch.yaml").read_text())
    arch["input_size"], arch["layers"][-1]["size"] = "auto", "auto"
    (d / "auto.yaml").write_text(yaml.safe_dump(arch))
    return _train(d, data=f"{dataset}:{root}", arch=d / "auto.yaml", limit=2)


def _h5_only(path: Path, members: dict) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        for key, value in members.items():
            f[key] = value


def _shd_times(value: float, parts=("train", "test"), samples: slice = slice(None)):
    """SHD files whose ``samples`` of ``parts`` spike at time ``value`` (by default every sample: the first
    one read fails, before training)."""
    def edit(root: Path) -> None:
        import h5py

        for part in parts:
            with h5py.File(root / "SHD" / f"shd_{part}.h5", "a") as f:
                for i in range(len(f["labels"]))[samples]:
                    f["spikes/times"][i] = np.array([0.01, value], np.float32)
                    f["spikes/units"][i] = np.array([1, 2], np.uint16)
    return edit


def _only_train_file(folder: str, keep: str, content: Callable[[Path], None]):
    """The training set reduced to one sample file, ``keep``, whose content ``content`` writes."""
    def edit(root: Path) -> None:
        for path in (root / folder).glob("*/*"):
            if path.is_file() and path.relative_to(root / folder).as_posix() != keep:
                path.unlink()
        content(root / folder / keep)
    return edit


def _tonic_writers():
    from test_data import write_dvsgesture, write_nmnist, write_ntidigits, write_shd
    return write_shd, write_nmnist, write_dvsgesture, write_ntidigits


def _tonic_case(name: str, dataset: str, writer: int, edit, expect: str) -> Case:
    return Case(name, lambda d: _train_tonic(d, dataset, _tonic_root(d, name, _tonic_writers()[writer], edit)),
                expect, outputs=("trained.pt",))


CASES += [
    _tonic_case("shd-labels-only", "shd", 0, lambda root: [
        _h5_only(root / "SHD" / f"shd_{part}.h5", {"labels": np.arange(6) % 20}) for part in ("train", "test")],
        "spikes/times, spikes/units"),
    _tonic_case("ntidigits-test-labels-only", "ntidigits", 3, lambda root: _h5_only(
        root / "NTIDIGITS18" / "n-tidigits.hdf5", {"test_labels": np.array([b"man-ab-1"])}), "train_labels"),
    _tonic_case("dvs-gesture-object-npy", "dvs-gesture", 2, _only_train_file(
        "DVSGesture/ibmGestureTrain", "user01_fluorescent/0.npy",
        lambda path: np.save(path, np.array([1, None], dtype=object), allow_pickle=True)),
        "user01_fluorescent/0.npy"),
    _tonic_case("nmnist-7-byte-bin", "nmnist", 1, _only_train_file(
        "NMNIST/Train", "0/00001.bin", lambda path: path.write_bytes(b"\x01" * 7)), "Train/0/00001.bin"),
    _tonic_case("shd-nan-times", "shd", 0, _shd_times(np.nan), "times hold NaN"),
    _tonic_case("shd-1e9-times", "shd", 0, _shd_times(1e9), "1e+09 s"),
    # The test split is read after training: its first sample is made before, so no checkpoint is written.
    _tonic_case("shd-first-test-sample-nan", "shd", 0, _shd_times(np.nan, ("test",), slice(0, 1)),
                "times hold NaN"),
]


def _graded_net(d: Path) -> Path:
    """A network trained on real-valued features (graded input encoding), built once per corpus directory."""
    from rsnn2chip.cli import main

    g = d / "graded"
    if not (g / "net.r2c").exists():
        g.mkdir(exist_ok=True)
        X = np.random.default_rng(0).normal(size=(40, 20, 6)).astype(np.float32)
        np.savez(g / "g.npz", X=X.reshape(-1, 6), lengths=np.full(40, 20, np.int64), y=np.arange(40) % 3)
        assert main(["train", "--data", str(g / "g.npz"), "--arch", str(d / "arch.yaml"), "--epochs", "1",
                     "--limit", "6", "-o", str(g / "model.pt")]) == 0
        assert main(["compile", str(g / "model.pt"), "-o", str(g / "net.r2c")]) == 0
    return g


def _features_with(d: Path, name: str, value: float) -> Path:
    x = np.random.default_rng(1).normal(size=(20, 6)).astype(np.float32)
    x[0, 0] = value
    np.save(d / name, x)
    return d / name


def _npy(name: str, array: np.ndarray):
    def write(d: Path) -> Path:
        np.save(d / name, array)
        return d / name
    return write


def _compile_with_counts(d: Path, name: str, counts: np.ndarray) -> list[str]:
    return ["compile", str(d / "model.pt"), "--spike-counts", str(_npy(name, counts)(d)), "-o", str(d / "sc.r2c")]


CASES += [
    Case("features-inf-run", lambda d: ["run", str(_graded_net(d) / "net.r2c"), "--input",
                                        str(_features_with(d, "inf.npy", np.inf))], "step 0, channel 0"),
    Case("features-nan-run", lambda d: ["run", str(_graded_net(d) / "net.r2c"), "--input",
                                        str(_features_with(d, "nan.npy", np.nan))], "step 0, channel 0"),
    Case("features-inf-verify", lambda d: ["verify", str(_graded_net(d) / "model.pt"), str(_graded_net(d) / "net.r2c"),
                                           "--input", str(_features_with(d, "inf.npy", np.inf))], "step 0, channel 0"),
    *[Case(f"npy-{name}", lambda d, name=name, array=array: ["run", str(d / "net.r2c"), "--input",
                                                             str(_npy(f"{name}.npy", array)(d))], expect)
      for name, array, expect in (("ndim0", np.int8(1), "ndim0.npy"), ("ndim1", np.ones(6, np.int8), "ndim1.npy"),
                                  ("ndim4", np.ones((1, 1, 20, 6), np.int8), "ndim4.npy"),
                                  ("channels7", np.ones((20, 7), np.int8), "channels7.npy"),
                                  ("no-steps", np.zeros((0, 6), np.int8), "the input has no time steps"))],
    Case("spike-counts-2d", lambda d: _compile_with_counts(d, "sc-2d.npy", np.ones((3, 5))), "shape (3, 5)",
         outputs=("sc.r2c",)),
    Case("spike-counts-inf", lambda d: _compile_with_counts(d, "sc-inf.npy", np.full(15, np.inf)), "sc-inf.npy",
         outputs=("sc.r2c",)),
    Case("spike-counts-nan", lambda d: _compile_with_counts(d, "sc-nan.npy", np.r_[np.ones(14), np.nan]),
         "sc-nan.npy", outputs=("sc.r2c",)),
    Case("spike-counts-length", lambda d: _compile_with_counts(d, "sc-len.npy", np.ones(5)), "sc-len.npy",
         outputs=("sc.r2c",)),
    Case("spike-counts-negative", lambda d: _compile_with_counts(d, "sc-neg.npy", np.r_[np.ones(14), -1.0]),
         "sc-neg.npy", outputs=("sc.r2c",)),
    Case("data-not-trained-on", lambda d: [
        "run", str(_graded_net(d) / "net.r2c"), "--data",
        f"shd:{_tonic_root(d, 'shd-intact', _tonic_writers()[0], lambda root: None)}"],
        "trained on 'g.npz', not on 'shd'"),
]


# ---- NIR and netx frontends, report JSON, targets, export (audit D)

def _nir_edit(d: Path, name: str, key: str, value) -> Path:
    """A copy of net.nir with dataset ``key`` (under node/) replaced; ``value`` may be a function of the old data."""
    import shutil

    import h5py
    shutil.copy(d / "net.nir", d / name)
    with h5py.File(d / name, "r+") as f:
        key = f"node/{key}"
        old = f[key][()] if key in f else None
        del f[key]
        f.create_dataset(key, data=value(old) if callable(value) else value)
    return d / name


def _netx_edit(d: Path, name: str, layer: int, key: str, value) -> Path:
    """net.r2c exported as netx (dense_rec 6->12, dense 12->3), with dataset ``key`` of ``layer`` replaced."""
    import shutil
    import warnings

    import h5py

    from rsnn2chip import artifact
    from rsnn2chip.exporters import exporter
    if not (d / "net.net").exists():
        art = artifact.load(d / "net.r2c")
        with warnings.catch_warnings():  # the export warns that it re-quantized; not what these cases are about
            warnings.simplefilter("ignore")
            exporter("netx").export(art.graph, d / "net.net", target=art.target)
    shutil.copy(d / "net.net", d / name)
    with h5py.File(d / name, "r+") as f:
        key = f"layer/{layer}/{key}"
        old = f[key][()] if key in f else None
        if key in f:
            del f[key]
        f.create_dataset(key, data=value(old) if callable(value) else value)
    return d / name


def _with_first(value):
    def edit(old):
        new = np.array(old, dtype=np.float64)
        new.flat[0] = value
        return new
    return edit


def _compile(path: Path, out: str) -> list[str]:
    return ["compile", str(path), "-o", str(path.parent / out)]


def _extends_unknown(d: Path) -> list[str]:
    (d / "extends.toml").write_text('[target]\nname = "t"\nextends = "nonexist"\n')
    return ["compile", str(d / "model.pt"), "--target", str(d / "extends.toml"), "-o", str(d / "ext-t.r2c")]


CASES += [
    Case("nir-complex-weight", lambda d: _compile(_nir_edit(d, "cplx.nir", "nodes/hidden0->output/weight",
                                                            lambda w: w.astype(np.complex128) + 1j), "cplx.r2c"),
         "must be real numbers", outputs=("cplx.r2c",)),
    Case("nir-weight-1e300", lambda d: _compile(_nir_edit(d, "w1e300.nir", "nodes/hidden0->output/weight",
                                                          lambda w: w * 1e300), "w1e300.r2c"),
         "weights too large to quantize", outputs=("w1e300.r2c",)),
    Case("nir-weight-1d", lambda d: _compile(_nir_edit(d, "w1d.nir", "nodes/hidden0->output/weight",
                                                       lambda w: w.ravel()), "w1d.r2c"),
         "nir cannot build this Linear node", outputs=("w1d.r2c",)),
    Case("nir-type-bogus", lambda d: _compile(_nir_edit(d, "bogus.nir", "nodes/hidden0->output/type", b"Bogus"),
                                              "bogus.r2c"), "unknown NIR node type", outputs=("bogus.r2c",)),
    Case("nir-type-int", lambda d: _compile(_nir_edit(d, "inttype.nir", "nodes/hidden0->output/type", 7),
                                            "inttype.r2c"), "unknown NIR node type", outputs=("inttype.r2c",)),
    Case("nir-metadata-reset-subtract", lambda d: _compile(_nir_edit(d, "subtract.nir", "metadata/reset",
                                                                     b"subtract"), "subtract.r2c"),
         "resets the voltage to zero only", outputs=("subtract.r2c",)),
    Case("nir-metadata-dt-string", lambda d: _compile(_nir_edit(d, "dtstr.nir", "metadata/dt", b"fast"), "dtstr.r2c"),
         "where:    the graph's metadata 'dt'", outputs=("dtstr.r2c",)),
    Case("nir-metadata-delay-5", lambda d: _compile(_nir_edit(d, "delay5.nir", "metadata/synaptic_delay_steps", 5),
                                                    "delay5.r2c"), "synaptic delay cannot be represented",
         outputs=("delay5.r2c",)),
    Case("netx-nan-weight", lambda d: _compile(_netx_edit(d, "nanw.net", 1, "weight", _with_first(np.nan)),
                                               "nanw-netx.r2c"), "nan", outputs=("nanw-netx.r2c",)),
    Case("netx-weight-1e30", lambda d: _compile(_netx_edit(d, "bigw.net", 1, "weight", _with_first(1e30)),
                                                "bigw.r2c"), "cannot convert to integers", outputs=("bigw.r2c",)),
    Case("netx-nan-bias", lambda d: _compile(_netx_edit(d, "nanb.net", 1, "bias", np.array([np.nan, 0, 0])),
                                             "nanb.r2c"), "bias holds values netx cannot convert",
         outputs=("nanb.r2c",)),
    Case("netx-complex-bias", lambda d: _compile(_netx_edit(d, "cplxb.net", 1, "bias", np.zeros(3, np.complex128)),
                                                 "cplxb.r2c"), "bias must hold real numbers", outputs=("cplxb.r2c",)),
    Case("netx-bias-length", lambda d: _compile(_netx_edit(d, "bias7.net", 1, "bias", np.zeros(7)), "bias7.r2c"),
         "the layer has 3 neurons", outputs=("bias7.r2c",)),
    Case("netx-weight-rec-shape", lambda d: _compile(_netx_edit(d, "rec.net", 0, "weight_rec",
                                                                np.zeros((12, 5), np.float32)), "rec.r2c"),
         "(12, 12): 12 neurons x its own 12 outputs", outputs=("rec.r2c",)),
    Case("netx-weight-3d", lambda d: _compile(_netx_edit(d, "w3d.net", 1, "weight", lambda w: w[:, :, None]),
                                              "w3d.r2c"), "must be a matrix", outputs=("w3d.r2c",)),
    Case("netx-vth-string", lambda d: _compile(_netx_edit(d, "vthstr.net", 0, "neuron/vThMant", b"abc"), "vthstr.r2c"),
         "where:    layer 0", outputs=("vthstr.r2c",)),
    Case("target-extends-unknown", _extends_unknown, "where:    target.extends", outputs=("ext-t.r2c",)),
    Case("export-dt-1e308", lambda d: ["export", str(d / "net.r2c"), "--format", "nir", "-o", str(d / "dt.nir"),
                                       "--dt", "1e308"], "--dt", outputs=("dt.nir",)),
]


# Last: the blocks above add to CASES.
if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "build/corpus")
    for case in build(out):
        print(case.name)
