"""Data-parallel training under ``torchrun``: detection, process group, batch sharding, reductions.

Launch any training entry point (``rsnn2chip train``, ``rsnn2chip search``) with::

    torchrun --standalone --nproc-per-node 2 -m rsnn2chip train --arch A.yaml --data fsdd -o m.pt

Every rank walks the *same* global batch order (it depends on seed and epoch only) and takes a strided
slice ``index[rank::world]`` of each global batch, like ``DistributedSampler`` but per batch. A rank's loss
is its slice's summed loss times ``world / global batch size``; DistributedDataParallel averages gradients
over ranks, so the update is the gradient of the global batch's mean loss: the run takes the same steps as
a single process with the same ``--batch-size``, up to floating-point summation order. This is what the
DDP test checks (same loss curve within tolerance).

Only rank 0 writes files and draws progress. gloo on CPU; nccl, one GPU per rank, where CUDA is available.
Outside torchrun (no ``WORLD_SIZE`` or ``WORLD_SIZE=1``) everything here is a no-op and no process group is made.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def setup() -> DistEnv:
    """The process's place in the job; initialises the process group on first call under torchrun."""
    world = env_world_size()
    if world <= 1:
        return DistEnv()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available()
    backend = "nccl" if use_cuda else "gloo"
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistEnv(rank, world, local_rank, backend, device)


def current() -> DistEnv:
    """Like :func:`setup` but never initialises anything (for code that only needs to know the rank)."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistEnv()
    use_cuda = dist.get_backend() == "nccl"
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    return DistEnv(dist.get_rank(), dist.get_world_size(), local_rank, dist.get_backend(),
                   torch.device("cuda", local_rank) if use_cuda else torch.device("cpu"))


def is_main() -> bool:
    return current().is_main


def shard(index: np.ndarray, env: DistEnv) -> np.ndarray:
    """This rank's samples of one global batch (strided, so every rank sees a mix of lengths)."""
    return index[env.rank::env.world_size] if env.enabled else index


def wrap(model: torch.nn.Module, env: DistEnv) -> torch.nn.Module:
    """DDP around ``model`` when running distributed, else ``model`` itself.

    DDP broadcasts rank 0's parameters and buffers at construction, so ranks start identical even if
    something upstream drew different random numbers. ``broadcast_buffers=False``: buffers (neuron
    parameters, adapted by intrinsic plasticity identically on every rank) must not be overwritten
    with rank 0's copy on every forward, which would also cost a collective per step.
    """
    if not env.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel
    ids = [env.device.index] if env.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)


def all_sum(values, env: DistEnv) -> list[float]:
    """Element-wise sum over ranks of a list of numbers (float64, so counts stay exact)."""
    if not env.enabled:
        return [float(v) for v in values]
    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64,
                          device=env.device if env.backend == "nccl" else "cpu")
    dist.all_reduce(tensor)
    return tensor.cpu().tolist()


def all_sum_tensor(tensor: torch.Tensor, env: DistEnv) -> torch.Tensor:
    if not env.enabled:
        return tensor
    tensor = tensor.clone()
    dist.all_reduce(tensor)
    return tensor


def barrier(env: DistEnv) -> None:
    if env.enabled:
        dist.barrier()


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
