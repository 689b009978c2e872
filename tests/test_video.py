"""Video decoding: probed by content, a frame at a time, only the frames asked for, scaled."""

from __future__ import annotations

import numpy as np
import pytest

from aclstm.data import ClipDataset, ClipRecord, DataError
from aclstm.data.video import (
    iter_video,
    probe_video,
    read_video,
    read_video_frames,
    scaled_size,
)
from aclstm.inference import load_input

from helpers import write_video


def levels(frames) -> list[int]:
    """The grey level of each solid frame, in tens (helpers.write_video: 10, 20, ...)."""
    return [round(float(np.mean(f)) / 10) for f in frames]


def test_probe_counts_the_frames_without_decoding(tmp_path):
    write_video(tmp_path / "v.avi", 17, size=(48, 64))
    info = probe_video(tmp_path / "v.avi")
    assert (info.frames, info.height, info.width, info.fps) == (17, 48, 64, 10.0)


def test_only_the_frames_asked_for_in_the_order_asked(tmp_path):
    write_video(tmp_path / "v.avi", 12)
    frames = read_video_frames(tmp_path / "v.avi", [5, 0, 5, 11])
    assert frames.shape == (4, 48, 64, 3) and levels(frames) == [6, 1, 6, 12]
    everything = read_video(tmp_path / "v.avi")
    assert np.array_equal(frames[1], everything[0]) and np.array_equal(frames[3], everything[11])
    assert levels(read_video_frames(tmp_path / "v.avi", [3, 40])) == [4, 12]  # past the end


def test_frames_scaled_down_as_decoded(tmp_path):
    assert scaled_size(1080, 1920, 112) == (135, 240)  # 1/8
    assert scaled_size(240, 320, 112) == (120, 160)  # 4/8
    assert scaled_size(100, 176, 112) == (100, 176)  # already smaller: as it is
    assert scaled_size(480, 640, 0) == (480, 640)
    write_video(tmp_path / "v.avi", 3, size=(96, 128))
    frames = read_video_frames(tmp_path / "v.avi", [0, 2], min_side=32)
    assert frames.shape == (2, 36, 48, 3) and levels(frames) == [1, 3]
    assert next(iter_video(tmp_path / "v.avi", min_side=32)).shape == (36, 48, 3)


def test_any_name_ffmpeg_opens_is_a_video(tmp_path):
    write_video(tmp_path / "phone.MOV", 6)
    write_video(tmp_path / "clip.avi", 6)
    (tmp_path / "clip.avi").rename(tmp_path / "clip.data")
    for name in ("phone.MOV", "clip.data"):
        ds = ClipDataset([ClipRecord(tmp_path / name, 0)], ["a"], clip_len=4, size=32)
        clip, _ = ds[0]
        assert clip.shape == (3, 4, 32, 32)
    meta = {"classes": ["a"], "clip_len": 4, "size": 32, "mean": [0, 0, 0]}
    clip, _, source = load_input(str(tmp_path / "phone.MOV"), meta)
    assert clip.shape == (3, 4, 32, 32) and source.endswith("phone.MOV")


def test_files_that_are_not_videos_are_named(tmp_path):
    (tmp_path / "notes.mp4").write_text("not a video at all")
    with pytest.raises(DataError, match=r"notes.mp4: corrupt or truncated video, or not one"):
        probe_video(tmp_path / "notes.mp4")
    with pytest.raises(DataError, match=r"missing.mov: video not found"):
        read_video_frames(tmp_path / "missing.mov", [0])
    meta = {"classes": ["a"], "clip_len": 4, "size": 32, "mean": [0, 0, 0]}
    with pytest.raises(DataError, match=r"notes.mp4: corrupt or truncated video"):
        load_input(str(tmp_path / "notes.mp4"), meta)
