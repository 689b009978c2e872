"""Continuous recognition of whole videos: the network's per-step probabilities, segmented into
gestures (:mod:`aclstm.analysis.segmentation`) and scored against the truth
(:mod:`aclstm.analysis.continuous`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from aclstm.analysis.continuous import score_videos
from aclstm.analysis.segmentation import SegmenterSettings, segment_steps
from aclstm.data.congd import ConGDDataset, Segment
from aclstm.models import FRAMES_PER_STEP, lookahead_of

__all__ = [
    "background_classes",
    "list_label",
    "lookahead_padding",
    "recognise_videos",
    "step_probabilities",
]

# Class names that mean "no gesture" in a model's classes: the continuous sets' class 0, and
# Jester's two non-gestures, so a model trained on isolated Jester clips can be streamed too.
BACKGROUND_NAMES = ("background", "no gesture", "doing other things")


def background_classes(classes: Sequence[str]) -> list[int]:
    """The indices of the classes that are no gesture; an error when there is none (a model
    that cannot say "nothing is happening" cannot find where gestures are)."""
    found = [k for k, name in enumerate(classes) if name.lower() in BACKGROUND_NAMES]
    if not found:
        raise ValueError(
            "the model has no background class (one of: "
            f"{', '.join(BACKGROUND_NAMES)}): it cannot tell where gestures start and end"
        )
    return found


def list_label(classes: Sequence[str], index: int) -> int:
    """The label a ConGD list gives class ``index`` of a model's ``classes``: the index
    itself where class 0 is the background (as in the continuous data sets, whose list
    labels are those indices), else index + 1 (a list's labels start at 1)."""
    return index if classes[0].lower() == "background" else index + 1


def lookahead_padding(clip: torch.Tensor, lookahead: int) -> torch.Tensor:
    """The frames (C, n, H, W) that follow a clip (C, T, H, W) so that a network with
    ``lookahead`` names its last steps too: its last frame, held for that many steps."""
    return clip[:, -1:].expand(-1, lookahead * FRAMES_PER_STEP, -1, -1)


@torch.no_grad()
def step_probabilities(model: torch.nn.Module, clip: torch.Tensor) -> np.ndarray:
    """Per-step class probabilities (T', classes) of one clip (C, T, H, W), row t naming step
    t: for a network with a ``lookahead`` (GestureNetConfig), the clip is followed by
    :func:`lookahead_padding` and the first ``lookahead`` rows, which name no step, are
    dropped."""
    device = next(model.parameters()).device
    lookahead = lookahead_of(model)
    if lookahead:
        clip = torch.cat([clip, lookahead_padding(clip, lookahead)], dim=1)
    logits = model.forward_steps(clip.unsqueeze(0).to(device))[0, lookahead:]
    return logits.float().softmax(dim=-1).cpu().numpy()


def recognise_videos(
    model: torch.nn.Module,
    dataset: ConGDDataset,
    settings: SegmenterSettings | None = None,
    variant: str = "2017",
) -> dict[str, Any]:
    """Segment every whole video of ``dataset`` (``window=None``) and, where the list gives
    the truth, score: mean Jaccard (``variant``) and Levenshtein accuracy. Returns the found
    segments per video (labels as the dataset's class indices, 1-based gestures), the truth
    of the videos that have it, and the scores (None without truth)."""
    if dataset.window is not None:
        raise ValueError("recognise whole videos: build the data set with window=None")
    model.eval()
    background = background_classes(dataset.classes)
    found: dict[str, list[Segment]] = {}
    truth: dict[str, Sequence[Segment]] = {}
    frames_per_step = FRAMES_PER_STEP * dataset.frame_stride
    for index, video in enumerate(dataset.videos):
        clip, _ = dataset[index]
        probabilities = step_probabilities(model, clip)
        gestures = segment_steps(probabilities, settings, background, frames_per_step)
        num_frames = dataset.num_frames(index)
        found[video.entry.video] = [g.segment().clipped(num_frames) for g in gestures]
        if video.entry.segments is not None:
            truth[video.entry.video] = video.entry.segments
    scores = None
    if truth:
        scores = score_videos(truth, {k: v for k, v in found.items() if k in truth}, variant)
    return {"segments": found, "truth": truth, "scores": scores}
