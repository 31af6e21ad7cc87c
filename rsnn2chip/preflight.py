"""Resource preflight: refuse work that cannot fit in memory before allocating it.

A size read from a file or the command line (an arch layer of 10^11 neurons,
``--steps 1000000000``, an npz declaring 10^11 time steps) would otherwise end
in a ``MemoryError`` or the kernel's OOM killer. Each caller estimates the bytes
it is about to need and calls :func:`check_fits`, which compares the estimate
with the memory the system reports as available and says both.
"""
from __future__ import annotations

import os

from rsnn2chip.errors import InputError, R2CError


def available_bytes() -> int:
    """Memory available to this process now: ``MemAvailable`` (Linux), else physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def check_fits(nbytes: int | float, what: str, *, file: str | None = None, where: str | None = None,
               error: type[R2CError] = InputError, fix: str | None = None, budget: int | None = None) -> None:
    """Raise ``error`` if ``nbytes`` exceed the memory available (or ``budget``)."""
    limit = available_bytes() if budget is None else budget
    if nbytes > limit:
        raise error(f"{what} would need about {human_bytes(nbytes)} of memory, more than is available",
                    file=file, where=where, resource="memory", found=f"about {human_bytes(nbytes)}",
                    allowed=f"{human_bytes(limit)} available now",
                    fix=fix or "use a smaller size (fewer steps, neurons or samples)")


def arch_bytes(arch: dict) -> int:
    """An upper estimate of the memory training an arch needs: dense in + recurrent weights per layer,
    four copies each (weights, gradients, two Adam moments), float32. Sizes not yet known ('auto') count as 1."""
    def size(value) -> int:
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 1

    if not isinstance(arch, dict) or not isinstance(arch.get("layers"), list):
        return 0
    total, fan_in = 0, size(arch.get("input_size"))
    for cfg in arch["layers"]:
        n = size(cfg.get("size")) if isinstance(cfg, dict) else 1
        total += n * (fan_in + n)
        fan_in = n
    return 4 * 4 * total


def check_arch_fits(arch: dict, file: str | None, error: type[R2CError] = InputError) -> None:
    check_fits(arch_bytes(arch), "the network this arch describes", file=file, where="arch.layers[*].size",
               error=error, fix="use smaller layer sizes")


# One run simulates at most this many steps: the reference backend does ~10^4 steps/s on a small network and
# Lava ~10^3, so more is hours of work that a person asks for by mistake (--steps 1000000000), not a run.
MAX_STEPS = 1_000_000


# A training sample's steps: BPTT runs forward and back over all of a batch's steps before the first update, and
# measured on 2 cores a 300,000-step sample took 72 s for one update of a small network. The UEA archive's
# longest series (EigenWorms, Bagnall et al. 2018) has 17,984 steps; ten times that is input given by mistake.
MAX_TRAIN_STEPS = 200_000


def check_train_lengths(lengths, split: str, file: str) -> None:
    """Every sample of a training run's ``split`` is short enough to train on (``lengths``: an array of steps per
    sample, or None where unknown until the samples are made)."""
    longest = int(lengths.max()) if lengths is not None and len(lengths) else 0
    if longest <= MAX_TRAIN_STEPS:
        return
    raise InputError("a sample is too long to train on", file=file, where=f"the {split} split's longest sample",
                     resource="steps", found=f"{longest:,} time steps",
                     allowed=f"at most {MAX_TRAIN_STEPS:,}",
                     fix="crop or downsample the series, or split them into shorter samples (docs/data.md)")


def check_run_fits(batch: int, steps: int, n_input: int, n_lif: int, n_probes: int = 0) -> None:
    """A simulation's inputs, spike record and probes (and a working copy of each) fit in memory and time."""
    if steps > MAX_STEPS:
        raise InputError("too many time steps for one run", resource="steps", found=steps,
                         allowed=f"at most {MAX_STEPS:,}", fix="run fewer steps, or split the input in time")
    per_step = n_input + n_lif * (1 + 8 * n_probes)  # int8 input, bool spikes, int64 probes
    check_fits(2 * batch * steps * per_step, f"a run of {batch} sample(s) x {steps:,} steps",
               where=f"{n_input} inputs, {n_lif} neurons", fix="run fewer steps or a smaller batch")
