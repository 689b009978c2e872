"""Decoding video files with PyAV (FFmpeg), errors naming the file."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from .io import DataError

__all__ = ["VIDEO_SUFFIXES", "read_video", "write_video"]

VIDEO_SUFFIXES = (".mp4", ".avi", ".webm", ".mkv")


def read_video(path: str | Path) -> list[np.ndarray]:
    """Every frame of the first video stream as uint8 RGB (H, W, 3)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "video not found")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(path, "no video stream in the file")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    except av.error.FFmpegError as err:
        raise DataError(path, f"corrupt or truncated video ({err.strerror})") from None
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
