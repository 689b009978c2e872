"""Datasets from a run configuration's ``[data]`` table: one function for every command."""

from __future__ import annotations

import time
from pathlib import Path

from .clips import ClipDataset
from .congd import ConGDDataset
from .folder import ClipFolderDataset
from .io import DataError
from .jester import JesterDataset
from .lists import IsoGDDataset, RawFrameListDataset, isogd_classes
from .transforms import CENTERING, MEANS, PREPROCESSING

__all__ = ["CONTINUOUS", "DATASETS", "build_dataset", "ensure_synthetic_set", "modality_mean"]

DATASETS = (
    "jester",
    "synth",
    "isogd",
    "isogd_frames",
    "rawframes",
    "folder",
    "congd",
    "synth_congd",
)

# Continuous videos, a label per frame (ConGD's layout): items are windows of clip_len frames.
CONTINUOUS = ("congd", "synth_congd")

# The split names each layout uses for "train", "val" and "test".
_SPLITS = {
    "jester": {"train": "train", "val": "validation", "test": "test"},
    "synth": {"train": "train", "val": "validation", "test": "test"},
    "isogd": {"train": "train", "val": "valid", "test": "test"},
    "isogd_frames": {"train": "train", "val": "valid", "test": "test"},
    "folder": {"train": "train", "val": "val", "test": "test"},
    "congd": {"train": "train", "val": "valid", "test": "test"},
    "synth_congd": {"train": "train", "val": "valid", "test": "test"},
}


def modality_mean(data) -> tuple[float, ...]:
    """The mean to subtract: the config's, else the released code's for the data set. Its
    length is the number of channels read, and so the network's input channels: with
    ``preprocessing = "released"`` every modality is read as 3-channel frames, as the
    released code reads its JPEGs."""
    if data.mean is not None:
        return tuple(data.mean)
    if data.dataset in ("isogd", "isogd_frames", "congd"):
        key = f"isogd_{data.modality}"
        if key not in MEANS:
            raise ValueError(f"IsoGD modality must be rgb, depth or flow, got {data.modality!r}")
        mean = MEANS[key]
    elif data.modality != "rgb":
        raise ValueError(
            f"data.modality {data.modality!r} needs data.mean for the {data.dataset!r} data set"
        )
    else:
        mean = MEANS["jester_rgb"]
    if data.preprocessing == "released" and len(mean) < 3:
        mean = (mean[0],) * 3
    return mean


def ensure_synthetic_set(data, workers: int | None = None, log=print) -> bool:
    """Generate the synthetic set at ``data.root`` unless its labels file is there already.
    Returns True when it generated one."""
    from .synth import SynthSpec, write_synthetic_set

    root = Path(data.root)
    continuous = data.dataset == "synth_congd"
    if (root / ("classes.txt" if continuous else "jester-v1-labels.csv")).is_file():
        return False
    spec = SynthSpec(
        format="congd" if continuous else "jester",
        clips_per_class=data.synth.clips_per_class,
        val_fraction=data.synth.val_fraction,
        test_fraction=data.synth.test_fraction,
        seed=data.synth.seed,
        classes=None if data.synth.classes is None else tuple(data.synth.classes),
        frames=tuple(data.synth.frames),
    )
    log(
        f"generating the synthetic {'continuous ' if continuous else ''}gesture set at {root} "
        f"({spec.clips_per_class} {'gestures' if continuous else 'clips'}/class)"
    )
    started = time.perf_counter()
    counts = write_synthetic_set(root, spec, workers=workers or _cpu_count())
    unit = "continuous videos" if continuous else "clips"
    log(f"wrote {sum(counts.values())} {unit} in {time.perf_counter() - started:.0f} s")
    return True


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def build_dataset(
    data,
    split: str,
    clip_len: int,
    size: int,
    training: bool | None = None,
    seed: int | None = None,
) -> ClipDataset:
    """The ``split`` ("train", "val" or "test") of the configured data set, as clips of
    ``clip_len`` frames at ``size`` x ``size``; ``training`` (default: split == "train") picks
    jittered sampling and a random crop."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be train, val or test, got {split!r}")
    if data.dataset not in DATASETS:
        raise ValueError(f"data.dataset must be one of {', '.join(DATASETS)}; got {data.dataset!r}")
    if data.preprocessing not in PREPROCESSING:
        raise ValueError(
            f"data.preprocessing must be one of {', '.join(PREPROCESSING)}; "
            f"got {data.preprocessing!r}"
        )
    if data.center not in CENTERING:
        raise ValueError(f"data.center must be one of {', '.join(CENTERING)}; got {data.center!r}")
    if not data.root and data.dataset != "rawframes":
        raise ValueError(f"data.root is empty: where does the {data.dataset!r} data set lie?")
    if data.frame_stride != 1 and data.dataset not in CONTINUOUS:
        raise ValueError(
            f"data.frame_stride is for continuous videos ({', '.join(CONTINUOUS)}); "
            f"{data.dataset!r} clips are sampled to model.frames instead"
        )
    training = split == "train" if training is None else training
    common = {
        "clip_len": clip_len,
        "size": size,
        "training": training,
        "on_error": data.on_error,
        "seed": seed,
    }
    dataset = _build(data, split, common)
    dataset.random_crop = data.random_crop
    dataset.preprocessing = data.preprocessing
    dataset.center = data.center
    dataset.horizontal_flip = data.horizontal_flip
    return dataset


def _build(data, split: str, common: dict) -> ClipDataset:
    if data.dataset == "rawframes":
        return _rawframes(data, split, common)
    explicit = {"train": data.train_split, "val": data.val_split}.get(split)
    name = explicit or _SPLITS[data.dataset][split]
    if data.dataset == "isogd_frames":
        return _isogd_frames(data, split, name, common)
    if data.dataset in ("jester", "synth"):
        return JesterDataset(data.root, name, **common)
    if data.dataset in CONTINUOUS:
        return _continuous(data, name, common)
    if data.dataset == "isogd":
        return IsoGDDataset(data.root, name, data.modality, **common)
    return ClipFolderDataset(Path(data.root) / name, mean=modality_mean(data), **common)


def _continuous(data, name: str, common: dict) -> ConGDDataset:
    """ConGD's layout: windows of ``clip_len`` consecutive frames with a label per frame."""
    dataset = ConGDDataset(
        data.root,
        name,
        data.modality,
        window=common["clip_len"],
        size=common["size"],
        training=common["training"],
        mean=modality_mean(data),
        seed=common["seed"],
        windows_per_video=data.windows_per_video if common["training"] else 1,
        frame_stride=data.frame_stride,
        cache_frames=data.cache_frames and common["training"],
    )
    dataset.on_error = common["on_error"]
    return dataset


def _isogd_frames(data, split: str, name: str, common: dict) -> RawFrameListDataset:
    """IsoGD as the released code reads it: frames ``%06d.jpg`` in one folder per video, named
    by its lists (``<dir> <frames> <label 0..248>``), by default
    ``ROOT/<split>_<modality>_list.txt`` as the authors' repository names them; the classes
    are IsoGD's labels 1..249. (The modality is checked with the mean, in ``_rawframes``.)"""
    list_file = {"train": data.train_list, "val": data.val_list}.get(split)
    if list_file is None:
        list_file = Path(data.root) / f"{name}_{data.modality}_list.txt"
    return _rawframes(data, split, common, list_file, isogd_classes(), "{:06d}.jpg")


def _rawframes(
    data,
    split: str,
    common: dict,
    list_file: str | Path | None = None,
    classes: list[str] | str | None = None,
    template: str | None = None,
) -> RawFrameListDataset:
    mean = modality_mean(data)  # first: a bad modality is named before a list file is looked for
    list_file = list_file or {"train": data.train_list, "val": data.val_list}.get(split)
    if list_file is None:
        raise ValueError(f"data.dataset = 'rawframes' needs data.{split}_list")
    prefix = None
    if data.path_prefix is not None:
        if len(data.path_prefix) != 2:
            raise ValueError(f"data.path_prefix must be [old, new], got {data.path_prefix!r}")
        prefix = (data.path_prefix[0], data.path_prefix[1])
    if not Path(list_file).is_file():
        raise DataError(list_file, "list file not found")
    return RawFrameListDataset(
        list_file,
        classes=classes or data.classes,
        mean=mean,
        data_root=data.root or None,
        path_prefix=prefix,
        template=template or data.template,
        **common,
    )
