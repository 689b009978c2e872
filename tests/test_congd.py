"""The ConGD reader: list lines, the files they name, per-frame labels, windows, bad lines."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from aclstm.data import (
    ConGDDataset,
    DataError,
    Segment,
    frame_labels,
    read_congd_list,
    read_congd_segments,
    write_congd_list,
)
from aclstm.data.congd import BACKGROUND, IGNORE

from helpers import write_frames, write_video


def test_lines_parsed(tmp_path):
    path = tmp_path / "valid_list.txt"
    path.write_text("valid/001/02389 1,38:209 39,81:186\r\nvalid/001/02388 5,33:29\n\ntest/9\n")
    entries = read_congd_segments(path, num_classes=249)
    assert [e.video for e in entries] == ["valid/001/02389", "valid/001/02388", "test/9"]
    assert entries[0].segments == (Segment(1, 38, 209), Segment(39, 81, 186))
    assert [e.line for e in entries] == [1, 2, 4]
    assert entries[2].segments is None  # a test list: names only


def test_written_lists_read_back(tmp_path):
    entries = [("a/1", [Segment(3, 9, 2), Segment(12, 12, 27)]), ("a/2", [])]
    write_congd_list(tmp_path / "l.txt", entries)
    assert (tmp_path / "l.txt").read_text() == "a/1 3,9:2 12,12:27\na/2\n"
    back = read_congd_segments(tmp_path / "l.txt")
    assert back[0].segments == tuple(entries[0][1]) and back[1].segments is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("v 1,38:9 30,50:4", "overlaps or precedes the range before it (1,38)"),
        ("v 40,50:9 1,38:4", "overlaps or precedes"),
        ("v 1,38:9 38,50:4", "overlaps or precedes"),  # frame 38 in both
        ("v 38,1:9", "range 38,1 is reversed"),
        ("v 0,5:9", "frames are numbered from 1"),
        ("v 1,5:250", "label 250 out of range 1..249"),
        ("v 1,5:0", "label 0 out of range 1..249"),
        ("v 1-5:3", "expected 's,e:label'"),
        ("v 1,5", "expected 's,e:label'"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "train_list.txt"
    path.write_text(f"ok 1,5:1\n{line}\n")
    with pytest.raises(DataError, match=re.escape(message)) as caught:
        read_congd_segments(path, num_classes=249)
    assert caught.value.path == str(path) and caught.value.line == 2


def test_video_listed_twice_is_an_error(tmp_path):
    path = tmp_path / "l.txt"
    path.write_text("a 1,5:1\nb 1,5:1\na 1,9:2\n")
    with pytest.raises(DataError, match=r"l.txt:3: video 'a' listed again \(first at line 1\)"):
        read_congd_segments(path)


def test_frame_labels():
    labels = frame_labels([Segment(2, 3, 7), Segment(5, 5, 1)], 6)
    assert labels.tolist() == [0, 7, 7, 0, 1, 0]
    assert frame_labels(None, 3).tolist() == [IGNORE] * 3


def test_sources_found_by_either_naming_and_prefix_rewritten(tmp_path):
    write_video(tmp_path / "train/001/M_00001.avi", 4)
    write_video(tmp_path / "train/001/00002.K.avi", 4)
    write_frames(tmp_path / "frames/00003", 4)
    (tmp_path / "rgb.txt").write_text("train/001/00001\nframes/00003\n")
    rgb = read_congd_list(tmp_path / "rgb.txt", modality="rgb")
    assert [v.source for v in rgb] == [
        tmp_path / "train/001/M_00001.avi",
        tmp_path / "frames/00003",
    ]
    (tmp_path / "depth.txt").write_text("/old/train/001/00002 1,4:5\n")
    depth = read_congd_list(tmp_path / "depth.txt", modality="depth", path_prefix=("/old/", ""))
    assert depth[0].source == tmp_path / "train/001/00002.K.avi"
    with pytest.raises(DataError, match=r"depth.txt:1: no depth video for '/old/train/001/00002'"):
        read_congd_list(tmp_path / "depth.txt", modality="depth")  # the prefix not rewritten


def test_missing_video_names_the_line(tmp_path):
    write_video(tmp_path / "M_a.avi", 3)
    (tmp_path / "l.txt").write_text("a 1,2:1\nb 1,2:1\n")
    with pytest.raises(DataError, match=r"l.txt:2: no rgb video for 'b'.*M_b.avi, b.M.avi"):
        read_congd_list(tmp_path / "l.txt")


def _frame_set(root, lines: str, frames: int = 20) -> None:
    """Videos as folders of solid frames whose grey level is 10x the 1-based frame number."""
    for name in {line.split()[0] for line in lines.splitlines()}:
        write_frames(root / name, frames, size=(16, 16))
    (root / "train_list.txt").write_text(lines)
    (root / "classes.txt").write_text("Swiping Left\nSwiping Right\nStop Sign\n")


def _frame_numbers(clip: torch.Tensor, mean: float = 0.0) -> list[int]:
    """1-based frame numbers back from the grey levels of a clip (C, T, H, W)."""
    return [round((v + mean) / 10) for v in clip.mean(dim=(0, 2, 3)).tolist()]


def test_whole_videos_with_per_frame_labels(tmp_path):
    _frame_set(tmp_path, "v/1 3,7:1 8,12:3\nv/2 1,20:2\n")
    ds = ConGDDataset(tmp_path, "train", window=None, size=16, training=False, mean=(0, 0, 0))
    assert ds.classes == [BACKGROUND, "Swiping Left", "Swiping Right", "Stop Sign"]
    clip, labels = ds[0]
    assert clip.shape == (3, 20, 16, 16) and labels.dtype == torch.int64
    assert _frame_numbers(clip) == list(range(1, 21))
    assert labels.tolist() == [0, 0] + [1] * 5 + [3] * 5 + [0] * 8
    assert ds[1][1].tolist() == [2] * 20


def test_windows_carry_their_frames_labels(tmp_path):
    _frame_set(tmp_path, "v/1 3,7:1 8,12:3\n")
    ds = ConGDDataset(tmp_path, window=6, size=16, training=True, mean=(0, 0, 0), seed=3)
    starts = set()
    for epoch in range(12):
        ds.set_epoch(epoch)
        clip, labels = ds[0]
        numbers = _frame_numbers(clip)
        assert clip.shape == (3, 6, 16, 16) and numbers == list(range(numbers[0], numbers[0] + 6))
        expected = frame_labels(ds.videos[0].entry.segments, 20)[numbers[0] - 1 : numbers[-1]]
        assert labels.tolist() == expected.tolist()
        starts.add(numbers[0])
    assert len(starts) > 3  # the window moves from epoch to epoch
    ds.set_epoch(4)
    assert torch.equal(ds[0][1], ds[0][1])  # and is the same for the same (seed, epoch)
    ds.training = False
    assert _frame_numbers(ds[0][0]) == list(range(8, 14))  # evaluation: centred


def test_a_frame_stride_takes_every_kth_frame_and_its_label(tmp_path):
    _frame_set(tmp_path, "v/1 3,7:1 8,12:3\n")
    ds = ConGDDataset(tmp_path, window=4, size=16, training=True, mean=(0, 0, 0), frame_stride=3)
    labels_of = frame_labels(ds.videos[0].entry.segments, 20)
    for epoch in range(6):
        ds.set_epoch(epoch)
        clip, labels = ds[0]
        numbers = _frame_numbers(clip)  # a window of 4 frames spans 12
        assert numbers == list(range(numbers[0], numbers[0] + 12, 3)) and numbers[-1] <= 20
        assert labels.tolist() == [labels_of[n - 1] for n in numbers]
    whole = ConGDDataset(tmp_path, size=16, training=False, mean=(0, 0, 0), frame_stride=3)
    assert _frame_numbers(whole[0][0]) == [1, 4, 7, 10, 13, 16, 19]
    assert whole.num_frames(0) == 20


def test_short_video_padded_with_ignored_frames(tmp_path):
    _frame_set(tmp_path, "v/1 2,4:2\n", frames=5)
    ds = ConGDDataset(tmp_path, window=8, size=16, training=True, mean=(0, 0, 0), seed=0)
    clip, labels = ds[0]
    assert _frame_numbers(clip) == [1, 2, 3, 4, 5, 5, 5, 5]
    assert labels.tolist() == [0, 2, 2, 2, 0, IGNORE, IGNORE, IGNORE]


def test_range_past_the_end_names_the_list_line(tmp_path):
    _frame_set(tmp_path, "v/1 1,5:1\nv/2 3,25:2\n")
    ds = ConGDDataset(tmp_path, size=16)
    ds[0]
    with pytest.raises(DataError, match=r"train_list.txt:2: range 3,25 ends past the last frame"):
        ds[1]


def test_label_beyond_the_classes_file(tmp_path):
    _frame_set(tmp_path, "v/1 1,5:4\n")  # classes.txt names 3 gestures
    with pytest.raises(DataError, match=r"train_list.txt:1: label 4 out of range 1..3"):
        ConGDDataset(tmp_path, size=16)


def test_unlabelled_list_gives_ignored_labels(tmp_path):
    _frame_set(tmp_path, "v/1\n")
    _, labels = ConGDDataset(tmp_path, size=16)[0]
    assert (labels == IGNORE).all()


def test_mirrored_windows_take_the_mirrored_labels(tmp_path):
    _frame_set(tmp_path, "v/1 3,7:1 8,12:3\n")
    ds = ConGDDataset(tmp_path, window=20, size=16, training=True, mean=(0, 0, 0), seed=1)
    ds.horizontal_flip = True
    seen = set()
    for epoch in range(10):
        ds.set_epoch(epoch)
        labels = ds[0][1].tolist()
        assert labels[2:7] in ([1] * 5, [2] * 5)  # Swiping Left, or Right once mirrored
        assert labels[7:12] == [3] * 5  # Stop Sign is its own mirror image
        seen.add(labels[2])
    assert seen == {1, 2}


def test_video_files_read(tmp_path):
    write_video(tmp_path / "train/M_00001.avi", 12, size=(32, 48))
    (tmp_path / "train_list.txt").write_text("train/00001 2,6:9 9,12:3\n")
    ds = ConGDDataset(tmp_path, window=None, size=16, training=False, mean=(0, 0, 0))
    clip, labels = ds[0]
    assert clip.shape == (3, 12, 16, 16)
    assert labels.tolist() == [0, 9, 9, 9, 9, 9, 0, 0, 3, 3, 3, 3]
    assert np.allclose(_frame_numbers(clip), range(1, 13))


@pytest.mark.parametrize("kind", ["video", "frames"])
def test_cached_videos_give_the_windows_decoding_gives(tmp_path, kind):
    if kind == "video":
        write_video(tmp_path / "train/M_00001.avi", 30, size=(32, 48))
        (tmp_path / "train_list.txt").write_text("train/00001 2,6:9 9,12:3 20,27:5\n")
    else:
        _frame_set(tmp_path, "v/1 3,7:1 8,12:3\n", frames=20)
    args = {"window": 5, "size": 16, "training": True, "mean": (0, 0, 0), "seed": 2}
    plain = ConGDDataset(tmp_path, frame_stride=2, **args)
    cached = ConGDDataset(tmp_path, frame_stride=2, cache_frames=True, **args)
    for epoch in range(4):
        plain.set_epoch(epoch)
        cached.set_epoch(epoch)
        (a, la), (b, lb) = plain[0], cached[0]
        assert torch.equal(a, b) and torch.equal(la, lb)
    assert len(cached._decoded) == 1  # decoded once, read four times


def test_a_frame_stride_is_refused_for_isolated_clips():
    from aclstm.config import DataConfig
    from aclstm.data.factory import build_dataset

    data = DataConfig(dataset="synth", root="anywhere", frame_stride=2)
    with pytest.raises(ValueError, match=r"data\.frame_stride is for continuous videos"):
        build_dataset(data, "train", 8, 32)
