"""Crop and bilinear resize of uint8 clips into float rows, minus a mean: compiled or torch.

The compiled kernel (``_cropresize.c``, built at install where a C compiler and Python's
headers are found) does crop, resize, float conversion and mean in one pass over each frame:
a quarter to a third of the time of torch's uint8 resize followed by the conversion (see
docs/benchmarks.md). It serves clips scaled up or kept at their size (the paper's Jester
frames, 100 -> 112), where its vector code applies; clips scaled down (which the JPEG decoder
has mostly done already) and antialiased resizes stay on torch. The kernel's values are exact
bilinear ones; torch's uint8 resize rounds them to whole grey levels (under one level apart).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

try:
    from . import _cropresize
except ImportError:  # not built (no C compiler at install): torch does it all
    _cropresize = None

__all__ = ["KERNEL", "crop_resize"]

# The compiled kernel's code path ("AVX2" or "generic"), or None where it is not built.
KERNEL: str | None = None if _cropresize is None else _cropresize.ISA


def crop_resize(
    frames: Tensor,
    top: int,
    left: int,
    side: int,
    size: int,
    mean: Sequence[float] | None = None,
    antialias: bool = False,
) -> Tensor:
    """uint8 frames (T, H, W, C) -> float32 rows (T, size, size * C): the square
    ``[top : top + side, left : left + side]`` of each frame, resized bilinearly to
    ``size`` x ``size`` (torch's ``align_corners=False`` coordinates; ``antialias`` averages
    over the footprint when shrinking, as PIL does), minus the per-channel ``mean`` if given.

    Rows of interleaved channels: the layout a channels-last network reads."""
    if _kernel_serves(frames, side, size, antialias):
        return _kernel_crop_resize(frames.contiguous(), top, left, side, size, mean)
    t, _, _, channels = frames.shape
    clip = frames[:, top : top + side, left : left + side]  # (T, s, s, C)
    if side != size:  # on uint8, channels-last in and out
        clip = F.interpolate(
            clip.permute(0, 3, 1, 2),
            size=(size, size),
            mode="bilinear",
            align_corners=False,
            antialias=antialias,
        ).permute(0, 2, 3, 1)
    rows = torch.empty((t, size, size * channels), dtype=torch.float32)
    rows.view(t, size, size, channels).copy_(clip)
    if mean is not None:
        # A mean tiled along a row broadcasts over T and H in vector code; a (C,) mean
        # broadcast over the innermost axis of length C does not (10x slower).
        rows.sub_(torch.tensor(mean, dtype=torch.float32).repeat(size))
    return rows


def _kernel_serves(frames: Tensor, side: int, size: int, antialias: bool) -> bool:
    """Whether the compiled kernel takes these frames: uint8 in memory, scaled up or kept."""
    return (
        _cropresize is not None
        and not antialias
        and side <= size
        and frames.dtype == torch.uint8
        and frames.device.type == "cpu"
    )


def _kernel_crop_resize(
    frames: Tensor, top: int, left: int, side: int, size: int, mean: Sequence[float] | None
) -> Tensor:
    t, height, width, channels = frames.shape
    means = np.zeros(channels, np.float32) if mean is None else np.asarray(mean, np.float32)
    rows = torch.empty((t, size, size * channels), dtype=torch.float32)
    _cropresize.crop_resize(
        frames.numpy(), (t, height, width, channels), (top, left, side, size), means, rows.numpy()
    )
    return rows
