"""A NIR graph written by hand -> Loihi (docs/byom.md).

    python examples/byom/handmade_nir.py --out build/byom/nir

Any tool that writes NIR works the same way. The graph: Input(4) -> Affine ->
CubaLIF(8) with a recurrent Linear -> Linear -> LIF(2) -> Output. NIR nodes are
continuous-time; rsnn2chip discretises them with forward Euler at the graph's
``metadata["dt"]`` (docs/interop.md) and runs them with Loihi's one-step delays,
so the float IR (``rsnn2chip.backends.float_ir``) is the yardstick for the
compiled network.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import nir
import numpy as np

import rsnn2chip  # noqa: F401
from rsnn2chip import artifact, backends
from rsnn2chip.backends import float_ir
from rsnn2chip.compiler import compile_file
from rsnn2chip.frontends import load_network
from rsnn2chip.targets import load_target

DT = 1e-3


def graph() -> nir.NIRGraph:
    rng = np.random.default_rng(0)
    hidden, out = 8, 2
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([4])),
            "w_in": nir.Affine(weight=rng.normal(1.5, 0.5, (hidden, 4)), bias=np.zeros(hidden)),
            "lif": nir.CubaLIF(tau_syn=np.full(hidden, 2e-3), tau_mem=np.full(hidden, 5e-3), r=np.full(hidden, 5.0),
                               v_leak=np.zeros(hidden), v_threshold=np.ones(hidden), w_in=np.full(hidden, 2.0)),
            "w_rec": nir.Linear(weight=rng.normal(0, 0.3, (hidden, hidden))),
            "w_out": nir.Linear(weight=rng.normal(1.0, 0.3, (out, hidden))),
            "readout": nir.LIF(tau=np.full(out, 4e-3), r=np.full(out, 4.0), v_leak=np.zeros(out),
                               v_threshold=np.ones(out)),
            "output": nir.Output(output_type=np.array([out])),
        },
        edges=[("input", "w_in"), ("w_in", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "w_out"),
               ("w_out", "readout"), ("readout", "output")],
        metadata={"dt": DT})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="build/byom/nir")
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    nir.write(out / "net.nir", graph())
    art = compile_file(out / "net.nir", load_target("loihi2-sim"))
    artifact.save(art, out / "net.r2c")
    x = (np.random.default_rng(1).random((args.steps, 4)) < 0.3).astype(np.int8)
    float_spikes, _ = float_ir.simulate(load_network(out / "net.nir"), x)
    ref = backends.run(art, x, args.steps)
    lava = backends.run(art, x, args.steps, backend="lava")
    for pop in ("lif", "readout"):
        print(f"{pop}: float IR {int(float_spikes[pop].sum())} spikes, compiled {int(ref.spikes[pop].sum())}, "
              f"per-step agreement {(float_spikes[pop] == ref.spikes[pop]).mean():.4f}")
    print("Lava == reference:", backends.first_divergence(ref, lava) is None)
    print(f"wrote {out / 'net.nir'} and {out / 'net.r2c'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
