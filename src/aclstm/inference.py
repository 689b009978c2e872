"""Predictions of a trained checkpoint on one clip: a video file, a folder of frames, or a clip
of the data set the checkpoint was trained on (``SPLIT:INDEX``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from aclstm.data.clips import ClipDataset, ClipRecord

__all__ = ["load_input", "topk_predictions"]


def _dataset_clip(spec: str, meta: dict[str, Any]) -> tuple[torch.Tensor, int, str]:
    from aclstm.config import config_from_dict
    from aclstm.data.factory import build_dataset

    split, _, index_text = spec.partition(":")
    if split not in ("train", "val", "test") or not index_text.isdigit():
        raise ValueError(
            f"INPUT {spec!r} is neither a file, a folder, nor SPLIT:INDEX (e.g. val:0)"
        )
    config = config_from_dict(meta["config"], "checkpoint meta.json")
    dataset = build_dataset(config.data, split, meta["clip_len"], meta["size"], training=False)
    index = int(index_text)
    if index >= len(dataset):
        raise ValueError(f"{split} split has {len(dataset)} clips; index {index} is past its end")
    clip, label = dataset[index]
    if isinstance(label, torch.Tensor):  # a window of a continuous set: a label per step
        label = int(label.mode().values)  # the label most of its steps have
    return clip, label, str(dataset.records[index].source)


def load_input(source: str, meta: dict[str, Any]) -> tuple[torch.Tensor, int, str]:
    """``(clip (C, T, H, W), label or -1, where it came from)`` preprocessed as the checkpoint
    was trained: its clip length, size and mean, evaluation-mode sampling and crop."""
    path = Path(source)
    if not path.exists():
        return _dataset_clip(source, meta)
    # A folder: its JPEGs in name order. A file: any FFmpeg opens with a video stream in it,
    # probed, not judged by its name.
    record = ClipRecord(path, -1, template=None if path.is_dir() else "{:05d}.jpg")
    dataset = ClipDataset(
        [record], meta["classes"], meta["clip_len"], meta["size"], tuple(meta["mean"])
    )
    dataset.preprocessing = meta.get("preprocessing", "default")
    dataset.center = meta.get("center", "dataset")
    return dataset.load(0)[0], -1, str(path)


@torch.no_grad()
def topk_predictions(
    model: Callable[[torch.Tensor], torch.Tensor],
    clip: torch.Tensor,
    classes: list[str],
    k: int = 5,
) -> list[dict[str, Any]]:
    """The ``k`` most probable classes of one clip, most probable first. ``model``: a network
    (on any device), or any function of a batch of clips, e.g. an exported model."""
    parameters = model.parameters() if isinstance(model, torch.nn.Module) else iter(())
    device = next(parameters, torch.empty(0)).device
    probabilities = model(clip.unsqueeze(0).to(device)).float().softmax(dim=1)[0].cpu()
    values, indices = probabilities.topk(min(k, len(classes)))
    return [
        {"class": classes[i], "index": int(i), "probability": float(p)}
        for p, i in zip(values.tolist(), indices.tolist(), strict=True)
    ]
