"""Scores of continuous recognition: hand-computed cases, properties (hypothesis), the files."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aclstm.analysis.continuous import (
    edit_distance,
    jaccard_index,
    levenshtein_accuracy,
    score_lists,
    score_videos,
)
from aclstm.cli import main
from aclstm.data import DataError, Segment, write_congd_list

S = Segment


@pytest.mark.parametrize(
    ("truth", "predicted", "j2017", "j2014"),
    [
        ([S(1, 10, 1), S(11, 20, 2)], [S(1, 5, 1), S(11, 20, 2)], 0.75, 0.75),  # (5/10 + 1) / 2
        ([S(1, 10, 1)], [S(1, 10, 1), S(21, 25, 3)], 1.0, 0.5),  # a false alarm on background
        ([S(1, 10, 1)], [S(1, 10, 2)], 0.0, 0.0),  # the right frames, the wrong gesture
        ([S(1, 10, 4), S(21, 30, 4)], [S(1, 30, 4)], 2 / 3, 2 / 3),  # one label, twice: 20/30
        ([S(1, 10, 1), S(11, 20, 2)], [S(6, 15, 1)], 5 / 15 / 2, 5 / 15 / 2),
        ([S(1, 10, 1)], [], 0.0, 0.0),
    ],
)
def test_jaccard_by_hand(truth, predicted, j2017, j2014):
    assert jaccard_index(truth, predicted, "2017") == pytest.approx(j2017)
    assert jaccard_index(truth, predicted, "2014") == pytest.approx(j2014)


def test_edit_distance_and_levenshtein_accuracy_by_hand():
    assert edit_distance([1, 2, 3, 4, 5, 6], [7, 2, 3, 4, 8, 6, 9]) == 3  # 2 swaps, 1 insert
    assert edit_distance([], [1, 2]) == 2 and edit_distance([3], []) == 1
    truth = [S(1, 5, 1), S(6, 9, 2), S(20, 30, 3)]
    assert levenshtein_accuracy(truth, [S(1, 9, 1), S(15, 40, 3)]) == pytest.approx(2 / 3)
    assert levenshtein_accuracy(truth, [S(40, 41, 3), S(1, 2, 1), S(3, 4, 2)]) == 1.0  # by start
    assert levenshtein_accuracy(truth, []) == 0.0
    assert levenshtein_accuracy(truth, [S(k, k, 9) for k in range(1, 8)]) == 0.0  # floored


def test_truth_without_gestures_is_refused():
    with pytest.raises(ValueError, match="at least one gesture"):
        jaccard_index([], [S(1, 2, 1)])
    with pytest.raises(ValueError, match="variant must be one of"):
        jaccard_index([S(1, 2, 1)], [], "2015")


def test_unpredicted_videos_score_zero_and_extra_videos_are_refused():
    truth = {"a": [S(1, 10, 1)], "b": [S(1, 10, 2)]}
    scores = score_videos(truth, {"a": [S(1, 10, 1)]})
    assert scores.mean_jaccard == 0.5 and scores.levenshtein_accuracy == 0.5
    assert scores.unpredicted == ["b"]
    with pytest.raises(ValueError, match="names videos the truth lacks: c"):
        score_videos(truth, {"c": []})


@st.composite
def gestures(draw):
    """Disjoint, ordered segments: gaps of 0 (back to back) or more frames between them."""
    segments, end = [], 0
    for gap, length, label in draw(
        st.lists(
            st.tuples(st.integers(0, 10), st.integers(1, 30), st.integers(1, 10)),
            min_size=1,
            max_size=8,
        )
    ):
        start = end + 1 + gap
        end = start + length - 1
        segments.append(S(start, end, label))
    return segments


@given(truth=gestures(), predicted=st.one_of(st.just([]), gestures()))
@settings(max_examples=300, deadline=None)
def test_scores_lie_in_the_unit_interval(truth, predicted):
    for variant in ("2017", "2014"):
        assert 0.0 <= jaccard_index(truth, predicted, variant) <= 1.0
    assert 0.0 <= levenshtein_accuracy(truth, predicted) <= 1.0
    assert jaccard_index(truth, predicted, "2014") <= jaccard_index(truth, predicted, "2017")


@given(truth=gestures())
@settings(max_examples=200, deadline=None)
def test_perfect_prediction_scores_one_and_empty_zero(truth):
    for variant in ("2017", "2014"):
        assert jaccard_index(truth, truth, variant) == 1.0
        assert jaccard_index(truth, [], variant) == 0.0
    assert levenshtein_accuracy(truth, truth) == 1.0
    assert levenshtein_accuracy(truth, []) == 0.0


@given(truth=gestures(), predicted=gestures(), length=st.integers(1, 20))
@settings(max_examples=300, deadline=None)
def test_false_alarm_on_background_lowers_2014_only(truth, predicted, length):
    """A label the truth lacks, predicted on frames where the truth has no gesture."""
    predicted = [s for s in predicted if s.end <= truth[-1].end]  # leave the tail free
    start = truth[-1].end + 1
    alarm = [*predicted, S(start, start + length - 1, 99)]
    assert jaccard_index(truth, alarm, "2017") == jaccard_index(truth, predicted, "2017")
    before = jaccard_index(truth, predicted, "2014")
    after = jaccard_index(truth, alarm, "2014")
    assert after < before or before == after == 0.0


def test_score_files_and_command(tmp_path, capsys):
    truth, guess = tmp_path / "truth.txt", tmp_path / "pred.txt"
    write_congd_list(truth, [("v/1", [S(1, 10, 1), S(11, 20, 2)]), ("v/2", [S(5, 9, 3)])])
    write_congd_list(guess, [("v/1", [S(1, 5, 1), S(11, 20, 2)])])
    scores = score_lists(truth, guess)
    assert scores.mean_jaccard == pytest.approx(0.375) and scores.unpredicted == ["v/2"]

    assert main(["score", str(truth), str(guess)]) == 0
    out = capsys.readouterr().out
    assert "v/1" in out and "0.7500" in out and "v/2" in out
    assert "mean Jaccard index (ConGD 2017): 0.3750 over 2 videos" in out
    assert "1 video without a prediction" in out
    assert main(["score", str(truth), str(guess), "--json", "--variant", "2014"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["jaccard_variant"] == "2014" and report["mean_jaccard"] == pytest.approx(0.375)
    assert report["levenshtein_accuracy"] == 0.5 and report["videos"][1]["video"] == "v/2"


def test_score_files_errors_name_the_line(tmp_path, capsys):
    truth, guess = tmp_path / "truth.txt", tmp_path / "pred.txt"
    truth.write_text("v/1 1,10:1\n")
    guess.write_text("v/1 1,10:1\nv/9 1,3:2\n")
    with pytest.raises(DataError, match=r"pred.txt:2: video 'v/9' is not in"):
        score_lists(truth, guess)
    truth.write_text("v/1 1,10:1\nv/2\n")
    with pytest.raises(DataError, match=r"truth.txt:2: video 'v/2' has no gestures"):
        score_lists(truth, guess)
    truth.write_text("v/1 1,10:1\n")
    guess.write_text("v/1 10,1:1\n")
    assert main(["score", str(tmp_path / "truth.txt"), str(guess)]) == 2
    assert "pred.txt:1: range 10,1 is reversed" in capsys.readouterr().err
