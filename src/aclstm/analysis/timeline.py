"""Pictures of continuous videos: frames sampled over time above the gestures' timeline."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from aclstm.data.congd import Segment
from aclstm.models.gesture_net import FRAMES_PER_STEP

from .report import pyplot, save_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "draw_contact_sheet",
    "draw_stream_timeline",
    "save_contact_sheet",
    "save_stream_timeline",
]


def _label_at(segments: Sequence[Segment], frame: int) -> int:
    """The label of 1-based ``frame``, 0 outside every gesture."""
    return next((s.label for s in segments if s.start <= frame <= s.end), 0)


def draw_contact_sheet(
    frames: np.ndarray,
    segments: Sequence[Segment],
    classes: Sequence[str],
    step: int = 6,
    columns: int = 10,
    title: str = "",
) -> Figure:
    """Every ``step``-th frame of ``frames`` (T, H, W, 3) in rows of ``columns``, each with its
    number and its gesture (``classes[label - 1]``; gesture frames framed in their colour),
    above a timeline of the whole video with one bar per gesture."""
    plt = pyplot()
    picks = list(range(0, len(frames), step))
    rows = -(-len(picks) // columns)
    height, width = frames.shape[1:3]
    cell = 1.6
    fig = plt.figure(figsize=(columns * cell, rows * cell * height / width * 1.25 + 1.2))
    grid = fig.add_gridspec(rows + 1, columns, height_ratios=[1] * rows + [0.5], hspace=0.35)
    colours = plt.get_cmap("tab20")
    for i, k in enumerate(picks):
        ax = fig.add_subplot(grid[i // columns, i % columns])
        ax.imshow(frames[k])
        label = _label_at(segments, k + 1)
        name = classes[label - 1] if label else "-"
        ax.set_title(f"{k + 1}\n{name}", fontsize=6)
        ax.set_xticks([]), ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_color(colours(label % 20) if label else "white")
            spine.set_linewidth(3 if label else 0.5)
    timeline = fig.add_subplot(grid[rows, :])
    for s in segments:
        timeline.barh(0, s.end - s.start + 1, left=s.start - 0.5, color=colours(s.label % 20))
        timeline.text((s.start + s.end) / 2, 0, classes[s.label - 1], ha="center", va="center",
                      fontsize=6, rotation=0, clip_on=True)  # fmt: skip
    timeline.set_xlim(0.5, len(frames) + 0.5)
    timeline.set_yticks([])
    timeline.set_xlabel("frame")
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def save_contact_sheet(path: str | Path, *args, dpi: int = 110, **kwargs) -> Path:
    """:func:`draw_contact_sheet` written to ``path`` (PNG)."""
    return save_figure(draw_contact_sheet(*args, **kwargs), path, dpi, tight=True)


def draw_stream_timeline(
    probabilities: np.ndarray,
    found: Sequence[Segment],
    classes: Sequence[str],
    fps: float,
    truth: Sequence[Segment] | None = None,
    title: str = "",
    frames_per_step: int = FRAMES_PER_STEP,
) -> Figure:
    """Per-step probabilities (T', classes) over time, one line per class that was found or
    is true, the gestures found shaded with their names, and the truth as bars below.
    Step t is drawn at the last frame it sees, ``frames_per_step`` x t + 1."""
    plt = pyplot()
    colours = plt.get_cmap("tab20")
    fig, (ax, bars) = plt.subplots(
        2, 1, figsize=(12, 3.6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    times = (frames_per_step * np.arange(len(probabilities)) + 1) / fps
    shown = sorted({s.label for s in found} | {s.label for s in truth or ()})
    for label in shown:
        ax.plot(times, probabilities[:, label], color=colours(label % 20), lw=1.2,
                label=classes[label])  # fmt: skip
    for s in found:
        ax.axvspan((s.start - 1) / fps, s.end / fps, color=colours(s.label % 20), alpha=0.15)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("probability")
    if shown:
        ax.legend(fontsize=6, ncol=4, loc="upper right")
    for row, segments in enumerate((found, truth or ())):
        for s in segments:
            bars.barh(row, (s.end - s.start + 1) / fps, left=(s.start - 1) / fps,
                      color=colours(s.label % 20))  # fmt: skip
    bars.set_yticks([0, 1], ["found", "truth"] if truth is not None else ["found", ""])
    bars.set_xlabel("time (s)")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def save_stream_timeline(path: str | Path, *args, **kwargs) -> Path:
    """:func:`draw_stream_timeline` written to ``path`` (PNG)."""
    return save_figure(draw_stream_timeline(*args, **kwargs), path)
