"""Raw-frame lists, IsoGD's lists and videos, and clip folders, written by the tests."""

from __future__ import annotations

import pytest

from aclstm.data import (
    ClipFolderDataset,
    DataError,
    IsoGDDataset,
    RawFrameListDataset,
    read_isogd_list,
    read_rawframe_list,
)

from helpers import write_frames, write_video


def levels(clip):
    """Grey level per frame of a (C, T, H, W) clip, mean added back."""
    return [round(v) for v in clip[0].mean(dim=(1, 2)).tolist()]


def test_rawframe_list_with_prefix_rewrite_and_isogd_template(tmp_path):
    write_frames(tmp_path / "frames" / "M_00001", 12, size=(60, 80), names="{:06d}.jpg")
    write_frames(tmp_path / "frames" / "M_00002", 3, size=(60, 80), names="{:06d}.jpg")
    listing = tmp_path / "train_rgb_list.txt"
    listing.write_text("/ssd/dataset/M_00001/ 12 25\n/ssd/dataset/M_00002 3 0\n")
    ds = RawFrameListDataset(
        listing,
        clip_len=4,
        size=32,
        mean=(0.0, 0.0, 0.0),
        template="{:06d}.jpg",
        path_prefix=("/ssd/dataset", str(tmp_path / "frames")),
    )
    assert len(ds) == 2 and len(ds.classes) == 26
    clip, label = ds[0]
    assert clip.shape == (3, 4, 32, 32) and label == 25
    assert levels(clip) == [10, 40, 70, 100]  # frames 1, 4, 7, 10 of 12
    assert levels(ds[1][0]) == [10, 20, 30, 30]


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("a/b 12", None),
        ("a/b 12 3 extra", r"list\.txt:2: expected '<frame dir> <frame count> <label>', got 4"),
        ("a/b twelve 3", r"list\.txt:2: frame count must be an integer, got 'twelve'"),
        ("a/b 12 x", r"list\.txt:2: label must be an integer, got 'x'"),
        ("a/b 12 27", r"list\.txt:2: label 27 out of range 0\.\.26"),
        ("a/b 0 3", r"list\.txt:2: frame count must be at least 1, got 0"),
    ],
    ids=["no-label", "columns", "count", "label-type", "label-range", "zero-frames"],
)
def test_rawframe_list_errors(tmp_path, line, match):
    listing = tmp_path / "list.txt"
    listing.write_text(f"x/y 5 1\r\n{line}\r\n")
    if match is None:
        assert read_rawframe_list(listing, num_classes=27)[1].label == -1
    else:
        with pytest.raises(DataError, match=match):
            read_rawframe_list(listing, num_classes=27)


def write_isogd(root):
    for k in (1, 2):
        write_video(root / "train" / "001" / f"M_0000{k}.avi", 10 + k)
        write_video(root / "train" / "001" / f"K_0000{k}.avi", 10 + k)
    (root / "train_list.txt").write_text(
        "train/001/M_00001.avi train/001/K_00001.avi 1\n"
        "train/001/M_00002.avi train/001/K_00002.avi 249\n"
    )
    (root / "test_list.txt").write_text("train/001/M_00001.avi train/001/K_00001.avi\n")


@pytest.mark.parametrize(("modality", "channels"), [("rgb", 3), ("depth", 1)])
def test_isogd_reads_videos(tmp_path, modality, channels):
    write_isogd(tmp_path)
    ds = IsoGDDataset(tmp_path, "train", modality, clip_len=8, size=32, training=False)
    assert len(ds.classes) == 249 and ds.classes[0] == "1"
    clip, label = ds[1]
    assert clip.shape == (channels, 8, 32, 32) and label == 248
    assert ds[0][1] == 0
    mean = 112 if modality == "rgb" else 127
    got = [round(v + mean) for v in clip[0].mean(dim=(1, 2)).tolist()]
    expected = [10 * (int(12 / 8 * k) + 1) for k in range(8)]
    # Frames differ by 10 grey levels; the codec moves them by a few, less than half a step.
    assert max(abs(a - b) for a, b in zip(got, expected, strict=True)) < 5
    test = IsoGDDataset(tmp_path, "test", modality, clip_len=4, size=32)
    assert test[0][1] == -1


def test_isogd_list_errors(tmp_path):
    listing = tmp_path / "valid_list.txt"
    listing.write_text("a.avi b.avi 250\n")
    with pytest.raises(DataError, match=r"valid_list\.txt:1: label 250 out of range 1\.\.249"):
        read_isogd_list(listing, tmp_path)
    listing.write_text("a.avi\n")
    with pytest.raises(DataError, match="expected '<M_ video> <K_ video> <label>', got 1"):
        read_isogd_list(listing, tmp_path)


def test_bad_videos(tmp_path):
    write_isogd(tmp_path)
    video = tmp_path / "train" / "001" / "M_00001.avi"
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    (tmp_path / "train" / "001" / "M_00002.avi").unlink()
    ds = IsoGDDataset(tmp_path, "train", clip_len=4, size=32)
    with pytest.raises(DataError, match=r"M_00001\.avi: corrupt or truncated video"):
        ds[0]
    with pytest.raises(DataError, match=r"M_00002\.avi: video not found"):
        ds[1]


def test_video_with_no_video_stream(tmp_path):
    import av

    path = tmp_path / "c" / "sound.mkv"
    path.parent.mkdir()
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame(format="s16", layout="mono", samples=800)
        frame.sample_rate = 8000
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    ds = ClipFolderDataset(tmp_path, clip_len=4, size=32)
    with pytest.raises(DataError, match=r"sound\.mkv: no video stream in the file"):
        ds[0]


def test_clip_folder_of_videos_and_frame_folders(tmp_path):
    write_video(tmp_path / "wave" / "a.mp4", 8)
    write_frames(tmp_path / "clap" / "b", 6, size=(64, 64), names="img_{:03d}.jpg")
    (tmp_path / "clap" / "notes.txt").write_text("ignored")
    ds = ClipFolderDataset(tmp_path, clip_len=3, size=32, mean=(0.0, 0.0, 0.0))
    assert ds.classes == ["clap", "wave"]
    assert [r.label for r in ds.records] == [0, 1]
    assert levels(ds[0][0]) == [10, 30, 50]
    assert ds[1][0].shape == (3, 3, 32, 32) and ds[1][1] == 1


def test_clip_folder_errors(tmp_path):
    with pytest.raises(DataError, match="no class folders"):
        ClipFolderDataset(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no clips"):
        ClipFolderDataset(tmp_path)
    (tmp_path / "empty" / "clip").mkdir()
    with pytest.raises(DataError, match=r"clip: clip folder holds no \.jpg frames"):
        ClipFolderDataset(tmp_path)[0]
