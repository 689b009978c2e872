"""Data-parallel training under ``torchrun``: NCCL on GPUs, gloo on CPUs.

Outside torchrun (no ``WORLD_SIZE`` in the environment) every function here is a no-op for a
single process, so the training loop reads the same either way.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "all_reduce_sum",
    "average_buffers",
    "barrier",
    "device_for_process",
    "init_from_env",
    "rank",
    "replicas_agree",
    "shutdown",
    "world_size",
    "wrap",
]


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: torch.device) -> None:
    """Join the process group torchrun describes (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
    ...); NCCL for CUDA devices, gloo otherwise."""
    if not launched_by_torchrun() or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def device_for_process(name: str) -> torch.device:
    """``auto``: this process's GPU (``LOCAL_RANK``) when CUDA is there, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return device


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``DistributedDataParallel(model)`` in a process group, else ``model`` itself."""
    if not dist.is_initialized():
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of ``tensor`` over all processes (a copy; the input is unchanged)."""
    if not dist.is_initialized():
        return tensor
    backend_device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    total = tensor.to(backend_device, copy=True)
    dist.all_reduce(total)
    return total.to(tensor.device)


def average_buffers(model: nn.Module) -> None:
    """Average floating-point buffers (BatchNorm running statistics) over processes: each
    process saw only its share of the batches, and the saved model should have seen all."""
    if not dist.is_initialized():
        return
    world = world_size()
    for buffer in model.buffers():
        if buffer.is_floating_point():
            buffer.copy_(all_reduce_sum(buffer) / world)


def replicas_agree(model: nn.Module) -> bool:
    """Do all processes hold the same weights? (Compares exact fingerprints of every tensor.)"""
    if not dist.is_initialized():
        return True
    tensors = [t.detach().double().flatten() for t in model.state_dict().values()]
    flat = torch.cat(tensors).cpu()
    ramp = torch.linspace(1.0, 2.0, len(flat), dtype=torch.float64)
    fingerprint = torch.stack([flat.sum(), (flat * flat).sum(), (flat * ramp).sum()])
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    highest, lowest = fingerprint.to(device), fingerprint.to(device, copy=True)
    dist.all_reduce(highest, op=dist.ReduceOp.MAX)
    dist.all_reduce(lowest, op=dist.ReduceOp.MIN)
    return torch.equal(highest, lowest)


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
