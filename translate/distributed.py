"""This process's place under torchrun (rank, world size, device) and the process group."""

from __future__ import annotations

import datetime
import importlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from translate.config import ConfigError
from translate.translator import resolve_device


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def setup_distributed(device_choice: str) -> tuple[Dist, torch.device]:
    """Join the torchrun process group (NCCL on GPU, gloo on CPU) -> (Dist, this rank's device)."""
    env = Dist(
        rank=int(os.environ.get("RANK", 0)),
        world=int(os.environ.get("WORLD_SIZE", 1)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
    )
    try:
        device = resolve_device(device_choice, env.local_rank, "set train.device=cpu")
    except ValueError as e:
        raise ConfigError(str(e)) from None
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.set_device(device)
    if env.world > 1 and not dist.is_initialized():
        # torch.distributed.nn binds group.WORLD as a default argument when first imported (DDP
        # imports it, through torch._dynamo): imported after init_process_group it would keep the
        # group, and with it gloo's threads and sockets, alive past destroy_process_group, to be
        # torn down during the interpreter's finalization, or not before exit()
        importlib.import_module("torch.distributed.nn")
        # the other ranks wait at barriers while rank 0 prepares the data (a first WMT14 run:
        # download, BPE, binarizing) or validates: longer than the default 10 minutes
        # device_id binds NCCL to this rank's GPU instead of one guessed from the global rank
        dist.init_process_group(
            "nccl" if cuda else "gloo",
            timeout=datetime.timedelta(hours=1),
            device_id=device if cuda else None,
        )
    return env, device
