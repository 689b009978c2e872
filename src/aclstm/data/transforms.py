"""Spatial preprocessing of the released code: square crop, resize, mean subtraction."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence

from torch import Tensor

from .resize import crop_resize

__all__ = ["CENTERING", "MEANS", "PREPROCESSING", "crop_box", "mirror_labels", "prepare_clip"]

# How clips are made from frames. "default": JPEGs decoded scaled down in the DCT domain where
# the clip is far smaller, the crop offset rounded, a plain bilinear resize. "released": as the
# authors' code (scipy's imresize): full-resolution frames, the crop offset floored, PIL's
# bilinear resize, which averages over the whole footprint when it shrinks (antialiased).
PREPROCESSING = ("default", "released")

# What is subtracted from the pixels. "dataset": the data set's per-channel mean (MEANS), as
# released. "frame": each frame's own per-channel mean over the crop, which cancels a clip's
# colour and lighting offsets (on the synthetic set the network then leaves chance within 200
# steps instead of 400-600); it looks at one frame only, so a stream can apply it too.
CENTERING = ("dataset", "frame")

# Per-channel means subtracted by the released code (no division by a std).
MEANS: dict[str, tuple[float, ...]] = {
    "jester_rgb": (114.0, 109.0, 104.0),
    "isogd_rgb": (112.0, 112.0, 112.0),
    "isogd_depth": (127.0,),
    "isogd_flow": (128.0, 128.0),
}


# Words whose meaning a left-right mirror turns into the other one ("Swiping Left" <->
# "Swiping Right", "Turning Hand Clockwise" <-> "... Counterclockwise").
_MIRROR_WORDS = {
    "left": "right",
    "right": "left",
    "clockwise": "counterclockwise",
    "counterclockwise": "clockwise",
}
_MIRROR_PATTERN = re.compile(r"\b(" + "|".join(_MIRROR_WORDS) + r")\b", re.IGNORECASE)


def _mirrored_name(name: str) -> str:
    def swap(match: re.Match) -> str:
        word = _MIRROR_WORDS[match.group(0).lower()]
        return word.capitalize() if match.group(0)[0].isupper() else word

    return _MIRROR_PATTERN.sub(swap, name)


def mirror_labels(classes: Sequence[str]) -> list[int]:
    """For each class, the class a left-right mirrored clip of it shows: the name with Left and
    Right (and Clockwise and Counterclockwise) swapped, matched without regard to case; a class
    whose name has no such word is its own mirror. A mirrored name missing from ``classes``
    is an error (the flip would make clips of a class the data set does not have)."""
    index = {name.lower(): k for k, name in enumerate(classes)}
    labels = []
    for name in classes:
        mirrored = _mirrored_name(name)
        if mirrored.lower() not in index:
            raise ValueError(
                f"horizontal flip: class {name!r} mirrors to {mirrored!r}, which is not a class"
            )
        labels.append(index[mirrored.lower()])
    return labels


def crop_box(
    height: int,
    width: int,
    training: bool,
    rng: random.Random | None = None,
    floor: bool = False,
) -> tuple[int, int, int]:
    """``(top, left, side)`` of the largest square: centred in evaluation; in training at one
    random fraction of the free room on both axes (so only the long axis moves). The offset
    is rounded, or floored (``int(room·u)``) as the released code does with ``floor``."""
    side = min(height, width)
    fraction = (rng or random).random() if training else 0.5
    offset = math.floor if floor else round
    return offset((height - side) * fraction), offset((width - side) * fraction), side


def prepare_clip(
    frames: Tensor,
    size: int,
    mean: Sequence[float],
    training: bool,
    rng: random.Random | None = None,
    preprocessing: str = "default",
    center: str = "dataset",
) -> Tensor:
    """uint8 frames (T, H, W, C) -> float32 (C, T, size, size): one square crop for the whole
    clip, bilinear resize (:func:`~aclstm.data.resize.crop_resize`), minus the per-channel
    ``mean``, or with ``center="frame"`` minus each frame's own per-channel mean
    (:data:`CENTERING`).

    The clip keeps the frames' channels-last layout (its strides are ``channels_last_3d``'s
    once batched): no transposition here, and none when a channels-last network reads it.

    ``preprocessing="released"`` floors the crop offset and resizes as PIL's bilinear does
    (antialiased; torch's uint8 kernel for it agrees with Pillow to one grey level)."""
    if frames.dim() != 4:
        raise ValueError(f"expected frames (T, H, W, C), got shape {tuple(frames.shape)}")
    if frames.shape[-1] != len(mean):
        raise ValueError(f"frames have {frames.shape[-1]} channels, the mean has {len(mean)}")
    if preprocessing not in PREPROCESSING:
        raise ValueError(f"preprocessing must be one of {PREPROCESSING}, got {preprocessing!r}")
    if center not in CENTERING:
        raise ValueError(f"center must be one of {CENTERING}, got {center!r}")
    t, height, width, channels = frames.shape
    released = preprocessing == "released"
    top, left, side = crop_box(height, width, training, rng, floor=released)
    dataset_mean = mean if center == "dataset" else None
    rows = crop_resize(frames, top, left, side, size, dataset_mean, antialias=released)
    if center == "frame":
        frame_means = rows.view(t, -1, channels).mean(dim=1)  # (T, C)
        rows.sub_(frame_means.repeat(1, size).unsqueeze(1))
    return rows.view(t, size, size, channels).permute(3, 0, 1, 2)
