"""Small building blocks shared by the cells: separable convolution, pooling, gates, attention."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = [
    "GATE_ACTIVATIONS",
    "SeparableConv2d",
    "channel_attention",
    "global_avg_pool",
    "hard_sigmoid",
    "keras_he_normal_",
    "pair",
    "spatial_softmax",
    "tanh",
]


def pair(value: int | tuple[int, int]) -> tuple[int, int]:
    """Return ``(value, value)`` for an int, or check and return a pair."""
    if isinstance(value, int):
        return (value, value)
    out = tuple(value)
    if len(out) != 2 or not all(isinstance(v, int) for v in out):
        raise ValueError(f"expected an int or a pair of ints, got {value!r}")
    return out  # type: ignore[return-value]


def hard_sigmoid(x: Tensor) -> Tensor:
    """Keras 2's ``hard_sigmoid``: ``clip(0.2 * x + 0.5, 0, 1)``.

    This is the recurrent activation the authors' released Keras layers used by default.
    (It differs from ``torch.nn.functional.hardsigmoid``, which is ``relu6(x + 3) / 6``.)
    """
    return torch.clamp(0.2 * x + 0.5, 0.0, 1.0)


class _TanhViaSigmoid(torch.autograd.Function):
    """``tanh(x) = 2·σ(2x) − 1`` forward; backward from the output, as ``torch.tanh``'s."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor) -> Tensor:
        return torch.sigmoid_(x * 2).mul_(2).sub_(1)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)


def tanh(x: Tensor) -> Tensor:
    """``torch.tanh``, computed as ``2·σ(2x) − 1`` for fp32/fp64 tensors on the CPU.

    On the CPU, torch's tanh is several times slower than its sigmoid (on a 2-core AVX-512
    machine with torch 2.13: 530 us against 85 us for 2x256x28x28 floats), and the cells apply
    tanh to two full-size maps per step, which made it the largest elementwise cost of the small
    cells. The identity is exact; in floating point it differs from ``torch.tanh`` by at most a
    few units in the last place of 1 (about 2e-7 in fp32), in absolute terms. Reduced precision,
    other devices, and tracing (``torch.compile``, ``torch.export``, ``torch.jit.trace``, which
    fuse or export tanh well) use ``torch.tanh``.
    """
    if (
        x.device.type != "cpu"
        or x.dtype not in (torch.float32, torch.float64)
        or torch.compiler.is_compiling()
        or torch.jit.is_tracing()
    ):
        return torch.tanh(x)
    return _TanhViaSigmoid.apply(x)


GATE_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "sigmoid": torch.sigmoid,
    "hard_sigmoid": hard_sigmoid,
}


class _ChannelsLastAvgPool(torch.autograd.Function):
    """Mean over (H, W) of a channels-last batch whose gradient is channels-last too."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor) -> Tensor:
        return x.permute(0, 2, 3, 1).flatten(1, 2).mean(dim=1)  # (N, H·W, C) in memory

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.shape = inputs[0].shape

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        h, w = ctx.shape[-2:]
        spread = (grad / (h * w))[:, :, None, None].expand(ctx.shape)
        return spread.contiguous(memory_format=torch.channels_last)


def global_avg_pool(x: Tensor) -> Tensor:
    """Global average pooling over the last two (spatial) dims: ``(..., C, H, W) -> (..., C)``.

    A channels-last batch gets a channels-last gradient: ``mean`` over (H, W) returns it in
    NCHW, which sent the rest of the variants' backward through mixed layouts and conversion
    copies (and made the pooling's own backward 4x slower on the CPU).
    """
    channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
    if channels_last and not x.is_contiguous() and not torch.compiler.is_compiling():
        return _ChannelsLastAvgPool.apply(x)
    return x.mean(dim=(-2, -1))


def spatial_softmax(z: Tensor) -> Tensor:
    """Softmax of a ``(B, 1, H, W)`` score map over all H*W positions (paper Eq. 18)."""
    return torch.softmax(z.flatten(-2), dim=-1).view_as(z)


def channel_attention(z: Tensor) -> Tensor:
    """Channel-wise attention of paper Eq. 22: ``exp(z) / max_{y,x} exp(z)`` per channel.

    Computed as ``exp(z - amax(z))``, which is equal and cannot overflow. Values lie in (0, 1]
    and every channel's spatial maximum is exactly 1.
    """
    return torch.exp(z - z.amax(dim=(-2, -1), keepdim=True))


@torch.no_grad()
def keras_he_normal_(weight: Tensor) -> Tensor:
    """Keras' ``he_normal``: normal, truncated at two std, scaled to std sqrt(2 / fan_in)."""
    fan_in = weight[0].numel()
    std = math.sqrt(2.0 / fan_in) / 0.87962566103423978  # Keras' truncation correction
    return nn.init.trunc_normal_(weight, mean=0.0, std=std, a=-2 * std, b=2 * std)


class SeparableConv2d(nn.Module):
    """Depthwise KxK convolution (one filter per channel, no bias) then a 1x1 pointwise conv.

    Padding is "same" and the stride 1, so H x W is kept for odd and even kernels alike.
    Parameters without bias: ``K*K*in_channels + in_channels*out_channels``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(
            in_channels,
            in_channels,
            pair(kernel_size),
            padding="same",
            groups=in_channels,
            bias=False,
        )
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        keras_he_normal_(self.depthwise.weight)
        keras_he_normal_(self.pointwise.weight)
        if self.pointwise.bias is not None:
            nn.init.zeros_(self.pointwise.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(x))
