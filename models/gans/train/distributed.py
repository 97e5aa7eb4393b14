"""Several processes under ``torchrun``: process group, gradient averaging, rank-0 I/O.

Data parallelism averages gradients across ranks after each backward. This is done explicitly (one flattened
all-reduce per network and step, as NVIDIA's StyleGAN code does) instead of through DistributedDataParallel's
reducer, because R1 and the WGAN gradient penalty take gradients of gradients (``autograd.grad`` with
``create_graph``), which DDP's hooks do not support. Parameters are broadcast from rank 0 at start, so every rank
holds the same weights throughout. NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_kind: str) -> Dist:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); a no-op otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    if not dist.is_initialized():
        backend = "nccl" if device_kind == "cuda" else "gloo"
        if device_kind == "cuda":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
    return Dist(rank, world, local)


def broadcast_module(module: nn.Module, d: Dist) -> None:
    """Make every rank start from rank 0's parameters and buffers."""
    if not d.enabled:
        return
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            dist.broadcast(t.data, src=0)


def average_buffers(module: nn.Module, d: Dist) -> None:
    """Average floating buffers (BatchNorm running statistics) over ranks; copy the others from rank 0.

    Gradients are averaged every step, but each rank's BatchNorm statistics see only its own batches; averaging
    them before each checkpoint keeps the ranks identical and the saved statistics representative of all data.
    """
    if not d.enabled:
        return
    with torch.no_grad():
        for b in module.buffers():
            if b.is_floating_point():
                dist.all_reduce(b.data)
                b.data.div_(d.world)
            else:
                dist.broadcast(b.data, src=0)


def average_gradients(module: nn.Module, d: Dist) -> None:
    """All-reduce and average the gradients of ``module`` in one flattened buffer."""
    if not d.enabled:
        return
    params = [p for p in module.parameters() if p.requires_grad]
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat.div_(d.world)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


def nonfinite_flag(value: torch.Tensor, d: Dist) -> torch.Tensor:
    """1.0 (a float tensor on value's device) when the loss is not finite on some rank, else 0.0; no host sync
    (the all-reduce is queued on the device), so all ranks skip or step together."""
    bad = (~torch.isfinite(value.detach())).any().to(torch.float32).reshape(1)
    if d.enabled:
        dist.all_reduce(bad, op=dist.ReduceOp.MAX)
    return bad.reshape(())


def all_ranks_finite(value: torch.Tensor, d: Dist) -> bool:
    """True when the loss is finite on every rank (a host sync)."""
    return not bool(nonfinite_flag(value, d).item())


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def shutdown(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()


def is_main_process() -> bool:
    """Rank 0, or not launched by torchrun (decided from the environment, before any process group exists)."""
    return int(os.environ.get("RANK", "0")) == 0


def close_process_group() -> None:
    """Leave the process group if this process joined one (end of a torchrun job)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
