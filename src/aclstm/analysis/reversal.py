"""Does a model read temporal order? Clips played backwards must be predicted as the class
whose gesture is the reverse one: Swiping Left as Swiping Right, Pushing Hand Away as Pulling
Hand In, Zooming In as Zooming Out. A model that only sees appearance (the hand, its shape,
where it is) predicts the class played forwards instead."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

__all__ = ["TIME_REVERSED_PAIRS", "TimeReversed", "time_reversal_check", "time_reversed_labels"]

# Jester's classes (and the synthetic set's) whose gesture played backwards is the other one.
# Thumb Up/Down, Shaking Hand, Drumming Fingers, Stop Sign and the two background classes
# have no such partner.
TIME_REVERSED_PAIRS: tuple[tuple[str, str], ...] = (
    ("Swiping Left", "Swiping Right"),
    ("Swiping Down", "Swiping Up"),
    ("Pushing Hand Away", "Pulling Hand In"),
    ("Sliding Two Fingers Left", "Sliding Two Fingers Right"),
    ("Sliding Two Fingers Down", "Sliding Two Fingers Up"),
    ("Pushing Two Fingers Away", "Pulling Two Fingers In"),
    ("Rolling Hand Forward", "Rolling Hand Backward"),
    ("Turning Hand Clockwise", "Turning Hand Counterclockwise"),
    ("Zooming In With Full Hand", "Zooming Out With Full Hand"),
    ("Zooming In With Two Fingers", "Zooming Out With Two Fingers"),
)


def time_reversed_labels(classes: Sequence[str]) -> dict[int, int]:
    """For each class of ``classes`` with its time-reversed partner also there (names matched
    without regard to case), the partner's label."""
    index = {name.lower(): k for k, name in enumerate(classes)}
    partners: dict[int, int] = {}
    for a, b in TIME_REVERSED_PAIRS:
        if a.lower() in index and b.lower() in index:
            partners[index[a.lower()]] = index[b.lower()]
            partners[index[b.lower()]] = index[a.lower()]
    return partners


class TimeReversed(Dataset):
    """The clips of ``dataset`` whose class has a time-reversed partner, played backwards
    (clips are (C, T, H, W): time is dimension 1) and labelled with the partner class."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset
        self.classes = dataset.classes
        self.partner = time_reversed_labels(dataset.classes)
        self.indices = [
            i for i, record in enumerate(dataset.records) if record.label in self.partner
        ]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int):
        item = self.dataset[self.indices[index]]
        if item is None:  # a clip the data set skips (on_error="skip")
            return None
        clip, label = item
        return clip.flip(1), self.partner[label]


def time_reversal_check(model, dataset, batch_size: int = 16, **evaluate_options) -> dict[str, Any]:
    """Plays the clips of the classes with a partner backwards through ``model`` (eval mode).

    Returns ``top1`` (the share predicted as the partner class: the model reads order),
    ``as_forward`` (the share predicted as the class played forwards: it does not), the number
    of ``clips`` and ``pairs``. ``evaluate_options`` go to :func:`aclstm.train.loop.evaluate`."""
    from aclstm.train.loop import evaluate

    reversed_set = TimeReversed(dataset)
    if not len(reversed_set):
        raise ValueError(
            "no clip of the data set has a time-reversed partner class "
            "(e.g. Swiping Left and Swiping Right both among the classes)"
        )
    result = evaluate(model, reversed_set, batch_size, **evaluate_options)
    confusion = torch.tensor(result["confusion"])
    # Row: the partner (the true label of a reversed clip); column: the class played forwards.
    forward = sum(confusion[p, k].item() for k, p in reversed_set.partner.items())
    return {
        "top1": result["top1"],
        "as_forward": forward / max(result["clips"], 1),
        "clips": result["clips"],
        "pairs": len(reversed_set.partner) // 2,
    }
