"""Rate network -> spiking RSNN of ``lif_dense`` layers, so the result is an ordinary checkpoint.

Mapping (docs/softlif.md derives it). One chip step is ``dt`` seconds of the rate model's time. A LIF
neuron ``tau_RC dv/dt = -v + j`` with ``j`` held for a step integrates exactly to
``v[t] = a v[t-1] + (1 - a) j`` with ``a = exp(-dt / tau_RC)``, so

* ``voltage_decay = 1 - exp(-dt / tau_RC)``, rounded to Loihi's 1/4096 grid here so the float RSNN is
  the network the quantizer will build;
* ``threshold = theta`` (1 by default) and the drive per step must average ``theta * voltage_decay * j``;
* ``current_decay = 1 - exp(-dt / tau_syn)`` (1 = no synaptic filter, the default), and because ``u``
  settles at ``I / current_decay`` every weight is multiplied by ``current_decay``;
* an input pixel of intensity ``x`` spikes ``input_rate * x`` times per step on average, so input
  weights are ``W * current_decay * voltage_decay * theta / input_rate``;
* a hidden neuron that the rate net gives activation ``h = amplitude * r`` spikes ``r * dt`` times per
  step, so later weights are ``W * current_decay * voltage_decay * theta * amplitude / dt``;
* a bias ``b`` enters ``v`` directly (Loihi adds it every step, not through ``u``): ``b * voltage_decay *
  theta``.

``tau_ref`` has no counterpart: Loihi's LIF has no refractory period. It only enters the rate function the
network was trained with; see :func:`rsnn2chip.softlif.rates.loihi_rate` for what the chip does instead.
Every factor is recorded in the checkpoint's ``meta["softlif"]``, so :func:`rate_net_from_checkpoint`
recovers the trained rate network exactly (up to float32 rounding).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from rsnn2chip import fixedpoint as fx
from rsnn2chip.errors import InputError
from rsnn2chip.nn.network import ARCH_FORMAT, ARCH_VERSION, RSNN
from rsnn2chip.softlif.ann import RateNet
from rsnn2chip.softlif.rates import SoftLIFParams

META_KEY = "softlif"


@dataclass(frozen=True)
class Deployment:
    dt: float = 0.001          # seconds of rate-model time per chip step
    tau_syn: float = 0.0       # synaptic time constant in seconds; 0 = none (current_decay = 1)
    input_rate: float = 1.0    # input spikes per step at intensity 1 (the encoding's max_rate)
    threshold: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)


def on_decay_grid(value: float) -> float:
    return round(value * fx.DECAY_UNITY) / fx.DECAY_UNITY


def constants(params: SoftLIFParams, dep: Deployment) -> dict:
    if not (dep.dt > 0 and params.tau_rc > 0 and dep.tau_syn >= 0 and 0 < dep.input_rate <= 1
            and dep.threshold > 0):
        raise InputError("bad soft-LIF deployment constants", found={**params.to_dict(), **dep.to_dict()},
                         allowed="dt > 0, tau_rc > 0, tau_syn >= 0, 0 < input_rate <= 1, threshold > 0")
    exact_vdecay = -math.expm1(-dep.dt / params.tau_rc)
    vdecay = on_decay_grid(exact_vdecay)
    cdecay = 1.0 if dep.tau_syn == 0 else on_decay_grid(-math.expm1(-dep.dt / dep.tau_syn))
    if vdecay <= 0 or cdecay <= 0:
        raise InputError("dt is too short for these time constants: a decay rounds to 0 on Loihi's 1/4096 grid",
                         found={"dt": dep.dt, "voltage_decay": exact_vdecay}, fix="use a longer dt")
    theta = dep.threshold
    return {"voltage_decay": vdecay, "voltage_decay_exact": exact_vdecay, "current_decay": cdecay,
            "threshold": theta,
            "input_weight_factor": cdecay * vdecay * theta / dep.input_rate,
            "hidden_weight_factor": cdecay * vdecay * theta * params.amplitude / dep.dt,
            "bias_factor": vdecay * theta}


def weight_factors(c: dict, n_layers: int) -> list[float]:
    return [c["input_weight_factor"]] + [c["hidden_weight_factor"]] * (n_layers - 1)


def to_rsnn(net: RateNet, dep: Deployment = Deployment(), name: str = "softlif") -> tuple[RSNN, dict]:
    """The spiking network and the ``meta["softlif"]`` entry that documents (and inverts) the conversion."""
    if net.activation != "softlif":
        raise InputError("only soft-LIF rate networks convert to spiking LIF", found=net.activation)
    c = constants(net.params, dep)
    factors = weight_factors(c, len(net.linears))
    layers, state = [], {}
    for layer_name, size, linear, factor in zip(net.names, net.sizes[1:], net.linears, factors):
        bias = (linear.bias.detach().double() * c["bias_factor"]).float()
        layers.append({"type": "lif_dense", "name": layer_name, "size": size,
                       "neuron": {"current_decay": c["current_decay"], "voltage_decay": c["voltage_decay"],
                                  "threshold": c["threshold"], "bias": [float(b) for b in bias]}})
        state[layer_name] = ((linear.weight.detach().double() * factor).float(), bias)
    arch = {"format": ARCH_FORMAT, "version": ARCH_VERSION, "name": name, "input_size": net.sizes[0],
            "layers": layers, "readout": "spike_count"}
    model = RSNN(arch)
    with torch.no_grad():
        for layer_name, (weight, bias) in state.items():
            model.layers[layer_name].w_in.copy_(weight)
            model.layers[layer_name].neuron.bias.copy_(bias)
    meta = {"params": net.params.to_dict(), "deployment": dep.to_dict(), "constants": c,
            "logit_scale": net.logit_scale, "noise_hz": net.neuron.noise,
            "doc": "spiking deployment of a soft-LIF rate network; weights = rate weights * factor "
                   "(input_weight_factor for the first layer, hidden_weight_factor after), bias = rate bias * "
                   "bias_factor; see docs/softlif.md"}
    return model, meta


def rate_net_from_rsnn(model: RSNN, meta: dict) -> RateNet:
    """Undo :func:`to_rsnn`: the rate network a converted checkpoint was made from."""
    params = SoftLIFParams(**meta["params"])
    layers = list(model.layers.values())
    sizes = [model.input_size] + [layer.size for layer in layers]
    net = RateNet(sizes, [layer.name for layer in layers], params, "softlif", meta.get("noise_hz", 0.0),
                  meta["logit_scale"])
    c = meta["constants"]
    with torch.no_grad():
        for layer, linear, factor in zip(layers, net.linears, weight_factors(c, len(layers))):
            linear.weight.copy_((layer.w_in.double() / factor).float())
            linear.bias.copy_((layer.neuron.bias.double() / c["bias_factor"]).float())
    return net.eval()


def rate_net_from_checkpoint(path) -> RateNet:
    from rsnn2chip.checkpoint import load_checked
    from pathlib import Path
    payload, model = load_checked(Path(path))
    meta = payload["meta"].get(META_KEY)
    if not meta:
        raise InputError("not a converted soft-LIF checkpoint (no meta['softlif'])", file=str(path),
                         fix="train it with `rsnn2chip train --neuron softlif`")
    return rate_net_from_rsnn(model, meta)
