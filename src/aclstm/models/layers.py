"""Layers shared by the network's stages, with the released Keras code's conventions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Keras BatchNormalization defaults: epsilon 1e-3, momentum 0.99 (PyTorch momentum 0.01).
BN_EPS = 1e-3
BN_MOMENTUM = 0.01


def batch_norm_3d(channels: int) -> nn.BatchNorm3d:
    return nn.BatchNorm3d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


def batch_norm_2d(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


# How a strided layer's "same" padding is placed: "symmetric" (PyTorch's: (K-1)/2 on each
# side) or "tf" (TensorFlow's, as the released Keras network computes it: the total padding
# that keeps ceil(N/stride) outputs, the odd pixel on the far side). Both give the same shapes;
# at stride 1 with odd kernels they are the same padding.
PADDINGS = ("symmetric", "tf")


def tf_same_pads(sizes: Sequence[int], kernel: Sequence[int], stride: Sequence[int]) -> list[int]:
    """TensorFlow's "same" padding of an input of ``sizes`` (spatial dims, first to last), as
    ``F.pad``'s list: (before, after) of the last dim first."""
    pads: list[int] = []
    for n, k, s in reversed(list(zip(sizes, kernel, stride, strict=True))):
        total = max((-(-n // s) - 1) * s + k - n, 0)
        pads += [total // 2, total - total // 2]
    return pads


def check_padding(padding: str) -> str:
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {', '.join(PADDINGS)}; got {padding!r}")
    return padding


class _TFSame:
    """Convolutions that can pad as TensorFlow's "same" does (``tf_same=True``): the padding
    is worked out from each input's size, so any size gives the released network's windows."""

    def __init__(self, *args, tf_same: bool = False, **kwargs) -> None:
        super().__init__(*args, **({**kwargs, "padding": 0} if tf_same else kwargs))
        self.tf_same = tf_same

    def pad_input(self, x: Tensor) -> Tensor:
        if not self.tf_same:
            return x
        return F.pad(x, tf_same_pads(x.shape[2:], self.kernel_size, self.stride))


class Conv2d(_TFSame, nn.Conv2d):
    """``nn.Conv2d`` with the option of TensorFlow's "same" padding (``tf_same=True``)."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(self.pad_input(x))


# How a 3D convolution pads time: "symmetric" (as released: the output at t sees frames t-1,
# t, t+1) or "causal" (all the padding before the first frame: the output at t sees frames <= t,
# so the network can run on a stream frame by frame; see aclstm.models.streaming).
TEMPORAL_PADDINGS = ("symmetric", "causal")


def check_temporal_padding(temporal_padding: str) -> str:
    if temporal_padding not in TEMPORAL_PADDINGS:
        raise ValueError(
            f"temporal_padding must be one of {', '.join(TEMPORAL_PADDINGS)}; "
            f"got {temporal_padding!r}"
        )
    return temporal_padding


@dataclass
class StreamBuffer:
    """What a causal 3D convolution keeps between the chunks of a stream: the last k_t - 1
    inputs it saw (None before the first: zeros, as the offline padding) and the index the
    next input frame has in the stream (which frames a temporal stride keeps)."""

    frames: Tensor | None = None
    next_index: int = 0


class Conv3d(_TFSame, nn.Conv3d):
    """``nn.Conv3d`` with the option of TensorFlow's "same" padding (``tf_same=True``), of
    causal time (``causal=True``: k_t - 1 zero frames before the clip instead of half on each
    side, so that output t sees inputs <= t, and a temporal stride keeps the outputs at inputs
    0, s, 2s, ...), and that steps around a fault of the CPU's bf16 convolution (torch 2.13,
    oneDNN): on inputs 2 frames long, about 1 weight gradient in 10 came back with inf/NaN.
    Under CPU autocast, inputs shorter than 3 frames are convolved in fp32 instead.
    (Measured: 2 frames 10-14 of 100 calls, 1 and 3-6 frames none.)

    While ``stream`` holds a :class:`StreamBuffer`, a causal convolution takes its input as
    the next frames of a stream: the buffer's frames stand in for the zero padding, and only
    the outputs of the new frames come out (they must complete at least one)."""

    def __init__(self, *args, causal: bool = False, **kwargs) -> None:
        if causal and not kwargs.get("tf_same"):
            padding = kwargs.get("padding", 0)
            spatial = padding[1:] if isinstance(padding, tuple) else (padding, padding)
            kwargs["padding"] = (0, *spatial)
        super().__init__(*args, **kwargs)
        self.causal = causal
        self.stream: StreamBuffer | None = None

    def pad_input(self, x: Tensor) -> Tensor:
        if not (self.tf_same and self.causal):
            return super().pad_input(x)
        spatial = tf_same_pads(x.shape[3:], self.kernel_size[1:], self.stride[1:])
        return F.pad(x, [*spatial, 0, 0])

    def causal_window(self, x: Tensor) -> Tensor:
        """``x`` with the k_t - 1 frames before it: zeros, or the stream's previous inputs
        (then cut to the stride's phase, and the buffer moved on)."""
        before = self.kernel_size[0] - 1
        buffer = self.stream
        if buffer is None:
            return F.pad(x, [0, 0, 0, 0, before, 0])
        window = x
        if before:
            if buffer.frames is None:
                buffer.frames = x.new_zeros((*x.shape[:2], before, *x.shape[3:]))
            window = torch.cat([buffer.frames, x], dim=2)
            # A view: it holds this window (k_t - 1 + the chunk's frames) until the next one.
            buffer.frames = window[:, :, window.shape[2] - before :]
        phase = (-buffer.next_index) % self.stride[0]
        buffer.next_index += x.shape[2]
        return window[:, :, phase:]

    def forward(self, x: Tensor) -> Tensor:
        short = x.shape[2] < 3
        if self.causal:
            x = self.causal_window(x)
            if x.shape[2] < self.kernel_size[0]:
                raise ValueError(
                    "a streamed convolution was fed frames that complete none of its outputs "
                    "(the Streamer holds such frames back until they do)"
                )
        x = self.pad_input(x)
        if short and x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                return super().forward(x.float())
        return super().forward(x)


def reset_weights(module: nn.Module, kernel_init: Callable[[nn.Module], object]) -> None:
    """``kernel_init`` on every convolution of ``module``, BatchNorm back to its start."""
    for child in module.modules():
        if isinstance(child, nn.modules.conv._ConvNd):
            kernel_init(child)
        elif isinstance(child, nn.modules.batchnorm._BatchNorm):
            child.reset_parameters()


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
