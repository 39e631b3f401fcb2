"""Process-level choices: the device and the runtime (PyTorch or ONNX Runtime) to run on, and allocator
tuning for CPU inference and training."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
from typing import Literal

import torch

from models.errors import InvalidInputError

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3


def usable_cores() -> int:
    """The CPU cores this process may run on: its affinity (a container's or taskset's cpuset), which can
    be fewer than the machine has; at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def tune_allocator() -> bool:
    """Keep freed memory in the process (glibc only).

    A convolution batch allocates and frees activations of tens of MB each layer; by default glibc
    hands such blocks back to the kernel at once and takes them again on the next layer, so the CPU
    spends nearly half its time in page faults. Measured on the 2-core development machine,
    EfficientNet-Lite0 ran about twice as fast with these settings."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        ok = all(
            libc.mallopt(option, value)
            for option, value in (
                (_M_MMAP_THRESHOLD, 32 * 1024 * 1024),  # glibc's maximum: most activations on the heap
                (_M_TRIM_THRESHOLD, 1 << 30),
                (_M_TOP_PAD, 256 * 1024 * 1024),
            )
        )
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return False
    return bool(ok)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """ "auto" → CUDA when there is one, else the CPU; any other name as torch reads it."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise InvalidInputError(f"unknown device {device!r}: use cpu, cuda, cuda:N or auto") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        # Otherwise torch fails deep inside the first .to(device) with a driver message.
        raise InvalidInputError(f"device {device!r} asked for, but no CUDA GPU is usable: use cpu or auto")
    return resolved


RuntimeName = Literal["auto", "torch", "onnx"]
RUNTIMES: tuple[RuntimeName, ...] = ("auto", "torch", "onnx")


def resolve_runtime(runtime: str, device: torch.device) -> Literal["torch", "onnx"]:
    """ "auto" → ONNX Runtime on the CPU (exported towers run faster there than eager PyTorch) and
    PyTorch on CUDA; "onnx" is CPU-only here, so asking for it with a GPU device is an error."""
    if runtime not in RUNTIMES:
        raise InvalidInputError(f"unknown runtime {runtime!r}: use one of {list(RUNTIMES)}")
    if runtime == "torch":
        return "torch"
    if device.type != "cpu":
        if runtime == "onnx":
            raise InvalidInputError(
                f"runtime 'onnx' runs on the CPU only, not on {device}: use torch or auto"
            )
        return "torch"
    return "onnx"
