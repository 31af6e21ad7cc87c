"""lava-dl slayer -> netx HDF5 -> rsnn2chip: a slayer RSNN mapped, checked and reported (docs/byom.md).

    python examples/byom/slayer_netx.py --out build/byom/slayer

slayer writes its CUBA blocks with ``export_hdf5`` (``rsnn2chip.interop.slayer.export_netx`` gathers
them into one netx file); rsnn2chip reads the netx file
without re-quantizing it (the integers are netx's own), maps it to cores, runs it,
and compares every layer's spikes with ``netx.hdf5.Network`` in Lava.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import rsnn2chip  # noqa: F401  (must precede the lava imports)
from rsnn2chip import artifact, backends
from rsnn2chip.backends.watchdog import run_with_watchdog
from rsnn2chip.compiler import compile_file
from rsnn2chip.interop.slayer import export_netx
from rsnn2chip.targets import load_target

from lava.lib.dl import slayer  # noqa: E402

NEURON = {"threshold": 1.25, "current_decay": 0.25, "voltage_decay": 0.03}


def write_netx(path: Path, n_in: int = 6) -> Path:
    """A slayer RSNN (stands in for a trained one): Recurrent(6 -> 10) -> Dense(10 -> 4)."""
    torch.manual_seed(0)
    blocks = [slayer.block.cuba.Recurrent(NEURON, n_in, 10, weight_scale=2),
              slayer.block.cuba.Dense(NEURON, 10, 4, weight_scale=2)]
    return export_netx(blocks, path, n_in)


def run_netx(path: str, x: np.ndarray, steps: int) -> list[np.ndarray]:
    """lava-dl's own runner: RingBuffer -> netx.hdf5.Network -> one sink per layer."""
    from lava.lib.dl.netx import hdf5
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc import io

    net = hdf5.Network(net_config=path)
    source = io.source.RingBuffer(data=np.ascontiguousarray(x.T, dtype=np.int32))
    source.s_out.connect(net.inp)
    sinks = []
    for layer in net.layers:
        sinks.append(io.sink.RingBuffer(shape=layer.out.shape, buffer=steps))
        layer.out.connect(sinks[-1].a_in)
    net.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
    try:
        return [s.data.get().T.astype(bool) for s in sinks]
    finally:
        net.stop()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="build/byom/slayer")
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = write_netx(out / "net.net")
    art = compile_file(path, load_target("loihi2-sim"))   # `rsnn2chip compile net.net` does the same
    artifact.save(art, out / "net.r2c")
    x = (np.random.default_rng(0).random((args.steps, 6)) < 0.4).astype(np.int8)
    ours = backends.run(art, x, args.steps)
    theirs = run_with_watchdog(run_netx, (str(path), x, args.steps), 180, "netx run")
    for i, spikes in enumerate(theirs):
        same = np.array_equal(ours.spikes[f"layer{i}"][0], spikes)
        print(f"layer{i}: {int(spikes.sum())} spikes in netx, identical in rsnn2chip: {same}")
    print(f"wrote {path} and {out / 'net.r2c'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
