"""Hardware targets are data: one TOML file per target in ``targets/``.

A user adds a target by writing a file there (or anywhere, passing its path
to ``--target``). This module only reads and validates those files.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from rsnn2chip.errors import TargetError

# section -> key -> type. Every section may also carry `source` and `uncertain`.
SCHEMA: dict[str, dict[str, type]] = {
    "target": {"name": str, "description": str, "simulator": str},
    "chip": {"cores": int, "chips": int, "mesh": list},
    "core": {"neurons": int, "synapse_memory_bits": int, "neuron_state_bits": int, "shared_memory": bool,
             "input_axons": int, "output_axons": int, "neuron_profiles": int, "threshold_profiles": int},
    "synapse_encoding": {"weight_bits": int, "index_bits": int, "delay_bits": int, "header_bits_per_axon": int},
    "quantization": {"weight_exp_min": int, "weight_exp_max": int},
    "energy": {"synaptic_op_pj": float, "neuron_update_pj": float, "neuron_spike_update_pj": float,
               "spike_in_tile_pj": float, "mesh_hop_pj": float},
    "time": {"synaptic_op_ns": float, "spike_in_tile_ns": float, "mesh_hop_ns": float, "neuron_update_ns": float},
}
OPTIONAL_KEYS = {"source", "uncertain"}
MAY_BE_NEGATIVE = {("quantization", "weight_exp_min"), ("quantization", "weight_exp_max")}


def targets_dir() -> Path:
    """``$RSNN2CHIP_TARGETS`` or the repository's ``targets/`` folder."""
    env = os.environ.get("RSNN2CHIP_TARGETS")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "targets"


@dataclass(frozen=True)
class Target:
    name: str
    data: dict  # the validated TOML content, section -> key -> value
    path: str

    def __getitem__(self, section: str) -> dict:
        return self.data[section]

    @property
    def core(self) -> dict:
        return self.data["core"]

    @property
    def total_cores(self) -> int:
        return self.data["chip"]["cores"] * self.data["chip"]["chips"]


def _check_type(value, expected: type) -> bool:
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def validate(data: dict, path: str) -> list[str]:
    """All problems with a target's content, each naming the key."""
    problems = []
    for section, keys in SCHEMA.items():
        if not isinstance(data.get(section), dict):
            problems.append(f"missing section [{section}]")
            continue
        for key, expected in keys.items():
            if key not in data[section]:
                problems.append(f"missing key {section}.{key} ({expected.__name__})")
            elif not _check_type(data[section][key], expected):
                problems.append(f"key {section}.{key} must be {expected.__name__}, found {data[section][key]!r}")
            elif expected in (int, float) and data[section][key] < 0 and (section, key) not in MAY_BE_NEGATIVE:
                problems.append(f"key {section}.{key} must be >= 0, found {data[section][key]!r}")
        for key in data[section]:
            if key not in keys and key not in OPTIONAL_KEYS:
                problems.append(f"unknown key {section}.{key}")
    chip = data.get("chip", {})
    mesh = chip.get("mesh")
    if isinstance(mesh, list) and (len(mesh) != 2 or any(not _check_type(m, int) for m in mesh)):
        problems.append(f"key chip.mesh must be [rows, cols], found {mesh!r}")
    elif isinstance(mesh, list) and _check_type(chip.get("cores"), int) and mesh[0] * mesh[1] < chip["cores"]:
        problems.append(f"key chip.mesh {mesh} has fewer positions than chip.cores = {chip['cores']}")
    return problems


def load_target_file(path: str | Path) -> Target:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise TargetError("target file not found", file=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise TargetError(f"target file is not valid TOML: {exc}", file=str(path)) from None
    problems = validate(data, str(path))
    if problems:
        raise TargetError(f"malformed target file: {'; '.join(problems)}", file=str(path),
                          fix="compare with targets/loihi2-sim.toml; docs/targets.md lists every key")
    return Target(data["target"]["name"], data, str(path))


def available_targets() -> dict[str, Path]:
    return {p.stem: p for p in sorted(targets_dir().glob("*.toml"))}


def load_target(name_or_path: str) -> Target:
    """A target by name (a file in targets/) or by path to a TOML file."""
    if name_or_path.endswith(".toml") or os.sep in name_or_path:
        return load_target_file(name_or_path)
    known = available_targets()
    if name_or_path not in known:
        raise TargetError("unknown target", found=name_or_path, allowed=", ".join(known) or "(none found)",
                          fix=f"pick one of the targets in {targets_dir()} or pass a path to a .toml file")
    return load_target_file(known[name_or_path])


def target_from_dict(data: dict, origin: str) -> Target:
    """Rebuild a target stored inside an artifact, validating it like a file."""
    problems = validate(data, origin)
    if problems:
        raise TargetError(f"malformed target: {'; '.join(problems)}", file=origin)
    return Target(data["target"]["name"], data, origin)
