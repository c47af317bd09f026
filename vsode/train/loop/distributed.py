"""Several processes (``torchrun``): ranks from the environment, the process group, gradient averaging."""

from __future__ import annotations

import dataclasses
import os

import torch


@dataclasses.dataclass(frozen=True)
class Distributed:
    """This process's place among ``torchrun`` workers (``world_size`` 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> "Distributed":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return cls(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def init_distributed(dist_info: Distributed, device: torch.device) -> None:
    """Join the process group torchrun set up (gloo on CPU, nccl on CUDA)."""
    if dist_info.world_size == 1:
        return
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def average_gradients(params: list[torch.nn.Parameter], world_size: int) -> None:
    """DDP's gradient averaging, done explicitly (the step does not go through ``forward``)."""
    if world_size == 1:
        return
    import torch.distributed as dist

    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
        p.grad.div_(world_size)
