"""Reading the files of a data set, with errors that name the file and line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import simplejpeg

__all__ = ["DataError", "read_jpeg", "read_text_lines"]


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


def read_jpeg(path: str | Path, min_side: int = 0) -> np.ndarray:
    """Decode a JPEG file to uint8 RGB (H, W, 3) with libjpeg-turbo (simplejpeg).

    ``min_side`` > 0 lets the decoder scale down in the DCT domain (by k/8, k = 1..7) as far
    as keeps both sides >= ``min_side``: several times faster when a clip is resized to far
    fewer pixels anyway (e.g. 176x100 frames for a 32x32 network), and no change where even
    7/8 of the frame would fall short (100-pixel-high frames for the paper's 112x112)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError(path, "frame not found") from None
    except OSError as err:
        raise DataError(path, f"frame unreadable ({err.strerror})") from None
    if not data:
        raise DataError(path, "empty file, expected a JPEG image")
    try:
        return simplejpeg.decode_jpeg(
            data, colorspace="RGB", min_height=min_side, min_width=min_side
        )
    except ValueError as err:
        raise DataError(path, f"corrupt JPEG ({err})") from None
