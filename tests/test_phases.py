"""Phase-combined probabilities: runs of the network at offsets of its step, averaged into
rows on a finer grid (aclstm.analysis.phases)."""

from __future__ import annotations

import numpy as np
import pytest

from aclstm.analysis.phases import PhaseCombiner, combine_phases, phase_offsets
from aclstm.analysis.segmentation import Gesture


def test_offsets_divide_the_step():
    assert phase_offsets(1, 4) == [0]
    assert phase_offsets(2, 4) == [0, 2]
    assert phase_offsets(4, 4) == [0, 1, 2, 3]
    assert phase_offsets(3, 6) == [0, 2, 4]
    with pytest.raises(ValueError, match=r"phases must divide the 4 frames .* \(1, 2, 4\), got 3"):
        phase_offsets(3, 4)
    with pytest.raises(ValueError, match="got 0"):
        phase_offsets(0, 4)


def _centre_runs(frames_per_step: int, phases: int, num_frames: int) -> list[np.ndarray]:
    """Runs whose rows hold the middle of the frames they stand for (one value a row): run q's
    step k stands for the F frames from q + F k - F // 2 on. The runs have the rows a causal
    network gives: one for each step begun within the video."""
    f = frames_per_step
    runs = []
    for offset in phase_offsets(phases, f):
        steps = -(-(num_frames - offset) // f)
        runs.append([np.array([offset + f * k - f // 2 + (f - 1) / 2]) for k in range(steps)])
    return runs


@pytest.mark.parametrize("frames_per_step, phases", [(4, 1), (4, 2), (4, 4), (6, 3), (6, 2)])
def test_each_combined_row_is_centred_on_the_frames_it_stands_for(frames_per_step, phases):
    """Away from the video's ends every run stands for a combined row's frames, and their
    middles average to the middle of the frames the row (and a gesture made of it) stands
    for: boundaries found on the rows are where the runs put them."""
    n = 40
    combiner = PhaseCombiner(phases, frames_per_step)
    rows = combine_phases(_centre_runs(frames_per_step, phases, n), frames_per_step, n)
    r, lead = combiner.frames_per_row, combiner.lead
    assert r == frames_per_step // phases and len(rows) == -(-n // r)
    for j in range(2, len(rows) - 2):
        start, end = Gesture(j, j, 1, 1.0, r, lead).frames()  # 1-based
        assert rows[j, 0] == pytest.approx((start + end) / 2 - 1), j


def test_one_phase_gives_the_runs_rows_back():
    rows = [np.random.default_rng(0).random(3) for _ in range(5)]
    combined = combine_phases([rows], 4, 18)
    np.testing.assert_array_equal(combined, np.array(rows))
    assert PhaseCombiner(1, 4).lead == 2  # the network's own convention: F // 2


def test_rows_come_out_in_order_once_every_run_has_reached_them():
    """Online: a combined row waits for the slowest run that stands for it; finishing gives
    the rows near the end from the runs that reached them, as an offline pass does."""
    runs = _centre_runs(4, 4, 13)
    combiner = PhaseCombiner(4, 4)
    online = []
    for k in range(max(map(len, runs))):  # the runs' rows interleaved, as a stream gives them
        for run, rows in enumerate(runs):
            if k < len(rows):
                got = combiner.add(run, rows[k])
                online += got
                assert all(len(g) == 1 for g in got)
    early = len(online)
    online += combiner.finish(13)
    assert early < len(online) == 13
    np.testing.assert_array_equal(np.array(online), combine_phases(runs, 4, 13))
    # Inside, a frame's runs average to it; at the ends fewer runs reach a frame (frame 0:
    # the runs from 0, 1 and 2; frame 12: those from 0 and 3), which pulls it inwards.
    middles = [row[0] for row in online]
    assert middles == pytest.approx([0.5, *range(1, 11), 10.5, 11.0])
