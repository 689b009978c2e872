"""Which frames of a clip to read: the released code's uniform sampling with temporal jitter."""

from __future__ import annotations

import math
import random

__all__ = ["sample_indices"]


def sample_indices(
    num_frames: int, clip_len: int, training: bool, rng: random.Random | None = None
) -> list[int]:
    """``clip_len`` 0-based frame indices out of ``num_frames``, non-decreasing (DESIGN.md §5).

    With ``div = n / T`` and ``s = floor(div)``:

    * ``n < T``: every frame once, then the last frame repeated;
    * evaluation, or training with ``s == 1``: ``floor(div * k)``;
    * training with ``s >= 2``: ``floor(div * k + (s / 2) * (u_k - 0.5))``, ``u_k ~ U[0, 1)``
      drawn from ``rng`` (the "temporal jitter");

    then the first index is clamped to >= 0 and the last to <= n - 1, as the released code
    does (the middle ones cannot leave the range).
    """
    if num_frames < 1:
        raise ValueError(f"a clip needs at least one frame, got {num_frames}")
    if clip_len < 1:
        raise ValueError(f"clip_len must be at least 1, got {clip_len}")
    if num_frames < clip_len:
        return list(range(num_frames)) + [num_frames - 1] * (clip_len - num_frames)
    div = num_frames / clip_len
    stride = math.floor(div)
    if training and stride >= 2:
        rng = rng or random
        indices = [
            math.floor(div * k + (stride / 2) * (rng.random() - 0.5)) for k in range(clip_len)
        ]
    else:
        indices = [math.floor(div * k) for k in range(clip_len)]
    indices[0] = max(indices[0], 0)
    indices[-1] = min(indices[-1], num_frames - 1)
    return indices
