"""snnTorch -> NIR -> Loihi: a recurrent snnTorch network deployed without rewriting it (docs/byom.md).

    python examples/byom/snntorch_rleaky.py --out build/byom/snntorch

Builds Linear -> RLeaky -> Linear -> Leaky with reset to zero and reset_delay=False
(the conventions Loihi has; anything else is warned by name), writes it to NIR with
rsnn2chip.interop.snntorch, compiles it for loihi2-sim, and compares the output
spikes of snnTorch's own run, the compiled network on the reference backend and
the same network in Lava.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import snntorch as snn

import rsnn2chip  # noqa: F401  (before lava: installs the Python 3.11 import fix)
from rsnn2chip import artifact, backends
from rsnn2chip.compiler import compile_file
from rsnn2chip.interop import snntorch as interop
from rsnn2chip.targets import load_target


def build(n_in: int = 20, hidden: int = 30, n_out: int = 10) -> torch.nn.Sequential:
    torch.manual_seed(0)
    loihi = dict(reset_mechanism="zero", reset_delay=False, init_hidden=True)
    net = torch.nn.Sequential(
        torch.nn.Linear(n_in, hidden),
        snn.RLeaky(beta=torch.full((hidden,), 0.9), threshold=torch.ones(hidden), linear_features=hidden, **loihi),
        torch.nn.Linear(hidden, n_out),
        snn.Leaky(beta=torch.full((n_out,), 0.8), threshold=torch.ones(n_out), output=True, **loihi))
    with torch.no_grad():  # stands in for training: enough drive to fire
        net[0].weight.mul_(3)
        net[2].weight.mul_(2)
    return net


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="build/byom/snntorch")
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    net = build()
    x = (np.random.default_rng(0).random((args.steps, 20)) < 0.3).astype(np.float32)

    theirs = interop.run(net, x)                          # snnTorch's own simulation
    interop.write(net, x[0], out / "net.nir")             # sample: one step, no batch axis
    art = compile_file(out / "net.nir", load_target("loihi2-sim"))
    artifact.save(art, out / "net.r2c")

    graph = art.graph
    output = graph.graph["output"]
    offset = graph.graph["nir"]["time_offset"][output]   # one step per weight layer on chip
    steps = args.steps + offset
    ref = backends.run(art, x, steps)
    lava = backends.run(art, x, steps, backend="lava")
    ours = ref.spikes[output][0, offset:]
    print(f"output spikes: snnTorch {int(theirs.sum())}, compiled {int(ours.sum())} "
          f"(read {offset} steps later); per-step agreement {(ours == theirs.astype(bool)).mean():.4f}")
    print("Lava == reference:", backends.first_divergence(ref, lava) is None)
    print(f"wrote {out / 'net.nir'} and {out / 'net.r2c'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
