"""The fit loop's DDP pieces: a common stop decision, BatchNorm statistics over ranks, the wrapper."""

from __future__ import annotations

from typing import Any

import torch

from semgan.device import Distributed
from semgan.model import GanModels


def agree(stop: bool, dist_info: Distributed, device: torch.device) -> bool:
    """Every rank stops at the same step: a lone rank stopping would hang the others' all-reduce."""
    if not dist_info.enabled:
        return stop
    flag = torch.tensor([1.0 if stop else 0.0], device=device)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
    return bool(flag.item())


def average_batchnorm_stats(models: GanModels, world_size: int) -> None:
    """Average BatchNorm running stats over ranks: each rank saw only its shard of the data."""
    for module in models.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            for buffer in (module.running_mean, module.running_var):
                torch.distributed.all_reduce(buffer)
                buffer.div_(world_size)


def ddp_wrapper(device: torch.device) -> Any:
    """A function that wraps a module in DistributedDataParallel on ``device``."""
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    # Wrapping broadcasts rank 0's parameters and buffers, so every rank starts identical.
    return lambda module: DistributedDataParallel(module, device_ids=device_ids)
