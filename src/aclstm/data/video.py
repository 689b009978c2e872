"""Decoding video files with PyAV (FFmpeg) a frame at a time, errors naming the file.

Any file FFmpeg opens is a video if it holds a video stream, whatever its name (``.mov`` from
phones, ``.m4v``, ``.3gp``, ...). Nothing here holds a whole video in memory unless asked to
(:func:`read_video`): :func:`iter_video` yields one frame at a time, :func:`read_video_frames`
keeps only the frames asked for, and both can scale frames down as they are decoded.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from .io import DataError

__all__ = [
    "VIDEO_SUFFIXES",
    "VideoInfo",
    "decode_frames",
    "iter_video",
    "probe_video",
    "read_video",
    "read_video_frames",
    "rgb_converter",
    "write_video",
]

# Suffixes a folder scan takes for videos (a file named directly is probed, whatever its name).
VIDEO_SUFFIXES = (".mp4", ".avi", ".webm", ".mkv", ".mov", ".m4v", ".3gp", ".mpg", ".mpeg", ".wmv")


@dataclass(frozen=True)
class VideoInfo:
    """What probing a video found: its frames (counted from its packets, without decoding),
    its size and its frame rate (None where the container does not say)."""

    frames: int
    height: int
    width: int
    fps: float | None


@contextmanager
def _video_stream(path: str | Path):
    """The open container and its first video stream; every failure a DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "video not found")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as err:
        raise DataError(
            path, f"corrupt or truncated video, or not one FFmpeg can open ({err.strerror})"
        ) from None
    try:
        if not container.streams.video:
            kinds = ", ".join(sorted({s.type for s in container.streams})) or "none"
            raise DataError(path, f"no video stream in the file (streams: {kinds})")
        yield container, container.streams.video[0]
    except av.error.FFmpegError as err:
        raise DataError(path, f"corrupt or truncated video ({err.strerror})") from None
    finally:
        container.close()


def probe_video(path: str | Path) -> VideoInfo:
    """Count the frames of a video by reading its packets (no decoding; the container's own
    count is often missing or wrong)."""
    with _video_stream(path) as (container, stream):
        count = sum(1 for packet in container.demux(stream) if packet.size)
        fps = float(stream.average_rate) if stream.average_rate else None
        info = VideoInfo(count, stream.codec_context.height, stream.codec_context.width, fps)
    if info.frames == 0:
        raise DataError(path, "the video has no frames")
    return info


def scaled_size(height: int, width: int, min_side: int) -> tuple[int, int]:
    """The size a frame is decoded at: scaled by the smallest k/8 (k = 1..8) that keeps both
    sides >= ``min_side``, as JPEG frames are decoded in the DCT domain; as it is for
    ``min_side`` <= 0 or a frame no larger than that."""
    if min_side <= 0:
        return height, width
    for k in range(1, 9):
        h, w = math.ceil(height * k / 8), math.ceil(width * k / 8)
        if min(h, w) >= min_side:
            return h, w
    return height, width


def rgb_converter(min_side: int = 0) -> Callable[[av.VideoFrame], np.ndarray]:
    """A function from a decoded frame to uint8 RGB (H, W, 3), scaled down as it is converted
    where ``min_side`` > 0 (see :func:`scaled_size`; one pass, area-averaged). Make one per
    stream: it keeps FFmpeg's conversion context from frame to frame instead of building one
    per frame, which costs more than decoding a small frame."""
    reformatter = VideoReformatter()

    def convert(frame: av.VideoFrame) -> np.ndarray:
        h, w = scaled_size(frame.height, frame.width, min_side)
        if (h, w) == (frame.height, frame.width):
            return reformatter.reformat(frame, format="rgb24").to_ndarray()
        return reformatter.reformat(frame, w, h, "rgb24", interpolation="AREA").to_ndarray()

    return convert


def decode_frames(
    container, stream, min_side: int = 0, on_corrupt: Callable[[Exception], None] | None = None
) -> Iterator[np.ndarray]:
    """The frames of ``stream`` of an open ``container`` (a file, a camera), one at a time,
    uint8 RGB, scaled down as decoded where ``min_side`` > 0 (see :func:`scaled_size`).

    A packet FFmpeg finds invalid ends decoding with its error; given ``on_corrupt``, it is
    skipped instead (its frames lost), ``on_corrupt(error)`` is called and decoding goes on
    with the next packet. Other errors (a camera gone, a file unreadable) always end it."""
    stream.thread_type = "AUTO"
    convert = rgb_converter(min_side)
    if on_corrupt is None:
        for frame in container.decode(stream):
            yield convert(frame)
        return
    for packet in container.demux(stream):  # the last packet, empty, flushes the decoder
        try:
            frames = packet.decode()
        except av.error.InvalidDataError as err:
            on_corrupt(err)
            continue
        for frame in frames:
            yield convert(frame)


def iter_video(
    path: str | Path, min_side: int = 0, on_corrupt: Callable[[Exception], None] | None = None
) -> Iterator[np.ndarray]:
    """The frames of the first video stream, one at a time, as uint8 RGB (H, W, 3), scaled
    down as they are decoded where ``min_side`` > 0 (see :func:`scaled_size`); corrupt
    packets end it with a DataError, or are skipped and passed to ``on_corrupt``."""
    with _video_stream(path) as (container, stream):
        yield from decode_frames(container, stream, min_side, on_corrupt)


def read_video_frames(path: str | Path, indices: Sequence[int], min_side: int = 0) -> np.ndarray:
    """The frames at 0-based ``indices`` (any order, repeats allowed) as uint8 (len, H, W, 3),
    decoding the video once from the start and keeping only those. An index past the
    decoded end takes the last frame (a container that promised more frames than it holds)."""
    if not indices:
        raise ValueError("read_video_frames needs at least one index")
    wanted = set(indices)
    kept: dict[int, np.ndarray] = {}
    convert = rgb_converter(min_side)
    with _video_stream(path) as (container, stream):
        stream.thread_type = "AUTO"
        last = None
        for k, frame in enumerate(container.decode(stream)):
            last = frame
            if k in wanted:  # only the frames kept are converted
                kept[k] = convert(frame)
                if len(kept) == len(wanted):
                    break
        if last is None:
            raise DataError(path, "the video has no frames")
        missing = wanted - kept.keys()
        if missing:  # past the decoded end: the last frame stands in
            kept.update(dict.fromkeys(missing, convert(last)))
    shapes = {frame.shape for frame in kept.values()}
    if len(shapes) > 1:
        raise DataError(path, f"frames differ in size: {sorted(shapes)}")
    return np.stack([kept[k] for k in indices])


def read_video(path: str | Path, min_side: int = 0) -> list[np.ndarray]:
    """Every frame of the first video stream as uint8 RGB (H, W, 3): the whole video in
    memory; :func:`iter_video` streams it instead."""
    frames = list(iter_video(path, min_side))
    if not frames:
        raise DataError(path, "the video has no frames")
    return frames


def write_video(path: str | Path, frames: np.ndarray, fps: int = 10, quality: int = 5) -> None:
    """Write uint8 RGB frames (T, H, W, 3) as MPEG-4 Part 2 (IsoGD's kind of ``.avi``);
    ``quality`` is FFmpeg's qscale, 1 (best) to 31."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _, height, width, _ = frames.shape
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.qscale = quality
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
