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


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "build/corpus")
    for case in build(out):
        print(case.name)


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
    Case("nir-type-bogus", lambda d: _compile(_nir_edit(d, "bogus.nir", "nodes/hidden0->output/type", b"Bogus"),
                                              "bogus.r2c"), "unknown NIR node type", outputs=("bogus.r2c",)),
    Case("nir-type-int", lambda d: _compile(_nir_edit(d, "inttype.nir", "nodes/hidden0->output/type", 7),
                                            "inttype.r2c"), "unknown NIR node type", outputs=("inttype.r2c",)),
    Case("nir-metadata-reset-subtract", lambda d: _compile(_nir_edit(d, "subtract.nir", "metadata/reset",
                                                                     b"subtract"), "subtract.r2c"),
         "resets the voltage to zero only", outputs=("subtract.r2c",)),
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
    Case("target-extends-unknown", _extends_unknown, "where:    target.extends", outputs=("ext-t.r2c",)),
    Case("export-dt-1e308", lambda d: ["export", str(d / "net.r2c"), "--format", "nir", "-o", str(d / "dt.nir"),
                                       "--dt", "1e308"], "--dt", outputs=("dt.nir",)),
]
