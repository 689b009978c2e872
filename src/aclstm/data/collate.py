"""Batching that drops the clips a data set skipped (``on_error="skip"``) and counts them."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch.utils.data import default_collate

__all__ = ["Batch", "collate_skipping"]


class Batch(NamedTuple):
    clips: torch.Tensor  # (B, C, T, H, W)
    labels: torch.Tensor  # (B,)
    skipped: int  # clips of this batch that could not be read and were left out


def collate_skipping(samples: list) -> Batch:
    """``default_collate`` over the readable samples; None marks a skipped clip. Clips
    (C, T, H, W) are stacked as (B, T, H, W, C), so the batch is ``channels_last_3d``: a plain
    copy of clips that are channels-last already (as :func:`prepare_clip` makes them)."""
    kept = [s for s in samples if s is not None]
    skipped = len(samples) - len(kept)
    if not kept:
        return Batch(torch.empty(0), torch.empty(0, dtype=torch.long), skipped)
    clips = default_collate([clip.permute(1, 2, 3, 0) for clip, _ in kept])
    labels = default_collate([label for _, label in kept])
    return Batch(clips.permute(0, 4, 1, 2, 3), labels, skipped)
