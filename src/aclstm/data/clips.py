"""A data set of clips, each a folder of numbered frames or a video file."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from .io import DataError, read_jpegs
from .sampling import sample_indices
from .transforms import mirror_labels, prepare_clip
from .video import VIDEO_SUFFIXES, probe_video, read_video_frames

__all__ = ["ClipDataset", "ClipRecord", "frame_files"]


@dataclass(frozen=True)
class ClipRecord:
    """Where one clip lies and its label (-1: unknown)."""

    source: Path  # a folder of frames, or a video file
    label: int
    num_frames: int | None = None  # from a list file; None: counted on disk
    template: str | None = "{:05d}.jpg"  # frame file names; None: the folder's sorted JPEGs
    start_index: int = 1  # number of the first frame file

    @property
    def is_video(self) -> bool:
        """A file (probed as a video when read, whatever its name), or a missing path named
        like a video; a folder holds frames."""
        if self.source.exists():
            return not self.source.is_dir()
        return self.source.suffix.lower() in VIDEO_SUFFIXES


def frame_files(folder: Path) -> list[Path]:
    """The JPEG files of a clip folder, sorted by name."""
    if not folder.is_dir():
        raise DataError(folder, "clip folder not found")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    if not files:
        raise DataError(folder, "clip folder holds no .jpg frames")
    return files


class ClipDataset(Dataset):
    """Clips as float tensors (C, T, size, size) with an int label, as the released code makes
    them: uniform sampling (with temporal jitter in training), one square crop per clip, a
    bilinear resize and the modality's mean subtracted.

    ``preprocessing = "released"`` reads full-resolution frames, floors the crop offset and
    resizes as PIL does, as the released code (:data:`~aclstm.data.transforms.PREPROCESSING`).

    ``random_crop`` (default True, as released) places the training crop at random along the
    long side; False keeps it centred, with temporal jitter still on.

    ``horizontal_flip`` (default False, as released) mirrors half of the training clips and
    gives each the label of its mirror image (:func:`mirror_labels`: Swiping Left becomes
    Swiping Right, Turning Hand Clockwise becomes Counterclockwise); a plain flip would teach
    a model that those classes look alike.

    ``on_error="raise"`` raises the :class:`DataError` that names the bad file;
    ``on_error="skip"`` returns None instead, which :func:`collate_skipping` drops and counts.
    """

    def __init__(
        self,
        records: list[ClipRecord],
        classes: list[str],
        clip_len: int = 16,
        size: int = 112,
        mean: tuple[float, ...] = (114.0, 109.0, 104.0),
        training: bool = False,
        on_error: str = "raise",
        seed: int | None = None,
    ) -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.records = records
        self.classes = classes
        self.clip_len = clip_len
        self.size = size
        self.mean = tuple(mean)
        self.training = training
        self.on_error = on_error
        self.seed = seed
        self.epoch = 0
        self._rng: random.Random | None = None
        self._rng_worker: int | None = -1
        self._frame_counts: dict[Path, int] = {}  # frames per folder or video, read from disk

    random_crop: bool = True
    preprocessing: str = "default"  # or "released": see transforms.PREPROCESSING
    center: str = "dataset"  # or "frame": see transforms.CENTERING
    _mirror: list[int] | None = None  # label of each class's mirror image; None: no flip

    @property
    def decode_min_side(self) -> int:
        """The side frames are decoded down to (no smaller): the clip's size, or 0 (full
        resolution) for the released preprocessing."""
        return 0 if self.preprocessing == "released" else self.size

    @property
    def horizontal_flip(self) -> bool:
        return self._mirror is not None

    @horizontal_flip.setter
    def horizontal_flip(self, on: bool) -> None:
        """Turning it on checks the class names at once (a missing mirror class is an error)."""
        self._mirror = mirror_labels(self.classes) if on else None

    def set_epoch(self, epoch: int) -> None:
        """Training draws of a seeded data set depend on (seed, epoch, clip index) only."""
        self.epoch = epoch

    def rng(self, index: int) -> random.Random:
        """The random draws (temporal jitter, crop) of clip ``index``. Seeded: a stream of its
        own for (seed, epoch, index), so a clip gets the same draws whichever process or
        worker reads it, and a resumed run replays them. Unseeded: one stream per process."""
        if self.seed is not None:
            return random.Random((self.seed * 1_000_003 + self.epoch) * 1_000_003 + index)
        info = get_worker_info()
        worker = None if info is None else info.id
        if self._rng is None or worker != self._rng_worker:
            self._rng = random.Random(None if info is None else info.seed)
            self._rng_worker = worker
        return self._rng

    def __len__(self) -> int:
        return len(self.records)

    def video_frames(self, path: Path) -> int:
        """The frames of a video, counted from its packets once per process."""
        if path not in self._frame_counts:
            self._frame_counts[path] = probe_video(path).frames
        return self._frame_counts[path]

    def read_frames(self, record: ClipRecord, rng: random.Random) -> np.ndarray:
        """The sampled frames of one clip, uint8 (T, H, W, 3)."""
        min_side = self.decode_min_side
        if record.is_video:  # only the sampled frames are kept, scaled down as decoded
            n = record.num_frames or self.video_frames(record.source)
            picks = sample_indices(n, self.clip_len, self.training, rng)
            return read_video_frames(record.source, picks, min_side)
        if record.template is None:
            files = frame_files(record.source)
            n, path_of = len(files), files.__getitem__
        else:  # numbered files, counted on disk (once per process) unless the list said
            n = record.num_frames or self._frame_counts.get(record.source)
            if n is None:
                n = self._frame_counts[record.source] = len(frame_files(record.source))
            folder, template, start = str(record.source), record.template, record.start_index

            def path_of(k: int) -> str:  # plain strings: Path objects cost more than decoding
                return os.path.join(folder, template.format(k + start))

        picks = sample_indices(n, self.clip_len, self.training, rng)
        return read_jpegs([path_of(k) for k in picks], min_side=min_side)

    def load(self, index: int) -> tuple[torch.Tensor, int]:
        """Clip ``index`` as (C, T, size, size) floats, and its label (-1: unknown)."""
        record = self.records[index]
        rng = self.rng(index)
        clip = torch.from_numpy(self.read_frames(record, rng))[..., : len(self.mean)]  # depth: 1
        label = record.label
        if self.training and self._mirror is not None and rng.random() < 0.5:
            clip = clip.flip(2)  # (T, H, W, C): the width
            if label >= 0:
                label = self._mirror[label]
        random_crop = self.training and self.random_crop
        clip = prepare_clip(
            clip, self.size, self.mean, random_crop, rng, self.preprocessing, self.center
        )
        return clip, label

    def __getitem__(self, index: int):
        try:
            return self.load(index)
        except DataError:
            if self.on_error == "raise":
                raise
            return None
