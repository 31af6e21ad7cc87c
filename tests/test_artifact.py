import io
import json
import zipfile

import numpy as np
import pytest

from rsnn2chip import artifact, ir
from rsnn2chip.compiler import compile_graph
from rsnn2chip.errors import ArtifactError
from rsnn2chip.neurons.cuba_lif import LoihiLIF
from rsnn2chip.targets import load_target

from conftest import small_graph


@pytest.fixture()
def compiled():
    return compile_graph(small_graph(), load_target("loihi2-sim"), provenance={"source": "test"})


def _rewrite(path, manifest=None, arrays=None, reseal=True):
    """Rebuild an artifact with edited parts, as a corrupted (``reseal=False``) or hostile file would be:
    a hostile one has its manifest checksum recomputed."""
    with zipfile.ZipFile(path) as z:
        m = json.loads(z.read(artifact.MANIFEST))
        a = z.read(artifact.ARRAYS)
    if manifest:
        manifest(m)
    if arrays is not None:
        a = arrays
    if reseal:
        m["manifest_sha256"] = artifact.manifest_checksum(m)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(artifact.MANIFEST, json.dumps(m))
        z.writestr(artifact.ARRAYS, a)


def test_round_trip_keeps_ir_mapping_target_and_provenance(compiled, tmp_path):
    path = tmp_path / "net.r2c"
    artifact.save(compiled, path)
    back = artifact.load(path)
    assert back.target.data == compiled.target.data
    assert back.provenance == compiled.provenance
    assert sorted(back.cores.nodes) == sorted(compiled.cores.nodes)
    assert back.cores.graph["n_cores"] == compiled.cores.graph["n_cores"]
    assert len(list(ir.populations(back.graph))) == len(list(ir.populations(compiled.graph))) == 3
    assert back.graph.number_of_edges() == compiled.graph.number_of_edges() == 3
    for a, b in zip(ir.populations(compiled.graph), ir.populations(back.graph)):
        assert a.name == b.name and a.size == b.size and a.motif_size == b.motif_size
        if a.fixed is not None:
            for name in LoihiLIF.names():
                assert np.array_equal(getattr(a.fixed, name), getattr(b.fixed, name))
    for a, b in zip(ir.projections(compiled.graph), ir.projections(back.graph)):
        assert (a.quant.mantissa != b.quant.mantissa).nnz == 0
        assert a.quant.weight_exp == b.quant.weight_exp and a.quant.stats == b.quant.stats


def test_failed_save_leaves_previous_file_and_no_temporaries(compiled, tmp_path):
    path = tmp_path / "net.r2c"
    artifact.save(compiled, path)
    before = path.read_bytes()
    compiled.provenance = {"unserialisable": object()}
    with pytest.raises(TypeError):
        artifact.save(compiled, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["net.r2c"]


def test_missing_truncated_and_foreign_files_are_refused(compiled, tmp_path):
    with pytest.raises(ArtifactError, match="not found"):
        artifact.load(tmp_path / "nope.r2c")
    path = tmp_path / "net.r2c"
    artifact.save(compiled, path)
    truncated = tmp_path / "truncated.r2c"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ArtifactError, match="not a readable") as info:
        artifact.load(truncated)
    assert "truncated.r2c" in str(info.value) and "recompile" in str(info.value)
    junk = tmp_path / "junk.r2c"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(ArtifactError):
        artifact.load(junk)
    foreign = tmp_path / "foreign.r2c"
    with zipfile.ZipFile(foreign, "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(ArtifactError, match="missing manifest"):
        artifact.load(foreign)


def test_model_files_given_for_an_artifact_say_to_compile_first(compiled, tmp_path):
    """A checkpoint, NIR or netx file passed where a .r2c belongs is named as what it is."""
    import h5py
    import torch

    from rsnn2chip.exporters import exporter

    checkpoint = tmp_path / "model.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, checkpoint)
    exporter("nir").export(compiled.graph, tmp_path / "net.nir")
    with h5py.File(tmp_path / "net.net", "w") as f:  # netx's layout: a top-level `layer` group
        f.create_group("layer")
    for path, kind in ((checkpoint, "torch checkpoint"), (tmp_path / "net.nir", "NIR"),
                       (tmp_path / "net.net", "netx")):
        with pytest.raises(ArtifactError, match="compiled network") as info:
            artifact.load(path)
        problem = info.value.problems[0]
        assert kind in problem.found and problem.fix.startswith(f"compile it first: `rsnn2chip compile {path}")


def test_version_and_format_are_checked(compiled, tmp_path):
    path = tmp_path / "net.r2c"
    artifact.save(compiled, path)
    _rewrite(path, manifest=lambda m: m.update(version=99))
    with pytest.raises(ArtifactError, match="unsupported artifact version") as info:
        artifact.load(path)
    assert info.value.problems[0].found == "99"
    _rewrite(path, manifest=lambda m: m.update(version=str(artifact.VERSION)))  # the string is not the number
    with pytest.raises(ArtifactError, match="unsupported artifact version") as info:
        artifact.load(path)
    assert info.value.problems[0].found == repr(str(artifact.VERSION))
    _rewrite(path, manifest=lambda m: m.update(format="something.else"))
    with pytest.raises(ArtifactError, match="not an rsnn2chip artifact"):
        artifact.load(path)


def test_tampered_arrays_fail_the_checksum(compiled, tmp_path):
    path = tmp_path / "net.r2c"
    artifact.save(compiled, path)
    with zipfile.ZipFile(path) as z:
        arrays = bytearray(z.read(artifact.ARRAYS))
    arrays[-30] ^= 0xFF
    _rewrite(path, arrays=bytes(arrays))
    with pytest.raises(ArtifactError, match="checksum"):
        artifact.load(path)


def _arrays_with(path, key, value) -> bytes:
    with zipfile.ZipFile(path) as z:
        with np.load(io.BytesIO(z.read(artifact.ARRAYS))) as npz:
            arrays = {k: npz[k] for k in npz.files}
    arrays[key] = value
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _with_checksum(payload: bytes):
    import hashlib
    return lambda m: m.update(arrays_sha256=hashlib.sha256(payload).hexdigest())


def test_out_of_range_fixed_point_values_are_refused(compiled, tmp_path):
    path = tmp_path / "net.r2c"
    artifact.save(compiled, path)
    payload = _arrays_with(path, "pop/rec/fixed/dv", np.array([5000]))
    _rewrite(path, manifest=_with_checksum(payload), arrays=payload)
    with pytest.raises(ArtifactError, match="fixed-point parameter outside") as info:
        artifact.load(path)
    problem = info.value.problems[0]
    assert (problem.where, problem.found, problem.allowed) == ("pop/rec/fixed/dv", "5000..5000", "0..4095")


class _Touch:
    """A pickled payload with a visible side effect: unpickling it creates ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import pathlib
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_object_arrays_are_never_unpickled(compiled, tmp_path):
    path = tmp_path / "net.r2c"
    artifact.save(compiled, path)
    marker = tmp_path / "unpickled"
    payload = _arrays_with(path, "pop/rec/fixed/dv", np.array([_Touch(marker)], dtype=object))
    _rewrite(path, manifest=_with_checksum(payload), arrays=payload)
    with pytest.raises(ArtifactError, match="never unpickled") as info:
        artifact.load(path)
    assert info.value.problems[0].where == "pop/rec/fixed/dv"
    assert not marker.exists()


def test_manifest_edits_fail_the_manifest_checksum(compiled, tmp_path):
    path = tmp_path / "net.r2c"
    artifact.save(compiled, path)
    for edit in (lambda m: m["provenance"].update(source="forged"),
                 lambda m: _first_quantized(m)["quant"].update(weight_exp=_first_quantized(m)["quant"]["weight_exp"] - 1)):
        artifact.save(compiled, path)
        _rewrite(path, manifest=edit, reseal=False)
        with pytest.raises(ArtifactError, match="manifest checksum mismatch"):
            artifact.load(path)


def _first_quantized(m):
    return next(p for p in m["ir"]["projections"] if p["quant"])


@pytest.mark.parametrize("weight_exp, ok", [(1000, False), (-9, False), (8, False), (7, True), (-8, True),
                                            (2.5, False), (True, False)])
def test_weight_exponent_is_range_checked(compiled, tmp_path, weight_exp, ok):
    path = tmp_path / "net.r2c"
    artifact.save(compiled, path)
    _rewrite(path, manifest=lambda m: _first_quantized(m)["quant"].update(weight_exp=weight_exp))
    if ok:
        assert artifact.load(path)
        return
    with pytest.raises(ArtifactError, match="out of range") as info:
        artifact.load(path)
    assert info.value.problems[0].where.endswith("quant.weight_exp")
    assert info.value.problems[0].allowed == "an integer in -8..7"


def _csr_key(compiled):
    proj = next(ir.projections(compiled.graph))
    return f"proj/{proj.pre}/{proj.post}", proj


@pytest.mark.parametrize("index", ["columns", 10 ** 6, 2 ** 31 - 1, -1, -(2 ** 31)])
@pytest.mark.parametrize("part", ["weight", "mantissa"])
def test_sparse_indices_out_of_range_are_refused(compiled, tmp_path, index, part):
    path = tmp_path / "net.r2c"
    artifact.save(compiled, path)
    key, proj = _csr_key(compiled)
    indices = proj.weight.indices.astype(np.int32)
    indices[0] = proj.weight.shape[1] if index == "columns" else index  # one past the last column, or far
    payload = _arrays_with(path, f"{key}/{part}.indices", indices)
    _rewrite(path, manifest=_with_checksum(payload), arrays=payload)
    with pytest.raises(ArtifactError, match="column index out of range") as info:
        artifact.load(path)
    assert info.value.problems[0].where == f"{key}/{part}.indices"
    assert info.value.problems[0].allowed == f"0..{proj.weight.shape[1] - 1}"


@pytest.mark.parametrize("edit, message", [
    (lambda ptr: ptr[::-1].copy(), "row pointer"),
    (lambda ptr: ptr[:-1].copy(), "inconsistent lengths"),
    (lambda ptr: ptr.astype(np.float64), "wrong dtype"),
    (lambda ptr: np.where(np.arange(ptr.size) == ptr.size - 1, ptr + 5, ptr), "row pointer"),
])
def test_malformed_row_pointers_are_refused(compiled, tmp_path, edit, message):
    path = tmp_path / "net.r2c"
    artifact.save(compiled, path)
    key, proj = _csr_key(compiled)
    payload = _arrays_with(path, f"{key}/weight.indptr", edit(proj.weight.indptr.astype(np.int64)))
    _rewrite(path, manifest=_with_checksum(payload), arrays=payload)
    with pytest.raises(ArtifactError, match=message):
        artifact.load(path)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_weights_and_parameters_are_refused(compiled, tmp_path, value):
    path = tmp_path / "net.r2c"
    artifact.save(compiled, path)
    key, proj = _csr_key(compiled)
    data = proj.weight.data.copy()
    data[0] = value
    payload = _arrays_with(path, f"{key}/weight.data", data)
    _rewrite(path, manifest=_with_checksum(payload), arrays=payload)
    with pytest.raises(ArtifactError, match="NaN or infinity") as info:
        artifact.load(path)
    assert info.value.problems[0].where == f"{key}/weight.data"
    payload = _arrays_with(path, "pop/rec/neuron/threshold", np.array([value]))
    _rewrite(path, manifest=_with_checksum(payload), arrays=payload)
    with pytest.raises(ArtifactError, match="NaN or infinity"):
        artifact.load(path)


def test_duplicate_sparse_entries_are_refused(compiled, tmp_path):
    path = tmp_path / "net.r2c"
    artifact.save(compiled, path)
    key, proj = _csr_key(compiled)
    row = int(np.flatnonzero(np.diff(proj.weight.indptr) >= 2)[0])
    indices = proj.weight.indices.astype(np.int32)
    start = proj.weight.indptr[row]
    indices[start + 1] = indices[start]
    payload = _arrays_with(path, f"{key}/weight.indices", indices)
    _rewrite(path, manifest=_with_checksum(payload), arrays=payload)
    with pytest.raises(ArtifactError, match="stores an entry twice"):
        artifact.load(path)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(mapping={}), "mapping must be a directed"),
    (lambda m: m.update(mapping=[]), "wrong type"),
    (lambda m: m["mapping"].update(nodes=[]), "n_cores does not match"),
    (lambda m: m["mapping"].update(nodes="x"), "not a list"),
    (lambda m: m["mapping"]["nodes"][0].update(slices=[["rec", 0, 10 ** 9]]), "core slice"),
    (lambda m: m["mapping"]["nodes"][0].update(slices=[["nope", 0, 1]]), "core slice"),
    (lambda m: m["mapping"]["nodes"][0].update(slices=[]), "exactly one core"),
    (lambda m: m["mapping"]["nodes"][0].update(chip=5), "chip out of range"),
    (lambda m: m["mapping"]["nodes"][0].update(position=[99, 0]), "outside the target's mesh"),
    (lambda m: m["mapping"]["nodes"][0].update(id="zero"), "number its cores"),
    (lambda m: m["mapping"]["graph"].update(resources=["warp_drives"]), "resources"),
    (lambda m: m["mapping"]["links"].append({"source": 0, "target": 10 ** 6}), "two existing cores"),
])
def test_malformed_mappings_are_refused(compiled, tmp_path, edit, message):
    path = tmp_path / "net.r2c"
    artifact.save(compiled, path)
    _rewrite(path, manifest=edit)
    with pytest.raises(ArtifactError, match=message):
        artifact.load(path)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m["ir"]["populations"][1].update(size=10 ** 12), "size out of range"),
    (lambda m: m["ir"]["populations"][1].update(size=-3), "size out of range"),
    (lambda m: m["ir"]["populations"][1].update(motif_size=5), "divide"),
    (lambda m: m["ir"]["populations"][1].update(state_scale=float("nan")), "state_scale"),
    (lambda m: m["ir"]["projections"][0].update(pre="ghost"), "does not exist"),
    (lambda m: m["ir"]["projections"][0].update(delay=0), "delay out of range"),
    (lambda m: m["ir"]["projections"][0].update(shape=[3, 3]), "shape does not match"),
    (lambda m: m["ir"]["projections"][0]["quant"].update(sign_mode="chaotic"), "sign mode"),
    (lambda m: m["ir"].update(populations="x"), "not a list"),
    (lambda m: m.update(surprise=1), "unknown entries"),
    (lambda m: m.pop("warnings"), "lacks 'warnings'"),
])
def test_malformed_ir_metadata_is_refused(compiled, tmp_path, edit, message):
    path = tmp_path / "net.r2c"
    artifact.save(compiled, path)
    _rewrite(path, manifest=edit)
    with pytest.raises(ArtifactError, match=message) as info:
        artifact.load(path)
    assert all(p.file == str(path) for p in info.value.problems)


def test_a_wrong_array_checksum_is_found_without_holding_the_member(compiled, tmp_path):
    """The arrays member is hashed as a stream: 64 MiB of zeros that fail the checksum never sit in memory."""
    import tracemalloc
    path = tmp_path / "net.r2c"
    artifact.save(compiled, path)
    _rewrite(path, arrays=b"\0" * (64 << 20))
    tracemalloc.start()
    try:
        with pytest.raises(ArtifactError, match="array checksum mismatch"):
            artifact.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"peak {peak / 2 ** 20:.0f} MiB"


def test_members_declaring_huge_sizes_are_refused_before_reading(compiled, tmp_path, monkeypatch):
    """A member that inflates past memory is refused from its declared size; the checksum is streamed."""
    import rsnn2chip.preflight as preflight
    path = tmp_path / "net.r2c"
    artifact.save(compiled, path)
    zeros = b"\0" * (64 << 20)  # compresses to ~64 kB
    _rewrite(path, arrays=zeros)
    monkeypatch.setattr(preflight, "available_bytes", lambda: 32 << 20)
    with pytest.raises(ArtifactError, match="more than is available") as info:
        artifact.load(path)
    assert "64.0 MiB" in info.value.problems[0].found


def test_graph_annotations_survive_the_round_trip(compiled, tmp_path):
    compiled.graph.graph["output"] = "out"
    compiled.graph.graph["not_json"] = object()  # dropped, not a crash
    path = tmp_path / "net.r2c"
    artifact.save(compiled, path)
    back = artifact.load(path).graph.graph
    assert back["output"] == "out" and "not_json" not in back
