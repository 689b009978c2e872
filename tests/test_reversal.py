"""The time-reversal check: clips played backwards, scored against their partner class."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from aclstm.analysis.reversal import TimeReversed, time_reversal_check, time_reversed_labels
from aclstm.data.synth import JESTER_CLASSES

CLASSES = ["Swiping Left", "Thumb Up", "Swiping Right", "Zooming In With Full Hand"]


@dataclass
class _Record:
    label: int


class _Ramps(torch.utils.data.Dataset):
    """Clips (1, T, 2, 2) whose brightness falls over time for Swiping Left (label 0) and
    rises for Swiping Right (2); Thumb Up and Zooming In are flat."""

    classes = CLASSES

    def __init__(self) -> None:
        self.records = [_Record(y) for y in (0, 0, 2, 1, 3, 2)]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int):
        label = self.records[index].label
        slope = {0: -1.0, 2: 1.0}.get(label, 0.0)
        ramp = slope * torch.arange(6.0) + index * 0.1  # (T,)
        return ramp.view(1, 6, 1, 1).expand(1, 6, 2, 2).clone(), label


class _ReadsOrder(nn.Module):
    """Swiping Left where brightness falls over the clip, Swiping Right where it rises."""

    def forward(self, x):
        rise = x[:, 0, -1].mean((1, 2)) - x[:, 0, 0].mean((1, 2))
        logits = torch.zeros(len(x), len(CLASSES))
        logits[:, 0], logits[:, 2] = -rise, rise
        return logits


class _Blind(nn.Module):
    """Order-blind: knows each clip's class from its first frame's offset, forwards or not."""

    def forward(self, x):
        labels = [(0 if m < 0.15 else 2) for m in x[:, 0].mean((1, 2, 3)).tolist()]
        return nn.functional.one_hot(torch.tensor(labels), len(CLASSES)).float()


def test_the_jester_classes_form_ten_pairs_each_the_others_partner():
    partner = time_reversed_labels(JESTER_CLASSES)
    assert len(partner) == 20 and all(partner[partner[k]] == k for k in partner)
    named = {JESTER_CLASSES[a]: JESTER_CLASSES[b] for a, b in partner.items()}
    assert named["Swiping Left"] == "Swiping Right"
    assert named["Pulling Hand In"] == "Pushing Hand Away"
    assert named["Zooming Out With Two Fingers"] == "Zooming In With Two Fingers"
    assert "Thumb Up" not in named and "No gesture" not in named


def test_a_class_whose_partner_is_missing_is_left_out():
    assert time_reversed_labels(["swiping left", "Swiping Right", "Swiping Up"]) == {0: 1, 1: 0}


def test_reversed_clips_are_played_backwards_with_the_partner_label():
    """Guards against the clip left in forward order, or flipped along the wrong axis."""
    data = _Ramps()
    reversed_set = TimeReversed(data)
    assert reversed_set.indices == [0, 1, 2, 5]  # Thumb Up and Zooming In have no partner here
    clip, label = reversed_set[0]
    assert label == 2
    torch.testing.assert_close(clip, data[0][0].flip(1))
    assert clip[0, 0, 0, 0] < clip[0, -1, 0, 0]  # Swiping Left's falling ramp now rises


def test_a_model_that_reads_order_passes_and_an_order_blind_one_fails():
    data = _Ramps()
    reads = time_reversal_check(_ReadsOrder(), data, batch_size=3)
    assert reads == {"top1": 1.0, "as_forward": 0.0, "clips": 4, "pairs": 1}
    blind = time_reversal_check(_Blind(), data, batch_size=3)
    assert blind["top1"] == 0.0 and blind["as_forward"] == 1.0


def test_a_data_set_without_pairs_is_refused():
    data = _Ramps()
    data.classes = ["Thumb Up", "Thumb Down", "Stop Sign", "No gesture"]
    with pytest.raises(ValueError, match="time-reversed partner"):
        time_reversal_check(_ReadsOrder(), data)
