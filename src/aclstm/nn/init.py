"""The initialisers of the authors' released code (TensorFlow 1.2's Keras 2), for PyTorch modules.

Keras computes a kernel's fans from its own layout: a convolution kernel (K..., C_in, C_out)
has fan-in ``prod(K)·C_in`` and fan-out ``prod(K)·C_out``; a depthwise kernel is stored as
(K, K, C, multiplier), so its fan-in is ``K·K·C`` (all channels, though each filter sees one)
and its fan-out ``K·K·multiplier``. TF 1.2's ``he_normal`` draws a normal truncated at two
standard deviations with sd ``sqrt(2 / fan_in)`` and no correction for the truncation (later
versions divide by 0.8796), so its samples have sd ``0.8796·sqrt(2 / fan_in)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["glorot_uniform_", "he_normal_", "keras_fans"]

Kernel = nn.Linear | nn.modules.conv._ConvNd


def keras_fans(module: Kernel) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of ``module``'s weight as Keras counts them for the same layer."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    if not isinstance(module, nn.modules.conv._ConvNd):
        raise TypeError(f"expected a Linear or convolution module, got {type(module).__name__}")
    receptive_field = math.prod(module.kernel_size)
    if module.groups == 1:
        return receptive_field * module.in_channels, receptive_field * module.out_channels
    if module.groups == module.in_channels:  # depthwise: Keras' (K, K, C, multiplier) kernel
        multiplier = module.out_channels // module.in_channels
        return receptive_field * module.in_channels, receptive_field * multiplier
    raise ValueError(
        f"Keras has no kernel layout for a convolution with groups={module.groups} "
        f"(neither 1 nor in_channels={module.in_channels})"
    )


@torch.no_grad()
def he_normal_(module: Kernel) -> Kernel:
    """TF 1.2's ``he_normal``: normal with sd ``sqrt(2 / fan_in)`` (Keras' fan-in), truncated
    at ±2 sd, not rescaled. Zeroes the bias, as Keras' default ``zeros``."""
    fan_in, _ = keras_fans(module)
    std = math.sqrt(2.0 / fan_in)
    nn.init.trunc_normal_(module.weight, mean=0.0, std=std, a=-2 * std, b=2 * std)
    return _zero_bias(module)


@torch.no_grad()
def glorot_uniform_(module: Kernel) -> Kernel:
    """Keras' default ``glorot_uniform``: uniform on ±``sqrt(6 / (fan_in + fan_out))`` with
    Keras' fans. Zeroes the bias."""
    fan_in, fan_out = keras_fans(module)
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    nn.init.uniform_(module.weight, -limit, limit)
    return _zero_bias(module)


def _zero_bias(module: Kernel) -> Kernel:
    if module.bias is not None:
        nn.init.zeros_(module.bias)
    return module
