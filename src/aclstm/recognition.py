"""Continuous recognition of whole videos: the network's per-step probabilities, segmented into
gestures (:mod:`aclstm.analysis.segmentation`) and scored against the truth
(:mod:`aclstm.analysis.continuous`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from aclstm.analysis.continuous import score_videos
from aclstm.analysis.phases import PhaseCombiner, combine_phases, phase_offsets
from aclstm.analysis.segmentation import SegmenterSettings, segment_steps
from aclstm.data.congd import ConGDDataset, Segment
from aclstm.models import FRAMES_PER_STEP, lookahead_of

__all__ = [
    "background_classes",
    "list_label",
    "lookahead_padding",
    "phase_probabilities",
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


@torch.no_grad()
def phase_probabilities(
    model: torch.nn.Module, frames: torch.Tensor, frame_stride: int = 1, phases: int = 1
) -> np.ndarray:
    """Class probabilities (rows, classes) of a whole video given frame by frame (C, N, H, W):
    the network on every ``frame_stride``-th frame from each of ``phases`` offsets of its step,
    combined (:mod:`aclstm.analysis.phases`); a row stands for 2 x frame_stride / phases
    frames. With ``phases=1``, :func:`step_probabilities` of every ``frame_stride``-th frame."""
    frames_per_step, num_frames = FRAMES_PER_STEP * frame_stride, frames.shape[1]
    runs = [
        step_probabilities(model, frames[:, offset::frame_stride]) if offset < num_frames else []
        for offset in phase_offsets(phases, frames_per_step)
    ]
    return combine_phases(runs, frames_per_step, num_frames)


def recognise_videos(
    model: torch.nn.Module,
    dataset: ConGDDataset,
    settings: SegmenterSettings | None = None,
    variant: str = "2017",
    frame_stride: int = 1,
) -> dict[str, Any]:
    """Segment every whole video of ``dataset`` (``window=None``, every frame:
    ``frame_stride=1``) with a network that sees every ``frame_stride``-th frame, and, where
    the list gives the truth, score: mean Jaccard (``variant``) and Levenshtein accuracy.
    Returns the found segments per video (labels as the dataset's class indices, 1-based
    gestures), the truth of the videos that have it, and the scores (None without truth)."""
    if dataset.window is not None or dataset.frame_stride != 1:
        raise ValueError(
            "recognise whole videos, every frame: build the data set with window=None and "
            "frame_stride=1 (the network's stride goes to frame_stride here)"
        )
    settings = settings or SegmenterSettings()
    model.eval()
    background = background_classes(dataset.classes)
    found: dict[str, list[Segment]] = {}
    truth: dict[str, Sequence[Segment]] = {}
    grid = PhaseCombiner(settings.phases, FRAMES_PER_STEP * frame_stride)  # the rows' frames
    for index, video in enumerate(dataset.videos):
        frames, _ = dataset[index]
        probabilities = phase_probabilities(model, frames, frame_stride, settings.phases)
        gestures = segment_steps(
            probabilities, settings, background, grid.frames_per_row, grid.lead
        )
        num_frames = dataset.num_frames(index)
        found[video.entry.video] = [g.segment().clipped(num_frames) for g in gestures]
        if video.entry.segments is not None:
            truth[video.entry.video] = video.entry.segments
    scores = None
    if truth:
        scores = score_videos(truth, {k: v for k, v in found.items() if k in truth}, variant)
    return {"segments": found, "truth": truth, "scores": scores}
