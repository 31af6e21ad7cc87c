"""Validation of an artifact's content before any of it reaches NetworkX, SciPy, NumPy or Lava.

An artifact may be damaged or crafted (its checksums recomputed), so nothing
in it is trusted: every manifest entry is type- and range-checked, every array
has its expected dtype kind, shape and finiteness, every sparse matrix has
in-range, non-duplicated indices and a consistent row pointer, every
fixed-point parameter lies in the range its neuron model declares (``NeuronModel.fixed_ranges``), and
the core mapping covers each LIF neuron exactly once with cores, chips and
mesh positions that exist on the embedded target. Each check returns
:class:`Problem` s naming the manifest key or array and what is allowed.
"""
from __future__ import annotations

import math
import re

import numpy as np

from rsnn2chip import fixedpoint as fx, ir, neurons
from rsnn2chip.errors import Problem

MAX_NEURONS = (1 << 31) - 1  # sparse indices are int32
MAX_DELAY = 64
SHA256 = re.compile(r"^[0-9a-f]{64}$")


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class Checker:
    """Collects problems for one file; ``where`` is the manifest key or array name."""

    def __init__(self, file: str):
        self.file = file
        self.problems: list[Problem] = []

    def add(self, message: str, where: str, found=None, allowed=None) -> None:
        if isinstance(found, str) and len(found) > 200:
            found = found[:200] + "..."
        self.problems.append(Problem(message, file=self.file, where=where, found=found, allowed=allowed))

    def typed(self, value, kind, where: str, allowed: str) -> bool:
        ok = kind(value) if callable(kind) and not isinstance(kind, type) else isinstance(value, kind)
        if not ok:
            self.add(f"{where} has the wrong type or value", where, found=_short(value), allowed=allowed)
        return ok

    def int_in(self, value, lo: int, hi: int, where: str) -> bool:
        if not is_int(value) or not lo <= value <= hi:
            self.add(f"{where} out of range", where, found=_short(value), allowed=f"an integer in {lo}..{hi}")
            return False
        return True


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --------------------------------------------------------------------------- manifest

MANIFEST_TYPES = {"format": str, "version": int, "tool_version": str, "provenance": dict, "target": dict,
                  "ir": dict, "mapping": dict, "warnings": list, "arrays_sha256": str, "manifest_sha256": str}


def check_manifest_types(manifest: dict, c: Checker) -> None:
    for key, kind in MANIFEST_TYPES.items():
        if key not in manifest:
            c.add(f"manifest lacks '{key}'", key, allowed=kind.__name__)
        elif not isinstance(manifest[key], kind) or isinstance(manifest[key], bool):
            c.add(f"manifest entry '{key}' has the wrong type", key, found=type(manifest[key]).__name__,
                  allowed=kind.__name__)
    unknown = sorted(set(manifest) - set(MANIFEST_TYPES))
    if unknown:
        c.add("manifest has unknown entries", "manifest", found=unknown[:10], allowed=sorted(MANIFEST_TYPES))
    for key in ("arrays_sha256", "manifest_sha256"):
        if isinstance(manifest.get(key), str) and not SHA256.match(manifest[key]):
            c.add(f"'{key}' is not a SHA-256 hex digest", key, found=manifest[key], allowed="64 hex digits")
    if isinstance(manifest.get("warnings"), list) and not all(isinstance(w, dict) for w in manifest["warnings"]):
        c.add("every warning must be a mapping", "warnings")
    if isinstance(manifest.get("provenance"), dict):
        check_provenance(manifest["provenance"], c)


def check_provenance(prov: dict, c: Checker) -> None:
    """The provenance entries the tool acts on (verify re-quantizes with them, eval finds the source)."""
    for key in ("source", "source_sha256"):
        if key in prov and not isinstance(prov[key], str):
            c.add(f"provenance.{key} must be a string", f"provenance.{key}", found=_short(prov[key]))
    for key in ("meta", "encoding", "training"):
        if prov.get(key) is not None and not isinstance(prov[key], dict):
            c.add(f"provenance.{key} must be a mapping", f"provenance.{key}", found=_short(prov[key]))
    q = prov.get("quantization")
    if q is None:
        return
    if not isinstance(q, dict):
        c.add("provenance.quantization must be a mapping", "provenance.quantization", found=_short(q))
        return
    if "threshold_mantissa_target" in q:
        c.int_in(q["threshold_mantissa_target"], 1, fx.VTH_RANGE[1],
                 "provenance.quantization.threshold_mantissa_target")
    pct = q.get("weight_clip_percentile", 100.0)
    if not (is_number(pct) and 0 < pct <= 100):
        c.add("provenance.quantization.weight_clip_percentile out of range",
              "provenance.quantization.weight_clip_percentile", found=_short(pct), allowed="a number in (0, 100]")


# --------------------------------------------------------------------------- IR

def expected_arrays(meta: dict) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Array name -> (role, context): the arrays the IR metadata implies, for a well-formed meta."""
    names = {}
    for entry in meta["populations"]:
        key = f"pop/{entry['name']}"
        if entry["neuron"]:
            for p in neurons.get(entry["neuron"]).float_type.names():
                names[f"{key}/neuron/{p}"] = ("float_param", entry["name"])
        if entry["fixed"]:
            for p in neurons.get(entry["fixed"]).fixed_type.names():
                names[f"{key}/fixed/{p}"] = ("fixed_param", entry["name"])
    for entry in meta["projections"]:
        key = f"proj/{entry['pre']}/{entry['post']}"
        for part in ("data", "indices", "indptr"):
            names[f"{key}/weight.{part}"] = ("weight", key)
            if entry["quant"]:
                names[f"{key}/mantissa.{part}"] = ("mantissa", key)
    return names


def check_ir_meta(meta: dict, c: Checker) -> dict[str, dict] | None:
    """Populations by name if the IR metadata is well formed, else None (problems recorded)."""
    before = len(c.problems)
    for key, kind in (("name", str), ("populations", list), ("projections", list), ("graph", dict)):
        if not isinstance(meta.get(key), kind):
            c.add(f"ir.{key} is missing or not a {kind.__name__}", f"ir.{key}", found=type(meta.get(key)).__name__)
    if meta.get("ir_version") != ir.IR_VERSION:
        c.add("unsupported IR version", "ir.ir_version", found=_short(meta.get("ir_version")), allowed=ir.IR_VERSION)
    if len(c.problems) > before:
        return None
    pops: dict[str, dict] = {}
    total = 0
    for i, entry in enumerate(meta["populations"]):
        where = f"ir.populations[{i}]"
        if not isinstance(entry, dict):
            c.add("population entry is not a mapping", where, found=type(entry).__name__)
            continue
        extra = sorted(set(entry) - {"name", "size", "layer", "motif_size", "state_scale", "quant_stats", "neuron",
                                     "fixed", "fires", "graded"}, key=str)
        if extra:
            c.add("population entry has unknown keys", where, found=extra)
        name = entry.get("name")
        if not isinstance(name, str) or not name or "/" in name:
            c.add("population name must be a non-empty string without '/'", f"{where}.name", found=_short(name))
            continue
        if name in pops:
            c.add("duplicate population name", f"{where}.name", found=name)
            continue
        ok = c.int_in(entry.get("size"), 1, MAX_NEURONS, f"{where}.size")
        ok &= c.typed(entry.get("layer"), str, f"{where}.layer", "a string")
        motif = entry.get("motif_size")
        if motif is not None:
            if not c.int_in(motif, 1, MAX_NEURONS, f"{where}.motif_size"):
                ok = False
            elif ok and entry["size"] % motif:
                c.add("motif_size must divide the population size", f"{where}.motif_size", found=motif,
                      allowed=f"a divisor of {entry['size']}")
                ok = False
        scale = entry.get("state_scale")
        if scale is not None and not (is_number(scale) and scale > 0):
            c.add("state_scale must be a finite number > 0", f"{where}.state_scale", found=_short(scale))
            ok = False
        ok &= c.typed(entry.get("quant_stats"), dict, f"{where}.quant_stats", "a mapping")
        model_names = sorted(set(neurons.NEURON_MODELS) | set(neurons.LEGACY_NAMES))
        neuron, fixed = entry.get("neuron"), entry.get("fixed")
        if neuron is not None and not (isinstance(neuron, str) and neuron in model_names):
            c.add("unknown neuron model", f"{where}.neuron", found=_short(neuron),
                  allowed=f"null (input) or one of {model_names}")
            ok = False
        elif fixed is not None and not (isinstance(fixed, str) and neuron is not None and fixed in model_names
                                        and neurons.get(fixed) is neurons.get(neuron)):
            c.add("fixed-point parameters of another model, or without a neuron", f"{where}.fixed",
                  found=_short(fixed), allowed=f"null, or the population's own model ({_short(neuron)})")
            ok = False
        if not isinstance(entry.get("fires", True), bool):
            c.add("fires must be true or false", f"{where}.fires", found=_short(entry.get("fires")))
            ok = False
        graded = entry.get("graded")
        if graded is not None:
            if neuron is not None or not isinstance(graded, dict) or set(graded) != {"bits", "frac_bits"}:
                c.add("graded must be null, or on an input population {bits, frac_bits}", f"{where}.graded",
                      found=_short(graded))
                ok = False
            elif not (c.int_in(graded["bits"], 2, 24, f"{where}.graded.bits")
                      and c.int_in(graded["frac_bits"], 0, graded["bits"] - 1, f"{where}.graded.frac_bits")):
                ok = False
        if ok:
            pops[name] = entry
            total += entry["size"]
    if total > MAX_NEURONS:
        c.add("the network has too many neurons", "ir.populations", found=total, allowed=f"at most {MAX_NEURONS}")
    seen = set()
    for i, entry in enumerate(meta["projections"]):
        where = f"ir.projections[{i}]"
        if not isinstance(entry, dict):
            c.add("projection entry is not a mapping", where, found=type(entry).__name__)
            continue
        extra = sorted(set(entry) - {"pre", "post", "delay", "shape", "quant"})
        if extra:
            c.add("projection entry has unknown keys", where, found=extra)
        pre, post = entry.get("pre"), entry.get("post")
        if not (isinstance(pre, str) and isinstance(post, str) and pre in pops and post in pops):
            c.add("projection names a population that does not exist", where, found=f"{_short(pre)} -> {_short(post)}",
                  allowed=sorted(pops)[:10])
            continue
        if pops[post]["neuron"] is None:
            c.add("projection into an input population", where, found=f"{pre} -> {post}",
                  allowed="projections into LIF populations")
        if (pre, post) in seen:
            c.add("duplicate projection", where, found=f"{pre} -> {post}")
        seen.add((pre, post))
        c.int_in(entry.get("delay"), 1, MAX_DELAY, f"{where}.delay")
        want = [pops[post]["size"], pops[pre]["size"]]
        if entry.get("shape") != want:
            c.add("projection shape does not match its populations", f"{where}.shape", found=_short(entry.get("shape")),
                  allowed=want)
        quant = entry.get("quant")
        if quant is not None:
            if not isinstance(quant, dict) or set(quant) != {"weight_exp", "sign_mode", "stats"}:
                c.add("quant must be a mapping with weight_exp, sign_mode and stats", f"{where}.quant",
                      found=_short(quant))
                continue
            lo, hi = fx.WEIGHT_EXP_RANGE
            c.int_in(quant["weight_exp"], lo, hi, f"{where}.quant.weight_exp")
            if not isinstance(quant["sign_mode"], str) or quant["sign_mode"] not in fx.WEIGHT_RANGE:
                c.add("unknown sign mode", f"{where}.quant.sign_mode", found=_short(quant["sign_mode"]),
                      allowed=list(fx.WEIGHT_RANGE))
            c.typed(quant["stats"], dict, f"{where}.quant.stats", "a mapping")
    check_graph_attributes(meta["graph"], pops, c)
    return pops if len(c.problems) == before else None


def check_graph_attributes(attrs: dict, pops: dict[str, dict], c: Checker) -> None:
    """The frontend annotations later code reads: names of populations, and NIR's list of non-spiking ones."""
    def names_populations(value) -> bool:
        return isinstance(value, str) and value in pops

    output = attrs.get("output")
    if output is not None and not names_populations(output):
        c.add("graph attribute names a population that does not exist", "ir.graph.output", found=_short(output),
              allowed=sorted(pops)[:10])
    outputs = attrs.get("outputs")
    if outputs is not None and not (isinstance(outputs, list) and all(map(names_populations, outputs))):
        c.add("graph attribute must list existing populations", "ir.graph.outputs", found=_short(outputs),
              allowed=sorted(pops)[:10])
    nir_notes = attrs.get("nir")
    if nir_notes is not None and not (isinstance(nir_notes, dict) and isinstance(nir_notes.get("nonspiking", []), list)
                                      and all(map(names_populations, nir_notes.get("nonspiking", [])))):
        c.add("graph attribute 'nir' must be a mapping whose 'nonspiking' lists existing populations", "ir.graph.nir",
              found=_short(nir_notes))


def check_ir_arrays(meta: dict, pops: dict[str, dict], arrays: dict[str, np.ndarray], c: Checker) -> None:
    expected = expected_arrays(meta)
    missing = sorted(set(expected) - set(arrays))
    unknown = sorted(set(arrays) - set(expected))
    if missing:
        c.add("artifact arrays are missing", "arrays.npz", found=missing[:10])
    if unknown:
        c.add("artifact holds arrays the IR does not describe", "arrays.npz", found=unknown[:10])
    if missing or unknown:
        return
    for name, (role, owner) in expected.items():
        if role in ("float_param", "fixed_param"):
            _check_param(name, arrays[name], pops[owner]["size"], role, neurons.get(pops[owner]["neuron"]), c)
    for name, entry in pops.items():
        if entry["neuron"] and not entry["fixed"]:
            c.add("LIF population is not quantized", f"ir.populations ({name})",
                  allowed="fixed: the population's neuron model")
    for entry in meta["projections"]:
        key = f"proj/{entry['pre']}/{entry['post']}"
        rows, cols = entry["shape"]
        _check_csr(arrays, f"{key}/weight", rows, cols, "f", c)
        if not entry["quant"]:
            c.add("projection is not quantized", f"ir.projections ({key})", allowed="a 'quant' entry")
        elif _check_csr(arrays, f"{key}/mantissa", rows, cols, "i", c):
            mantissa, mode = arrays[f"{key}/mantissa.data"], entry["quant"]["sign_mode"]
            lo, hi = fx.WEIGHT_RANGE.get(mode, (0, -1))
            if mantissa.size and (mantissa.min() < lo or mantissa.max() > hi):
                c.add(f"weight mantissa outside the range of its sign mode ({mode})", f"{key}/mantissa.data",
                      found=f"{int(mantissa.min())}..{int(mantissa.max())}", allowed=f"{lo}..{hi}")


def _check_param(name: str, a: np.ndarray, size: int, role: str, model, c: Checker) -> None:
    kind = "f" if role == "float_param" else "i"
    if a.dtype.kind != kind or a.ndim != 1 or a.shape[0] not in (1, size):
        c.add("parameter array has the wrong dtype or shape", name, found=f"{a.dtype} {a.shape}",
              allowed=f"{'float' if kind == 'f' else 'integer'} of shape (1,) or ({size},)")
        return
    if kind == "f" and not np.isfinite(a).all():
        c.add("parameter holds NaN or infinity", name, allowed="finite values")
    if kind == "i":
        lo, hi = model.fixed_ranges[name.rsplit("/", 1)[1]]
        if a.size and (a.min() < lo or a.max() > hi):
            c.add("fixed-point parameter outside the range Loihi represents", name,
                  found=f"{int(a.min())}..{int(a.max())}", allowed=f"{lo}..{hi}")


def _check_csr(arrays, prefix: str, rows: int, cols: int, kind: str, c: Checker) -> bool:
    """True if the three arrays form a valid ``(rows, cols)`` CSR matrix of the dtype ``kind``."""
    before = len(c.problems)
    data, indices, indptr = (arrays[f"{prefix}.{p}"] for p in ("data", "indices", "indptr"))
    shapes = (f"data {data.dtype}{data.shape}, indices {indices.dtype}{indices.shape}, "
              f"indptr {indptr.dtype}{indptr.shape}")
    if (data.dtype.kind != kind or indices.dtype.kind not in "iu" or indptr.dtype.kind not in "iu"
            or data.ndim != 1 or indices.ndim != 1 or indptr.ndim != 1):
        c.add("sparse matrix arrays have the wrong dtype or dimensions", prefix, found=shapes,
              allowed=f"1-d {'float' if kind == 'f' else 'integer'} data and integer indices/indptr")
        return False
    if indptr.shape[0] != rows + 1 or data.shape[0] != indices.shape[0]:
        c.add("sparse matrix arrays have inconsistent lengths", prefix, found=shapes,
              allowed=f"indptr of length {rows + 1}, data and indices of equal length")
        return False
    ptr = indptr.astype(np.int64)
    if ptr[0] != 0 or ptr[-1] != data.shape[0] or (np.diff(ptr) < 0).any():
        c.add("sparse row pointer is not a non-decreasing sequence from 0 to the entry count", f"{prefix}.indptr",
              found=f"{int(ptr[0])}..{int(ptr[-1])}", allowed=f"0..{data.shape[0]}, non-decreasing")
        return False
    if indices.size:
        lo, hi = int(indices.min()), int(indices.max())
        if lo < 0 or hi >= cols:
            c.add("sparse column index out of range", f"{prefix}.indices", found=f"{lo}..{hi}",
                  allowed=f"0..{cols - 1}")
            return False
        row_of = np.repeat(np.arange(rows, dtype=np.int64), np.diff(ptr))
        flat = row_of * cols + indices.astype(np.int64)
        if np.unique(flat).size != flat.size:
            c.add("sparse matrix stores an entry twice", f"{prefix}.indices", allowed="each (row, column) once")
    if kind == "f" and not np.isfinite(data).all():
        c.add("weights hold NaN or infinity", f"{prefix}.data", allowed="finite values")
    return len(c.problems) == before


# --------------------------------------------------------------------------- mapping

def check_mapping(mapping: dict, pops: dict[str, dict], target: dict, c: Checker) -> None:
    """The core graph: node-link JSON whose cores exist on the target and hold every LIF neuron once."""
    before = len(c.problems)
    nodes, links, graph = mapping.get("nodes"), mapping.get("links"), mapping.get("graph")
    if mapping.get("directed") is not True or mapping.get("multigraph") is not False:
        c.add("mapping must be a directed, non-multi graph", "mapping", allowed="directed: true, multigraph: false")
    for key, value in (("nodes", nodes), ("links", links)):
        if not isinstance(value, list):
            c.add(f"mapping.{key} is missing or not a list", f"mapping.{key}", found=type(value).__name__)
    if not isinstance(graph, dict):
        c.add("mapping.graph is missing or not a mapping", "mapping.graph", found=type(graph).__name__)
    if len(c.problems) > before:
        return
    chip = target.get("chip") if isinstance(target.get("chip"), dict) else {}
    core_limits = target.get("core") if isinstance(target.get("core"), dict) else {}
    n_chips = chip.get("chips") if is_int(chip.get("chips")) else None
    mesh = chip.get("mesh") if isinstance(chip.get("mesh"), list) and len(chip.get("mesh")) == 2 else None
    resources = graph.get("resources")
    if not isinstance(resources, list) or not all(isinstance(r, str) and r in core_limits for r in resources):
        c.add("mapping.graph.resources must list resources the target's [core] section limits",
              "mapping.graph.resources", found=_short(resources), allowed=sorted(core_limits)[:12])
        return
    if not is_int(graph.get("n_cores")) or graph.get("n_cores") != len(nodes):
        c.add("mapping.graph.n_cores does not match the number of cores", "mapping.graph.n_cores",
              found=_short(graph.get("n_cores")), allowed=len(nodes))
    for key in ("mapper", "target"):
        if not isinstance(graph.get(key), str):
            c.add(f"mapping.graph.{key} must be a string", f"mapping.graph.{key}", found=_short(graph.get(key)))
    for key in ("chips_used", "intercore_synapses", "hop_weighted_synapses"):
        if not (is_int(graph.get(key)) and graph[key] >= 0):
            c.add(f"mapping.graph.{key} must be an integer >= 0", f"mapping.graph.{key}", found=_short(graph.get(key)))
    lb = graph.get("lower_bound")
    if not isinstance(lb, dict) or not (is_int(lb.get("cores")) and lb["cores"] >= 0):
        c.add("mapping.graph.lower_bound must hold an integer 'cores'", "mapping.graph.lower_bound", found=_short(lb))
    ids = [n.get("id") if isinstance(n, dict) else None for n in nodes]
    if ids != list(range(len(nodes))):
        c.add("mapping must number its cores 0..n-1 in order", "mapping.nodes[*].id", found=_short(ids[:8]),
              allowed=f"0..{len(nodes) - 1}")
        return
    covered = {name: np.zeros(entry["size"], np.int64) for name, entry in pops.items() if entry["neuron"]}
    for i, node in enumerate(nodes):
        where = f"mapping.nodes[{i}]"
        if n_chips is not None:
            c.int_in(node.get("chip"), 0, n_chips - 1, f"{where}.chip")
        pos = node.get("position")
        if mesh is None or not (isinstance(pos, list) and len(pos) == 2 and all(
                is_int(p) and 0 <= p < m for p, m in zip(pos, mesh) if is_int(m))):
            c.add("core position outside the target's mesh", f"{where}.position", found=_short(pos),
                  allowed=f"[x, y] within mesh {mesh}")
        used = node.get("used")
        if not isinstance(used, dict) or not all(is_number(used.get(r)) and used[r] >= 0 for r in resources):
            c.add("core 'used' must give a number >= 0 for every resource", f"{where}.used", found=_short(used),
                  allowed=resources)
        if not (is_int(node.get("units")) and node["units"] >= 0):
            c.add("core 'units' must be an integer >= 0", f"{where}.units", found=_short(node.get("units")))
        slices = node.get("slices")
        if not isinstance(slices, list):
            c.add("core 'slices' must be a list of [population, start, stop]", f"{where}.slices", found=_short(slices))
            continue
        for j, s in enumerate(slices):
            ok = (isinstance(s, list) and len(s) == 3 and isinstance(s[0], str) and s[0] in covered
                  and is_int(s[1]) and is_int(s[2])
                  and 0 <= s[1] < s[2] <= covered[s[0]].size)
            if not ok:
                c.add("core slice must be [LIF population, start, stop] within the population",
                      f"{where}.slices[{j}]", found=_short(s), allowed="0 <= start < stop <= population size")
                continue
            covered[s[0]][s[1]:s[2]] += 1
    for name, count in covered.items():
        if count.size and (count.min() != 1 or count.max() != 1):
            bad = int(np.flatnonzero(count != 1)[0])
            c.add("the mapping must place every LIF neuron on exactly one core", "mapping.nodes[*].slices",
                  found=f"population {name}, neuron {bad} placed {int(count[bad])} times", allowed="once")
    for i, link in enumerate(links):
        where = f"mapping.links[{i}]"
        if not isinstance(link, dict) or not all(is_int(link.get(k)) and 0 <= link[k] < len(nodes)
                                                 for k in ("source", "target")):
            c.add("link must join two existing cores", where, found=_short(link), allowed=f"cores 0..{len(nodes) - 1}")
            continue
        for key in ("synapses", "axons", "hops"):
            if not (is_int(link.get(key)) and link[key] >= 0):
                c.add(f"link '{key}' must be an integer >= 0", f"{where}.{key}", found=_short(link.get(key)))
        if "spikes" in link and not (is_number(link["spikes"]) and link["spikes"] >= 0):
            c.add("link 'spikes' must be a number >= 0", f"{where}.spikes", found=_short(link["spikes"]))
