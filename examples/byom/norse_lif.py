"""Norse -> NIR -> Loihi: a recurrent Norse network deployed without rewriting it (docs/byom.md).

    python examples/byom/norse_lif.py --out build/byom/norse

A chain LIFRecurrentCell -> Linear -> LIFBoxCell written to NIR with
rsnn2chip.interop.norse (Norse's own exporter skips recurrent cells and writes a
CubaLIF input scale NIR's equations read differently), compiled for loihi2-sim,
and compared with Norse's own run.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import norse.torch as norse

import rsnn2chip  # noqa: F401
from rsnn2chip import artifact, backends
from rsnn2chip.compiler import compile_file
from rsnn2chip.interop import norse as interop
from rsnn2chip.targets import load_target


def build(n_in: int = 20, hidden: int = 30, n_out: int = 10) -> norse.SequentialState:
    torch.manual_seed(0)
    net = norse.SequentialState(norse.LIFRecurrentCell(n_in, hidden), torch.nn.Linear(hidden, n_out),
                                norse.LIFBoxCell())
    with torch.no_grad():  # stands in for training: enough drive to fire at dt = 1 ms
        net[0].input_weights.mul_(4)
        net[1].weight.mul_(10)
    return net


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="build/byom/norse")
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    net = build()
    x = (np.random.default_rng(0).random((args.steps, 20)) < 0.3).astype(np.float32)

    theirs = interop.run(net, x)                          # Norse's own simulation
    interop.write(net, 20, out / "net.nir")               # dt = 1e-3, Norse's default, goes into the file
    art = compile_file(out / "net.nir", load_target("loihi2-sim"))
    artifact.save(art, out / "net.r2c")

    output = art.graph.graph["output"]
    offset = art.graph.graph["nir"]["time_offset"][output]
    steps = args.steps + offset
    ref = backends.run(art, x, steps)
    lava = backends.run(art, x, steps, backend="lava")
    ours = ref.spikes[output][0, offset:]
    print(f"output spikes: Norse {int(theirs.sum())}, compiled {int(ours.sum())} "
          f"(read {offset} steps later); per-step agreement {(ours == theirs.astype(bool)).mean():.4f}")
    print("Lava == reference:", backends.first_divergence(ref, lava) is None)
    print(f"wrote {out / 'net.nir'} and {out / 'net.r2c'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
