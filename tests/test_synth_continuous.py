"""The synthetic continuous set: what its videos hold, determinism, and read-back in ConGD's
layout by the ConGD reader and the scorer."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from aclstm.analysis.continuous import score_lists
from aclstm.cli import main
from aclstm.data import ConGDDataset, frame_labels, read_congd_segments, read_video
from aclstm.data.synth import JESTER_CLASSES, WIDTH, SynthSpec, write_synthetic_set
from aclstm.data.synth_continuous import (
    BACKGROUND_CLASSES,
    EDGE_FRAMES,
    GESTURES_PER_VIDEO,
    plan_continuous,
    render_continuous,
)

SHORT = (8, 12)  # gestures' lengths in frames, for speed


def _plans(seeds=range(60)):
    return [plan_continuous(np.random.default_rng((5, seed)), None, SHORT) for seed in seeds]


def test_gestures_ordered_disjoint_and_framed_by_idle_time():
    background = {JESTER_CLASSES.index(name) + 1 for name in BACKGROUND_CLASSES}
    counts = set()
    for poses, segments in _plans():
        counts.add(len(segments))
        assert GESTURES_PER_VIDEO[0] <= len(segments) <= GESTURES_PER_VIDEO[1]
        assert all(a.end < b.start for a, b in itertools.pairwise(segments))
        assert all(SHORT[0] <= s.end - s.start + 1 <= SHORT[1] for s in segments)
        assert not {s.label for s in segments} & background
        assert segments[0].start > EDGE_FRAMES[0] and len(poses) - segments[-1].end >= 4
        for s in segments:  # the hand is in view throughout a gesture
            assert all(poses[k] is not None for k in range(s.start - 1, s.end))
    assert counts == set(range(GESTURES_PER_VIDEO[0], GESTURES_PER_VIDEO[1] + 1))


def test_idle_stretches_of_every_kind_and_back_to_back_gestures():
    no_hand = out_of_view = at_rest = back_to_back = 0
    for poses, segments in _plans():
        busy = {k for s in segments for k in range(s.start - 1, s.end)}
        for k, pose in enumerate(poses):
            if k in busy:
                continue
            if pose is None:
                no_hand += 1
            elif not (0 <= pose.x <= WIDTH and pose.y <= 110):
                out_of_view += 1  # leaving or entering by an edge
            else:
                at_rest += 1
        back_to_back += sum(b.start == a.end + 1 for a, b in itertools.pairwise(segments))
    assert min(no_hand, out_of_view, at_rest) > 100 and back_to_back >= 5


def test_same_seed_same_video_and_the_hand_shows_in_depth():
    a, b = render_continuous((1, 2), frames=SHORT), render_continuous((1, 2), frames=SHORT)
    assert np.array_equal(a.frames, b.frames) and a.segments == b.segments
    assert not np.array_equal(a.frames, render_continuous((1, 3), frames=SHORT).frames)
    hand = (a.depths > 80).sum(axis=(1, 2))  # near pixels: the hand, as a depth camera sees it
    for s in a.segments:
        assert (hand[s.start - 1 : s.end] > 200).all()


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("congd")
    spec = SynthSpec(
        clips_per_class=5, val_fraction=0.25, test_fraction=0.25, seed=3, format="congd",
        classes=(0, 1, 2, 3), frames=SHORT,
    )  # fmt: skip
    counts = write_synthetic_set(root, spec, workers=2)
    return root, counts


def test_written_in_congds_layout_and_read_back(small_set):
    root, counts = small_set
    assert counts == {"train": 2, "validation": 1, "test": 1}
    assert (root / "classes.txt").read_text().splitlines() == JESTER_CLASSES
    train = ConGDDataset(root, "train", window=None, size=32, training=False)
    entry = train.videos[0].entry
    assert entry.video == "train/001/00001" and train.videos[0].source.name == "M_00001.avi"
    assert {s.label for v in train.videos for s in v.entry.segments} <= {1, 2, 3, 4}
    clip, labels = train[0]
    n = len(read_video(train.videos[0].source))
    assert clip.shape == (3, n, 32, 32) and labels.shape == (n,)
    assert labels.tolist() == frame_labels(entry.segments, n).tolist()
    assert (labels > 0).sum() == sum(s.end - s.start + 1 for s in entry.segments)
    depth = ConGDDataset(root, "valid", "depth", window=16, size=32, training=True, seed=0)
    assert depth[0][0].shape == (1, 16, 32, 32)
    test = ConGDDataset(root, "test", size=32)
    assert (test[0][1] == -1).all()  # the test list has no labels; test_truth.txt has them
    truth = read_congd_segments(root / "test_truth.txt")
    assert [e.video for e in truth] == [v.entry.video for v in test.videos]
    assert score_lists(root / "test_truth.txt", root / "test_truth.txt").mean_jaccard == 1.0


def test_same_seed_same_files(small_set, tmp_path):
    root, _ = small_set
    spec = SynthSpec(5, 0.25, 0.25, seed=3, format="congd", classes=(0, 1, 2, 3), frames=SHORT)
    write_synthetic_set(tmp_path, spec, workers=1)
    for name in ("train_list.txt", "valid_list.txt", "test_list.txt", "test_truth.txt"):
        assert (tmp_path / name).read_text() == (root / name).read_text()
    for video in ("train/001/M_00001.avi", "test/001/K_00004.avi"):  # 2 workers, then 1
        assert (tmp_path / video).read_bytes() == (root / video).read_bytes()


def test_synth_command_writes_continuous_videos(tmp_path, capsys):
    args = ["synth", str(tmp_path), "--format", "congd", "--clips-per-class", "2"]
    args += ["--classes", "0,1,25", "--frames", "8,10", "--val-fraction", "0", "--workers", "1"]
    assert main(args) == 0
    assert "wrote 1 continuous videos (1 train, 0 validation, 0 test)" in capsys.readouterr().out
    assert main([*args[:-4], "--classes", "25,26", "--workers", "1"]) == 2
    assert "needs at least one gesture class" in capsys.readouterr().err


def test_contact_sheet_shows_each_sampled_frame_and_the_timeline(tmp_path):
    from aclstm.analysis.timeline import draw_contact_sheet, save_contact_sheet

    video = render_continuous((1, 2), frames=SHORT, depth=False)
    fig = draw_contact_sheet(video.frames, video.segments, JESTER_CLASSES, step=10, columns=5)
    *thumbs, timeline = fig.axes
    assert len(thumbs) == -(-len(video.frames) // 10)
    first = video.segments[0]
    for i, ax in enumerate(thumbs):
        k = 10 * i + 1
        inside = [s for s in video.segments if s.start <= k <= s.end]
        name = JESTER_CLASSES[inside[0].label - 1] if inside else "-"
        assert ax.get_title() == f"{k}\n{name}"
    assert len(timeline.patches) == len(video.segments)
    assert timeline.patches[0].get_x() == first.start - 0.5
    path = save_contact_sheet(
        tmp_path / "sheet.png", video.frames, video.segments, JESTER_CLASSES, step=40
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
