"""Per-step probabilities to gestures: thresholds with hysteresis, smoothing, minimum length,
gestures back to back, and how late a gesture is emitted."""

from __future__ import annotations

import numpy as np
import pytest

from aclstm.analysis.segmentation import Gesture, Segmenter, SegmenterSettings, segment_steps
from aclstm.data import Segment


def steps(*runs: tuple[int, int, float], classes: int = 6, length: int = 40) -> np.ndarray:
    """Probabilities (length, classes): background everywhere but the runs (label, first step
    and last step given as (label, first, last) with the label's probability p)."""
    probs = np.zeros((length, classes))
    probs[:, 0] = 1.0
    for label, first, last, p in runs:
        probs[first : last + 1] = (1 - p) / (classes - 1)
        probs[first : last + 1, 0] = 1 - p
        probs[first : last + 1, label] = p
    return probs


SHARP = SegmenterSettings(enter=0.6, exit=0.4, smoothing=1, min_steps=3)


def test_background_only_finds_nothing():
    assert segment_steps(steps(), SHARP) == []


def test_a_gesture_its_steps_frames_and_score():
    (found,) = segment_steps(steps((3, 5, 14, 0.9)), SHARP)
    assert (found.first_step, found.last_step, found.label) == (5, 14, 3)
    assert found.score == pytest.approx(0.9)
    assert found.frames() == (10, 29) and found.segment() == Segment(10, 29, 3)
    assert Gesture(0, 2, 1, 1.0).frames() == (1, 5)  # frame numbers start at 1


def test_hysteresis_keeps_a_flickering_gesture_whole():
    probs = steps((2, 5, 24, 0.9))
    probs[10:20:2, [0, 2]] = 0.5  # "something happens" dips below enter, not below exit
    assert len(segment_steps(probs, SHARP)) == 1
    no_hysteresis = SegmenterSettings(enter=0.6, exit=0.6, smoothing=1, min_steps=1)
    assert len(segment_steps(probs, no_hysteresis)) == 6


def test_short_blips_are_dropped_and_back_to_back_gestures_split():
    assert segment_steps(steps((1, 5, 6, 0.9)), SHARP) == []  # 2 steps < min_steps
    found = segment_steps(steps((2, 3, 12, 0.9), (5, 13, 22, 0.9)), SHARP)
    assert [(g.first_step, g.last_step, g.label) for g in found] == [(3, 12, 2), (13, 22, 5)]
    assert found[0].segment().end + 1 == found[1].segment().start  # no frame between


def test_smoothing_delays_the_end_by_at_most_its_window():
    probs = steps((4, 5, 20, 0.95))
    for window in (1, 3, 5):
        segmenter = Segmenter(SegmenterSettings(smoothing=window))
        emitted_at = next(t for t, row in enumerate(probs) if segmenter.update(row))
        assert 20 < emitted_at <= 20 + window  # the step on which the gesture came out


def test_other_background_classes():
    probs = steps((5, 5, 15, 0.9))
    assert segment_steps(probs, SHARP, background=(0, 5)) == []


def test_settings_are_checked():
    with pytest.raises(ValueError, match="exit <= enter"):
        SegmenterSettings(enter=0.4, exit=0.6)
    with pytest.raises(ValueError, match="at least 1 step"):
        SegmenterSettings(smoothing=0)


def test_a_gesture_starts_before_the_network_knows_which():
    """Early steps of a gesture: the background gone, the classes not yet told apart."""
    probs = steps((3, 8, 20, 0.9))
    probs[5:8] = [0.1, 0.3, 0.2, 0.2, 0.1, 0.1]  # no class above 0.3, background 0.1
    (found,) = segment_steps(probs, SHARP)
    assert (found.first_step, found.last_step, found.label) == (5, 20, 3)


def test_a_short_flicker_of_another_class_joins_the_gesture():
    probs = steps((2, 4, 20, 0.9))
    probs[10, [2, 4]] = [0.05, 0.85]  # one step of class 4 inside
    (found,) = segment_steps(probs, SHARP)
    assert (found.first_step, found.last_step, found.label) == (4, 20, 2)
