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


def _rewrite(path, manifest=None, arrays=None):
    """Rebuild an artifact with edited parts, as a corrupted or hostile file would be."""
    with zipfile.ZipFile(path) as z:
        m = json.loads(z.read(artifact.MANIFEST))
        a = z.read(artifact.ARRAYS)
    if manifest:
        manifest(m)
    if arrays is not None:
        a = arrays
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
    for a, b in zip(ir.populations(compiled.graph), ir.populations(back.graph)):
        assert a.name == b.name and a.size == b.size and a.motif_size == b.motif_size
        if a.fixed is not None:
            for name in LoihiLIF.PARAMS:
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


def test_version_and_format_are_checked(compiled, tmp_path):
    path = tmp_path / "net.r2c"
    artifact.save(compiled, path)
    _rewrite(path, manifest=lambda m: m.update(version=99))
    with pytest.raises(ArtifactError, match="unsupported artifact version") as info:
        artifact.load(path)
    assert info.value.problems[0].found == 99
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
    with pytest.raises(ArtifactError, match="dv outside 0..4095"):
        artifact.load(path)


def test_object_arrays_are_never_unpickled(compiled, tmp_path):
    path = tmp_path / "net.r2c"
    artifact.save(compiled, path)
    payload = _arrays_with(path, "pop/rec/fixed/dv", np.array([object()], dtype=object))
    _rewrite(path, manifest=_with_checksum(payload), arrays=payload)
    with pytest.raises(ArtifactError):
        artifact.load(path)


def test_graph_annotations_survive_the_round_trip(compiled, tmp_path):
    compiled.graph.graph["output"] = "out"
    compiled.graph.graph["not_json"] = object()  # dropped, not a crash
    path = tmp_path / "net.r2c"
    artifact.save(compiled, path)
    back = artifact.load(path).graph.graph
    assert back["output"] == "out" and "not_json" not in back
