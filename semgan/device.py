"""Device choice, mixed precision and the torchrun/DDP process group."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from semgan.config import PRECISIONS
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
    """Autocast + loss scaling for one device: fp32, bf16, or fp16 with a GradScaler (CUDA)."""

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




PRECISION_ENV = "SEMGAN_PRECISION"
"""Environment variable with the inference precision of the app and its worker (default auto)."""


def default_precision() -> str:
    """``$SEMGAN_PRECISION`` when set (``python app.py --precision`` sets it), else ``auto``."""
    name = os.environ.get(PRECISION_ENV, "auto") or "auto"
    if name not in PRECISIONS:
        raise DeviceError(f"${PRECISION_ENV}={name!r}: use {', '.join(PRECISIONS)}")
    return name


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bf16 in hardware (AVX-512 BF16 or AMX), so oneDNN runs bf16
    convolutions faster than fp32; elsewhere bf16 is emulated and slower, and ``auto`` keeps fp32."""
    if os.environ.get("SEMGAN_CPU_BF16") in ("0", "1"):  # override for tests and odd kernels
        return os.environ["SEMGAN_CPU_BF16"] == "1"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no cheap way to tell, stay on fp32
        return False
    return bool(torch.backends.mkldnn.is_available()) and (" avx512_bf16" in flags or " amx_bf16" in flags)


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``; None = plain fp32.

    ``auto``: bf16 on CUDA GPUs that support it (fp16 on older ones) and on CPUs with native bf16,
    fp32 otherwise. ``bf16``/``fp16`` are honoured as asked (fp16 only on CUDA).
    """
    if precision not in PRECISIONS:
        raise DeviceError(f"unknown precision {precision!r}: use {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return None
    if precision == "fp16":
        if device.type != "cuda":
            raise DeviceError("fp16 autocast needs a CUDA device; use bf16 or fp32 on the CPU")
        return torch.float16
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_native_bf16() else None


def precision_name(dtype: torch.dtype | None) -> str:
    """``fp32`` / ``bf16`` / ``fp16`` for an autocast dtype."""
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def make_precision(device: torch.device, amp: bool = True, precision: str = "auto") -> Precision:
    """Training precision: ``amp`` off → fp32; else ``precision`` (``auto``: bf16 on GPUs and on
    CPUs with native bf16, fp16 + GradScaler on older GPUs, fp32 otherwise). Master weights,
    optimizer state and the loss reductions stay fp32 (autocast casts only the convs/matmuls)."""
    dtype = autocast_dtype(device, precision) if amp else None
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    return Precision(device, dtype, scaler)


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
