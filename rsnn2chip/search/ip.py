"""Step 2 of HRMAS: SpiKL-IP intrinsic plasticity on our CUBA-LIF neurons.

SpiKL-IP (Zhang & Li, Front. Neurosci. 13:31, 2019) adapts each neuron's leak resistance R and membrane
time constant tau_m so that its output firing rate y follows an exponential distribution of mean
mu = 1/beta. It is the stochastic gradient of KL(p(y) || beta exp(-beta y)) = -H(y) + beta E[y] + const,
derived for an LIF neuron ``tau_m dV/dt = -V + R I`` whose rate under a constant drive is
``y = 1 / (t_ref + tau_m ln(RI / (RI - V_th)))``. Solving that for the supra-threshold drive gives
``X = RI - V_th = V_th / (exp((1/y - t_ref) / tau_m) - 1)``, and the per-sample updates are::

    dR     = eta_r   * (2 y tau_m V_th - X - V_th - beta tau_m V_th y^2) / (R X)
    dtau_m = eta_tau * (2 t_ref y - 1 - beta (t_ref y^2 - y)) / tau_m
    (y <= silent_rate: dR = +0.1 eta_r, dtau_m = -0.1 eta_tau, pushing a silent neuron toward firing)

**Mapping onto our neuron** (time in simulation steps). Our neuron integrates
``v[t] = (1 - dv) v[t-1] + u[t]`` with ``u = g * I_syn`` (g = ``input_gain``, dv = ``voltage_decay``).
Under a constant drive u it relaxes as ``v(n) = (u / dv) (1 - (1 - dv)^n)``; the paper's neuron relaxes as
``v(t) = R I (1 - exp(-t / tau_m))``. The two agree exactly when::

    tau_m = -1 / ln(1 - dv)        dv = 1 - exp(-1 / tau_m)
    R     = g / dv                 g  = R * dv            (with I = I_syn, the synaptic current)

so the steady state R I is the same, and the rate formula (hence X) holds for our neuron up to the
rounding of the inter-spike interval to whole steps. Note what this mapping implies: tau_m and R are not
separately ``voltage_decay`` and ``input_gain``. Identifying R with g directly would reverse the sign of the
tau_m rule on our neuron (a longer tau_m at fixed g *raises* the steady-state voltage, while in the
paper's neuron at fixed R it only slows the approach), so the rule would push rates the wrong way.

**What is ours** (the paper is silent or its setting differs): ``t_ref`` = 0.5 steps (our neuron has no
refractory period; its interval is the continuous time to threshold rounded up to whole steps, +0.5 on
average); y is each sample's rate over its readout window rather than an exponential trace (sequences are
12..184 steps, too short for a trace to settle), and the update is the mean over the batch's samples,
applied once per batch; each per-sample update is clipped to ``max_rel_step`` of the current value
(near silence X underflows and the R update is unbounded); tau_m and g are clipped to ``tau_range`` and
``gain_range``. All constants are in :class:`rsnn2chip.search.space.IPConfig`.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from rsnn2chip import distributed
from rsnn2chip.search.space import IPConfig
from rsnn2chip.train import window_mask


# --------------------------------------------------------------------------- the parameter mapping

def to_intrinsic(gain: torch.Tensor, voltage_decay: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Our (input_gain, voltage_decay) -> the paper's (R, tau_m in steps)."""
    dv = voltage_decay.double().clamp(1e-9, 1 - 1e-9)
    return gain.double() / dv, -1.0 / torch.log1p(-dv)


def from_intrinsic(r: torch.Tensor, tau: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's (R, tau_m in steps) -> our (input_gain, voltage_decay)."""
    dv = -torch.expm1(-1.0 / tau.double())
    return r.double() * dv, dv


# --------------------------------------------------------------------------- rates and the rule

def sample_rates(spikes: torch.Tensor, lengths: torch.Tensor, depth: int) -> torch.Tensor:
    """``(B, T, N)`` spikes -> ``(B, N)`` spikes per step inside each sample's readout window."""
    mask = window_mask(spikes.shape[1], lengths, depth).to(spikes.dtype)
    return (spikes * mask[:, :, None]).sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp_min(1)


def spikl_ip_deltas(y: torch.Tensor, r: torch.Tensor, tau: torch.Tensor, v_th: torch.Tensor,
                    cfg: IPConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample SpiKL-IP updates ``(B, N)`` of R and tau_m for rates ``y`` ``(B, N)``, clipped (module doc)."""
    y, r, tau, v = y.double(), r.double()[None], tau.double()[None], v_th.double()[None]
    beta, t_ref = 1.0 / cfg.target_rate, cfg.t_ref
    active = y > cfg.silent_rate
    y_safe = torch.where(active, y, torch.ones_like(y))
    exponent = ((1.0 / y_safe - t_ref) / tau).clamp(1e-6, 700.0)
    x = v / torch.expm1(exponent)
    d_r = cfg.eta_r * (2 * y * tau * v - x - v - beta * tau * v * y ** 2) / (r * x)
    d_tau = cfg.eta_tau * (2 * t_ref * y - 1 - beta * (t_ref * y ** 2 - y)) / tau
    d_r = torch.where(active, d_r, torch.full_like(d_r, 0.1 * cfg.eta_r))
    d_tau = torch.where(active, d_tau, torch.full_like(d_tau, -0.1 * cfg.eta_tau))
    limit_r, limit_tau = cfg.max_rel_step * r, cfg.max_rel_step * tau
    return torch.maximum(torch.minimum(d_r, limit_r), -limit_r), torch.maximum(torch.minimum(d_tau, limit_tau),
                                                                                -limit_tau)


@torch.no_grad()
def apply_update(neuron, mean_d_r: torch.Tensor, mean_d_tau: torch.Tensor, cfg: IPConfig) -> None:
    """Move one layer's (R, tau_m) by the batch-mean update; write back voltage_decay and input_gain only."""
    r, tau = to_intrinsic(neuron.input_gain, neuron.voltage_decay)
    tau = (tau + mean_d_tau.to(tau)).clamp(*cfg.tau_range)
    r = (r + mean_d_r.to(r)).clamp_min(1e-9)
    gain, dv = from_intrinsic(r, tau)
    gain = gain.clamp(*cfg.gain_range)
    neuron.input_gain.copy_(gain.to(neuron.input_gain.dtype))
    neuron.voltage_decay.data.copy_(dv.to(neuron.voltage_decay.dtype))


# --------------------------------------------------------------------------- statistics

def ks_exponential(samples: np.ndarray, mean: float) -> float:
    """Kolmogorov-Smirnov distance between the samples' empirical CDF and Exp(mean).

    Ties (many rates are exactly 0) are handled by evaluating both sides of every step of the empirical CDF.
    """
    x = np.sort(np.asarray(samples, np.float64).ravel())
    n = x.size
    if n == 0:
        return float("nan")
    cdf = -np.expm1(-x / mean)
    i = np.arange(1, n + 1)
    return float(max(np.max(i / n - cdf), np.max(cdf - (i - 1) / n)))


def w1_exponential(samples: np.ndarray, mean: float) -> float:
    """Wasserstein-1 distance (spikes per step) between the samples and Exp(mean), by quantile coupling.

    The main distance we report: unlike KS it is not dominated by the mass of exactly-silent samples
    (an exponential has none, but a rate measured over a 14-step window is 0 whenever the true rate is
    below 1/14), and it is in the units of the rates themselves.
    """
    x = np.sort(np.asarray(samples, np.float64).ravel())
    n = x.size
    if n == 0:
        return float("nan")
    quantiles = -mean * np.log1p(-(np.arange(n) + 0.5) / n)
    return float(np.mean(np.abs(x - quantiles)))


def rate_stats(rates: torch.Tensor, target_rate: float) -> dict:
    """Summary of a ``(B, N)`` rate sample: how far the layer is from the target distribution."""
    y = rates.detach().double().cpu().numpy()
    return {"mean": float(y.mean()), "sd": float(y.std()), "silent": float((y == 0).mean()),
            "w1": w1_exponential(y, target_rate), "ks": ks_exponential(y, target_rate)}


# --------------------------------------------------------------------------- the step

def ip_layer_names(model, cfg: IPConfig) -> list[str]:
    """Which layers IP adapts: every layer but the output, whose rates the supervised readout sets."""
    names = list(model.layers)[:-1]
    if cfg.layers == "searched":
        searched = set(model.searched()) if hasattr(model, "searched") else set()
        names = [n for n in names if n in searched]
    return names


@torch.no_grad()
def ip_step(model, data, batch_indices: list[np.ndarray], cfg: IPConfig, depth: int,
            env: distributed.DistEnv | None = None) -> dict:
    """Run IP over a window of training batches, one update per batch; return each layer's rate statistics.

    Only ``voltage_decay`` and ``input_gain`` of the IP layers change; weights and alphas are read, never
    written. ``batch_indices`` are this rank's shards; updates are averaged over every rank's samples, so all
    ranks apply the same change.
    """
    env = env or distributed.DistEnv()
    names = ip_layer_names(model, cfg)
    was_training = model.training
    model.eval()
    stats: dict[str, dict] = {}
    for index in batch_indices:
        batch = data.make_batch(index, extra_steps=depth) if len(index) else None
        outputs = model(batch.x.to(env.device)) if batch is not None else {}
        for name in names:
            layer = model.layers[name]
            neuron = layer.neuron
            size = neuron.size
            sums = torch.zeros(2 * size + 1, dtype=torch.float64, device=env.device if env.backend == "nccl" else "cpu")
            if batch is not None:
                y = sample_rates(outputs[name], batch.lengths.to(env.device), depth)
                r, tau = to_intrinsic(neuron.input_gain, neuron.voltage_decay)
                d_r, d_tau = spikl_ip_deltas(y, r, tau, neuron.threshold, cfg)
                sums[:size], sums[size:2 * size], sums[-1] = d_r.sum(0).to(sums), d_tau.sum(0).to(sums), len(index)
                stats[name] = rate_stats(y, cfg.target_rate)
            sums = distributed.all_sum_tensor(sums, env)
            count = float(sums[-1])
            if count:
                apply_update(neuron, sums[:size] / count, sums[size:2 * size] / count, cfg)
    model.train(was_training)
    for name in names:
        neuron = model.layers[name].neuron
        stats.setdefault(name, {}).update(voltage_decay=float(neuron.voltage_decay.mean()),
                                          input_gain=float(neuron.input_gain.mean()))
    return stats


def mean_of(records: list[dict]) -> dict:
    """Key-wise mean of a list of flat numeric dicts (log aggregation); NaN-free keys only."""
    keys = records[0].keys() if records else []
    out = {}
    for key in keys:
        values = [r[key] for r in records if key in r and r[key] is not None and not math.isnan(r[key])]
        out[key] = float(np.mean(values)) if values else None
    return out
