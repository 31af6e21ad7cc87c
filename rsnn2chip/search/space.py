"""The search-space file (``SPACE.yaml``): which layers are searched, and every constant of the search.

Schema (version 1)::

    format: rsnn2chip.search-space
    version: 1
    name: str
    input_size: int | auto          # auto = the dataset's channel count
    readout: spike_count
    layers:                         # chained like an RSNN arch
      - type: scml_search           # a searched SC-ML layer
        name: hidden
        size: 48
        neuron: {current_decay, voltage_decay, threshold, bias}
        motif_sizes: [2, 4, 8, 16]  # candidates; each must divide size
        init_scale: 0.5             # optional (this is the default), as in every layer type
      - type: unstructured_search   # the no-motif control: DARTS over the type of every (post, pre) pair
        ...
      - type: lif_dense             # any arch layer type: kept fixed, only its weights are trained
        name: output
        size: auto                  # = number of classes
        neuron: {...}
    search:   {see SearchConfig}    # step 1 (DARTS) constants
    ip:       {see IPConfig}        # step 2 (SpiKL-IP) constants; the mapping is in ip.py
    retrain:  {see RetrainConfig}   # the discrete network's training

Everything but ``layers`` has defaults, so a space may hold only the layers. ``rsnn2chip search``
overrides ``search.seed`` with ``--seed``.
"""
from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from rsnn2chip.errors import InputError, Problem
from rsnn2chip.preflight import check_arch_fits
from rsnn2chip.safeio import load_yaml
from rsnn2chip.nn.layers import (DEFAULT_INIT_SCALE, LAYER_NAME, RESERVED_NAMES, check_layer_cfg, check_neuron,
                                  is_positive_int)
from rsnn2chip.readout import READOUTS
from rsnn2chip.argtypes import MAX_LEARNING_RATE
from rsnn2chip.seeds import SEED_RANGE

SPACE_FORMAT = "rsnn2chip.search-space"
SPACE_VERSION = 1
SEARCH_LAYER_TYPES = ("scml_search", "unstructured_search")
DEFAULT_MOTIF_SIZES = (2, 4, 8, 16)  # hrmas.md [ours]
RETRAIN_INITS = ("reinit", "inherit")
SPACE_KEYS = ("format", "version", "name", "input_size", "readout", "layers", "search", "ip", "retrain")
SEARCH_LAYER_KEYS = {"scml_search": ("type", "name", "size", "neuron", "motif_sizes", "init_scale"),
                     "unstructured_search": ("type", "name", "size", "neuron", "init_scale")}


@dataclass
class SearchConfig:
    """Step 1: first-order DARTS. Weights on the train split, alphas on the val split, alternately."""

    epochs: int = 4
    # At least this many weight steps, whatever epochs says: small data sets get more epochs.
    min_steps: int = 300
    batch_size: int = 64
    seed: int = 0
    lr: float = 3e-3                 # Adam on weights, cosine-annealed to lr/10 like `rsnn2chip train`
    # Adam on alphas with DARTS's betas (0.5, 0.999) and weight decay, so alphas of choices whose
    # gradient is pure noise drift back toward uniform instead of wandering.
    alpha_lr: float = 1e-2
    alpha_betas: tuple[float, float] = (0.5, 0.999)
    alpha_weight_decay: float = 1e-3
    # Weight steps before the first alpha step: early gradients on alpha reflect random weights, and
    # an architecture chosen on them is noise (DARTS's warm-up).
    warmup_steps: int = 20
    grad_clip: float = 1.0           # on weights and alphas separately, as in training; 0 = no clipping
    alpha_init_sd: float = 1e-3      # breaks ties between candidates reproducibly (from the seed)
    # Softmax temperature of every choice, annealed geometrically from the first alpha step to the last:
    # a cold mixture is close to its own argmax, so what the supernet learned survives discretisation.
    # With the entropy term the search ends decided: on FSDD at 128 neurons (5 seeds) type entropy 0.011 and a
    # 0.04-point discretisation drop, against 0.95 and 3.3 points without (docs/hrmas.md, bench/hrmas.py).
    temperature_start: float = 1.0
    temperature_end: float = 0.05
    # Weight of the choices' mean normalised entropy in the alpha loss: pushes each softmax to one-hot.
    entropy_weight: float = 0.1
    log_every: int = 10              # steps between alpha/firing-rate log records
    probe_every: int = 10            # steps between stability probes (before/after an alpha step, after IP)
    probe_samples: int = 128         # fixed val samples the probe measures accuracy and rates on
    checkpoint_every: int = 50       # steps between resumable checkpoints (also at each epoch's end)
    eval_batch_size: int = 256


@dataclass
class IPConfig:
    """Step 2: SpiKL-IP on every neuron's ``voltage_decay`` and ``input_gain`` (docs/hrmas.md)."""

    # Off: it moved accuracy by less than one test recording (FSDD, 128 neurons, 5 seeds: +0.13 pp ± 0.34) and
    # lengthens the search (docs/hrmas.md, bench/hrmas.py's ablation).
    enabled: bool = False
    window: int = 1                  # training batches (forward only) of IP after each step-1 update
    target_rate: float = 0.05        # mu = 1 / beta, mean of the target exponential, spikes per step
    eta_r: float = 0.05              # learning rate of R (the paper's eta1)
    eta_tau: float = 0.05            # learning rate of tau_m, in steps (the paper's eta2)
    t_ref: float = 0.5               # steps; our neuron has no refractory period, see ip.py
    silent_rate: float = 0.01        # y at or below this counts as silent: push the neuron toward firing
    # Per-sample updates are clipped to this fraction of the current R or tau_m before averaging over
    # the batch: near silence X underflows and one sample's update would otherwise be unbounded.
    max_rel_step: float = 0.1
    tau_range: tuple[float, float] = (1.0, 50.0)   # clip tau_m (steps); voltage_decay 0.63 .. 0.0198
    gain_range: tuple[float, float] = (0.05, 20.0)  # clip input_gain
    layers: str = "hidden"           # "hidden": every layer but the output; "searched": searched layers only


@dataclass
class RetrainConfig:
    """The discretised network, trained from re-initialised weights with `rsnn2chip train`'s recipe."""

    # None: the training recipe's budget in optimizer steps with early stopping (rsnn2chip/train.py).
    epochs: int | None = None
    batch_size: int = 32
    lr: float = 3e-3
    # Keep the intrinsic parameters (voltage_decay, input_gain) that IP adapted during the search
    # instead of the space's initial values.
    keep_intrinsic: bool = False
    # Weights the discrete network starts from: "reinit" (fresh, as the paper) or "inherit" (the supernet's
    # weights, each kept synapse with the magnitude of its chosen type; a warm start).
    init: str = "reinit"


@dataclass
class Space:
    name: str
    input_size: int | str
    readout: str
    layers: list[dict]
    search: SearchConfig = field(default_factory=SearchConfig)
    ip: IPConfig = field(default_factory=IPConfig)
    retrain: RetrainConfig = field(default_factory=RetrainConfig)

    def to_dict(self) -> dict:
        return {"format": SPACE_FORMAT, "version": SPACE_VERSION, "name": self.name, "input_size": self.input_size,
                "readout": self.readout, "layers": copy.deepcopy(self.layers), "search": _plain(asdict(self.search)),
                "ip": _plain(asdict(self.ip)), "retrain": _plain(asdict(self.retrain))}

    def searched_layers(self) -> list[dict]:
        return [cfg for cfg in self.layers if cfg["type"] in SEARCH_LAYER_TYPES]

    def resolved(self, n_channels: int, n_classes: int) -> "Space":
        """``input_size: auto`` and a last-layer ``size: auto`` filled from the dataset (as for an arch)."""
        from rsnn2chip.train import resolve_arch
        pseudo = resolve_arch({"input_size": self.input_size, "layers": copy.deepcopy(self.layers)},
                              n_channels, n_classes)
        space = copy.deepcopy(self)
        space.input_size, space.layers = pseudo["input_size"], pseudo["layers"]
        problems = check_layers(space.layers)
        if problems:
            raise InputError(problems=problems)
        return space


def _plain(value):
    """Tuples as lists, so the config survives JSON and the safe checkpoint loader."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# --------------------------------------------------------------------------- validation

def check_search_layer(cfg: dict, index: int) -> list[Problem]:
    where = f"layer {index} ({cfg.get('name')!r})"
    problems = []
    unknown = sorted(set(cfg) - set(SEARCH_LAYER_KEYS[cfg["type"]]), key=str)
    if unknown:
        problems.append(Problem(f"unknown keys for {cfg['type']}", where=where, found=unknown,
                                allowed=list(SEARCH_LAYER_KEYS[cfg["type"]])))
    name = cfg.get("name")
    if not isinstance(name, str) or not LAYER_NAME.match(name) or name in RESERVED_NAMES:
        problems.append(Problem("bad layer name", where=where, found=repr(name)))
    size = cfg.get("size")
    if not is_positive_int(size):
        problems.append(Problem("a searched layer's size must be a positive integer", where=where,
                                found=repr(size), fix="only the last layer may be 'auto'"))
    problems += check_neuron(where, cfg.get("neuron"), size)
    scale = cfg.get("init_scale", DEFAULT_INIT_SCALE)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
        problems.append(Problem("init_scale must be a number > 0", where=where, found=repr(scale)))
    if cfg["type"] == "scml_search":
        sizes = cfg.get("motif_sizes", list(DEFAULT_MOTIF_SIZES))
        if not isinstance(sizes, list) or not sizes or not all(is_positive_int(k) for k in sizes) \
                or len(set(sizes)) != len(sizes):
            problems.append(Problem("motif_sizes must be a non-empty list of distinct positive integers",
                                    where=where, found=repr(sizes), allowed=f"e.g. {list(DEFAULT_MOTIF_SIZES)}"))
        elif is_positive_int(size):
            bad = [k for k in sizes if size % k]
            if bad:
                divisors = [d for d in range(1, size + 1) if size % d == 0]
                problems.append(Problem("every candidate motif size must divide the layer size", where=where,
                                        found=f"size {size}, motif sizes {bad} do not divide it",
                                        allowed=f"divisors of {size}: {divisors}",
                                        fix="drop those candidates or change size (e.g. to a multiple of 16)"))
    return problems


def check_layers(layers) -> list[Problem]:
    if not isinstance(layers, list) or not layers:
        return [Problem("a search space needs a non-empty list 'layers'", where="space.layers", found=repr(layers))]
    problems, names = [], set()
    for index, cfg in enumerate(layers):
        if not isinstance(cfg, dict):
            problems.append(Problem("a layer must be a mapping", where=f"layer {index}"))
            continue
        if cfg.get("type") in SEARCH_LAYER_TYPES:
            problems += check_search_layer(cfg, index)
        elif cfg.get("size") != "auto":
            problems += check_layer_cfg(cfg, index)
        if cfg.get("name") in names:
            problems.append(Problem("duplicate layer name", where=f"layer {index}", found=cfg.get("name")))
        names.add(cfg.get("name"))
    if not problems and not any(cfg["type"] in SEARCH_LAYER_TYPES for cfg in layers):
        problems.append(Problem("nothing to search: no layer of a search type", where="space.layers",
                                allowed=list(SEARCH_LAYER_TYPES), fix="make a recurrent layer 'scml_search'"))
    return problems


def _section(cls, raw, where: str) -> tuple[object, list[Problem]]:
    if raw is None:
        return cls(), []
    if not isinstance(raw, dict):
        return cls(), [Problem(f"'{where}' must be a mapping", where=f"space.{where}", found=type(raw).__name__)]
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(raw) - set(known), key=str)
    if unknown:
        return cls(), [Problem(f"unknown keys in '{where}'", where=f"space.{where}", found=unknown,
                               allowed=sorted(known), fix="check the spelling")]
    defaults, values, problems = cls(), {}, []
    for key, value in raw.items():
        default = getattr(defaults, key)
        ok, value, allowed = _accepts(default, value)
        if not ok:
            problems.append(Problem(f"bad value for {where}.{key}", where=f"space.{where}.{key}", found=repr(value),
                                    allowed=f"{allowed} (default {default!r})",
                                    fix="see examples/search/space_fsdd.yaml"))
        values[key] = value
    if problems:
        return cls(), problems
    return cls(**values), []


def _accepts(default, value) -> tuple[bool, object, str]:
    """``(ok, value as stored, what is allowed)`` for a key of a space section whose default is ``default``:
    the default's type says what the key takes."""
    if isinstance(default, tuple):
        ok = isinstance(value, (list, tuple)) and len(value) == len(default) and all(_numeric(v) for v in value)
        return ok, tuple(float(v) for v in value) if ok else value, f"a list of {len(default)} finite numbers"
    if isinstance(default, bool):
        return isinstance(value, bool), value, "true or false"
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0, value, "an integer >= 0"
    if isinstance(default, float):
        ok = _numeric(value) and value >= 0
        return ok, float(value) if ok else value, "a finite number >= 0"
    if default is None:  # an optional count: None means "the training recipe decides"
        ok = value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1)
        return ok, value, "an integer >= 1, or null (the training recipe decides)"
    return isinstance(value, type(default)), value, f"a {type(default).__name__}"


def _numeric(value) -> bool:
    """A finite int or float (YAML's .inf and .nan are floats too, and would poison the search)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def space_from_dict(raw, file: str | None = None) -> Space:
    if not isinstance(raw, dict):
        raise InputError("a search space must be a mapping", file=file, found=type(raw).__name__,
                         fix="see examples/search/space_fsdd.yaml")
    problems = []
    if raw.get("format", SPACE_FORMAT) != SPACE_FORMAT:
        problems.append(Problem("not a search space", where="space.format", found=repr(raw.get("format")),
                                allowed=repr(SPACE_FORMAT)))
    if raw.get("version", SPACE_VERSION) != SPACE_VERSION:
        problems.append(Problem("unsupported search-space version", where="space.version",
                                found=repr(raw.get("version")), allowed=SPACE_VERSION))
    unknown = sorted(set(raw) - set(SPACE_KEYS), key=str)
    if unknown:
        problems.append(Problem("unknown search-space keys", where="space", found=unknown, allowed=list(SPACE_KEYS)))
    readout = raw.get("readout", "spike_count")
    if not isinstance(readout, str) or readout not in READOUTS:
        problems.append(Problem("unknown readout", where="space.readout", found=repr(readout), allowed=list(READOUTS)))
    input_size = raw.get("input_size", "auto")
    if input_size != "auto" and not is_positive_int(input_size):
        problems.append(Problem("input_size must be a positive integer or auto", where="space.input_size",
                                found=repr(input_size)))
    layers = raw.get("layers")
    problems += check_layers(layers)
    sections = {}
    for key, cls in (("search", SearchConfig), ("ip", IPConfig), ("retrain", RetrainConfig)):
        sections[key], more = _section(cls, raw.get(key), key)
        problems += more
    ip = sections["ip"]
    if ip.layers not in ("hidden", "searched"):
        problems.append(Problem("ip.layers must be 'hidden' or 'searched'", where="space.ip.layers",
                                found=repr(ip.layers)))
    search = sections["search"]
    for key in ("temperature_start", "temperature_end"):
        if not getattr(search, key) > 0:
            problems.append(Problem(f"search.{key} must be > 0", where=f"space.search.{key}",
                                    found=getattr(search, key), fix="1.0 is a plain softmax"))
    # Annealing cools the mixture toward its own argmax (docs/hrmas.md); equal ends keep one temperature.
    if 0 < search.temperature_start < search.temperature_end:
        problems.append(Problem("search.temperature_end must not exceed temperature_start: the temperature is "
                                "annealed down so the mixture ends close to the network discretisation keeps",
                                where="space.search.temperature_end",
                                found=f"{search.temperature_start:g} -> {search.temperature_end:g}",
                                fix="swap them, or set both equal for a constant temperature"))
    if not all(0 <= beta < 1 for beta in search.alpha_betas):
        problems.append(Problem("search.alpha_betas are Adam's decay rates, each in [0, 1)",
                                where="space.search.alpha_betas", found=list(search.alpha_betas),
                                allowed="0 <= beta < 1", fix="DARTS uses [0.5, 0.999]"))
    for section, key in (("search", "lr"), ("search", "alpha_lr"), ("retrain", "lr")):
        value = getattr(sections[section], key)
        if not 0 < value <= MAX_LEARNING_RATE:  # 0 would train nothing and report it as a result
            problems.append(Problem(f"{section}.{key} is a learning rate: it must lie in (0, {MAX_LEARNING_RATE:g}]",
                                    where=f"space.{section}.{key}", found=value,
                                    allowed=f"0 < {key} <= {MAX_LEARNING_RATE:g}, as --lr",
                                    fix=f"the default is {getattr(type(sections[section])(), key):g}"))
    if not SEED_RANGE[0] <= search.seed <= SEED_RANGE[1]:
        problems.append(Problem("search.seed is out of range", where="space.search.seed", found=search.seed,
                                allowed=f"an integer in {SEED_RANGE[0]}..{SEED_RANGE[1]} (as --seed)",
                                fix="use a smaller seed, e.g. 0"))
    for key in ("tau_range", "gain_range"):
        low, high = getattr(ip, key)
        if not 0 < low < high:
            problems.append(Problem(f"ip.{key} must be [low, high] with 0 < low < high", where=f"space.ip.{key}",
                                    found=[low, high], allowed="a non-empty range of positive values",
                                    fix=f"the default is {list(getattr(IPConfig(), key))}"))
    if sections["retrain"].init not in RETRAIN_INITS:
        problems.append(Problem("unknown retrain.init", where="space.retrain.init", found=repr(sections["retrain"].init),
                                allowed=list(RETRAIN_INITS)))
    if not 0 < ip.target_rate < 1:
        problems.append(Problem("ip.target_rate must lie in (0, 1) spikes per step", where="space.ip.target_rate",
                                found=ip.target_rate))
    for section, key in (("search", "epochs"), ("search", "batch_size"), ("retrain", "epochs"),
                         ("retrain", "batch_size")):
        value = getattr(sections[section], key)
        if value is not None and value < 1:
            problems.append(Problem(f"{key} must be >= 1", where=f"space.{section}.{key}", found=value))
    for key in ("log_every", "checkpoint_every", "probe_samples"):
        if getattr(sections["search"], key) < 1:
            problems.append(Problem(f"search.{key} must be >= 1", where=f"space.search.{key}",
                                    found=getattr(sections["search"], key)))
    if sections["ip"].window < 1 and sections["ip"].enabled:
        problems.append(Problem("ip.window must be >= 1 (or set ip.enabled: false)", where="space.ip.window"))
    if problems:
        for problem in problems:
            problem.file = file
        raise InputError(problems=problems)
    layers = copy.deepcopy(layers)
    for cfg in layers:
        if cfg["type"] == "scml_search":
            cfg.setdefault("motif_sizes", list(DEFAULT_MOTIF_SIZES))
        if cfg["type"] in SEARCH_LAYER_TYPES:
            cfg.setdefault("init_scale", DEFAULT_INIT_SCALE)
    return Space(name=str(raw.get("name") or "searched"), input_size=input_size, readout=readout, layers=layers,
                 search=sections["search"], ip=sections["ip"], retrain=sections["retrain"])


def load_space(path: str | Path) -> Space:
    raw = load_yaml(path, "search-space file", fix="see examples/search/space_fsdd.yaml")
    space = space_from_dict(raw, str(path))
    check_arch_fits({"input_size": space.input_size, "layers": space.layers}, str(path))
    return space
