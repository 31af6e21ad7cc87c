"""The main job end to end on real data: train an SC-ML RSNN on FSDD spoken digits,
compile it for Loihi 2, run it in Lava and in the reference simulator, and report.

    make demo            # or: .venv/bin/python examples/demo.py --out build/demo

Every step is an ordinary `rsnn2chip` command (printed before it runs), so the
demo doubles as a walkthrough of the CLI.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def step(title: str, argv: list[str], ok_codes=(0,)) -> None:
    from rsnn2chip.cli import main

    print(f"\n=== {title}\n$ rsnn2chip {shlex.join(argv)}", flush=True)
    start = time.perf_counter()
    code = main(argv)
    print(f"--- {title}: exit {code} in {time.perf_counter() - start:.1f} s", flush=True)
    if code not in ok_codes:
        sys.exit(f"demo step failed: {title} (exit {code})")


def write_test_sample(out: Path, index: int = 0) -> Path:
    """One FSDD test recording as its raw MFCC frames (T, 13): `run` and `verify` encode them as training did."""
    from rsnn2chip.data import fsdd

    X, lengths, y = fsdd.load_raw()
    recording = fsdd.split_indices()["test"][index]
    frames, _ = fsdd.frames_of(X, lengths, [recording])
    np.save(out, frames.astype(np.float32))
    print(f"wrote {out}: test recording {index}, digit {int(y[recording])}, {frames.shape[0]} frames x 13 MFCCs")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="build/demo", help="output directory")
    parser.add_argument("--arch", default=str(REPO / "examples" / "arch" / "scml_fsdd.yaml"))
    parser.add_argument("--steps", type=int, help="optimizer steps (default: the training recipe's budget)")
    parser.add_argument("--lava-samples", type=int, default=20, help="test samples to classify in Lava")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model, net = out / "model.pt", out / "net.r2c"

    budget = ["--steps", str(args.steps)] if args.steps else []
    step("train on FSDD (real spoken digits), default recipe", ["train", "--arch", args.arch, "--data", "fsdd",
                                                                *budget, "--seed", "0", "-o", str(model)])
    step("compile for Loihi 2", ["compile", str(model), "--target", "loihi2-sim", "-o", str(net)])
    step("report", ["report", str(net)])
    step("accuracy of the float model on the test split", ["eval", str(model), "--data", "fsdd", "--backend", "float"])
    step("accuracy of the compiled network (reference simulator, all test samples)",
         ["eval", str(net), "--data", "fsdd", "--backend", "reference"])
    step(f"accuracy in Lava (first {args.lava_samples} test samples)",
         ["eval", str(net), "--data", "fsdd", "--backend", "lava", "--limit", str(args.lava_samples)])
    x = write_test_sample(out / "x.npy")
    step("Lava vs reference, spike for spike", ["run", str(net), "--input", str(x), "--compare",
                                                  "--save-activity", str(out / "activity")])
    step("verify: PyTorch float/QAT, reference and Lava per layer",
         ["verify", str(model), str(net), "--input", str(x)])
    step("HTML report with pictures", ["report", str(net), "--activity", str(out / "activity"),
                                       "--format", "html", "-o", str(out / "report")])
    print(f"\ndemo done: artifacts in {out}/ (open {out}/report/report.html)")


if __name__ == "__main__":
    import rsnn2chip  # noqa: F401  (installs the lava import fix first)
    main()
