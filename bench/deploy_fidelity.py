"""Deployment fidelity: test accuracy of one FSDD network from float model to Lava.

Stages, all through ``rsnn2chip eval --json`` (the same code users run):

* float      - the trained PyTorch model (model.pt, ``--backend float``)
* qat        - the same model in quantization-aware mode (``--backend qat``):
               its forward pass is the integer arithmetic the chip runs
* reference  - the compiled .r2c on the NumPy bit-exact simulator
* lava       - the compiled .r2c on Lava's fixed-point CPU simulator, on the
               first ``--lava-limit`` test samples (Lava builds a network per
               sample); the reference accuracy on the same subset is reported
               next to it

The QAT -> reference gap must be 0: QAT's forward spikes are bit for bit those
of the reference run of the compiled network (rsnn2chip/nn/qat.py), so any
non-zero gap is a bug. Likewise reference and Lava must agree on the subset.

    python bench/deploy_fidelity.py --model build/demo/model.pt   # reuse a trained model
    python bench/deploy_fidelity.py                              # train scml_fsdd.yaml, 12 epochs
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rsnn2chip.cli import main as cli_main  # noqa: E402


def rel(path: Path) -> Path:
    """``path`` relative to the repository when inside it, so the JSON does not name this machine."""
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def cli_json(argv: list[str]) -> dict:
    """Run ``rsnn2chip ARGV --json`` in-process and return its JSON."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = cli_main(argv + ["--json"])
    payload = json.loads(buf.getvalue()) if buf.getvalue().strip() else {}
    if code != 0:
        raise SystemExit(f"rsnn2chip {' '.join(argv)} failed ({code}): {payload}")
    return payload


def stage(name: str, argv: list[str]) -> dict:
    start = time.perf_counter()
    result = cli_json(argv)
    wall = time.perf_counter() - start
    print(f"  {name:<22} acc {result['accuracy']:.4f}  ({result['samples']} samples, {wall:.1f} s)", flush=True)
    return {"accuracy": result["accuracy"], "samples": result["samples"], "wall_s": round(wall, 2),
            "mean_spike_rate": result["mean_spike_rate"], "spike_rate": result["spike_rate"],
            "samples_per_s": result["samples_per_s"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="trained model.pt to use instead of training one")
    parser.add_argument("--arch", default=str(ROOT / "examples/arch/scml_fsdd.yaml"))
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--data", default="fsdd")
    parser.add_argument("--target", default="loihi2-sim")
    parser.add_argument("--lava-limit", type=int, default=150,
                        help="test samples run on Lava, ~0.5 s each (default %(default)s)")
    parser.add_argument("--limit", type=int, help="evaluate only the first N test samples (float/qat/reference)")
    parser.add_argument("--workdir", default=str(ROOT / "build/deploy_fidelity"))
    parser.add_argument("-o", "--output", default=str(ROOT / "bench/results/deploy_fidelity.json"))
    args = parser.parse_args(argv)
    for name in ("model", "arch", "workdir", "output"):  # resolve against the caller's cwd, then run from ROOT
        if getattr(args, name):
            setattr(args, name, str(rel(Path(getattr(args, name)).resolve())))
    os.chdir(ROOT)
    command = "python bench/deploy_fidelity.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    if args.model:
        model = Path(args.model)
    else:
        model = work / "model.pt"
        print(f"training {args.arch} on {args.data} for {args.epochs} epochs -> {model}", flush=True)
        cli_json(["train", "--arch", args.arch, "--data", args.data, "--epochs", str(args.epochs),
                  "--seed", "0", "-o", str(model)])
    artifact = work / "net.r2c"
    compiled = cli_json(["compile", str(model), "--target", args.target, "-o", str(artifact)])

    limit = ["--limit", str(args.limit)] if args.limit else []
    common = ["--data", args.data, "--split", "test"]
    print(f"evaluating {model} / {artifact} on {args.data} test", flush=True)
    stages = {
        "float": stage("float", ["eval", str(model), *common, "--backend", "float", *limit]),
        "qat": stage("qat", ["eval", str(model), *common, "--backend", "qat", *limit]),
        "reference": stage("reference", ["eval", str(artifact), *common, "--backend", "reference", *limit]),
    }
    sub = ["--limit", str(args.lava_limit)]
    subset = {
        "float": stage(f"float (first {args.lava_limit})", ["eval", str(model), *common, "--backend", "float", *sub]),
        "qat": stage(f"qat (first {args.lava_limit})", ["eval", str(model), *common, "--backend", "qat", *sub]),
        "reference": stage(f"reference (first {args.lava_limit})",
                           ["eval", str(artifact), *common, "--backend", "reference", *sub]),
        "lava": stage(f"lava (first {args.lava_limit})",
                      ["eval", str(artifact), *common, "--backend", "lava", "--batch-size", "8", *sub]),
    }
    gaps = {"float_to_qat": stages["qat"]["accuracy"] - stages["float"]["accuracy"],
            "qat_to_reference": stages["reference"]["accuracy"] - stages["qat"]["accuracy"],
            "reference_to_lava_on_subset": subset["lava"]["accuracy"] - subset["reference"]["accuracy"],
            "qat_to_reference_on_subset": subset["reference"]["accuracy"] - subset["qat"]["accuracy"]}

    print()
    print(f"{'stage':<12}{'samples':>9}{'accuracy':>10}{'Δ vs prev':>11}")
    prev = None
    for name in ("float", "qat", "reference"):
        acc = stages[name]["accuracy"]
        delta = "" if prev is None else f"{acc - prev:+.4f}"
        print(f"{name:<12}{stages[name]['samples']:>9}{acc:>10.4f}{delta:>11}")
        prev = acc
    print(f"{'-- subset':<12}")
    for name in ("float", "qat", "reference", "lava"):
        print(f"{name:<12}{subset[name]['samples']:>9}{subset[name]['accuracy']:>10.4f}")
    ok_qat = gaps["qat_to_reference"] == 0 and gaps["qat_to_reference_on_subset"] == 0
    ok_lava = gaps["reference_to_lava_on_subset"] == 0
    print(f"\nQAT -> reference gap: {gaps['qat_to_reference']:+.4f} "
          f"({'0, as it must be: QAT runs the compiled integer arithmetic' if ok_qat else 'NON-ZERO: a bug'})")
    print(f"reference -> Lava gap on subset: {gaps['reference_to_lava_on_subset']:+.4f} "
          f"({'0: bit-exact backends' if ok_lava else 'NON-ZERO: a bug'})")

    payload = {"format": "rsnn2chip.bench.deploy_fidelity", "version": 1, "command": command,
               "model": str(model), "artifact": str(artifact), "data": args.data, "split": "test",
               "target": args.target, "compile": {k: compiled.get(k) for k in ("cores", "chips", "warnings")
                                                  if k in compiled},
               "stages": stages, "lava_subset": {"samples": args.lava_limit, **subset}, "gaps": gaps,
               "qat_to_reference_gap_is_zero": ok_qat, "reference_equals_lava_on_subset": ok_lava}
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"wrote {out}")
    return 0 if ok_qat and ok_lava else 1


if __name__ == "__main__":
    raise SystemExit(main())
