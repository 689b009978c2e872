"""Layers shared by the network's stages, with the released Keras code's conventions."""

from __future__ import annotations

import torch
from torch import Tensor, nn

# Keras BatchNormalization defaults: epsilon 1e-3, momentum 0.99 (PyTorch momentum 0.01).
BN_EPS = 1e-3
BN_MOMENTUM = 0.01


def batch_norm_3d(channels: int) -> nn.BatchNorm3d:
    return nn.BatchNorm3d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


def batch_norm_2d(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class Conv3d(nn.Conv3d):
    """``nn.Conv3d`` that steps around a fault of the CPU's bf16 convolution (torch 2.13,
    oneDNN): on inputs 2 frames long, about 1 weight gradient in 10 came back with inf/NaN.
    Under CPU autocast, inputs shorter than 3 frames are convolved in fp32 instead; everything
    else runs as ``nn.Conv3d`` does. (Measured: 2 frames 10-14 of 100 calls, 1 and 3-6 frames
    none.)"""

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[2] < 3 and x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                return super().forward(x.float())
        return super().forward(x)


def weight_decay_param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Optimizer parameter groups with weight decay on convolution and linear weights only.

    Keras' ``l2(λ)`` kernel regulariser adds ``λ·Σw²`` to the loss; its gradient ``2λ·w`` is
    SGD's ``weight_decay = 2λ`` (the paper's 5e-5 is 1e-4 here), applied to kernels only, not
    to BatchNorm parameters or biases.
    """
    decay, no_decay = [], []
    seen: set[int] = set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            is_kernel = name == "weight" and isinstance(
                module, (nn.Linear, nn.modules.conv._ConvNd)
            )
            (decay if is_kernel else no_decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
