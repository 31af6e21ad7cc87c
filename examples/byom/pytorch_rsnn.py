"""Plain PyTorch -> rsnn2chip's RSNN -> Loihi: move your own weights into an RSNN (docs/byom.md).

    python examples/byom/pytorch_rsnn.py --out build/byom/pytorch

A hand-written PyTorch RSNN (``MySNN`` below stands for yours) is not a file
rsnn2chip can read: ``torch.save(model)`` pickles code, and a bare state_dict
does not say what the weights mean. Describe the architecture as an RSNN arch,
copy the weights in, check the two forward passes agree, and save a checkpoint:
from there it is ``rsnn2chip compile model.pt``. The copy is exact when your
model steps like Loihi's CUBA-LIF (``rsnn2chip.neurons.cuba_lif.CubaLIF``, one-step synaptic
delay); otherwise the RSNN's forward pass is what deploys, so fine-tune the RSNN
(``rsnn2chip.train``) after copying the weights in.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import rsnn2chip  # noqa: F401
from rsnn2chip import artifact, backends
from rsnn2chip.checkpoint import save_checkpoint
from rsnn2chip.compiler import compile_file
from rsnn2chip.nn import RSNN
from rsnn2chip.targets import load_target


class MySNN(torch.nn.Module):
    """Your model: one recurrent CUBA-LIF layer and a LIF readout, written directly in PyTorch."""

    def __init__(self, n_in=16, hidden=32, n_out=4, current_decay=0.5, voltage_decay=0.2, threshold=1.0):
        super().__init__()
        self.w_in = torch.nn.Linear(n_in, hidden, bias=False)
        self.w_rec = torch.nn.Linear(hidden, hidden, bias=False)
        self.w_out = torch.nn.Linear(hidden, n_out, bias=False)
        self.du, self.dv, self.vth = current_decay, voltage_decay, threshold

    def lif(self, u, v, current):
        u = u * (1 - self.du) + current
        v = v * (1 - self.dv) + u
        spikes = (v > self.vth).float()
        return u, v * (1 - spikes), spikes

    def forward(self, x):  # (B, T, n_in) -> output spikes (B, T, n_out)
        batch, steps, _ = x.shape
        h = x.new_zeros(batch, self.w_rec.in_features)
        o = x.new_zeros(batch, self.w_out.out_features)
        x_prev = x.new_zeros(batch, x.shape[2])
        uh = vh = h.clone()
        uo = vo = o.clone()
        outputs = []
        for t in range(steps):
            # Loihi's order: every synapse delivers what was sent one step earlier.
            h_new = self.lif(uh, vh, self.w_in(x_prev) + self.w_rec(h))
            o_new = self.lif(uo, vo, self.w_out(h))
            (uh, vh, h), (uo, vo, o) = h_new, o_new
            x_prev = x[:, t]
            outputs.append(o)
        return torch.stack(outputs, 1)


def as_rsnn(mine: MySNN) -> RSNN:
    neuron = {"current_decay": mine.du, "voltage_decay": mine.dv, "threshold": mine.vth, "bias": 0.0}
    arch = {"format": "rsnn2chip.arch", "version": 1, "name": "my_snn", "input_size": mine.w_in.in_features,
            "readout": "spike_count", "layers": [
                {"type": "lif_recurrent", "name": "hidden", "size": mine.w_rec.in_features, "neuron": dict(neuron)},
                {"type": "lif_dense", "name": "output", "size": mine.w_out.out_features, "neuron": dict(neuron)}]}
    model = RSNN(arch)
    with torch.no_grad():
        model.layers["hidden"].w_in.copy_(mine.w_in.weight)
        model.layers["hidden"].w_rec.copy_(mine.w_rec.weight)
        model.layers["output"].w_in.copy_(mine.w_out.weight)
    return model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="build/byom/pytorch")
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    mine = MySNN()
    with torch.no_grad():  # stands in for training
        mine.w_in.weight.mul_(3)
        mine.w_out.weight.mul_(3)
    x = torch.from_numpy((np.random.default_rng(0).random((1, args.steps, 16)) < 0.3).astype(np.float32))
    model = as_rsnn(mine)
    with torch.no_grad():
        theirs = mine(x)
        ours = model(x)["output"]
    print(f"your model vs RSNN: {int(theirs.sum())} vs {int(ours.sum())} output spikes, "
          f"identical: {torch.equal(theirs, ours)}")
    save_checkpoint(out / "model.pt", model, {"note": "ported from MySNN"})
    art = compile_file(out / "model.pt", load_target("loihi2-sim"))
    artifact.save(art, out / "net.r2c")
    ref = backends.run(art, x.numpy().astype(np.int8), args.steps)
    lava = backends.run(art, x.numpy().astype(np.int8), args.steps, backend="lava")
    print(f"compiled: {int(ref.spikes['output'].sum())} output spikes; Lava == reference: "
          f"{backends.first_divergence(ref, lava) is None}")
    print(f"wrote {out / 'model.pt'} and {out / 'net.r2c'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
