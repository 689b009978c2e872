"""Continuous synthetic videos: 2-8 gestures of the synthetic set one after another, with idle
stretches between them, written in ConGD's layout so :class:`~aclstm.data.ConGDDataset` reads
them unchanged.

One video is one person in one scene (hand shape, skin, background, lighting, a distractor).
Between gestures the hand rests (held still, trembling a little), leaves the view and comes
back, or is out of view; some gestures follow each other with no gap at all. Each gesture is
an isolated clip's motion (:func:`~aclstm.data.synth.gesture_poses`) with the same variation
(speed, size, start position), joined smoothly to what came before. The gestures are the 25
classes that are gestures: "No gesture" and "Doing other things" look like the idle
stretches, so they are background here, as in a stream. Labels are 1-based indices into the
27 names (``classes.txt``), the same classes as the isolated set.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .congd import Segment, format_congd_line
from .synth import JESTER_CLASSES, HandPose, Scene, SynthSpec, draw_length, gesture_poses
from .video import write_video

__all__ = [
    "BACKGROUND_CLASSES",
    "GESTURES_PER_VIDEO",
    "ContinuousVideo",
    "plan_continuous",
    "render_continuous",
    "write_continuous_set",
]

BACKGROUND_CLASSES = ("No gesture", "Doing other things")
GESTURES_PER_VIDEO = (2, 8)  # the fewest and the most, drawn uniformly
IDLE_FRAMES = (6, 30)  # an idle stretch between two gestures
EDGE_FRAMES = (4, 24)  # the idle stretch before the first gesture and after the last
BACK_TO_BACK = 0.15  # the chance that a gesture follows the previous one with no gap
IDLE_KINDS = ("rest", "away", "absent")
VIDEOS_PER_FOLDER = 200  # as ConGD: train/001/, train/002/, ...
_GESTURES_ON_AVERAGE = sum(GESTURES_PER_VIDEO) / 2


@dataclass
class ContinuousVideo:
    frames: np.ndarray  # (T, 100, 176, 3) uint8
    depths: np.ndarray | None  # (T, 100, 176) uint8
    segments: list[Segment]  # 1-based frames, labels 1-based into JESTER_CLASSES


def gesture_classes(classes: tuple[int, ...] | None = None) -> list[int]:
    """Indices into JESTER_CLASSES of the classes a continuous video shows as gestures."""
    chosen = range(len(JESTER_CLASSES)) if classes is None else classes
    kept = [k for k in chosen if JESTER_CLASSES[k] not in BACKGROUND_CLASSES]
    if not kept:
        raise ValueError("a continuous set needs at least one gesture class besides the background")
    return kept


def _toward(a: HandPose, b: HandPose, w: float) -> HandPose:
    """``b``'s hand moved a fraction ``1 - w`` of the way back to where ``a`` was."""
    return replace(
        b,
        x=a.x + (b.x - a.x) * w,
        y=a.y + (b.y - a.y) * w,
        scale=a.scale + (b.scale - a.scale) * w,
        angle=a.angle + (b.angle - a.angle) * w,
    )


def _out_of_view(pose: HandPose, rng: np.random.Generator) -> HandPose:
    edge = int(rng.integers(3))  # left, right or bottom
    if edge == 2:
        return replace(pose, y=pose.y + 120)
    return replace(pose, x=-60.0 if edge == 0 else 236.0)


def _move(a: HandPose | None, b: HandPose | None, n: int, rng) -> list[HandPose | None]:
    """``n`` frames going from ``a`` to ``b``; None (no hand) at one end enters or leaves by an
    edge of the view."""
    if n <= 0 or (a is None and b is None):
        return [None] * max(n, 0)
    a = _out_of_view(b, rng) if a is None else a
    b = _out_of_view(a, rng) if b is None else b
    return [_toward(a, b, (k + 1) / (n + 1)) for k in range(n)]


def _idle(
    before: HandPose | None, after: HandPose | None, n: int, rng: np.random.Generator
) -> list[HandPose | None]:
    """``n`` frames without a gesture between the pose ``before`` and the pose ``after``."""
    kind = IDLE_KINDS[int(rng.integers(len(IDLE_KINDS)))]
    if kind == "absent" or n < 3:
        return [None] * n
    if kind == "away":  # out of the view and back in
        half = n // 2
        return _move(before, None, half, rng) + _move(None, after, n - half, rng)
    rest = HandPose(
        x=rng.uniform(50, 126),
        y=rng.uniform(62, 82),
        scale=rng.uniform(0.8, 1.0),
        angle=rng.uniform(-0.3, 0.3),
        fingers=int(rng.choice([5, 0])),
        spread=0.8,
    )
    moving = max(1, n // 4)
    held = [
        replace(rest, x=rest.x + dx, y=rest.y + dy)
        for dx, dy in rng.normal(0, 0.6, size=(n - 2 * moving, 2))
    ]
    return _move(before, rest, moving, rng) + held + _move(rest, after, moving, rng)


def plan_continuous(
    rng: np.random.Generator,
    classes: tuple[int, ...] | None = None,
    frames: int | tuple[int, int] = (24, 48),
) -> tuple[list[HandPose | None], list[Segment]]:
    """The hand's pose in every frame of one continuous video (None: no hand in view) and
    its gestures, drawn from ``rng``; see :func:`render_continuous`."""
    kinds = gesture_classes(classes)
    count = int(rng.integers(GESTURES_PER_VIDEO[0], GESTURES_PER_VIDEO[1] + 1))
    poses: list[HandPose | None] = []
    segments: list[Segment] = []
    before: HandPose | None = None
    for i in range(count):
        label = kinds[int(rng.integers(len(kinds)))]
        motion = gesture_poses(JESTER_CLASSES[label], draw_length(frames, rng), rng)
        if i == 0:
            gap = int(rng.integers(EDGE_FRAMES[0], EDGE_FRAMES[1] + 1))
        elif rng.random() < BACK_TO_BACK:
            gap = 0
        else:
            gap = int(rng.integers(IDLE_FRAMES[0], IDLE_FRAMES[1] + 1))
        poses += _idle(before, motion[0], gap, rng)
        if gap == 0 and before is not None:  # straight on: the hand glides into the gesture
            lead = max(1, len(motion) // 6)
            for k in range(lead):
                motion[k] = _toward(before, motion[k], (k + 1) / (lead + 1))
        segments.append(Segment(len(poses) + 1, len(poses) + len(motion), label + 1))
        poses += motion
        before = motion[-1]
    poses += _idle(before, None, int(rng.integers(EDGE_FRAMES[0], EDGE_FRAMES[1] + 1)), rng)
    return poses, segments


def render_continuous(
    seed: int | tuple[int, ...],
    classes: tuple[int, ...] | None = None,
    frames: int | tuple[int, int] = (24, 48),
    depth: bool = True,
) -> ContinuousVideo:
    """One continuous video from a seed (the same seed, the same video). ``classes``: the
    JESTER_CLASSES indices to draw gestures from (default: all 25 gestures); ``frames``: a
    gesture's length, or the range it is drawn from."""
    rng = np.random.default_rng(seed)
    poses, segments = plan_continuous(rng, classes, frames)
    rgb, depths = Scene(rng, len(poses)).render(poses, rng, depth)
    return ContinuousVideo(rgb, depths, segments)


_SPLIT_FOLDERS = {"train": "train", "validation": "valid", "test": "test"}


def _video_job(args: tuple) -> tuple[str, str, list[Segment], int]:
    out, spec, index, split = args
    video = render_continuous((spec.seed, 7, index), spec.classes, spec.frames)
    name = f"{_SPLIT_FOLDERS[split]}/{index // VIDEOS_PER_FOLDER + 1:03d}/{index + 1:05d}"
    base = Path(out) / name
    write_video(base.with_name(f"M_{base.name}.avi"), video.frames)
    write_video(base.with_name(f"K_{base.name}.avi"), np.repeat(video.depths[..., None], 3, -1))
    return split, name, video.segments, len(video.frames)


def write_continuous_set(out: str | Path, spec: SynthSpec, workers: int = 1) -> dict[str, int]:
    """Render and write a continuous set in ConGD's layout: ``{train,valid,test}/NNN/M_xxxxx.avi``
    (and ``K_``, depth), ``train_list.txt`` and ``valid_list.txt`` with the gestures,
    ``test_list.txt`` with the names only and ``test_truth.txt`` with its gestures, and
    ``classes.txt``. About ``spec.clips_per_class`` gestures of each class in all (videos hold
    5 on average). Returns the number of videos per split."""
    kinds = gesture_classes(tuple(spec.class_indices()))
    total = max(1, round(spec.clips_per_class * len(kinds) / _GESTURES_ON_AVERAGE))
    n_val = max(1, round(total * spec.val_fraction)) if spec.val_fraction > 0 else 0
    n_test = round(total * spec.test_fraction)
    splits = ["train"] * (total - n_val - n_test) + ["validation"] * n_val + ["test"] * n_test
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(str(out), spec, index, split) for index, split in enumerate(splits)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(_video_job, jobs))
    else:
        results = [_video_job(job) for job in jobs]
    lines: dict[str, list[str]] = {split: [] for split in _SPLIT_FOLDERS}
    for split, name, segments, _ in results:
        lines[split].append(format_congd_line(name, segments))
    files = {"train": "train_list.txt", "validation": "valid_list.txt", "test": "test_truth.txt"}
    for split, filename in files.items():
        (out / filename).write_text("".join(f"{line}\n" for line in lines[split]))
    names_only = [line.split()[0] for line in lines["test"]]
    (out / "test_list.txt").write_text("".join(f"{name}\n" for name in names_only))
    (out / "classes.txt").write_text("".join(f"{name}\n" for name in JESTER_CLASSES))
    return {split: len(items) for split, items in lines.items()}
