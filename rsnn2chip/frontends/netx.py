"""Frontend for lava-dl netx HDF5 files (``.net``), as slayer's ``export_hdf5`` writes them.

A netx file already holds Loihi's integer parameters: integer weights (one
implicit exponent per layer, chosen by netx when it loads the file), and
neuron registers ``iDecay``, ``vDecay``, ``vThMant``. Importing it must not
re-quantize anything, so :func:`load` computes the fixed-point values exactly
as ``lava.lib.dl.netx.hdf5.Network`` would hand them to Lava's ``LIF`` and
``Dense`` and stores them as pre-quantized ``LoihiLIF`` / ``WeightQuant``,
which the quantize pass keeps (see :data:`PREQUANTIZED`). The float
parameters beside them are slayer's float model of the same layer.

Supported layers: ``input``, ``dense`` and ``dense_rec`` with ``CUBA``/``LOIHI``
neurons; everything else is refused naming the layer index and type. See
docs/interop.md for what is exact and the one timing offset an input layer adds.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import networkx as nx
import numpy as np

from rsnn2chip import fixedpoint as fx
from rsnn2chip import ir
from rsnn2chip.errors import CheckpointError, ModelError, Problem, about_file
from rsnn2chip.frontends import HDF5_READ_ERRORS, check_hdf5, hdf5_matches
from rsnn2chip.neurons.base import param_array
from rsnn2chip.neurons.cuba_lif import CubaLIF, LoihiLIF
from rsnn2chip.passes.quantize import PREQUANTIZED, quantize_neuron, quantize_weights

NAME = "lava-dl netx HDF5 (.net)"
INPUT_NAME = "input"
# slayer's float model runs u and v in units of 1/4096 of the integer state
# (its weight scale 64 times Lava's 6-bit shift of a_in), so this state scale
# makes the imported float parameters equal slayer's float parameters.
STATE_SCALE = 4096.0
# netx hard-codes the bias exponent of every CUBA layer.
NETX_BIAS_EXP = 6
NEURON_TYPES = ("CUBA", "LOIHI")
SUPPORTED_LAYERS = ("input", "dense", "dense_rec")
# Lava's Dense process keeps at most 8 weight bits (Loihi's synapse width).
MAX_WEIGHT_BITS = 8
# netx hands weights and biases to Lava as integers (8-bit weights, 13-bit bias mantissas); a magnitude
# beyond this cannot be meant, and beyond int64 NumPy's conversion wraps it to -2**63.
NETX_INT_LIMIT = 1 << 31


# --------------------------------------------------------------------------- sniff

def sniff(path: str | Path) -> bool:
    """HDF5 signature, then a top-level ``layer`` group; reads structure only."""
    import h5py
    return hdf5_matches(path, lambda f: isinstance(f.get("layer"), h5py.Group))


# --------------------------------------------------------------------------- netx's arithmetic

def decode_str(value) -> str:
    """netx strings are stored as a (1,) fixed-length array or as a variable-length scalar."""
    value = np.asarray(value)
    item = value.ravel()[0] if value.ndim else value[()]
    return item.decode("ascii") if isinstance(item, bytes) else str(item)


def netx_int(values) -> np.ndarray:
    """netx reads weights and biases with ``.astype(int)``: truncation toward zero, as here."""
    return np.asarray(values).astype(np.int64)



def _trailing_zero_bits(w: np.ndarray) -> int:
    # netx.utils.optimize_weight_bits: the largest n <= 8 with every weight a multiple of 2**n.
    for n in range(MAX_WEIGHT_BITS, 0, -1):
        if not np.any(w % (1 << n)):
            return n
    return 0


def netx_layer_weights(matrices: list[np.ndarray], where: str) -> tuple[list[np.ndarray], int, list[str]]:
    """The integer weights Lava's ``Dense`` processes use for one netx layer, and their exponent.

    Mirrors ``netx.utils.optimize_weight_bits`` on the layer's input and
    recurrent weights side by side (one shared exponent), followed by what
    Lava's bit-accurate ``Dense`` does to each matrix on its first step
    (``clip_weights`` and ``truncate_weights`` with its own sign mode).
    Returns ``(effective matrices, weight_exp, notes)``: ``Dense`` adds
    ``floor(sum(effective[:, spiking]) * 2**weight_exp)`` to ``a_in``.
    """
    widths = [m.shape[1] for m in matrices]
    w = np.hstack(matrices).astype(np.int64)
    notes = []
    if not np.any(w):
        return [np.zeros_like(m, dtype=np.int64) for m in matrices], 0, notes
    hi, lo = int(w.max()), int(w.min())
    if (hi > 254 and lo < 0) or (lo < -256 and hi > 0):
        notes.append(f"{where}: netx clips mixed-sign weights {lo}..{hi} to -256..254")
        w = np.clip(w, -256, 254)
        hi, lo = int(w.max()), int(w.min())
    # netx's own sign test (strict max < 0), which decides its exponent;
    # Lava's Dense later decides clipping per matrix with its own test.
    signed = not (hi < 0 or lo >= 0)
    with np.errstate(divide="ignore"):
        if signed:
            scale = min(127 / hi if hi > 0 else math.inf, -128 / lo)
        elif hi < 0:
            scale = -256 / lo
        else:
            scale = 255 / hi
    scale_bits = math.floor(math.log2(scale)) + int(signed)
    if scale_bits < 0:
        raise ModelError("weights exceed the 8-bit range netx can load", where=where, resource="weight",
                         found=f"{lo}..{hi}", allowed="-256..254 (mixed sign), 0..255 or -256..0",
                         fix="re-export the network with slayer's 8-bit weight quantization (quantize_8bit)")
    num_weight_bits = MAX_WEIGHT_BITS - scale_bits - (_trailing_zero_bits(w) - int(signed))
    if num_weight_bits > MAX_WEIGHT_BITS:
        # netx's simulator would keep a 9th bit that neither Loihi's 8-bit
        # synapse nor our backends have (mixed-sign weights are even there).
        odd = np.abs(w[(w % 2) != 0])
        raise ModelError("odd mixed-sign weights this large need 9 weight bits", where=where, resource="weight bits",
                         found=f"odd weights up to {int(odd.max())} with weights {lo}..{hi}",
                         allowed="even mixed-sign weights, or |weight| <= 127",
                         fix="quantize weights in steps of 2 (slayer's quantize_8bit does)")
    shifted = np.left_shift(w, scale_bits)
    effective, start = [], 0
    for width in widths:
        part = shifted[:, start:start + width]
        start += width
        effective.append(_lava_dense_weights(part, num_weight_bits))
    return effective, -scale_bits, notes


def _lava_dense_weights(w: np.ndarray, num_weight_bits: int) -> np.ndarray:
    """``clip_weights(w, sign, 8)`` then ``truncate_weights(w, sign, num_weight_bits)``, as Lava's Dense does."""
    sign = fx.sign_mode_of(w)
    magnitude = -w if sign == "inhibitory" else w.copy()
    mixed = int(sign == "mixed")
    magnitude = np.clip(magnitude, -256 * mixed, 255)
    drop = MAX_WEIGHT_BITS - num_weight_bits + mixed
    magnitude = np.left_shift(np.right_shift(magnitude, drop), drop)
    return -magnitude if sign == "inhibitory" else magnitude


# --------------------------------------------------------------------------- neurons

def _scalar(group, key, default=None):
    return group[key][()] if key in group else default


def read_neuron(group, where: str, problems: list[Problem]) -> LoihiLIF | None:
    """netx's ``get_neuron_params`` for CUBA neurons, with everything it cannot carry refused."""
    if group is None:
        problems.append(Problem("layer has no neuron group", where=where, resource="neuron",
                                found="none (netx would run it as a non-spiking integrator with vThMant 2**17)",
                                allowed=f"a neuron group of type {' or '.join(NEURON_TYPES)}",
                                fix="export the layer with dynamics (a spiking CUBA neuron)"))
        return None
    ntype = decode_str(group["type"]) if "type" in group else None
    if ntype not in NEURON_TYPES:
        problems.append(Problem("unsupported neuron type", where=where, resource="neuron type", found=ntype,
                                allowed=" or ".join(NEURON_TYPES),
                                fix="rsnn2chip deploys CUBA-LIF neurons only (no sigma-delta, resonate-and-fire)"))
        return None
    n_before = len(problems)
    if bool(np.any(_scalar(group, "gradedSpike", False))) or int(np.max(_scalar(group, "messageBits", 0))) > 0:
        problems.append(Problem("graded spikes are not supported", where=where, resource="spike payload",
                                found="gradedSpike/messageBits set", allowed="binary spikes",
                                fix="export the layer with graded_spike=False"))
    ref = np.asarray(_scalar(group, "refDelay", 1))
    if np.any(ref > 1):
        # Lava's fixed-point LIF has no refractory period; netx drops refDelay silently.
        problems.append(Problem("refractory period cannot be represented", where=where, resource="refDelay",
                                found=int(ref.max()), allowed="<= 1 (no refractory period)",
                                fix="train without a refractory period (slayer's CUBA neuron uses refDelay 1)"))
    params = {}
    ranges = {"iDecay": (0, fx.DECAY_UNITY), "vDecay": fx.DV_RANGE, "vThMant": (1, fx.VTH_RANGE[1])}
    for key, (lo, hi) in ranges.items():
        if key not in group:
            problems.append(Problem(f"neuron parameter {key} missing", where=where, resource=key))
            continue
        value = np.atleast_1d(np.asarray(group[key][()], dtype=np.float64)).ravel()
        bad = (value != np.round(value)) | (value < lo) | (value > hi)
        if bad.any():
            problems.append(Problem(f"neuron parameter {key} out of range", where=where, resource=key,
                                    found=value[bad][0], allowed=f"integers {lo}..{hi}"))
        params[key] = value.astype(np.int64)
    if len(problems) > n_before:
        return None
    return LoihiLIF(du=params["iDecay"] - 1, dv=params["vDecay"], vth=params["vThMant"],
                    bias_mant=np.zeros(1, np.int64), bias_exp=np.full(1, NETX_BIAS_EXP))


def float_neuron(fixed: LoihiLIF) -> CubaLIF:
    """slayer's float view of the registers (threshold vThMant/64, decays out of 4096)."""
    return CubaLIF(current_decay=(fixed.du + 1) / fx.DECAY_UNITY, voltage_decay=fixed.dv / fx.DECAY_UNITY,
                   threshold=fixed.vth * (1 << fx.VTH_SHIFT) / STATE_SCALE,
                   bias=fx.effective_bias(fixed.bias_mant, fixed.bias_exp) / STATE_SCALE)


def prequantized_population(name: str, size: int, fixed: LoihiLIF) -> ir.Population:
    neuron = float_neuron(fixed)
    # The float parameters are exact images of the registers, so this reports zero loss.
    _, losses = quantize_neuron(neuron, STATE_SCALE)
    return ir.Population(name, size, layer=name, neuron=neuron, fixed=fixed, state_scale=STATE_SCALE,
                         quant_stats={"state_scale": STATE_SCALE, "params": losses, PREQUANTIZED: "netx"})


def prequantized_projection(pre: str, post: str, effective: np.ndarray, weight_exp: int) -> ir.Projection:
    weight = effective * 2.0 ** weight_exp * (1 << fx.ACT_SHIFT) / STATE_SCALE
    quant = quantize_weights(weight, STATE_SCALE, (weight_exp, weight_exp))
    if not np.array_equal(quant.mantissa.toarray(), effective):
        raise AssertionError(f"internal: projection {pre}->{post} does not reproduce netx's weights")
    quant.stats[PREQUANTIZED] = "netx"
    return ir.Projection(pre, post, weight, delay=1, quant=quant)


# --------------------------------------------------------------------------- layers

class _Reader:
    """Walks the layers in order; each layer type has its reader in :data:`LAYER_READERS`."""

    def __init__(self, path: Path):
        self.graph = ir.new_graph(path.stem)
        self.path = path
        self.prev: str | None = None  # population feeding the next layer
        self.prev_size: int | None = None
        self.problems: list[Problem] = []
        self.notes: list[str] = []
        self.time_offset = 0

    def where(self, index: int, ltype: str) -> str:
        return f"layer {index} ({ltype})"

    def ensure_input(self, size: int) -> None:
        if self.prev is None:
            ir.add_population(self.graph, ir.Population(INPUT_NAME, int(size), layer=INPUT_NAME))
            self.prev, self.prev_size = INPUT_NAME, int(size)

    def add_layer(self, index: int, ltype: str, group, incoming: dict[str, np.ndarray]) -> None:
        """A LIF population fed by ``incoming`` (pre name -> integer weights) plus its neuron and bias."""
        where = self.where(index, ltype)
        size = int(np.prod(group["shape"][()]))
        fixed = read_neuron(group.get("neuron"), where, self.problems)
        bias = self.read_bias(group, where, size)
        name = f"layer{index}"
        if fixed is None or bias is None or not self.shapes_ok(incoming, name, size, where) or self.problems:
            # Keep walking so every problem is reported at once, but build nothing on a refused layer.
            self.prev, self.prev_size = name, size
            return
        fixed.bias_mant = param_array(bias, np.int64)
        ir.add_population(self.graph, prequantized_population(name, size, fixed))
        pres = list(incoming)
        effective, weight_exp, notes = netx_layer_weights([incoming[p] for p in pres], where)
        self.notes += notes
        for pre, w in zip(pres, effective):
            if np.any(w):
                ir.add_projection(self.graph, prequantized_projection(pre, name, w, weight_exp))
        self.prev, self.prev_size = name, size

    def shapes_ok(self, incoming, name: str, size: int, where: str) -> bool:
        ok = True
        for pre, w in incoming.items():
            if w is None:  # refused when read
                ok = False
                continue
            recurrent = pre == name
            cols = size if recurrent else self.prev_size
            if w.shape != (size, cols):
                inputs = f"its own {cols} outputs" if recurrent else f"the {cols} outputs of the layer before ({pre})"
                self.problems.append(Problem("weight shape does not match the layer sizes", where=where,
                                             resource="weight_rec" if recurrent else "weight", found=w.shape,
                                             allowed=f"{(size, cols)}: {size} neurons x {inputs}"))
                ok = False
        return ok

    def read_bias(self, group, where: str, size: int) -> np.ndarray | None:
        if "bias" not in group:
            return np.zeros(1, np.int64)
        bias = self.integers(group, "bias", where)
        if bias is None:
            return None
        bias = bias.ravel()
        lo, hi = fx.BIAS_MANT_RANGE
        if bias.size not in (1, size):
            self.problems.append(Problem("bias length does not match the layer", where=where, resource="bias",
                                         found=f"{bias.size} values", allowed=f"1 or {size} (the layer has {size} "
                                                                              "neurons)"))
            return None
        if bias.min() < lo or bias.max() > hi:
            self.problems.append(Problem("bias cannot be represented", where=where, resource="bias",
                                         found=f"{bias.size} values in {bias.min()}..{bias.max()}",
                                         allowed=f"1 or {size} integers in {lo}..{hi} (bias_exp {NETX_BIAS_EXP})"))
            return None
        return bias

    def integers(self, group, key: str, where: str) -> np.ndarray | None:
        """A dataset as netx's ``.astype(int)`` reads it, once it holds real, finite numbers an integer can hold."""
        values = np.asarray(group[key][()])
        if values.dtype.kind not in "biuf":
            self.problems.append(Problem(f"{key} must hold real numbers", where=where, resource=key,
                                         found=str(values.dtype), allowed="float or integer values"))
            return None
        bad = ~np.isfinite(values) | (np.abs(values.astype(np.float64)) >= NETX_INT_LIMIT)
        if bad.any():
            self.problems.append(Problem(f"{key} holds values netx cannot convert to integers", where=where,
                                         resource=key, found=f"{values[bad].ravel()[0]!r} ({int(bad.sum())} of "
                                                                                      f"{values.size} values)",
                                         allowed=f"finite values of magnitude below {NETX_INT_LIMIT:,}",
                                         fix="export the network again from a model with finite, quantized "
                                             "parameters (slayer's quantize_8bit)"))
            return None
        return netx_int(values)

    def weights(self, group, key: str, rows: int, where: str) -> np.ndarray | None:
        w = self.integers(group, key, where)
        if w is None:
            return None
        if w.ndim > 2:
            # netx reshapes only a 1-d weight (to rows x inputs); Lava's Dense takes a matrix.
            self.problems.append(Problem(f"{key} of a dense layer must be a matrix", where=where, resource=key,
                                         found=f"shape {w.shape}", allowed=f"2-d ({rows}, inputs), or 1-d",
                                         fix="write the dense weights as an (outputs, inputs) matrix"))
            return None
        return w.reshape(rows, -1)


def _read_input(r: _Reader, index: int, group) -> None:
    size = int(np.prod(group["shape"][()]))
    if index != 0 or r.prev is not None:
        r.problems.append(Problem("an input layer must come first", where=r.where(index, "input"),
                                  fix="put the input layer at index 0"))
        return
    r.ensure_input(size)
    if "neuron" not in group:
        return  # netx only takes the input shape from it
    # netx runs the input layer as LIF neurons fed the raw spikes (a_in = 1,
    # no synapse): an identity projection carries them here, at the price of
    # Loihi's one-step synaptic delay (docs/interop.md). netx never applies
    # the layer's weight or bias, so neither do we.
    r.time_offset = 1
    r.add_layer(index, "input", group, {INPUT_NAME: np.eye(size, dtype=np.int64)})


def _read_dense(r: _Reader, index: int, group) -> None:
    size = int(np.prod(group["shape"][()]))
    w = r.weights(group, "weight", size, r.where(index, "dense"))
    r.ensure_input(w.shape[1] if w is not None else 0)
    r.add_layer(index, "dense", group, {r.prev: w})


def _read_dense_rec(r: _Reader, index: int, group) -> None:
    size = int(np.prod(group["shape"][()]))
    where = r.where(index, "dense_rec")
    w = r.weights(group, "weight", size, where)
    r.ensure_input(w.shape[1] if w is not None else 0)
    # Order matters: netx concatenates input then recurrent weights for its shared exponent.
    r.add_layer(index, "dense_rec", group, {r.prev: w, f"layer{index}": r.weights(group, "weight_rec", size, where)})


LAYER_READERS = {"input": _read_input, "dense": _read_dense, "dense_rec": _read_dense_rec}
WHY_UNSUPPORTED = {
    "conv": "convolutions are not in rsnn2chip's IR",
    "flatten": "only 1-d dense layers are supported",
    "dense_comp": "complex-valued (resonate-and-fire) layers are not supported",
    "pool": "pooling is not supported", "average": "averaging is not supported",
    "concat": "concatenation is not supported",
}


def _layer_problems(index: int, group) -> list[Problem]:
    """Structural refusals that need no reading of weights."""
    ltype = decode_str(group["type"]) if "type" in group else "?"
    where = f"layer {index} ({ltype})"
    if ltype not in LAYER_READERS:
        return [Problem("unsupported netx layer type", where=where, resource="layer type", found=ltype,
                        allowed=", ".join(SUPPORTED_LAYERS),
                        fix=WHY_UNSUPPORTED.get(ltype, "rebuild the network from dense and recurrent CUBA blocks"))]
    if "delay" in group:
        return [Problem("synaptic delays cannot be represented", where=where, resource="delay",
                        found="a 'delay' dataset (netx runs it with DelayDense)",
                        allowed="the fixed one-step delay of a plain Dense",
                        fix="export the block with delay=False")]
    if "weight/imag" in group or ("weight" in group and not hasattr(group["weight"], "shape")):
        return [Problem("complex weights are not supported", where=where, resource="weight")]
    return []


def load(path: str | Path) -> nx.DiGraph:
    path = Path(path)
    check_hdf5(path, "netx file")
    try:
        with about_file(path):  # netx_layer_weights' refusals know the layer, not the file
            reader = _read_layers(path)
    except HDF5_READ_ERRORS as exc:
        raise CheckpointError(f"cannot read netx file ({type(exc).__name__}: {exc})", file=str(path),
                              fix="export it again with netx.hdf5 or rsnn2chip export --format netx") from None
    if reader.problems:
        raise ModelError(problems=[_with_file(p, path) for p in reader.problems])
    if reader.prev == INPUT_NAME:
        raise ModelError("netx file has no spiking layer", file=str(path), fix="add a dense or dense_rec layer")
    for note in reader.notes:
        warnings.warn(note, stacklevel=2)
    g = reader.graph
    g.graph.update(output=reader.prev, source=str(path), source_format="netx",
                   netx={"time_offset": reader.time_offset, "notes": reader.notes})
    return g


def _read_layers(path: Path) -> _Reader:
    """Every layer of a netx file through its reader; h5py's errors on damaged data propagate."""
    import h5py

    with h5py.File(path, "r") as f:
        layers = f.get("layer")
        if not isinstance(layers, h5py.Group) or not len(layers):
            raise CheckpointError("not a netx file: no 'layer' group with layers", file=str(path), where="layer",
                                  fix="pass a .net file written by lava-dl's export_hdf5 or `rsnn2chip export`")
        keys = sorted(layers.keys(), key=lambda k: int(k) if k.isdigit() else -1)
        if keys != [str(i) for i in range(len(keys))]:
            raise CheckpointError("netx layers must be named 0, 1, 2, ...", file=str(path), where="layer",
                                  found=sorted(layers.keys()), allowed=[str(i) for i in range(len(keys))],
                                  fix=EXPORT_AGAIN)
        structural = [p for i, k in enumerate(keys) for p in _layer_problems(i, layers[k])]
        if structural:
            raise ModelError(problems=[_with_file(p, path) for p in structural])
        reader = _Reader(path)
        for i, key in enumerate(keys):
            group = layers[key]
            ltype = decode_str(group["type"])
            try:
                LAYER_READERS[ltype](reader, i, group)
            except KeyError as exc:  # h5py's message names the missing dataset
                reader.problems.append(Problem(f"layer is missing a dataset ({exc})", where=reader.where(i, ltype)))
                break
            except (ValueError, TypeError) as exc:  # NumPy's, on a dataset of the wrong shape or a string
                reader.problems.append(Problem(f"layer holds a dataset of the wrong shape or type ({exc})",
                                               where=reader.where(i, ltype),
                                               allowed="the datasets and shapes lava-dl's export_hdf5 writes"))
                break
    return reader


# What fixes any of these: the file is written by a tool, so the change belongs in the network it exported.
EXPORT_AGAIN = "export the network again with lava-dl's export_hdf5, first changing in the model what this names"


def _with_file(problem: Problem, path: Path) -> Problem:
    problem.file = str(path)
    problem.fix = problem.fix or EXPORT_AGAIN
    return problem
