"""Devices and precisions by name (``auto``, ``cuda:1``, ``fp16`` ...), checked against this machine."""

from __future__ import annotations

import re

import torch

from .errors import VividZooError

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
DTYPE_CHOICES = ("auto", *DTYPES)
"""``auto``: fp16 on CUDA, fp32 elsewhere."""


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` (CUDA when present), ``cpu``, ``mps``, ``cuda`` or ``cuda:N``, checked against this machine."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    match = re.fullmatch(r"(cpu|mps|cuda)(?::(\d+))?", name)
    if match is None or (match[2] is not None and match[1] != "cuda"):
        raise VividZooError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    if match[1] == "cuda" and not torch.cuda.is_available():
        raise VividZooError(f"device {name!r} asked for, but PyTorch sees no CUDA GPU; use cpu or auto")
    if match[1] == "cuda" and match[2] is not None and int(match[2]) >= torch.cuda.device_count():
        raise VividZooError(f"device {name!r} does not exist: this machine has {torch.cuda.device_count()} CUDA "
                            f"GPU(s), cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    if match[1] == "mps" and not torch.backends.mps.is_available():
        raise VividZooError("device 'mps' asked for, but PyTorch sees no Apple GPU; use cpu or auto")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """A :data:`DTYPE_CHOICES` name as a torch dtype that works on ``device``."""
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if name not in DTYPES:
        raise VividZooError(f"unknown dtype {name!r}; use one of {', '.join(DTYPE_CHOICES)}")
    if name == "fp16" and device.type == "cpu":
        raise VividZooError("fp16 is not supported on the CPU by all PyTorch kernels; use fp32 or bf16 there")
    return DTYPES[name]
