"""Framework against deployed: a small trained snnTorch (and Norse) RSNN, before and after rsnn2chip.

For each framework the script trains a small recurrent network with the
framework's own BPTT (reset to zero, the convention Loihi has; snnTorch with
``reset_delay=False``), exports it with ``rsnn2chip.interop`` to NIR, and runs
the test split through

* framework  - the framework's own simulation (the anchor)
* float      - the imported float IR (``rsnn2chip.backends.float_ir``): NIR's
               Euler equations with Loihi's one-step delays, output read
               ``time_offset`` steps later
* deployed   - the compiled ``.r2c`` (loihi2-sim) on the bit-exact reference
               backend; the first ``--lava-limit`` test samples also on Lava,
               which must equal the reference

It reports test accuracy (class = most output spikes; ties to the lower
index, the same rule everywhere), the ratio to the framework's accuracy, the
relative difference of the output spike count, and per-step spike agreement
(the fraction of (step, neuron) pairs equal after the time shift).

    python bench/interop.py                       # events-digits, both frameworks, ~10 min on 2 shared cores
    python bench/interop.py --framework snntorch --epochs 4
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import rsnn2chip  # noqa: E402,F401
from rsnn2chip import backends  # noqa: E402
from rsnn2chip.backends import float_ir  # noqa: E402
from rsnn2chip.compiler import compile_graph  # noqa: E402
from rsnn2chip.data import load_dataset  # noqa: E402
from rsnn2chip.fileio import atomic_write_bytes  # noqa: E402
from rsnn2chip.frontends.nir import graph_from_nir  # noqa: E402
from rsnn2chip.targets import load_target  # noqa: E402

TAIL = 4  # silent steps after each sample, so late spikes of deeper layers are counted


def padded(data, steps: int) -> np.ndarray:
    x = np.zeros((len(data), steps, data.n_channels), np.float32)
    for i, sample in enumerate(data.samples):
        n = min(len(sample), steps)
        x[i, :n] = sample[:n]
    return x


# --------------------------------------------------------------------------- snnTorch

def snntorch_model(n_in: int, hidden: int, n_out: int):
    import snntorch as snn
    from snntorch import surrogate

    grad = surrogate.atan()
    common = dict(reset_mechanism="zero", reset_delay=False, init_hidden=True, spike_grad=grad)
    return torch.nn.Sequential(
        torch.nn.Linear(n_in, hidden),
        snn.RLeaky(beta=torch.full((hidden,), 0.9), threshold=torch.ones(hidden), linear_features=hidden, **common),
        torch.nn.Linear(hidden, n_out),
        snn.Leaky(beta=torch.full((n_out,), 0.8), threshold=torch.ones(n_out), output=True, **common))


def snntorch_forward(model, x: torch.Tensor) -> torch.Tensor:
    """(B, T, C) -> output spikes (T, B, n_out), from fresh state."""
    from snntorch import utils

    utils.reset(model)
    out = [model(x[:, t])[0] for t in range(x.shape[1])]
    return torch.stack(out)


def snntorch_export(model, sample):
    from rsnn2chip.interop import snntorch as interop
    return interop.to_nir(model, sample)


# --------------------------------------------------------------------------- Norse

def norse_model(n_in: int, hidden: int, n_out: int):
    import norse.torch as nt
    model = nt.SequentialState(nt.LIFRecurrentCell(n_in, hidden), torch.nn.Linear(hidden, n_out), nt.LIFBoxCell())
    with torch.no_grad():  # Norse's default initialisation barely reaches threshold in dt = 1 ms steps
        model[0].input_weights.mul_(4)
        model[1].weight.mul_(8)
    return model


def norse_forward(model, x: torch.Tensor) -> torch.Tensor:
    state, out = None, []
    for t in range(x.shape[1]):
        y, state = model(x[:, t], state)
        out.append(y)
    return torch.stack(out)


def norse_export(model, sample):
    from rsnn2chip.interop import norse as interop
    return interop.to_nir(model, sample.shape[-1])


FRAMEWORKS = {"snntorch": (snntorch_model, snntorch_forward, snntorch_export),
              "norse": (norse_model, norse_forward, norse_export)}


# --------------------------------------------------------------------------- measuring

def train(make, forward, x: np.ndarray, y: np.ndarray, epochs: int, hidden: int, n_out: int, seed: int):
    torch.manual_seed(seed)
    model = make(x.shape[2], hidden, n_out)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for epoch in range(epochs):
        order = torch.randperm(len(xt))
        total, start = 0.0, time.perf_counter()
        for i in range(0, len(order), 64):
            idx = order[i:i + 64]
            counts = forward(model, xt[idx]).sum(0)
            loss = torch.nn.functional.cross_entropy(counts, yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        print(f"    epoch {epoch + 1}/{epochs}  loss {total / len(xt):.3f}  ({time.perf_counter() - start:.1f} s)",
              flush=True)
    return model.eval()


def accuracy(counts: np.ndarray, labels: np.ndarray) -> float:
    return float((counts.argmax(axis=1) == labels).mean())


def compare(name: str, spikes: np.ndarray, anchor: np.ndarray, labels: np.ndarray, anchor_acc: float) -> dict:
    """``spikes`` and ``anchor``: output (B, T, n_out), already aligned in time."""
    acc = accuracy(spikes.sum(1), labels)
    n_ours, n_theirs = int(spikes.sum()), int(anchor.sum())
    row = {"accuracy": acc, "accuracy_ratio": acc / anchor_acc if anchor_acc else None,
           "output_spikes": n_ours, "spike_count_rel_diff": (n_ours - n_theirs) / max(n_theirs, 1),
           "step_agreement": float((spikes.astype(bool) == anchor.astype(bool)).mean()),
           "samples_identical": float(np.all(spikes.astype(bool) == anchor.astype(bool), axis=(1, 2)).mean())}
    print(f"  {name:<10} acc {acc:.4f}  x{row['accuracy_ratio']:.3f} of framework   output spikes {n_ours}"
          f" ({100 * row['spike_count_rel_diff']:+.1f}%)   per-step agreement {row['step_agreement']:.4f}"
          f"   identical samples {row['samples_identical']:.3f}", flush=True)
    return row


def bench(framework: str, args, train_x, train_y, test_x, test_y) -> dict:
    make, forward, export = FRAMEWORKS[framework]
    print(f"{framework}: training {args.hidden} recurrent neurons, {args.epochs} epochs", flush=True)
    model = train(make, forward, train_x, train_y, args.epochs, args.hidden, int(train_y.max()) + 1, args.seed)
    with torch.no_grad():
        anchor = forward(model, torch.from_numpy(test_x)).numpy().transpose(1, 0, 2)  # (B, T, n_out)
    anchor_acc = accuracy(anchor.sum(1), test_y)
    print(f"  framework  acc {anchor_acc:.4f}   output spikes {int(anchor.sum())}", flush=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the bias notes; conventions are Loihi's here by construction
        graph = graph_from_nir(export(model, torch.from_numpy(test_x[0, 0])))
    out = graph.graph["output"]
    offset = graph.graph["nir"]["time_offset"][out]
    steps = test_x.shape[1] + offset
    float_out = float_ir.simulate(graph, test_x, steps=steps)[0][out][:, offset:]
    art = compile_graph(graph, load_target(args.target))
    start = time.perf_counter()
    ref = backends.run(art, test_x, steps)
    ref_wall = time.perf_counter() - start
    deployed = ref.spikes[out][:, offset:]
    result = {"framework": framework, "test_samples": len(test_y), "time_offset": offset,
              "framework_accuracy": anchor_acc, "framework_output_spikes": int(anchor.sum()),
              "float": compare("float", float_out, anchor, test_y, anchor_acc),
              "deployed": compare("deployed", deployed, anchor, test_y, anchor_acc),
              "reference_wall_s": round(ref_wall, 2)}
    n = min(args.lava_limit, len(test_y))
    if n:
        lava = backends.run(art, test_x[:n], steps, backend="lava")
        ref_n = backends.run(art, test_x[:n], steps)
        result["lava_equals_reference"] = backends.first_divergence(ref_n, lava) is None
        result["lava_samples"] = n
        print(f"  lava == reference on {n} samples: {result['lava_equals_reference']}", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--framework", choices=[*FRAMEWORKS, "both"], default="both")
    parser.add_argument("--data", default="events-digits")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--limit", type=int, help="use only the first N train and test samples")
    parser.add_argument("--lava-limit", type=int, default=10, help="test samples also run on Lava")
    parser.add_argument("--target", default="loihi2-sim")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", default=str(ROOT / "bench/results/interop.json"))
    args = parser.parse_args(argv)
    torch.set_flush_denormal(True)
    train_data = load_dataset(args.data, "train", limit=args.limit)
    test_data = load_dataset(args.data, "test", limit=args.limit)
    steps = max(int(max(len(s) for s in train_data.samples)), int(max(len(s) for s in test_data.samples))) + TAIL
    train_x, test_x = padded(train_data, steps), padded(test_data, steps)
    print(f"{args.data}: {len(train_x)} train, {len(test_x)} test samples, {steps} steps, "
          f"{train_data.n_channels} channels", flush=True)
    names = list(FRAMEWORKS) if args.framework == "both" else [args.framework]
    results = [bench(name, args, train_x, train_data.labels, test_x, test_data.labels) for name in names]
    payload = {"command": "python bench/interop.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "data": args.data, "epochs": args.epochs, "hidden": args.hidden, "target": args.target,
               "anchor": "the framework's own simulation of the same trained network", "results": results}
    atomic_write_bytes(args.output, (json.dumps(payload, indent=1) + "\n").encode())
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
