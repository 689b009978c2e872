"""Find and name gestures as a video plays: a file, a folder of frames, a camera or a pipe.

:func:`open_source` gives the frames one at a time with their time; :class:`GestureStream`
preprocesses each as the checkpoint was trained, pushes it through the network's
:class:`~aclstm.models.streaming.Streamer` and hands the per-step probabilities to a
:class:`~aclstm.analysis.segmentation.Segmenter`, which reports each gesture once it has ended.
"""

from __future__ import annotations

import sys
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch

from aclstm.analysis.phases import PhaseCombiner
from aclstm.analysis.segmentation import Gesture, Segmenter, SegmenterSettings
from aclstm.data.clips import frame_files
from aclstm.data.congd import Segment
from aclstm.data.io import DataError, read_jpeg
from aclstm.data.transforms import prepare_clip
from aclstm.data.video import decode_frames, iter_video, probe_video
from aclstm.models import FRAMES_PER_STEP, GestureNet
from aclstm.recognition import background_classes, list_label, lookahead_padding

__all__ = [
    "Found",
    "FrameSource",
    "GestureStream",
    "Renderer",
    "StreamSummary",
    "format_time",
    "open_source",
    "run_stream",
]

_CAMERA_FORMATS = {"linux": "v4l2", "darwin": "avfoundation", "win32": "dshow"}


@dataclass
class FrameSource:
    """Frames (uint8 H x W x 3) one at a time, the rate they come at, and whether they come
    live (a camera: frames the model falls behind on are dropped, not queued)."""

    frames: Iterator[np.ndarray]
    fps: float
    live: bool = False
    name: str = "stream"
    corrupt: int = 0  # frames or packets that could not be decoded and were skipped

    def skip_corrupt(self, error: Exception) -> None:
        self.corrupt += 1


def _camera_frames(source: str, container, stream, min_side: int, on_corrupt):
    """A camera's frames; one that stops sending (unplugged, taken by another program) ends
    them with a DataError naming it."""
    try:
        yield from decode_frames(container, stream, min_side, on_corrupt)
    except (av.error.FFmpegError, OSError) as err:
        raise DataError(source, f"the camera stopped sending frames ({err})") from None
    finally:
        container.close()


def _folder_frames(files, min_side: int, on_corrupt) -> Iterator[np.ndarray]:
    for path in files:
        try:
            frame = read_jpeg(path, min_side)
        except DataError as err:
            if on_corrupt is None:
                raise
            on_corrupt(err)
            continue
        yield frame


def _camera(source: str, min_side: int, skip_corrupt: bool) -> FrameSource:
    device = source.removeprefix("camera:") if source.startswith("camera:") else source
    fmt = _CAMERA_FORMATS.get(sys.platform, "v4l2")
    if fmt == "v4l2" and device.isdigit():
        device = f"/dev/video{device}"
    try:
        container = av.open(device, format=fmt)
    except (av.error.FFmpegError, OSError) as err:
        raise DataError(source, f"no camera there ({fmt}: {err})") from None
    stream = container.streams.video[0]
    camera = FrameSource(iter(()), float(stream.average_rate or 30), live=True, name="camera")
    on_corrupt = camera.skip_corrupt if skip_corrupt else None
    camera.frames = _camera_frames(source, container, stream, min_side, on_corrupt)
    return camera


def _stdin(width: int, height: int, fps: float) -> FrameSource:
    """Raw rgb24 frames on standard input, ``width`` x ``height`` each."""
    size = width * height * 3

    def frames() -> Iterator[np.ndarray]:
        pipe = sys.stdin.buffer
        while chunk := pipe.read(size):
            if len(chunk) < size:
                raise DataError("-", f"the last frame on stdin has {len(chunk)} of {size} bytes")
            yield np.frombuffer(chunk, np.uint8).reshape(height, width, 3)

    return FrameSource(frames(), fps, name="stdin")


def open_source(
    source: str,
    min_side: int = 0,
    fps: float | None = None,
    raw_size: tuple[int, int] | None = None,
    on_error: str = "skip",
) -> FrameSource:
    """A video file (any FFmpeg opens), a folder of JPEG frames (``fps``, default 10), a camera
    (``camera:0``, ``/dev/video0``), or ``-``: raw rgb24 frames of ``raw_size`` (width, height)
    piped on stdin. Video frames are scaled down as decoded to sides >= ``min_side``. A frame
    that cannot be decoded (a corrupt packet, an unreadable JPEG) is skipped and counted in
    ``corrupt`` (``on_error="skip"``) or ends the stream with a DataError (``"raise"``)."""
    if on_error not in ("skip", "raise"):
        raise ValueError(f"on_error must be skip or raise, got {on_error!r}")
    skip = on_error == "skip"
    if source == "-":
        if raw_size is None:
            raise ValueError("reading frames from stdin needs their size (--raw-size WxH)")
        return _stdin(*raw_size, fps or 10.0)
    if source.startswith("camera:") or source.startswith("/dev/video"):
        return _camera(source, min_side, skip)
    path = Path(source)
    if path.is_dir():
        opened = FrameSource(iter(()), fps or 10.0, name=path.name)
        files = frame_files(path)
        opened.frames = _folder_frames(files, min_side, opened.skip_corrupt if skip else None)
        return opened
    info = probe_video(path)
    opened = FrameSource(iter(()), fps or info.fps or 10.0, name=path.stem)
    opened.frames = iter_video(path, min_side, opened.skip_corrupt if skip else None)
    return opened


def format_time(seconds: float) -> str:
    minutes, seconds = divmod(seconds, 60)
    return f"{int(minutes):02d}:{seconds:05.2f}"


@dataclass
class Found:
    """A gesture found in a stream: its frames (1-based, inclusive), times and class."""

    gesture: Gesture
    name: str
    start_frame: int
    end_frame: int
    fps: float
    label: int  # in a ConGD list: see aclstm.recognition.list_label

    @property
    def start_time(self) -> float:
        return (self.start_frame - 1) / self.fps

    @property
    def end_time(self) -> float:
        return self.end_frame / self.fps

    def segment(self) -> Segment:
        return Segment(self.start_frame, self.end_frame, self.label)

    def line(self) -> str:
        return (
            f"{format_time(self.start_time)}-{format_time(self.end_time)}  {self.name}  "
            f"{self.gesture.score:.2f}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "start_frame": self.start_frame,
            "end_frame": self.end_frame,
            "start": round(self.start_time, 3),
            "end": round(self.end_time, 3),
            "class": self.name,
            "index": self.gesture.label,  # in the model's classes
            "label": self.label,  # in a ConGD list
            "score": round(self.gesture.score, 4),
        }


@dataclass
class GestureStream:
    """A checkpoint's network on a stream: ``feed(frame)`` returns the gestures that ended.
    With ``settings.phases`` = p the network runs p times, each on the frames from its own
    offset of the step, with its own state (:mod:`aclstm.analysis.phases`)."""

    model: GestureNet  # or an exported model with a streamer() (aclstm.export.runtime)
    meta: dict[str, Any]
    fps: float
    settings: SegmenterSettings = field(default_factory=SegmenterSettings)

    def __post_init__(self) -> None:
        if isinstance(self.model, GestureNet):  # else an exported model (aclstm.export)
            self.model = self.model.causal().eval()  # same weights, causal padding
        self.stride = int(self.meta.get("frame_stride", 1))  # the network sees every k-th frame
        self.combiner = PhaseCombiner(self.settings.phases, FRAMES_PER_STEP * self.stride)
        self.streamers = [self.model.streamer() for _ in self.combiner.offsets]
        background = background_classes(self.meta["classes"])
        rows = self.combiner  # the frames each combined row stands for
        self.segmenter = Segmenter(self.settings, background, rows.frames_per_row, rows.lead)
        # The network's rows name the steps `lookahead` behind them (GestureNetConfig).
        self.lookahead = int(self.meta.get("network", {}).get("lookahead", 0))
        self._unnamed = [self.lookahead] * len(self.streamers)  # rows that name no step
        self._last_clip: list[torch.Tensor | None] = [None] * len(self.streamers)  # prepared
        self.probabilities: list[np.ndarray] = []  # every combined row's, for a timeline
        self.frames = 0  # fed so far
        self._drops: list[int] = []  # frames fed before each frame dropped (nondecreasing)

    def drop(self) -> None:
        """A frame of the source went by unseen (the model was behind a live source): the
        frames after it are numbered as in the source all the same."""
        self._drops.append(self.frames)

    def _source_frame(self, fed: int) -> int:
        """The source's number of the ``fed``-th frame fed (both 1-based)."""
        return fed + bisect_left(self._drops, fed)

    def _found(self, gestures: list[Gesture]) -> list[Found]:
        out = []
        classes = self.meta["classes"]
        for g in gestures:
            start, end = g.frames()
            end = min(end, self.frames)  # a step can stand for frames not seen yet
            start, end = self._source_frame(start), self._source_frame(end)
            label = list_label(classes, g.label)
            out.append(Found(g, classes[g.label], start, end, self.fps, label))
        return out

    def feed(self, frame: np.ndarray) -> list[Found]:
        index = self.frames  # 0-based
        self.frames += 1
        runs = [
            run
            for run, offset in enumerate(self.combiner.offsets)
            if index >= offset and (index - offset) % self.stride == 0
        ]
        if not runs:  # a frame the network does not see
            return []
        clip = torch.from_numpy(np.ascontiguousarray(frame))[None, ..., : len(self.meta["mean"])]
        clip = prepare_clip(
            clip, self.meta["size"], self.meta["mean"], False,
            preprocessing=self.meta.get("preprocessing", "default"),
            center=self.meta.get("center", "dataset"),
        )  # fmt: skip
        found: list[Gesture] = []
        for run in runs:
            self._last_clip[run] = clip
            found += self._push(run, clip)
        return self._found(found)

    def _push(self, run: int, clip: torch.Tensor) -> list[Gesture]:
        """Prepared frames (C, n, H, W) through run ``run``; the gestures they end."""
        logits = self.streamers[run].push(clip[None])
        rows: list[np.ndarray] = []
        for step in logits[0].float().softmax(dim=-1).numpy():
            if self._unnamed[run]:
                self._unnamed[run] -= 1
                continue
            rows += self.combiner.add(run, step)
        return self._segment(rows)

    def _segment(self, rows: list[np.ndarray]) -> list[Gesture]:
        self.probabilities += rows
        return [gesture for row in rows for gesture in self.segmenter.update(row)]

    def now_showing(self) -> str:
        """The gesture going on now, as "class 0.87", or "" when none is."""
        current = self.segmenter.current()
        if current is None:
            return ""
        label, probability = current
        return f"{self.meta['classes'][label]} {probability:.2f}"

    def finish(self) -> list[Found]:
        """The end of the stream: the last steps named (a network with a lookahead is shown
        the last frame held, as :func:`~aclstm.recognition.step_probabilities` does), and a
        gesture still going closed and reported."""
        found: list[Gesture] = []
        for run, last in enumerate(self._last_clip):
            if self.lookahead and last is not None:
                found += self._push(run, lookahead_padding(last, self.lookahead))
            self._last_clip[run] = None
        found += self._segment(self.combiner.finish(self.frames))
        return self._found(found + self.segmenter.finish())


class Renderer:
    """Writes the stream's frames to a video with the gesture going on (class and
    probability) drawn in a banner over each: a picture of what the recogniser saw."""

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path, self.fps = Path(path), fps
        self._container = None
        self._stream = None

    def write(self, frame: np.ndarray, text: str) -> None:
        from PIL import Image, ImageDraw

        height, width = frame.shape[:2]
        if self._container is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._container = av.open(str(self.path), "w")
            codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
            self._stream = self._container.add_stream(codec, rate=round(self.fps))
            self._stream.width, self._stream.height = width - width % 2, height - height % 2
            self._stream.pix_fmt = "yuv420p"
        image = Image.fromarray(
            np.ascontiguousarray(frame[: self._stream.height, : self._stream.width])
        )
        if text:
            draw = ImageDraw.Draw(image)
            draw.rectangle((0, 0, image.width, 14), fill=(0, 0, 0))
            draw.text((3, 1), text, fill=(255, 255, 0))
        packet = self._stream.encode(av.VideoFrame.from_image(image))
        self._container.mux(packet)

    def close(self) -> None:
        if self._container is not None:
            self._container.mux(self._stream.encode())
            self._container.close()


@dataclass
class StreamSummary:
    found: list[Found]
    frames: int
    dropped: int
    seconds: float
    interrupted: bool
    corrupt: int = 0  # frames or packets skipped as undecodable
    error: str | None = None  # what ended the source early (a camera gone, a corrupt file)


def run_stream(
    source: FrameSource,
    stream: GestureStream,
    report=lambda found: None,
    renderer: Renderer | None = None,
):
    """Feed ``stream`` every frame of ``source``, calling ``report`` with each gesture as it is
    found (and drawing each frame with ``renderer``). A live source's frames that come while
    the model is behind are dropped and counted (never queued without bound). Ctrl-C, or a
    source that fails (a camera unplugged, a corrupt file under ``on_error="raise"``), ends the
    stream cleanly: the gesture going on is closed, and everything found is returned, with
    the error in the summary."""
    import time

    found: list[Found] = []
    received = dropped = 0
    interrupted, error = False, None
    start = time.perf_counter()
    try:
        for frame in source.frames:
            received += 1
            behind = time.perf_counter() - start - received / source.fps
            if source.live and behind > 1.0 / source.fps:
                dropped += 1
                stream.drop()
                continue
            for item in stream.feed(frame):
                found.append(item)
                report(item)
            if renderer is not None:
                renderer.write(frame, stream.now_showing())
    except KeyboardInterrupt:
        interrupted = True
    except DataError as err:
        error = str(err)
    finally:
        if renderer is not None:
            renderer.close()
    for item in stream.finish():
        found.append(item)
        report(item)
    seconds = time.perf_counter() - start
    return StreamSummary(found, received, dropped, seconds, interrupted, source.corrupt, error)
