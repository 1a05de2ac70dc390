"""Small shared helpers: seeding, device choice, the course's error type."""
from __future__ import annotations

import importlib
import os
import random

import numpy as np
import torch


class V4SError(Exception):
    """An error a user can act on: the message says what was wrong and how to fix it."""


def seed_everything(seed: int, deterministic: bool = True) -> torch.Generator:
    """Seed python, numpy and torch; on CPU also ask torch for deterministic kernels.

    Returns a torch.Generator seeded the same way, for code that wants its own stream.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.Generator().manual_seed(seed)


def get_device(device: str = "auto") -> torch.device:
    """'auto' picks CUDA when there is a GPU, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise V4SError(
            f"device={device!r} was asked for but this machine has no CUDA GPU. "
            "Use device='cpu' (quick mode), or on Colab choose Runtime > Change runtime type > GPU."
        )
    return torch.device(device)


class TrainingDiverged(V4SError):
    """The loss became NaN/inf or exploded; the last good checkpoint is kept. (Here, not in train.py, because the
    checkpoint writer refuses NaN weights with it too.)"""


def to_device_async(x: torch.Tensor, device) -> torch.Tensor:
    """A small host tensor (indices, positions) on `device` without stalling the host. A plain `.to("cuda")` of
    pageable memory waits until the GPU has finished everything queued (cudaStreamSynchronize): in a training step
    the host then cannot prepare the next step while the GPU runs this one. Pinned memory copies asynchronously,
    and torch's caching host allocator keeps the pinned block alive until the copy is done."""
    device = torch.device(device)
    # inside torch.compile (the whole lite model is compiled) pin_memory cannot be traced: the graph copies its input
    if torch.compiler.is_compiling() or x.device == device or device.type != "cuda" or x.device.type != "cpu":
        return x.to(device)
    return x.pin_memory().to(device, non_blocking=True)


def import_object(spec: str):
    """"package.module:name" -> that object (factories named in configs)."""
    module, _, name = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise V4SError(f"cannot import {spec!r} ({e}); write it as 'package.module:function'") from None
