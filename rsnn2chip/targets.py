"""Hardware targets are data: one TOML file per target in ``targets/``, parsed once into frozen dataclasses.

A user adds a target by writing a file there (or anywhere, passing its path to
``--target``). A file may start from another target with ``[target] extends =
"NAME"`` (or a path relative to the file) and override only the keys that
differ. Passes read limits from the typed :class:`Target` (``target.core.neurons``,
``target.synapse_encoding.weight_bits``, ...), never from raw TOML keys, so a
misspelt key is an error when the file is read, not a ``KeyError`` mid-compile.

Every value is checked against the range the compiler can use; all problems in
a file are reported together, each naming the key, what was found and what is
allowed. See docs/targets.md for the schema.
"""
from __future__ import annotations

import copy
import math
import os
import tomllib
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

from rsnn2chip.errors import Problem, TargetError

# Bounds that keep every pass's arrays small enough to allocate (placement builds a (chips, rows, cols) grid).
MAX_COUNT = 1 << 31
MAX_CORES_PER_CHIP = 1 << 16
MAX_CHIPS = 1 << 16
MAX_MESH_SLOTS = 1 << 20
# Lava's Sparse/Dense processes take at most 8-bit weight mantissas (lava.utils.weightutils, num_weight_bits).
MAX_WEIGHT_BITS = 8
SIMULATORS = {"lava-fixed_pt": "fixed_pt"}  # target.simulator -> Lava's run-config select_tag
DEFAULT_NEURON_MODELS = ("cuba_lif",)
DEFAULT_ACCUMULATOR_BITS = 16  # Loihi's dendritic accumulator (a_in)
MAX_EXTENDS_DEPTH = 8


def _key(kind: str, lo=None, hi=None, default=MISSING, allowed=None):
    """A schema entry: ``kind`` is int, float, bool, str, names (list of str) or mesh ([rows, cols])."""
    return field(default=default, metadata={"kind": kind, "lo": lo, "hi": hi, "allowed": allowed})


@dataclass(frozen=True)
class TargetInfo:
    """``[target]``: identity and the simulator the target stands for."""

    name: str = _key("str")
    description: str = _key("str")
    simulator: str = _key("str", allowed=tuple(SIMULATORS))
    source: str | None = _key("str", default=None)
    uncertain: bool | None = _key("bool", default=None)

    @property
    def select_tag(self) -> str:
        """Lava's ``Loihi2SimCfg(select_tag=...)`` for this simulator."""
        return SIMULATORS[self.simulator]


@dataclass(frozen=True)
class Chip:
    """``[chip]``: how many cores, and how they are laid out for hop distances."""

    cores: int = _key("int", 1, MAX_CORES_PER_CHIP)
    chips: int = _key("int", 1, MAX_CHIPS)
    mesh: tuple[int, int] = _key("mesh", 1, MAX_CORES_PER_CHIP)
    source: str | None = _key("str", default=None)
    uncertain: bool | None = _key("bool", default=None)


@dataclass(frozen=True)
class Core:
    """``[core]``: per-core limits (docs/mapping.md defines each demand) and what a core can compute."""

    neurons: int = _key("int", 1, MAX_COUNT)
    synapse_memory_bits: int = _key("int", 1, MAX_COUNT)
    neuron_state_bits: int = _key("int", 0, 1 << 16)
    shared_memory: bool = _key("bool")
    input_axons: int = _key("int", 1, MAX_COUNT)
    output_axons: int = _key("int", 1, MAX_COUNT)
    neuron_profiles: int = _key("int", 1, MAX_COUNT)
    threshold_profiles: int = _key("int", 1, MAX_COUNT)
    # Names of the neuron models (rsnn2chip's NeuronModel registry) a core runs; DRC rejects the others.
    neuron_models: tuple[str, ...] = _key("names", default=DEFAULT_NEURON_MODELS)
    # Width of the dendritic accumulator: the worst-case synaptic input of a step must fit it, signed.
    accumulator_bits: int = _key("int", 2, 64, default=DEFAULT_ACCUMULATOR_BITS)
    source: str | None = _key("str", default=None)
    uncertain: bool | None = _key("bool", default=None)

    def limit(self, resource: str) -> int:
        """The per-core capacity of one of ``passes.resources.RESOURCES``."""
        if resource not in CORE_RESOURCES:
            raise KeyError(f"{resource!r} is not a per-core resource ({', '.join(CORE_RESOURCES)})")
        return getattr(self, resource)


CORE_RESOURCES = ("neurons", "synapse_memory_bits", "input_axons", "output_axons", "neuron_profiles",
                  "threshold_profiles")


@dataclass(frozen=True)
class SynapseEncoding:
    """``[synapse_encoding]``: bits a synapse and an axon header cost in synapse memory."""

    weight_bits: int = _key("int", 1, MAX_WEIGHT_BITS)
    index_bits: int = _key("int", 0, 64)
    delay_bits: int = _key("int", 0, 64)
    header_bits_per_axon: int = _key("int", 0, 1 << 16)
    source: str | None = _key("str", default=None)
    uncertain: bool | None = _key("bool", default=None)

    @property
    def bits_per_synapse(self) -> int:
        return self.weight_bits + self.index_bits + self.delay_bits


@dataclass(frozen=True)
class Quantization:
    """``[quantization]``: the range of a projection's shared weight exponent."""

    weight_exp_min: int = _key("int", -32, 32)
    weight_exp_max: int = _key("int", -32, 32)
    source: str | None = _key("str", default=None)
    uncertain: bool | None = _key("bool", default=None)


@dataclass(frozen=True)
class Energy:
    """``[energy]``: picojoules per operation, for cost estimates."""

    synaptic_op_pj: float = _key("float", 0.0)
    neuron_update_pj: float = _key("float", 0.0)
    neuron_spike_update_pj: float = _key("float", 0.0)
    spike_in_tile_pj: float = _key("float", 0.0)
    mesh_hop_pj: float = _key("float", 0.0)
    source: str | None = _key("str", default=None)
    uncertain: bool | None = _key("bool", default=None)


@dataclass(frozen=True)
class Time:
    """``[time]``: nanoseconds per operation, for cost estimates."""

    synaptic_op_ns: float = _key("float", 0.0)
    spike_in_tile_ns: float = _key("float", 0.0)
    mesh_hop_ns: float = _key("float", 0.0)
    neuron_update_ns: float = _key("float", 0.0)
    source: str | None = _key("str", default=None)
    uncertain: bool | None = _key("bool", default=None)


@dataclass(frozen=True)
class DesignRules:
    """``[drc]``: the design rules (names in ``passes/checks.py``) this target's compiles must pass.

    ``rules`` absent: every registered rule, so older target files and the
    targets embedded in older artifacts keep their full checking.
    """

    rules: tuple[str, ...] | None = _key("names", default=None)
    source: str | None = _key("str", default=None)
    uncertain: bool | None = _key("bool", default=None)


SECTIONS: dict[str, type] = {"target": TargetInfo, "chip": Chip, "core": Core, "synapse_encoding": SynapseEncoding,
                             "quantization": Quantization, "energy": Energy, "time": Time, "drc": DesignRules}
OPTIONAL_SECTIONS = {"drc"}
# Keys a target file does not inherit through `extends`: a derived target must name itself.
NOT_INHERITED = {("target", "name"), ("target", "description")}


@dataclass(frozen=True)
class Target:
    """A validated target. ``data`` is its resolved content (``extends`` applied, defaults filled in): what
    artifacts embed and what :func:`target_from_dict` reads back."""

    info: TargetInfo
    chip: Chip
    core: Core
    synapse_encoding: SynapseEncoding
    quantization: Quantization
    energy: Energy
    time: Time
    drc: DesignRules
    path: str = field(compare=False)  # where it was read from; two files with the same content are equal
    data: dict = field(compare=False, hash=False, repr=False)

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def description(self) -> str:
        return self.info.description

    @property
    def total_cores(self) -> int:
        return self.chip.cores * self.chip.chips

    def limits_key(self) -> tuple:
        """What per-core usage and packing depend on: caches over one network are keyed by it."""
        return (self.core, self.synapse_encoding)


TARGETS_ENV = "RSNN2CHIP_TARGETS"


def targets_dir() -> Path:
    """``$RSNN2CHIP_TARGETS`` or the repository's ``targets/`` folder."""
    env = os.environ.get(TARGETS_ENV)
    return Path(env) if env else Path(__file__).resolve().parent.parent / "targets"


# --------------------------------------------------------------------------- validation

def _range_text(meta: dict) -> str:
    lo, hi = meta["lo"], meta["hi"]
    if lo is not None and hi is not None:
        return f"{lo}..{hi}"
    return f">= {lo}" if lo is not None else "any"


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _in_range(value, meta: dict) -> bool:
    return (meta["lo"] is None or value >= meta["lo"]) and (meta["hi"] is None or value <= meta["hi"])


def _int_value(name: str, value, meta: dict):
    if not _is_int(value):
        return None, f"key {name} must be an int in {_range_text(meta)}, found {value!r}"
    if not _in_range(value, meta):
        return None, f"key {name} must be in {_range_text(meta)}, found {value!r}"
    return value, None


def _float_value(name: str, value, meta: dict):
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return None, f"key {name} must be a finite number {_range_text(meta)}, found {value!r}"
    if not _in_range(value, meta):
        return None, f"key {name} must be {_range_text(meta)}, found {value!r}"
    return float(value), None


def _bool_value(name: str, value, meta: dict):
    return (value, None) if isinstance(value, bool) else (None, f"key {name} must be true or false, found {value!r}")


def _str_value(name: str, value, meta: dict):
    if not isinstance(value, str):
        return None, f"key {name} must be a string, found {value!r}"
    if meta["allowed"] and value not in meta["allowed"]:
        return None, f"key {name} must be one of {', '.join(meta['allowed'])}, found {value!r}"
    return value, None


def _names_value(name: str, value, meta: dict):
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value) \
            or len(set(value)) != len(value):
        return None, f"key {name} must be a non-empty list of distinct names, found {value!r}"
    return tuple(value), None


def _mesh_value(name: str, value, meta: dict):
    if not isinstance(value, list) or len(value) != 2 or not all(_is_int(m) and _in_range(m, meta) for m in value):
        return None, f"key {name} must be [rows, cols], each in {_range_text(meta)}, found {value!r}"
    return tuple(value), None


# schema kind -> checker returning (parsed value, problem or None)
_CHECKERS = {"int": _int_value, "float": _float_value, "bool": _bool_value, "str": _str_value,
             "names": _names_value, "mesh": _mesh_value}


def _parse(data: dict) -> tuple[dict[str, object], list[str]]:
    """Typed sections and every problem with ``data``, each naming the key."""
    problems: list[str] = []
    if not isinstance(data, dict):
        return {}, [f"a target must be a table of sections, found {type(data).__name__}"]
    for section in data:
        if section not in SECTIONS:
            problems.append(f"unknown section [{section}] (known: {', '.join(SECTIONS)})")
    parsed: dict[str, object] = {}
    for section, cls in SECTIONS.items():
        raw = data.get(section, {} if section in OPTIONAL_SECTIONS else None)
        if not isinstance(raw, dict):
            problems.append(f"missing section [{section}]" if raw is None else
                            f"[{section}] must be a table of keys, found {raw!r}")
            continue
        values, ok = {}, True
        for f in fields(cls):
            if f.name not in raw:
                if f.default is MISSING:
                    kind = f.metadata["kind"]
                    bounds = f", {_range_text(f.metadata)}" if kind in ("int", "float") else ""
                    problems.append(f"missing key {section}.{f.name} ({kind}{bounds})")
                    ok = False
                continue
            value, problem = _CHECKERS[f.metadata["kind"]](f"{section}.{f.name}", raw[f.name], f.metadata)
            if problem:
                problems.append(problem)
                ok = False
            else:
                values[f.name] = value
        known = {f.name for f in fields(cls)}
        problems += [f"unknown key {section}.{key}" for key in raw if key not in known]
        if ok:
            parsed[section] = cls(**values)
    chip, quant = parsed.get("chip"), parsed.get("quantization")
    if chip is not None:
        rows, cols = chip.mesh
        if rows * cols < chip.cores:
            problems.append(f"key chip.mesh {list(chip.mesh)} has fewer positions than chip.cores = {chip.cores}")
        elif rows * cols > MAX_MESH_SLOTS:
            problems.append(f"key chip.mesh {list(chip.mesh)} has {rows * cols} positions; at most {MAX_MESH_SLOTS}")
    if quant is not None and quant.weight_exp_min > quant.weight_exp_max:
        problems.append(f"key quantization.weight_exp_min ({quant.weight_exp_min}) must be <= "
                        f"quantization.weight_exp_max ({quant.weight_exp_max})")
    return parsed, problems


def _canonical(parsed: dict[str, object]) -> dict:
    """The resolved content as plain TOML-like data (lists, not tuples; absent optional keys left out)."""
    out = {}
    for section in SECTIONS:
        values = {}
        for f in fields(parsed[section]):
            v = getattr(parsed[section], f.name)
            if v is not None:
                values[f.name] = list(v) if isinstance(v, tuple) else v
        out[section] = values
    return out


def _build(data: dict, origin: str) -> Target:
    parsed, problems = _parse(data)
    if problems:
        raise TargetError(problems=[Problem(f"malformed target: {p}", file=origin,
                                            fix="compare with targets/loihi2-sim.toml; docs/targets.md lists every "
                                                "key and its allowed range") for p in problems])
    return Target(info=parsed["target"], chip=parsed["chip"], core=parsed["core"],
                  synapse_encoding=parsed["synapse_encoding"], quantization=parsed["quantization"],
                  energy=parsed["energy"], time=parsed["time"], drc=parsed["drc"], path=origin,
                  data=_canonical(parsed))


# --------------------------------------------------------------------------- files and extends

def _read_toml(path: Path) -> dict:
    # One fix for every way the file can be unreadable: start again from a target that works.
    fix = f"pass a target name (`rsnn2chip targets` lists them) or a TOML file like those in {targets_dir()}"
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise TargetError("target file not found", file=str(path), fix=fix) from None
    except IsADirectoryError:
        raise TargetError("target path is a directory, not a .toml file", file=str(path), fix=fix) from None
    except UnicodeDecodeError as exc:
        raise TargetError(f"target file is not UTF-8 text ({exc.reason})", file=str(path),
                          where=f"byte {exc.start}", fix="save the file as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise TargetError(f"target file is not valid TOML: {exc}", file=str(path), allowed="TOML 1.0 (toml.io)",
                          fix="correct the place the message names; " + fix) from None
    except OSError as exc:
        raise TargetError(f"cannot read the target file ({exc.strerror or exc})", file=str(path), fix=fix) from None


def _merge(base: dict, override: dict) -> dict:
    """``base`` with every key of ``override`` replaced (one level of sections; lists replace wholesale)."""
    out = copy.deepcopy(base)
    for (section, key) in NOT_INHERITED:
        if isinstance(out.get(section), dict):
            out[section].pop(key, None)
    for section, values in override.items():
        if isinstance(values, dict) and isinstance(out.get(section), dict):
            out[section].update(copy.deepcopy(values))
        else:
            out[section] = copy.deepcopy(values)
    return out


def _resolve(data: dict, path: Path, chain: tuple[str, ...] = ()) -> dict:
    """``data`` with its ``extends`` chain applied."""
    head = data.get("target")
    if not isinstance(head, dict) or "extends" not in head:
        return data
    parent = head["extends"]
    if not isinstance(parent, str) or not parent:
        raise TargetError("key target.extends must name a target or a .toml path", file=str(path),
                          found=repr(parent), allowed=", ".join(available_targets()))
    try:
        parent_path = _find(parent, relative_to=path.parent)
    except TargetError as exc:  # _find knows the name, not which file asked for it
        for problem in exc.problems:
            problem.file, problem.where = str(path), "target.extends"
        raise TargetError(problems=exc.problems) from None
    key = str(parent_path.resolve())
    if key in chain or str(path.resolve()) == key:
        raise TargetError("target.extends forms a cycle", file=str(path),
                          found=" -> ".join([*chain, str(path.resolve()), key]),
                          fix="make one of these files stand alone")
    if len(chain) >= MAX_EXTENDS_DEPTH:
        raise TargetError(f"target.extends chain deeper than {MAX_EXTENDS_DEPTH}", file=str(path))
    base = _resolve(_read_toml(parent_path), parent_path, (*chain, str(path.resolve())))
    child = copy.deepcopy(data)
    child["target"].pop("extends")
    return _merge(base, child)


def _find(name_or_path: str, relative_to: Path | None = None) -> Path:
    if name_or_path.endswith(".toml") or os.sep in name_or_path:
        path = Path(name_or_path)
        return relative_to / path if relative_to is not None and not path.is_absolute() else path
    known = available_targets()
    if name_or_path not in known:
        raise TargetError("unknown target", found=name_or_path, allowed=", ".join(known) or "(none found)",
                          fix=f"pick one of the targets in {targets_dir()} or pass a path to a .toml file")
    return known[name_or_path]


def load_target_file(path: str | Path) -> Target:
    path = Path(path)
    return _build(_resolve(_read_toml(path), path), str(path))


def available_targets() -> dict[str, Path]:
    folder = targets_dir()
    found = {p.stem: p for p in sorted(folder.glob("*.toml"))}
    if not found and os.environ.get(TARGETS_ENV):
        # Set on purpose, so an empty list would only hide a typo in the path.
        what = "a directory without .toml files" if folder.is_dir() else "a file, not a directory" \
            if folder.exists() else "no such directory"
        raise TargetError(f"${TARGETS_ENV} does not name a folder of targets", file=str(folder),
                          where=f"${TARGETS_ENV}", found=what, allowed="a directory holding target .toml files",
                          fix=f"point ${TARGETS_ENV} at such a directory, or unset it to use the built-in targets")
    return found


def load_target(name_or_path: str) -> Target:
    """A target by name (a file in targets/) or by path to a TOML file."""
    return load_target_file(_find(name_or_path))


def target_from_dict(data: dict, origin: str) -> Target:
    """Rebuild a target stored inside an artifact (or built in code), validating it like a file.

    Artifacts embed the resolved content, so ``extends`` is only followed here
    for dicts that still carry it (looked up in ``targets/``).
    """
    if isinstance(data, dict):
        data = _resolve(data, targets_dir() / "<dict>")
    return _build(data, origin)
