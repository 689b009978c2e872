"""20BN-Jester v1 as distributed: JPEG folders and the ``;``-separated CSV files.

Layout (research/conventions.md §1)::

    ROOT/20bn-jester-v1/<id>/00001.jpg, 00002.jpg, ...
    ROOT/jester-v1-labels.csv, jester-v1-{train,validation,test}.csv      (20BN names)
    ROOT/labels.csv, {train,validation,test,test-answers}.csv              (newer package)

The CSV files may also sit in ``ROOT/labels`` or ``ROOT/annotations``. The label of a class is
its row in the labels file (0-based); frame counts are read from the disk.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from .io import DataError, read_jpeg, read_text_lines
from .sampling import sample_indices
from .transforms import MEANS, prepare_clip

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


def count_frames(folder: Path) -> int:
    """Frames of a clip folder: the JPEG files in it (numbered 00001.jpg on)."""
    if not folder.is_dir():
        raise DataError(folder, "clip folder not found")
    count = sum(1 for p in folder.iterdir() if p.suffix.lower() == ".jpg")
    if count == 0:
        raise DataError(folder, "clip folder holds no .jpg frames")
    return count


@dataclass
class _Clip:
    clip_id: str
    label: int


class JesterDataset(Dataset):
    """Jester clips as float tensors (3, T, size, size) with an int label.

    ``training`` (default: True for the train split) picks jittered sampling and a random
    crop offset; evaluation is deterministic. ``on_error="skip"`` returns None for a clip that
    cannot be read (use :func:`aclstm.data.collate_skipping` to drop and count those) instead
    of raising the :class:`DataError` that names the file.
    """

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
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.root = Path(root)
        self.split = split
        self.clip_len = clip_len
        self.size = size
        self.training = split == "train" if training is None else training
        self.on_error = on_error
        self.seed = seed
        self._rng: random.Random | None = None
        self._rng_worker: int | None = -1
        self.classes = read_jester_classes(find_jester_file(self.root, "labels"))
        self.clips = [
            _Clip(clip_id, label)
            for clip_id, label in read_jester_split(
                find_jester_file(self.root, split), self.classes
            )
        ]
        self.frames_root = self.root / FRAMES_DIR
        if not self.frames_root.is_dir():
            raise DataError(self.frames_root, "Jester frame folder not found")

    def rng(self) -> random.Random:
        """The random stream of this process: ``seed`` in the main process, and in a
        DataLoader worker the worker's own torch seed, so workers do not share jitter."""
        info = get_worker_info()
        worker = None if info is None else info.id
        if self._rng is None or worker != self._rng_worker:
            self._rng = random.Random(self.seed if info is None else info.seed)
            self._rng_worker = worker
        return self._rng

    def __len__(self) -> int:
        return len(self.clips)

    def frame_paths(self, index: int) -> list[Path]:
        """The frame files sampled for clip ``index`` (1-based names, as on disk)."""
        folder = self.frames_root / self.clips[index].clip_id
        n = count_frames(folder)
        picks = sample_indices(n, self.clip_len, self.training, self.rng())
        return [folder / FRAME_TEMPLATE.format(k + 1) for k in picks]

    def load(self, index: int) -> torch.Tensor:
        paths = self.frame_paths(index)
        decoded: dict[Path, np.ndarray] = {}  # a short clip repeats its last frame
        for path in paths:
            if path not in decoded:
                decoded[path] = read_jpeg(path)
        frames = [decoded[p] for p in paths]
        shapes = {f.shape for f in frames}
        if len(shapes) > 1:
            raise DataError(paths[0].parent, f"frames differ in size: {sorted(shapes)}")
        clip = torch.from_numpy(np.stack(frames))
        return prepare_clip(clip, self.size, MEANS["jester_rgb"], self.training, self.rng())

    def __getitem__(self, index: int):
        try:
            return self.load(index), self.clips[index].label
        except DataError:
            if self.on_error == "raise":
                raise
            return None
