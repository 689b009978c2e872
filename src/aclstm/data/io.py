"""Reading the files of a data set, with errors that name the file and line."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import simplejpeg

__all__ = ["DataError", "read_jpeg", "read_jpegs", "read_text_lines"]


class DataError(ValueError):
    """Bad input data: says which file (and line) and what was expected there."""

    def __init__(self, path: str | Path, message: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.line = line


def read_text_lines(path: str | Path) -> list[tuple[int, str]]:
    """The non-blank lines of a text file as (1-based line number, text), tolerating a UTF-8
    byte-order mark, CRLF line ends and trailing whitespace."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except UnicodeDecodeError as err:
        raise DataError(path, f"not UTF-8 text ({err.reason} at byte {err.start})") from None
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return [(number, line.strip()) for number, line in enumerate(lines, 1) if line.strip()]


def _read_bytes(path: str | Path) -> bytes:
    # os.open/os.read: a third of the time of open().read() for files of a few KB, which adds
    # up over the 16-32 frames of a clip.
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise DataError(path, "frame not found") from None
    except OSError as err:
        raise DataError(path, f"frame unreadable ({err.strerror})") from None
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
    except OSError as err:
        raise DataError(path, f"frame unreadable ({err.strerror})") from None
    finally:
        os.close(fd)
    if not chunks:
        raise DataError(path, "empty file, expected a JPEG image")
    return b"".join(chunks)  # one chunk: that chunk itself, not a copy


def _decoded_size(path: str | Path, data: bytes, min_side: int) -> tuple[int, int]:
    try:
        height, width, _, _ = simplejpeg.decode_jpeg_header(
            data, min_height=min_side, min_width=min_side
        )
    except ValueError as err:
        raise DataError(path, f"corrupt JPEG ({err})") from None
    return height, width


def _decode(path: str | Path, data: bytes, min_side: int, out: np.ndarray | None = None):
    try:
        return simplejpeg.decode_jpeg(
            data, colorspace="RGB", min_height=min_side, min_width=min_side, buffer=out
        )
    except ValueError as err:
        if out is not None:  # a frame larger than its slot, or a corrupt one
            _check_size(path, _decoded_size(path, data, min_side), out.shape)
        raise DataError(path, f"corrupt JPEG ({err})") from None


def _check_size(path: str | Path, size: tuple[int, ...], first: tuple[int, ...]) -> None:
    if tuple(size[:2]) != tuple(first[:2]):
        raise DataError(
            path,
            f"frame decodes to {size[0]}x{size[1]}, the clip's first frame to "
            f"{first[0]}x{first[1]}",
        )


def read_jpeg(path: str | Path, min_side: int = 0) -> np.ndarray:
    """Decode a JPEG file to uint8 RGB (H, W, 3) with libjpeg-turbo (simplejpeg).

    ``min_side`` > 0 lets the decoder scale down in the DCT domain (by k/8, k = 1..7) as far
    as keeps both sides >= ``min_side``: several times faster when a clip is resized to far
    fewer pixels anyway (e.g. 176x100 frames for a 32x32 network), and no change where even
    7/8 of the frame would fall short (100-pixel-high frames for the paper's 112x112)."""
    return _decode(path, _read_bytes(path), min_side)


def read_jpegs(paths: Sequence[str | Path], min_side: int = 0) -> np.ndarray:
    """Decode the frames of a clip into one uint8 array (T, H, W, 3), each straight into its
    slot (no list to stack); a path listed again (a short clip's repeated frame) is decoded
    once. ``min_side`` as in :func:`read_jpeg`; a frame of another size than the first is an
    error naming it."""
    frames: np.ndarray | None = None
    slot_of: dict[str | Path, int] = {}
    for i, path in enumerate(paths):
        if path in slot_of:
            frames[i] = frames[slot_of[path]]
            continue
        data = _read_bytes(path)
        if frames is None:  # only the first frame's header is read: it sizes the array
            height, width = _decoded_size(path, data, min_side)
            frames = np.empty((len(paths), height, width, 3), dtype=np.uint8)
        decoded = _decode(path, data, min_side, out=frames[i])
        _check_size(path, decoded.shape, frames.shape[1:])  # a smaller frame fits its slot
        slot_of[path] = i
    if frames is None:
        raise ValueError("read_jpegs needs at least one path")
    return frames
