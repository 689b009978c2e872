"""ChaLearn ConGD: continuous videos and the frame ranges of the gestures in them.

A list file has one line per video: ``<video without extension> s,e:label s,e:label …``, frames
1-based and inclusive, labels 1..249 (``train/001/00001 1,38:209 39,81:186``); a test list
has the names only. The same lines serve as a prediction file (:mod:`aclstm.analysis.continuous`
scores one against the truth). Frames outside every range show no gesture ("background").
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .clips import ClipDataset, ClipRecord, frame_files
from .io import DataError, read_jpegs, read_text_lines
from .lists import isogd_classes
from .transforms import MEANS, prepare_clip
from .video import read_video, read_video_frames

__all__ = [
    "BACKGROUND",
    "IGNORE",
    "ConGDDataset",
    "ConGDEntry",
    "ConGDVideo",
    "Segment",
    "format_congd_line",
    "frame_labels",
    "read_congd_list",
    "read_congd_segments",
    "write_congd_list",
]

BACKGROUND = "background"  # class 0 of a continuous data set: frames that show no gesture
IGNORE = -1  # label of frames with no truth: padding past a video's end, an unlabelled list

_SEGMENT = re.compile(r"^(\d+),(\d+):(\d+)$")
_LETTER = {"rgb": "M", "depth": "K"}  # as IsoGD: M_ videos are colour, K_ depth (Kinect)


@dataclass(frozen=True)
class Segment:
    """One gesture: its first and last frame (1-based, inclusive) and its label (1-based)."""

    start: int
    end: int
    label: int

    def __str__(self) -> str:
        return f"{self.start},{self.end}:{self.label}"

    def clipped(self, num_frames: int) -> Segment:
        """The segment ending at the video's last frame at the latest."""
        return Segment(self.start, min(self.end, num_frames), self.label)


@dataclass(frozen=True)
class ConGDEntry:
    """One line of a list: the video's name as written, its gestures (None: no labels given,
    as in a test list) and the line's number."""

    video: str
    segments: tuple[Segment, ...] | None
    line: int


def _parse_segment(path: Path, number: int, text: str, num_classes: int | None) -> Segment:
    match = _SEGMENT.match(text)
    if match is None:
        raise DataError(
            path, f"expected 's,e:label' (first and last frame, label), got {text!r}", number
        )
    start, end, label = (int(group) for group in match.groups())
    if start < 1:
        raise DataError(path, f"range {start},{end}: frames are numbered from 1", number)
    if end < start:
        raise DataError(path, f"range {start},{end} is reversed (it ends before it starts)", number)
    if label < 1 or (num_classes is not None and label > num_classes):
        high = "" if num_classes is None else str(num_classes)
        raise DataError(path, f"label {label} out of range 1..{high}", number)
    return Segment(start, end, label)


def read_congd_segments(path: str | Path, num_classes: int | None = None) -> list[ConGDEntry]:
    """The entries of a ConGD list (or prediction) file, checked: ranges in order, none
    reversed or overlapping another, labels within 1..``num_classes`` (when given), each video
    once. Anything else is a :class:`DataError` naming the file and line."""
    path = Path(path)
    entries: list[ConGDEntry] = []
    first_line: dict[str, int] = {}
    for number, line in read_text_lines(path):
        name, *fields = line.split()
        if name in first_line:
            raise DataError(
                path, f"video {name!r} listed again (first at line {first_line[name]})", number
            )
        first_line[name] = number
        segments = [_parse_segment(path, number, field, num_classes) for field in fields]
        for before, segment in itertools.pairwise(segments):
            if segment.start <= before.end:
                raise DataError(
                    path,
                    f"range {segment.start},{segment.end} overlaps or precedes the range before "
                    f"it ({before.start},{before.end}): ranges must be in order and disjoint",
                    number,
                )
        entries.append(ConGDEntry(name, tuple(segments) if segments else None, number))
    return entries


def format_congd_line(video: str, segments: Iterable[Segment]) -> str:
    """One list line: the video's name, then its gestures as ``s,e:label``."""
    return " ".join([video, *(str(segment) for segment in segments)])


def write_congd_list(path: str | Path, entries: Iterable[tuple[str, Sequence[Segment]]]) -> None:
    """Write ``(video, segments)`` pairs as a ConGD list (a truth or a prediction file)."""
    lines = [format_congd_line(video, segments) for video, segments in entries]
    Path(path).write_text("".join(f"{line}\n" for line in lines))


def frame_labels(segments: Sequence[Segment] | None, num_frames: int) -> np.ndarray:
    """The label of every frame (int64, 0-based frame index): a segment's label on its frames,
    0 (:data:`BACKGROUND`) elsewhere; :data:`IGNORE` everywhere when ``segments`` is None."""
    if segments is None:
        return np.full(num_frames, IGNORE, dtype=np.int64)
    labels = np.zeros(num_frames, dtype=np.int64)
    for segment in segments:
        labels[segment.start - 1 : segment.end] = segment.label
    return labels


@dataclass(frozen=True)
class ConGDVideo:
    """A list entry with the file it names (a video, or a folder of JPEG frames)."""

    entry: ConGDEntry
    source: Path
    list_file: Path

    def check_length(self, num_frames: int) -> None:
        """A range past the video's last frame is an error naming the list's line."""
        for segment in self.entry.segments or ():
            if segment.end > num_frames:
                raise DataError(
                    self.list_file,
                    f"range {segment.start},{segment.end} ends past the last frame of "
                    f"{self.source} ({num_frames} frames)",
                    self.entry.line,
                )


def _find_source(root: Path, name: str, modality: str) -> Path | None:
    """The file a list names: ``M_<id>.avi`` (or ``K_``, as IsoGD), ``<id>.M.avi``, or the
    name itself (a video with its suffix, or a folder of frames)."""
    base = root / name
    letter = _LETTER[modality]
    for candidate in (
        base.with_name(f"{letter}_{base.name}.avi"),
        base.with_name(f"{base.name}.{letter}.avi"),
        base,
    ):
        if candidate.exists():
            return candidate
    return None


def read_congd_list(
    path: str | Path,
    root: str | Path | None = None,
    modality: str = "rgb",
    num_classes: int | None = None,
    path_prefix: tuple[str, str] | None = None,
) -> list[ConGDVideo]:
    """The videos of a ConGD list with their files, from ``root`` (default: the list's
    folder); ``path_prefix=(old, new)`` rewrites a leading ``old`` of each name. A video
    missing from disk is a :class:`DataError` naming the list's line."""
    if modality not in _LETTER:
        raise ValueError(f"ConGD modality must be 'rgb' or 'depth', got {modality!r}")
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    videos = []
    for entry in read_congd_segments(path, num_classes):
        name = entry.video
        if path_prefix is not None and name.startswith(path_prefix[0]):
            name = path_prefix[1] + name[len(path_prefix[0]) :]
        source = _find_source(root, name, modality)
        if source is None:
            letter = _LETTER[modality]
            base = Path(name)
            raise DataError(
                path,
                f"no {modality} video for {entry.video!r} under {root}: looked for "
                f"{base.with_name(f'{letter}_{base.name}.avi')}, "
                f"{base.with_name(f'{base.name}.{letter}.avi')} and a folder {name}",
                entry.line,
            )
        videos.append(ConGDVideo(entry, source, path))
    return videos


class ConGDDataset(ClipDataset):
    """A ConGD-format data set: ``ROOT/{split}_list.txt`` (or ``list_file``) naming continuous
    videos. Each item is ``(clip, labels)``: the clip as float (C, T, size, size), preprocessed
    as :class:`ClipDataset`'s, and the label of each of its T frames (int64; 0 is
    :data:`BACKGROUND`, k the list's label k, :data:`IGNORE` where no truth is given).

    ``window=None``: whole videos (T = the video's length). ``window=L``: L consecutive frames
    of each video, starting at random in training (drawn as the other training draws, from
    ``seed``, epoch and index) and centred in evaluation; a shorter video is padded with its
    last frame, labelled :data:`IGNORE`. ``windows_per_video`` (training): that many windows
    of each video an epoch, each drawn on its own (item ``i`` is video ``i // k``).
    ``frame_stride=k``: every k-th frame of the videos (a window of L frames spans k x L of
    them), with their labels. ``cache_frames``: keep each video's frames, decoded and scaled
    down, in memory after its first read, so later windows cost no decoding (for a set that
    fits: the synthetic set's 170 training videos take about 360 MB at 32 x 32; with
    ``num_workers`` 0, or each worker keeps its own).

    ``classes``: the gestures' names in label order (label 1 first), or a file with one per
    line; default ``ROOT/classes.txt`` when it exists, else ConGD's labels ``"1"``..``"249"``.
    ``self.classes`` is ``[BACKGROUND, *classes]``, so a frame's label indexes it.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        modality: str = "rgb",
        window: int | None = None,
        size: int = 112,
        training: bool | None = None,
        classes: list[str] | str | Path | None = None,
        list_file: str | Path | None = None,
        path_prefix: tuple[str, str] | None = None,
        mean: tuple[float, ...] | None = None,
        seed: int | None = None,
        windows_per_video: int = 1,
        frame_stride: int = 1,
        cache_frames: bool = False,
    ) -> None:
        if frame_stride < 1:
            raise ValueError(
                f"frame_stride must be a positive number of frames, got {frame_stride}"
            )
        if window is not None and window < 1:
            raise ValueError(f"window must be a positive number of frames, got {window}")
        if windows_per_video < 1 or (windows_per_video > 1 and window is None):
            raise ValueError("windows_per_video must be at least 1, and needs a window")
        root = Path(root)
        names = _class_names(root, classes)
        list_file = Path(list_file) if list_file is not None else root / f"{split}_list.txt"
        self.videos = read_congd_list(list_file, root, modality, len(names), path_prefix)
        records = [
            ClipRecord(video.source, IGNORE, template=None)
            for video in self.videos
            for _ in range(windows_per_video)
        ]
        self.videos = [video for video in self.videos for _ in range(windows_per_video)]
        mean = MEANS[f"isogd_{modality}"] if mean is None else mean
        training = split == "train" if training is None else training
        super().__init__(
            records, [BACKGROUND, *names], window or 0, size, mean, training, seed=seed
        )
        self.window = window
        self.frame_stride = frame_stride
        self.cache_frames = cache_frames
        self._decoded: dict[Path, np.ndarray] = {}

    def frames(self, index: int, rng) -> tuple[np.ndarray, int, int]:
        """The frames of item ``index`` as uint8 (T, H, W, C), where they start in the video
        (0-based) and the video's length."""
        record = self.records[index]
        if self.cache_frames:
            return self._cached_frames(record, rng)
        min_side = self.decode_min_side
        if record.is_video:  # only the window's frames are kept, scaled down as decoded
            n = self.video_frames(record.source)
            start, stop = self._span(n, rng)
            picks = range(start, stop, self.frame_stride)
            return read_video_frames(record.source, picks, min_side), start, n
        files = frame_files(record.source)
        start, stop = self._span(len(files), rng)
        picks = files[start : stop : self.frame_stride]
        return read_jpegs(picks, min_side=min_side), start, len(files)

    def _cached_frames(self, record: ClipRecord, rng) -> tuple[np.ndarray, int, int]:
        frames = self._decoded.get(record.source)
        if frames is None:
            min_side = self.decode_min_side
            if record.is_video:
                frames = np.stack(read_video(record.source, min_side))
            else:
                frames = read_jpegs(frame_files(record.source), min_side=min_side)
            self._decoded[record.source] = frames
        start, stop = self._span(len(frames), rng)
        return frames[start : stop : self.frame_stride], start, len(frames)

    def num_frames(self, index: int) -> int:
        """The length of item ``index``'s whole video, in its frames (not the strided ones)."""
        source = self.records[index].source
        return (
            self.video_frames(source) if self.records[index].is_video else len(frame_files(source))
        )

    def _span(self, num_frames: int, rng) -> tuple[int, int]:
        """The frames a window covers (its first, one past its last): all, for whole videos."""
        span = None if self.window is None else self.window * self.frame_stride
        if span is None or num_frames <= span:
            return 0, num_frames
        room = num_frames - span
        start = rng.randint(0, room) if self.training else room // 2
        return start, start + span

    def load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        video, rng = self.videos[index], self.rng(index)
        frames, start, num_frames = self.frames(index, rng)
        video.check_length(num_frames)
        stride = self.frame_stride
        labels = frame_labels(video.entry.segments, num_frames)
        labels = labels[start : start + len(frames) * stride : stride]
        if self.window is not None and len(frames) < self.window:  # pad with the last frame
            pad = self.window - len(frames)
            frames = np.concatenate([frames, np.repeat(frames[-1:], pad, axis=0)])
            labels = np.concatenate([labels, np.full(pad, IGNORE, dtype=np.int64)])
        clip = torch.from_numpy(frames)[..., : len(self.mean)]
        if self.training and self._mirror is not None and rng.random() < 0.5:
            clip = clip.flip(2)
            known = labels >= 0
            labels[known] = np.asarray(self._mirror)[labels[known]]
        random_crop = self.training and self.random_crop
        clip = prepare_clip(
            clip, self.size, self.mean, random_crop, rng, self.preprocessing, self.center
        )
        return clip, torch.from_numpy(labels)


def _class_names(root: Path, classes: list[str] | str | Path | None) -> list[str]:
    if classes is None:
        default = root / "classes.txt"
        if not default.is_file():
            return isogd_classes()
        classes = default
    if isinstance(classes, (str, Path)):
        return [name for _, name in read_text_lines(classes)]
    return list(classes)
