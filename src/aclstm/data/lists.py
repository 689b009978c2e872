"""List files: the released code's / MMAction2's raw-frame lists, and IsoGD's official lists."""

from __future__ import annotations

from pathlib import Path

from .clips import ClipDataset, ClipRecord
from .io import DataError, read_text_lines
from .transforms import MEANS

__all__ = [
    "ISOGD_CLASSES",
    "IsoGDDataset",
    "RawFrameListDataset",
    "isogd_classes",
    "read_isogd_list",
    "read_rawframe_list",
]

ISOGD_CLASSES = 249


def isogd_classes() -> list[str]:
    """IsoGD's class names: its official labels ``"1"`` to ``"249"``, in label order."""
    return [str(k) for k in range(1, ISOGD_CLASSES + 1)]


def _integer(path: Path, number: int, text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise DataError(path, f"{what} must be an integer, got {text!r}", number) from None


def _check_label(path: Path, number: int, label: int, low: int, high: int) -> None:
    if not low <= label <= high:
        raise DataError(path, f"label {label} out of range {low}..{high}", number)


def read_rawframe_list(
    path: str | Path,
    num_classes: int | None = None,
    data_root: str | Path | None = None,
    path_prefix: tuple[str, str] | None = None,
    template: str = "{:05d}.jpg",
    start_index: int = 1,
) -> list[ClipRecord]:
    """``<frame dir> <frame count> [<label>]`` per line (label -1 when absent).

    Relative folders are taken from ``data_root`` (default: the list's folder);
    ``path_prefix=(old, new)`` rewrites a leading ``old`` (e.g. the released lists'
    ``/ssd/dataset``) to ``new``. Jester frames are ``{:05d}.jpg``, IsoGD's ``{:06d}.jpg``.
    """
    path = Path(path)
    root = Path(data_root) if data_root is not None else path.parent
    records: list[ClipRecord] = []
    for number, line in read_text_lines(path):
        parts = line.split()
        if len(parts) not in (2, 3):
            raise DataError(
                path,
                f"expected '<frame dir> <frame count> <label>', got {len(parts)} fields",
                number,
            )
        folder = parts[0]
        if path_prefix is not None and folder.startswith(path_prefix[0]):
            folder = path_prefix[1] + folder[len(path_prefix[0]) :]
        count = _integer(path, number, parts[1], "frame count")
        if count < 1:
            raise DataError(path, f"frame count must be at least 1, got {count}", number)
        label = _integer(path, number, parts[2], "label") if len(parts) == 3 else -1
        if num_classes is not None and label != -1:
            _check_label(path, number, label, 0, num_classes - 1)
        records.append(ClipRecord(root / folder, label, count, template, start_index))
    return records


def read_isogd_list(path: str | Path, root: str | Path, modality: str = "rgb") -> list[ClipRecord]:
    """IsoGD's ``M_path K_path [label 1..249]`` lines: the M_ (RGB) or K_ (depth) video, with
    the label shifted to 0..248 (-1 when absent, as in the official test list)."""
    if modality not in ("rgb", "depth"):
        raise ValueError(f"IsoGD modality must be 'rgb' or 'depth', got {modality!r}")
    path, root = Path(path), Path(root)
    records: list[ClipRecord] = []
    for number, line in read_text_lines(path):
        parts = line.split()
        if len(parts) not in (2, 3):
            raise DataError(
                path, f"expected '<M_ video> <K_ video> <label>', got {len(parts)} fields", number
            )
        label = -1
        if len(parts) == 3:
            label = _integer(path, number, parts[2], "label")
            _check_label(path, number, label, 1, ISOGD_CLASSES)
            label -= 1
        video = parts[0] if modality == "rgb" else parts[1]
        records.append(ClipRecord(root / video, label))
    return records


class RawFrameListDataset(ClipDataset):
    """Clips named by a raw-frame list (the released code's and MMAction2's format).

    ``classes``: class names in label order, or a file with one per line; default: the
    labels as strings, ``"0"`` to the largest label.
    """

    def __init__(
        self,
        list_file: str | Path,
        classes: list[str] | str | Path | None = None,
        clip_len: int = 16,
        size: int = 112,
        mean: tuple[float, ...] = MEANS["jester_rgb"],
        training: bool = False,
        data_root: str | Path | None = None,
        path_prefix: tuple[str, str] | None = None,
        template: str = "{:05d}.jpg",
        on_error: str = "raise",
        seed: int | None = None,
    ) -> None:
        if isinstance(classes, (str, Path)):
            classes = [name for _, name in read_text_lines(classes)]
        num_classes = None if classes is None else len(classes)
        records = read_rawframe_list(list_file, num_classes, data_root, path_prefix, template)
        if classes is None:
            classes = [str(k) for k in range(max((r.label for r in records), default=-1) + 1)]
        super().__init__(records, classes, clip_len, size, mean, training, on_error, seed)


class IsoGDDataset(ClipDataset):
    """ChaLearn IsoGD as distributed: ``ROOT/{train,valid,test}_list.txt`` naming the ``.avi``
    files, read with PyAV. ``modality`` ``rgb`` (M_ videos, mean 112) or ``depth`` (K_, one
    channel, mean 127). Class names are the official labels ``"1"`` to ``"249"``."""

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        modality: str = "rgb",
        clip_len: int = 32,
        size: int = 112,
        training: bool | None = None,
        on_error: str = "raise",
        seed: int | None = None,
    ) -> None:
        if split not in ("train", "valid", "test"):
            raise ValueError(f"split must be train, valid or test, got {split!r}")
        root = Path(root)
        records = read_isogd_list(root / f"{split}_list.txt", root, modality)
        classes = isogd_classes()
        mean = MEANS[f"isogd_{modality}"]
        training = split == "train" if training is None else training
        super().__init__(records, classes, clip_len, size, mean, training, on_error, seed)
