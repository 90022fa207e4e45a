"""Device choice, mixed precision and the torchrun/DDP process group."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from semgan.errors import SemganError


class DeviceError(SemganError):
    """The requested device does not exist on this machine."""


def pick_device(name: str = "auto") -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; ``"cpu"``, ``"cuda"``, ``"cuda:1"`` as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"unknown device {name!r}: use auto, cpu or cuda[:N]") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {name!r} requested but CUDA is not available here; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) present")
    elif device.type != "cpu":
        raise DeviceError(f"unsupported device {name!r}: use auto, cpu or cuda[:N]")
    return device


def describe_device(device: torch.device) -> str:
    """Human-readable device name for model cards and benchmarks."""
    if device.type == "cuda":
        return f"cuda:{device.index or 0} {torch.cuda.get_device_name(device)}"
    return f"cpu ({torch.get_num_threads()} threads)"


@dataclass
class Precision:
    """Autocast + loss scaling for one device: fp32 on CPU, bf16 (or fp16 with a GradScaler) on CUDA."""

    device: torch.device
    dtype: torch.dtype | None = None  # None: full fp32, no autocast
    scaler: torch.amp.GradScaler | None = None

    def autocast(self) -> contextlib.AbstractContextManager:
        """Context for forward passes."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        """Backward, scaled when fp16 needs it."""
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """Optimizer step (skipped by the scaler on inf/nan gradients)."""
        if self.scaler is not None:
            self.scaler.step(optimizer)
        else:
            optimizer.step()

    def update(self) -> None:
        """Once per iteration, after every optimizer stepped: adapt the loss scale."""
        if self.scaler is not None:
            self.scaler.update()


def make_precision(device: torch.device, amp: bool = True) -> Precision:
    """bf16 autocast on CUDA GPUs that support it, fp16 + GradScaler on older ones, fp32 otherwise."""
    if not amp or device.type != "cuda":
        return Precision(device)
    if torch.cuda.is_bf16_supported():
        return Precision(device, torch.bfloat16)
    return Precision(device, torch.float16, torch.amp.GradScaler("cuda"))


@dataclass(frozen=True)
class Distributed:
    """Where this process sits in a torchrun job (world_size 1 when run directly)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        """True under torchrun with more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Only the main process writes files."""
        return self.rank == 0


def distributed_from_env() -> Distributed:
    """Read RANK / LOCAL_RANK / WORLD_SIZE as set by torchrun."""
    return Distributed(int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)),
                       int(os.environ.get("WORLD_SIZE", 1)))


@contextlib.contextmanager
def process_group(dist_info: Distributed, device: torch.device) -> Iterator[None]:
    """Join the torchrun process group (nccl on CUDA, gloo on CPU) for the duration of a run."""
    import torch.distributed as dist

    owned = dist_info.enabled and not dist.is_initialized()
    if owned:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method="env://",
                                rank=dist_info.rank, world_size=dist_info.world_size)
    try:
        yield
    finally:
        if owned:
            dist.destroy_process_group()


def training_device(name: str, dist_info: Distributed) -> torch.device:
    """The device for this rank: one GPU per process under torchrun (cuda:LOCAL_RANK)."""
    device = pick_device(name)
    if device.type == "cuda" and dist_info.enabled:
        device = torch.device("cuda", dist_info.local_rank)
        torch.cuda.set_device(device)
    return device
