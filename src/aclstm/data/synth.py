"""A synthetic gesture set with Jester's 27 classes, rendered procedurally, written in Jester's
(or IsoGD's) layout so the real loaders read it unchanged.

Each class is what its name says: the direction a hand moves (swiping, sliding two fingers),
its scale over time (pushing away, pulling in), the sense of an in-plane turn, stripes rolling
down or up the palm (rolling forward, backward), fingers spreading or closing (zooming), a
thumb up or down, shaking, a raised palm that stops, drumming fingers, no hand, or a hand
wandering about. Many pairs differ only in the direction of time, so a model that ignores
temporal order cannot separate them. Everything else varies: hand shape, size and colour,
start position, speed, clip length (24-48 frames), textured and drifting backgrounds,
lighting, camera noise, a distractor blob and JPEG artefacts. Frames are 176x100.

Image axes: x grows to the right, y downwards; "left" is towards x = 0.
"""

from __future__ import annotations

import math
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import simplejpeg

__all__ = ["CLIP_FRAMES", "JESTER_CLASSES", "SynthSpec", "render_clip", "write_synthetic_set"]

JESTER_CLASSES = [
    "Swiping Left", "Swiping Right", "Swiping Down", "Swiping Up",
    "Pushing Hand Away", "Pulling Hand In",
    "Sliding Two Fingers Left", "Sliding Two Fingers Right",
    "Sliding Two Fingers Down", "Sliding Two Fingers Up",
    "Pushing Two Fingers Away", "Pulling Two Fingers In",
    "Rolling Hand Forward", "Rolling Hand Backward",
    "Turning Hand Clockwise", "Turning Hand Counterclockwise",
    "Zooming In With Full Hand", "Zooming Out With Full Hand",
    "Zooming In With Two Fingers", "Zooming Out With Two Fingers",
    "Thumb Up", "Thumb Down", "Shaking Hand", "Stop Sign", "Drumming Fingers",
    "No gesture", "Doing other things",
]  # fmt: skip

WIDTH, HEIGHT = 176, 100
_DIRECTIONS = {"Left": (-1, 0), "Right": (1, 0), "Down": (0, 1), "Up": (0, -1)}


@dataclass
class HandPose:
    """Where and how the hand is drawn in one frame."""

    x: float
    y: float
    scale: float = 1.0
    angle: float = 0.0  # radians, clockwise on screen (y points down)
    fingers: int = 5  # 5, 2 (two fingers) or 0 (fist)
    spread: float = 1.0  # how far the fingers stand out
    thumb: int = 0  # +1 thumb up, -1 thumb down, 0 none
    stripe_phase: float | None = None  # rolling: stripes moving along the palm
    finger_lift: tuple[float, ...] = ()  # drumming: per-finger extra length


def _ease(s: np.ndarray) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(s, 0.0, 1.0))


def gesture_poses(name: str, n: int, rng: np.random.Generator) -> list[HandPose | None]:
    """The hand pose of every frame for class ``name``."""
    if name == "No gesture":
        return [None] * n
    start = rng.uniform(0.05, 0.3)
    length = rng.uniform(0.45, 0.9 - start)  # speed: the gesture's share of the clip
    s = _ease((np.linspace(0, 1, n) - start) / length)  # 0 -> 1 during the gesture
    cx, cy = rng.uniform(70, 106), rng.uniform(42, 58)
    size = rng.uniform(0.85, 1.2)
    tilt = rng.uniform(-0.2, 0.2)  # how the hand is held, for the whole clip
    two = "Two Fingers" in name
    fingers = 2 if two else 5
    if name == "Doing other things":
        fingers = int(rng.choice([0, 2, 5]))
    poses = []
    for k in range(n):
        p = HandPose(cx, cy, size, tilt, fingers)
        t = s[k]
        words = name.split()
        if words[0] in ("Swiping", "Sliding"):
            dx, dy = _DIRECTIONS[words[-1]]
            # Half the path, kept inside the central 100x100 square a crop keeps.
            reach = (36 if dx else 22) * (0.75 if two else 1.0)
            p.x, p.y = cx + dx * reach * (t - 0.5) * 2, cy + dy * reach * (t - 0.5) * 2
        elif words[0] in ("Pushing", "Pulling"):
            away = words[0] == "Pushing"
            p.scale = size * (1.3 - 0.7 * t if away else 0.6 + 0.7 * t)
        elif words[0] == "Rolling":
            direction = 1 if words[-1] == "Forward" else -1
            p.stripe_phase = direction * 3.0 * t
            p.y = cy + direction * 6 * t
        elif words[0] == "Turning":
            direction = 1 if words[-1] == "Clockwise" else -1
            p.angle = tilt + direction * 1.6 * (t - 0.5)
        elif words[0] == "Zooming":
            opening = words[1] == "In"
            p.spread = 0.35 + 0.9 * t if opening else 1.25 - 0.9 * t
        elif words[0] == "Thumb":
            p.fingers, p.thumb = 0, 1 if words[1] == "Up" else -1
            p.y = cy + 8 * (1 - t) * (1 if p.thumb > 0 else -1)
        elif name == "Shaking Hand":
            p.x = cx + 18 * math.sin(2 * math.pi * 3 * k / n) * (0.3 + 0.7 * (0 < t < 1))
        elif name == "Stop Sign":
            p.scale = size * (0.75 + 0.45 * t)
            p.y = cy + 10 * (1 - t)
        elif name == "Drumming Fingers":
            p.y = cy + 14
            p.finger_lift = tuple(
                0.5 * max(0.0, math.sin(2 * math.pi * (2.5 * k / n - j / 5))) for j in range(5)
            )
        poses.append(p)  # Doing other things: any shape, wandering about (below)
    if name == "Doing other things":
        walk = np.cumsum(rng.normal(0, 2.5, size=(n, 2)), axis=0)
        for p, (wx, wy) in zip(poses, walk, strict=True):
            p.x, p.y = cx + wx, cy + wy
    return poses


_YS, _XS = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)  # pixel coordinates


class _Canvas:
    """Float RGB image with anti-aliased, alpha-blended ellipses."""

    def __init__(self, image: np.ndarray) -> None:
        self.image = image
        self.ys, self.xs = _YS, _XS

    def ellipse(self, cx, cy, rx, ry, angle, colour) -> None:
        r = max(rx, ry) + 2
        x0, x1 = int(max(cx - r, 0)), int(min(cx + r + 1, WIDTH))
        y0, y1 = int(max(cy - r, 0)), int(min(cy + r + 1, HEIGHT))
        if x0 >= x1 or y0 >= y1:
            return
        xs, ys = self.xs[y0:y1, x0:x1] - cx, self.ys[y0:y1, x0:x1] - cy
        c, s = math.cos(angle), math.sin(angle)
        u, v = (xs * c + ys * s) / max(rx, 0.5), (-xs * s + ys * c) / max(ry, 0.5)
        d = np.sqrt(u * u + v * v)
        alpha = np.clip((1.0 - d) * min(rx, ry) + 0.5, 0.0, 1.0)[..., None]
        patch = self.image[y0:y1, x0:x1]
        patch += alpha * (np.asarray(colour, np.float32) - patch)


def _draw_hand(canvas: _Canvas, pose: HandPose, skin: np.ndarray, shape: np.ndarray) -> None:
    palm_w, palm_h, finger_len, finger_w = shape * pose.scale
    c, s = math.cos(pose.angle), math.sin(pose.angle)

    def at(dx: float, dy: float) -> tuple[float, float]:  # hand frame -> image
        return pose.x + dx * c - dy * s, pose.y + dx * s + dy * c

    # Fingers first, the palm over their roots.
    if pose.fingers:
        offsets = np.linspace(-0.75, 0.75, 5) if pose.fingers == 5 else np.array([-0.3, 0.3])
        for j, off in enumerate(offsets):
            lift = pose.finger_lift[j] if j < len(pose.finger_lift) else 0.0
            length = finger_len * (1.0 - lift)
            fan = off * 0.35 * pose.spread
            dx, dy = off * palm_w * 0.55 * pose.spread, -palm_h * 0.6 - length * 0.5
            fx, fy = at(dx + math.sin(fan) * length * 0.3, dy)
            canvas.ellipse(fx, fy, finger_w, length * 0.55, pose.angle + fan, skin * 0.97)
    if pose.thumb:
        tx, ty = at(palm_w * 0.2, -pose.thumb * (palm_h * 0.7 + finger_len * 0.35))
        canvas.ellipse(tx, ty, finger_w * 1.2, finger_len * 0.45, pose.angle, skin * 0.95)
    px, py = at(0.0, 0.0)
    height = palm_h * (0.8 if pose.fingers == 0 else 1.0)
    canvas.ellipse(px, py, palm_w * 0.6, height * 0.6, pose.angle, skin)
    if pose.stripe_phase is not None:  # rolling: two dark bands travelling along the palm
        for band in range(2):
            phase = (pose.stripe_phase + band * 0.5) % 1.0
            bx, by = at(0.0, (phase - 0.5) * height * 1.1)
            canvas.ellipse(bx, by, palm_w * 0.5, height * 0.08, pose.angle, skin * 0.55)


def _background(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A textured background (low-frequency noise over a gradient) and its drift per frame."""
    base = rng.uniform(40, 200, size=3).astype(np.float32)
    grad = np.linspace(-1, 1, WIDTH + 20, dtype=np.float32)[None, :, None] * rng.uniform(-30, 30, 3)
    coarse = rng.normal(0, 1, size=(14, 22, 3)).astype(np.float32)  # blotches of ~9 px
    noise = np.kron(coarse, np.ones((9, 9, 1), np.float32))[: HEIGHT + 20, : WIDTH + 20]
    for _ in range(4):  # soften the blocks' edges
        noise = (noise + np.roll(noise, 2, 0) + np.roll(noise, 2, 1) + np.roll(noise, -2, 0)) / 4
    noise += rng.normal(0, 0.25, size=noise.shape).astype(np.float32)  # fine grain
    pattern = base + rng.uniform(10, 45) * noise / (noise.std() + 1e-6)
    drift = rng.uniform(-0.3, 0.3, size=2)
    return (pattern + grad).astype(np.float32), drift


# Frames a clip has, drawn uniformly between the two (inclusive): Jester's clips average 36.
CLIP_FRAMES = (24, 48)


class Scene:
    """What stays the same over one clip or one continuous video: the person's skin and hand
    shape, the textured background and its drift, the lighting (varying slowly), a
    distractor blob and its velocity. Drawn from ``rng`` in a fixed order."""

    def __init__(self, rng: np.random.Generator, num_frames: int) -> None:
        self.skin = np.array(
            [rng.uniform(150, 250), rng.uniform(100, 190), rng.uniform(70, 160)], np.float32
        )
        self.shape = np.array(
            [rng.uniform(20, 28), rng.uniform(22, 30), rng.uniform(14, 22), rng.uniform(3, 5)],
            np.float32,
        )
        self.pattern, self.drift = _background(rng)
        gap = self.skin - self.pattern.mean(axis=(0, 1))
        if np.abs(gap).sum() < 90:  # keep the hand visible: push the background's colour away
            self.pattern -= np.sign(gap + 1e-3) * (90 - np.abs(gap).sum()) / 3
        self.light = rng.uniform(0.75, 1.15) + rng.uniform(-0.15, 0.15) * np.linspace(
            0, 1, num_frames
        )
        self.blob = rng.uniform([10, 10], [WIDTH - 10, HEIGHT - 10])
        self.blob_v = rng.normal(0, 1.2, size=2)
        self.blob_colour = rng.uniform(30, 230, size=3)

    def render(self, poses: list[HandPose | None], rng: np.random.Generator, depth: bool = True):
        """Frames (T, 100, 176, 3) uint8 showing ``poses`` (None: no hand in view), and depth
        maps (T, 100, 176) uint8 (None unless ``depth``); camera noise drawn from ``rng``."""
        n = len(poses)
        frames = np.empty((n, HEIGHT, WIDTH, 3), np.uint8)
        depths = np.empty((n, HEIGHT, WIDTH), np.uint8) if depth else None
        blob = self.blob
        for k, pose in enumerate(poses):
            ox, oy = (np.clip(10 + self.drift * k, 0, 20)).astype(int)
            canvas = _Canvas(self.pattern[oy : oy + HEIGHT, ox : ox + WIDTH].copy())
            blob = np.clip(blob + self.blob_v, [5, 5], [WIDTH - 5, HEIGHT - 5])
            canvas.ellipse(*blob, 5, 4, 0.0, self.blob_colour)
            if pose is not None:
                _draw_hand(canvas, pose, self.skin, self.shape)
            noise = rng.standard_normal(canvas.image.shape, dtype=np.float32)
            image = canvas.image * self.light[k] + 4.0 * noise
            frames[k] = np.clip(image, 0, 255).astype(np.uint8)
            if depths is not None:
                depths[k] = _depth_map(pose, rng, self.shape)
        return frames, depths


def render_clip(
    label: int,
    seed: int | tuple[int, ...],
    num_frames: int | tuple[int, int] = CLIP_FRAMES,
    depth: bool = True,
):
    """Frames (T, 100, 176, 3) uint8 of one clip of class ``label``, and its depth maps
    (T, 100, 176) uint8 (near is bright; None unless ``depth``), from a seed: the same seed,
    the same clip. ``num_frames``: T, or the (lowest, highest) T drawn from."""
    rng = np.random.default_rng(seed)
    n = draw_length(num_frames, rng)
    poses = gesture_poses(JESTER_CLASSES[label], n, rng)
    return Scene(rng, n).render(poses, rng, depth)


def draw_length(num_frames: int | tuple[int, int], rng: np.random.Generator) -> int:
    """``num_frames`` itself, or a length drawn uniformly from (lowest, highest)."""
    low, high = (num_frames, num_frames) if isinstance(num_frames, int) else num_frames
    if not 2 <= low <= high:
        raise ValueError(f"num_frames must be >= 2 (a pair: lowest <= highest), got {num_frames}")
    return low if low == high else int(rng.integers(low, high + 1))


def _depth_map(pose: HandPose | None, rng: np.random.Generator, shape: np.ndarray) -> np.ndarray:
    """A depth frame: a floor sloping away upwards, the hand nearer the bigger it is."""
    hand = np.zeros((HEIGHT, WIDTH, 1), np.float32)
    scale = 1.0
    if pose is not None:
        _draw_hand(_Canvas(hand), pose, np.ones(1, np.float32), shape)
        scale = pose.scale
    near = 60 + 120 * np.clip(scale - 0.5, 0, 1)
    d = 40 + 10 * (_YS / HEIGHT) + hand[..., 0] * near
    noise = rng.standard_normal(d.shape, dtype=np.float32)
    return np.clip(d + 2.0 * noise, 0, 255).astype(np.uint8)


# The layouts the set is written in: Jester's JPEG folders, IsoGD's M_/K_ videos of one gesture
# each, ConGD's continuous videos of several (aclstm.data.synth_continuous).
FORMATS = ("jester", "isogd", "congd")


@dataclass(frozen=True)
class SynthSpec:
    """How many clips and how they are split; ``seed`` fixes every pixel."""

    clips_per_class: int = 40
    val_fraction: float = 0.2
    test_fraction: float = 0.0
    seed: int = 0
    format: str = "jester"  # or "isogd", or "congd" (continuous videos): see FORMATS
    classes: tuple[int, ...] | None = None  # a subset of JESTER_CLASSES by index; None: all
    frames: tuple[int, int] = CLIP_FRAMES  # the shortest and the longest clip

    def class_indices(self) -> list[int]:
        if self.classes is None:
            return list(range(len(JESTER_CLASSES)))
        bad = [k for k in self.classes if not 0 <= k < len(JESTER_CLASSES)]
        if bad or len(set(self.classes)) != len(self.classes) or not self.classes:
            raise ValueError(
                f"classes must be distinct indices 0..{len(JESTER_CLASSES) - 1}, "
                f"got {list(self.classes)}"
            )
        return list(self.classes)

    def splits(self) -> list[str]:
        """The split of each clip index within a class."""
        n = self.clips_per_class
        n_val = max(1, round(n * self.val_fraction)) if self.val_fraction > 0 else 0
        n_test = round(n * self.test_fraction)
        return ["train"] * (n - n_val - n_test) + ["validation"] * n_val + ["test"] * n_test


# How the Jester-layout frames are coded, to cost what Jester's cost to decode. Jester's frames
# average about 4.3 KB: 22.9 GB for 148,092 clips (mindspore-ai/models, research/cv/trn/
# README.md) of ~36 frames. Chroma is subsampled 4:2:0, the default of Pillow and OpenCV and
# what FFmpeg writes from a 4:2:0 video. Qualities 60-90 bring these noisy frames to ~4.6 KB.
JPEG_QUALITIES = (60, 90)
JPEG_SUBSAMPLING = "420"


def _clip_job(args: tuple) -> tuple[str, int, str, int]:
    out, spec, label, index, clip_id = args
    frames, depth = render_clip(
        label, (spec.seed, label, index), spec.frames, depth=spec.format == "isogd"
    )
    low, high = JPEG_QUALITIES
    quality = int(np.random.default_rng((spec.seed, label, index, 1)).integers(low, high + 1))
    if spec.format == "jester":
        folder = Path(out) / "20bn-jester-v1" / clip_id
        folder.mkdir(parents=True, exist_ok=True)
        for k, frame in enumerate(frames, 1):
            data = simplejpeg.encode_jpeg(frame, quality=quality, colorsubsampling=JPEG_SUBSAMPLING)
            (folder / f"{k:05d}.jpg").write_bytes(data)
    else:
        from .video import write_video

        folder = Path(out) / "videos"
        write_video(folder / f"M_{clip_id}.avi", frames)
        write_video(folder / f"K_{clip_id}.avi", np.repeat(depth[..., None], 3, axis=-1))
    return clip_id, label, spec.splits()[index], len(frames)


def write_synthetic_set(out: str | Path, spec: SynthSpec, workers: int = 1) -> dict[str, int]:
    """Render and write the set; returns the number of clips (videos for "congd") per split."""
    if spec.format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {spec.format!r}")
    if spec.format == "congd":
        from .synth_continuous import write_continuous_set

        return write_continuous_set(out, spec, workers)
    out = Path(out)
    kinds = spec.class_indices()  # Jester class index of each written class
    names = [JESTER_CLASSES[k] for k in kinds]
    out.mkdir(parents=True, exist_ok=True)
    jobs = []
    for kind in kinds:
        for index in range(spec.clips_per_class):
            clip_id = f"{kind * spec.clips_per_class + index + 1:05d}"
            jobs.append((str(out), spec, kind, index, clip_id))
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(_clip_job, jobs, chunksize=4))
    else:
        results = [_clip_job(job) for job in jobs]
    by_split: dict[str, list[tuple[str, int]]] = {"train": [], "validation": [], "test": []}
    for clip_id, kind, split, _ in results:
        by_split[split].append((clip_id, kinds.index(kind)))
    if spec.format == "jester":
        _write(out / "jester-v1-labels.csv", names)
        for split in ("train", "validation"):
            _write(out / f"jester-v1-{split}.csv", [f"{i};{names[y]}" for i, y in by_split[split]])
        _write(out / "jester-v1-test.csv", [i for i, _ in by_split["test"]])
        _write(out / "test-answers.csv", [f"{i};{names[y]}" for i, y in by_split["test"]])
    else:
        lists = {"train": "train_list.txt", "validation": "valid_list.txt", "test": "test_list.txt"}
        for split, filename in lists.items():
            _write(
                out / filename,
                [f"videos/M_{i}.avi videos/K_{i}.avi {y + 1}" for i, y in by_split[split]],
            )
        _write(out / "classes.txt", names)
    return {split: len(items) for split, items in by_split.items()}


def _write(path: Path, lines: list[str]) -> None:
    path.write_text("".join(f"{line}\n" for line in lines))
