"""20BN-Jester v1 as distributed: JPEG folders and the ``;``-separated CSV files.

Layout (research/conventions.md §1)::

    ROOT/20bn-jester-v1/<id>/00001.jpg, 00002.jpg, ...
    ROOT/jester-v1-labels.csv, jester-v1-{train,validation,test}.csv      (20BN names)
    ROOT/labels.csv, {train,validation,test,test-answers}.csv              (newer package)

The CSV files may also sit in ``ROOT/labels`` or ``ROOT/annotations``. The label of a class is
its row in the labels file (0-based); frame counts are read from the disk.
"""

from __future__ import annotations

from pathlib import Path

from .clips import ClipDataset, ClipRecord
from .io import DataError, read_text_lines
from .transforms import MEANS

__all__ = ["JesterDataset", "find_jester_file", "read_jester_classes", "read_jester_split"]

FRAMES_DIR = "20bn-jester-v1"
FRAME_TEMPLATE = "{:05d}.jpg"
_FILE_NAMES = {
    "labels": ("jester-v1-labels.csv", "labels.csv"),
    "train": ("jester-v1-train.csv", "train.csv"),
    "validation": ("jester-v1-validation.csv", "validation.csv"),
    "test": ("test-answers.csv", "jester-v1-test.csv", "test.csv"),  # labelled answers first
}
_CSV_DIRS = (".", "labels", "annotations")


def find_jester_file(root: str | Path, kind: str) -> Path:
    """The CSV file of ``kind`` (labels, train, validation, test) under ``root``."""
    root = Path(root)
    candidates = [root / d / name for name in _FILE_NAMES[kind] for d in _CSV_DIRS]
    for path in candidates:
        if path.is_file():
            return path
    names = " or ".join(_FILE_NAMES[kind])
    raise DataError(
        root,
        f"no Jester {kind} file: expected {names} in {root} or its labels/ or annotations/ folder",
    )


def read_jester_classes(path: str | Path) -> list[str]:
    """Class names, one per line, in label order."""
    classes: list[str] = []
    first_line: dict[str, int] = {}
    for number, name in read_text_lines(path):
        if name in first_line:
            raise DataError(path, f"class {name!r} repeats line {first_line[name]}", number)
        first_line[name] = number
        classes.append(name)
    if not classes:
        raise DataError(path, "no class names")
    return classes


def read_jester_split(path: str | Path, classes: list[str]) -> list[tuple[str, int]]:
    """``(clip id, label)`` per line of ``id;class name`` (label -1 for an id alone: test)."""
    index = {name: k for k, name in enumerate(classes)}
    seen: dict[str, int] = {}
    items: list[tuple[str, int]] = []
    for number, line in read_text_lines(path):
        parts = line.split(";")
        if len(parts) not in (1, 2) or not parts[0].strip():
            raise DataError(
                path, f"expected 'id;class name' or 'id', got {len(parts)} fields: {line!r}", number
            )
        clip_id = parts[0].strip()
        if clip_id in seen:
            raise DataError(path, f"clip id {clip_id} repeats line {seen[clip_id]}", number)
        seen[clip_id] = number
        label = -1
        if len(parts) == 2:
            name = parts[1].strip()
            if name not in index:
                raise DataError(path, f"class {name!r} is not in the labels file", number)
            label = index[name]
        items.append((clip_id, label))
    return items


class JesterDataset(ClipDataset):
    """Jester clips as float tensors (3, T, size, size) with an int label (-1 in an unlabelled
    test split). ``training`` defaults to True for the train split."""

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        clip_len: int = 16,
        size: int = 112,
        training: bool | None = None,
        on_error: str = "raise",
        seed: int | None = None,
    ) -> None:
        if split not in ("train", "validation", "test"):
            raise ValueError(f"split must be train, validation or test, got {split!r}")
        root = Path(root)
        classes = read_jester_classes(find_jester_file(root, "labels"))
        frames_root = root / FRAMES_DIR
        records = [
            ClipRecord(frames_root / clip_id, label, template=FRAME_TEMPLATE)
            for clip_id, label in read_jester_split(find_jester_file(root, split), classes)
        ]
        if not frames_root.is_dir():
            raise DataError(frames_root, "Jester frame folder not found")
        super().__init__(
            records,
            classes,
            clip_len,
            size,
            MEANS["jester_rgb"],
            training=split == "train" if training is None else training,
            on_error=on_error,
            seed=seed,
        )
        self.root = root
        self.split = split
