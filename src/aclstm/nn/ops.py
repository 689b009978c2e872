"""Small building blocks shared by the cells: separable convolution, pooling, gates, attention."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from .init import he_normal_

__all__ = [
    "GATE_ACTIVATIONS",
    "SeparableConv2d",
    "channel_attention",
    "global_avg_pool",
    "hard_sigmoid",
    "lstm_update",
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


def _tracing() -> bool:
    """Under ``torch.compile``, ``torch.export`` or ``torch.jit.trace``, which fuse or export
    the plain ops well: the autograd Functions below then step aside."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


def _hand_written_cpu_path(x: Tensor) -> bool:
    """Whether ``x`` takes the CPU fp32/fp64 paths below: not on other devices, in reduced
    precision, or while tracing."""
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and not _tracing()


def _tanh_by_sigmoid(x: Tensor) -> Tensor:
    """``2·σ(2x) − 1`` without autograd: one new tensor, updated in place."""
    return torch.sigmoid_(x * 2).mul_(2).sub_(1)


_tanh_backward = torch.ops.aten.tanh_backward  # grad·(1 − y²) from the output y


class _TanhViaSigmoid(torch.autograd.Function):
    """``tanh(x) = 2·σ(2x) − 1`` forward; backward from the output, as ``torch.tanh``'s."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor) -> Tensor:
        return _tanh_by_sigmoid(x)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return _tanh_backward(grad, y)


def tanh(x: Tensor) -> Tensor:
    """``torch.tanh``, computed as ``2·σ(2x) − 1`` for fp32/fp64 tensors on the CPU.

    On the CPU, torch's tanh is several times slower than its sigmoid (on a 2-core AVX-512
    machine with torch 2.13: 530 us against 85 us for 2x256x28x28 floats), and the cells apply
    tanh to two full-size maps per step, which made it the largest elementwise cost of the small
    cells. The identity is exact; in floating point it differs from ``torch.tanh`` by at most a
    few units in the last place of 1 (about 2e-7 in fp32), in absolute terms. Elsewhere (see
    ``_hand_written_cpu_path``) it is ``torch.tanh``.
    """
    return _TanhViaSigmoid.apply(x) if _hand_written_cpu_path(x) else torch.tanh(x)


def _sum_to(grad: Tensor, like: Tensor) -> Tensor:
    """``grad`` summed over the dims ``like`` broadcasts (a pooled gate's H x W)."""
    return grad.sum_to_size(like.shape)


def _add(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    """``a + b`` where None is zero; in place on ``a``, a fresh tensor of the backward."""
    if a is None or b is None:
        return b if a is None else a
    return a.add_(b)


class _LSTMUpdate(torch.autograd.Function):
    """:func:`lstm_update` as one autograd node, its backward written out.

    ``G_t`` and ``tanh(C_t)`` are outputs too (``lstm_update`` drops them), so the tensors the
    backward reuses are tied to the inputs through this node and a double backward is right.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(pre_g, i, f, o, c_prev):
        g = _tanh_by_sigmoid(pre_g)
        c = i * g
        if c_prev is not None:
            c.addcmul_(f, c_prev)
        tanh_c = _tanh_by_sigmoid(c)
        return o * tanh_c, c, g, tanh_c

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        _, i, f, o, c_prev = inputs
        _, _, g, tanh_c = output
        ctx.set_materialize_grads(False)  # an unused output brings no gradient: no zeros made
        ctx.save_for_backward(i, f, o, c_prev, g, tanh_c)

    @staticmethod
    def backward(ctx, grad_h, grad_c, grad_g, grad_tanh_c):
        i, f, o, c_prev, g, tanh_c = ctx.saved_tensors
        need_pre, need_i, need_f, need_o, need_c_prev = ctx.needs_input_grad
        grad_o = _sum_to(grad_h * tanh_c, o) if need_o and grad_h is not None else None
        # dL/dC_t: through H_t = o∘tanh(C_t), and from the next step (grad_c).
        grad_cell = _add(None if grad_h is None else grad_h * o, grad_tanh_c)
        if grad_cell is not None:
            grad_cell = _tanh_backward(grad_cell, tanh_c)
        grad_cell = _add(grad_cell, grad_c)
        if grad_cell is None and grad_g is None:
            return None, None, None, grad_o, None
        grad_i = grad_f = grad_c_prev = None
        if grad_cell is not None:
            grad_i = _sum_to(grad_cell * g, i) if need_i else None
            if c_prev is not None:
                grad_f = _sum_to(grad_cell * c_prev, f) if need_f else None
                grad_c_prev = grad_cell * f if need_c_prev else None
        grad_pre = None
        if need_pre:
            grad_pre = _add(None if grad_cell is None else grad_cell * i, grad_g)
            grad_pre = _tanh_backward(grad_pre, g)
        return grad_pre, grad_i, grad_f, grad_o, grad_c_prev


def lstm_update(
    pre_g: Tensor, i: Tensor, f: Tensor, o: Tensor, c_prev: Tensor | None
) -> tuple[Tensor, Tensor]:
    """The LSTM state update (paper Eqs. 4-6): ``G_t = tanh(pre_g)``,
    ``C_t = f∘C_{t-1} + i∘G_t``, ``H_t = o∘tanh(C_t)``; returns ``(H_t, C_t)``.

    The gates broadcast against the maps (a pooled gate is (B, C, 1, 1)); ``c_prev=None`` is
    a zero ``C_{t-1}``. For CPU fp32/fp64 (all inputs of one dtype) it runs as one autograd
    node whose backward is written out: autograd's own graph of these ops makes more full-size
    passes and temporaries per step (``addcmul``'s backward, for one, multiplies by its scale
    of 1), and the small cells spend much of their time in them.
    """
    tensors = (i, f, o) if c_prev is None else (i, f, o, c_prev)
    if _hand_written_cpu_path(pre_g) and all(t.dtype == pre_g.dtype for t in tensors):
        return _LSTMUpdate.apply(pre_g, i, f, o, c_prev)[:2]
    g = tanh(pre_g)
    c = i * g if c_prev is None else torch.addcmul(f * c_prev, i, g)
    return o * tanh(c), c


GATE_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "sigmoid": torch.sigmoid,
    "hard_sigmoid": hard_sigmoid,
}


class _ChannelsLastAvgPool(torch.autograd.Function):
    """Mean over (H, W) of a channels-last batch whose gradient keeps channels-last."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor) -> Tensor:
        return x.permute(0, 2, 3, 1).flatten(1, 2).mean(dim=1)  # (N, H·W, C) in memory

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.shape = inputs[0].shape

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        # Not materialised: autograd adds this broadcast view into the input's other
        # gradients (channel stride 1, so the sum comes out channels-last), or makes it dense.
        h, w = ctx.shape[-2:]
        return (grad / (h * w)).contiguous()[:, :, None, None].expand(ctx.shape)


def global_avg_pool(x: Tensor) -> Tensor:
    """Global average pooling over the last two (spatial) dims: ``(..., C, H, W) -> (..., C)``.

    A channels-last batch gets a channels-last gradient: ``mean`` over (H, W) returns it in
    NCHW, which sent the rest of the variants' backward through mixed layouts and conversion
    copies (and made the pooling's own backward 4x slower on the CPU).
    """
    channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
    if channels_last and not x.is_contiguous() and not _tracing():
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
        """The released cells' ``he_normal`` on both kernels (Keras' fan-in), zero bias."""
        he_normal_(self.depthwise)
        he_normal_(self.pointwise)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(x))
