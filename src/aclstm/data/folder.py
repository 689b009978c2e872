"""Any folder of clips: ``ROOT/<class>/<clip>.{mp4,avi,webm,mkv}`` or
``ROOT/<class>/<clip>/<frame>.jpg``; classes in sorted order of their folder names."""

from __future__ import annotations

from pathlib import Path

from .clips import ClipDataset, ClipRecord
from .io import DataError
from .transforms import MEANS
from .video import VIDEO_SUFFIXES

__all__ = ["ClipFolderDataset", "scan_clip_folder"]


def scan_clip_folder(root: str | Path) -> tuple[list[str], list[ClipRecord]]:
    """Class names (sorted folder names) and one record per video file or frame folder."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "folder not found")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(root, "no class folders: expected ROOT/<class>/<clip>")
    records = []
    for label, name in enumerate(classes):
        for clip in sorted((root / name).iterdir()):
            if clip.is_dir():
                records.append(ClipRecord(clip, label, template=None))
            elif clip.suffix.lower() in VIDEO_SUFFIXES:
                records.append(ClipRecord(clip, label))
    if not records:
        raise DataError(
            root,
            f"no clips: expected videos ({', '.join(VIDEO_SUFFIXES)}) or "
            "frame folders inside the class folders",
        )
    return classes, records


class ClipFolderDataset(ClipDataset):
    """Clips from a class-per-folder tree (see the module doc), RGB with Jester's mean."""

    def __init__(
        self,
        root: str | Path,
        clip_len: int = 16,
        size: int = 112,
        mean: tuple[float, ...] = MEANS["jester_rgb"],
        training: bool = False,
        on_error: str = "raise",
        seed: int | None = None,
    ) -> None:
        classes, records = scan_clip_folder(root)
        super().__init__(records, classes, clip_len, size, mean, training, on_error, seed)
