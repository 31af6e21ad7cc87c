"""Feed-forward rate networks on static inputs: soft-LIF (to deploy as spiking LIF) and ReLU (to compare).

A :class:`RateNet` is a chain of dense layers ``z = W h + b``. In a ``softlif`` net every layer, the last
included, applies :class:`~rsnn2chip.softlif.rates.RateNeuron`, and the logits are
``logit_scale * h_last``: the class is the output neuron with the highest rate, which is what counting
output spikes on the chip reads. A ``relu`` net is the usual MLP (ReLU hidden layers, linear logits); it
is the accuracy a rate network of this size reaches without any neuron constraint.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rsnn2chip.seeds import stream_seed
from rsnn2chip.softlif.rates import RateNeuron, SoftLIFParams

ACTIVATIONS = ("softlif", "relu")


@dataclass
class ANNConfig:
    activation: str = "softlif"
    noise: float = 0.0          # sigma in Hz, on the rate where the neuron fires (softlif only)
    epochs: int = 60
    batch_size: int = 64
    # Chosen on the digits val split: soft-LIF weights must grow to several units before the rates
    # separate, and at 3e-3 Adam gets there too slowly (ReLU also did better at 1e-2).
    lr: float = 1e-2
    weight_decay: float = 1e-4
    seed: int = 0
    # Logit = logit_scale * amplitude * rate: with the defaults 100 Hz between two output neurons is
    # 5 nats. At 2 the net underfits digits; at 10 it separates classes at half the output rate, which
    # a short spike window cannot resolve.
    logit_scale: float = 5.0
    # Hidden layers start with bias 1 (at threshold): a soft-LIF layer of silent neurons has a tiny slope.
    init_bias: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)


class RateNet(nn.Module):
    def __init__(self, sizes: list[int], names: list[str], params: SoftLIFParams = SoftLIFParams(),
                 activation: str = "softlif", noise: float = 0.0, logit_scale: float = 5.0,
                 init_bias: float = 1.0):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, not {activation!r}")
        if len(names) != len(sizes) - 1:
            raise ValueError("one name per layer")
        self.sizes, self.names = list(sizes), list(names)
        self.params, self.activation, self.logit_scale = params, activation, float(logit_scale)
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.neuron = RateNeuron(params, noise)
        with torch.no_grad():
            for linear in self.linears:
                if activation == "softlif":
                    linear.bias.fill_(init_bias)

    def set_rate(self, kind: str, voltage_decay: float | None = None, dt: float | None = None) -> "RateNet":
        """Evaluate the same weights with another rate function (``softlif``, ``lif`` or ``loihi``)."""
        self.neuron.kind = kind
        self.neuron.loihi = (voltage_decay, dt)
        return self

    def forward(self, x: torch.Tensor, return_hidden: bool = False):
        h, hidden = x, []
        for i, linear in enumerate(self.linears):
            z = linear(h)
            last = i == len(self.linears) - 1
            if self.activation == "relu":
                h = z if last else F.relu(z)
            else:
                h = self.neuron(z)
            hidden.append(h)
        logits = h if self.activation == "relu" else self.logit_scale * h
        return (logits, hidden) if return_hidden else logits


def build(sizes: list[int], names: list[str], params: SoftLIFParams, cfg: ANNConfig) -> RateNet:
    torch.manual_seed(cfg.seed)
    return RateNet(sizes, names, params, cfg.activation, cfg.noise, cfg.logit_scale, cfg.init_bias)


@torch.no_grad()
def evaluate(net: RateNet, x: np.ndarray, y: np.ndarray, batch_size: int = 1024) -> dict:
    was = net.training
    net.eval()
    correct, loss = 0, 0.0
    preds = []
    for i in range(0, len(y), batch_size):
        xb = torch.as_tensor(x[i:i + batch_size], dtype=torch.float32)
        yb = torch.as_tensor(y[i:i + batch_size], dtype=torch.int64)
        logits = net(xb)
        loss += float(F.cross_entropy(logits, yb, reduction="sum"))
        pred = logits.argmax(dim=1)
        preds.append(pred.numpy())
        correct += int((pred == yb).sum())
    net.train(was)
    n = max(len(y), 1)
    return {"loss": loss / n, "accuracy": correct / n, "error": 1 - correct / n,
            "predictions": np.concatenate(preds) if preds else np.zeros(0, np.int64)}


def train(net: RateNet, x: np.ndarray, y: np.ndarray, cfg: ANNConfig, x_val=None, y_val=None,
          on_epoch=None) -> list[dict]:
    """Adam with a cosine schedule to lr/10; the batch order depends on (seed, epoch) only."""
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(cfg.epochs, 1), eta_min=cfg.lr / 10)
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.int64)
    history = []
    for epoch in range(1, cfg.epochs + 1):
        start = time.perf_counter()
        net.train()
        order = np.random.default_rng(stream_seed(cfg.seed, epoch)).permutation(len(y))
        noise_gen = torch.random.fork_rng()
        with noise_gen:
            torch.manual_seed(stream_seed(cfg.seed, epoch))
            loss_sum, correct = 0.0, 0
            for i in range(0, len(order), cfg.batch_size):
                idx = torch.as_tensor(order[i:i + cfg.batch_size])
                logits = net(xt[idx])
                loss = F.cross_entropy(logits, yt[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += float(loss.detach()) * len(idx)
                correct += int((logits.argmax(dim=1) == yt[idx]).sum())
        scheduler.step()
        row = {"epoch": epoch, "train_loss": loss_sum / len(y), "train_accuracy": correct / len(y)}
        if x_val is not None and len(y_val):
            stats = evaluate(net, x_val, y_val)
            row.update(val_loss=stats["loss"], val_accuracy=stats["accuracy"])
        row["seconds"] = time.perf_counter() - start
        history.append(row)
        if on_epoch:
            on_epoch(row)
    return history
