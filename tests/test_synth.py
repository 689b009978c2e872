"""The synthetic gesture set: determinism, time reversal, and read-back by the real loaders."""

from __future__ import annotations

import numpy as np
import pytest
import simplejpeg

from aclstm.cli import main
from aclstm.data import IsoGDDataset, JesterDataset, read_video
from aclstm.data.synth import JESTER_CLASSES, SynthSpec, render_clip, write_synthetic_set


def motion_drift(depth: np.ndarray) -> tuple[float, float]:
    """Drift (x, y) of the hand's centroid from the first third of a clip to the last. The
    hand is what stands out of the depth stream (near is bright), as a depth camera sees it."""
    hand = depth.astype(np.float32) > 80
    ys, xs = np.mgrid[0 : depth.shape[1], 0 : depth.shape[2]]
    w = hand.sum(axis=(1, 2)) + 1e-6
    cx, cy = (hand * xs).sum(axis=(1, 2)) / w, (hand * ys).sum(axis=(1, 2)) / w
    third = len(depth) // 3
    return cx[-third:].mean() - cx[:third].mean(), cy[-third:].mean() - cy[:third].mean()


def test_classes_are_jesters():
    assert len(JESTER_CLASSES) == 27
    assert JESTER_CLASSES[0] == "Swiping Left" and JESTER_CLASSES[26] == "Doing other things"
    assert JESTER_CLASSES[14:16] == ["Turning Hand Clockwise", "Turning Hand Counterclockwise"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_time_reversal_turns_a_left_swipe_into_a_right_swipe(seed):
    left_rgb, left = render_clip(JESTER_CLASSES.index("Swiping Left"), seed)
    _, right = render_clip(JESTER_CLASSES.index("Swiping Right"), seed)
    assert motion_drift(left)[0] < -40 and motion_drift(right)[0] > 40
    assert motion_drift(left[::-1])[0] > 40  # reversed in time, the hand moves right
    _, down = render_clip(JESTER_CLASSES.index("Swiping Down"), seed)
    assert motion_drift(down)[1] > 15 and motion_drift(down[::-1])[1] < -15
    # The colour frames show the same hand: where depth sees it, the image differs from the
    # clip's median frame far more than elsewhere.
    change = np.abs(left_rgb.astype(np.float32) - np.median(left_rgb, axis=0)).sum(-1)
    moving = left > 80
    assert change[moving].mean() > 2 * change[~moving].mean()


def test_render_is_deterministic_and_varies_with_the_seed():
    a, da = render_clip(5, (3, 5, 0))
    b, db = render_clip(5, (3, 5, 0))
    assert np.array_equal(a, b) and np.array_equal(da, db)
    c, _ = render_clip(5, (3, 5, 1))
    assert a.shape[1:] == (100, 176, 3) and da.shape == a.shape[:3]
    assert 24 <= len(a) <= 48
    assert a.shape != c.shape or not np.array_equal(a, c)


def test_jester_layout_read_back_and_identical_files(tmp_path):
    spec = SynthSpec(clips_per_class=2, val_fraction=0.5, seed=4)
    counts = write_synthetic_set(tmp_path / "a", spec, workers=2)
    assert counts == {"train": 27, "validation": 27, "test": 0}
    write_synthetic_set(tmp_path / "b", spec, workers=1)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.*"))
    assert files_a == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.*"))
    for rel in files_a[::37]:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()

    train = JesterDataset(tmp_path / "a", "train", clip_len=8, size=64)
    val = JesterDataset(tmp_path / "a", "validation", clip_len=8, size=64)
    assert train.classes == JESTER_CLASSES
    assert sorted(r.label for r in train.records) == list(range(27))
    assert sorted(r.label for r in val.records) == list(range(27))
    clip, label = val[5]
    assert clip.shape == (3, 8, 64, 64) and label == val.records[5].label
    # Frame counts on disk are the rendered lengths.
    first = train.records[0]
    frames, _ = render_clip(first.label, (4, first.label, 0))
    assert len(list(first.source.glob("*.jpg"))) == len(frames)


def test_jester_frames_are_coded_like_jesters(tmp_path):
    """4:2:0 and about Jester's bytes a frame (~4.3 KB), so decoding them costs what decoding
    Jester costs (the data benchmark's clips are these)."""
    write_synthetic_set(tmp_path, SynthSpec(clips_per_class=1, val_fraction=0.0, seed=1))
    frames = sorted((tmp_path / "20bn-jester-v1").rglob("*.jpg"))
    assert len(frames) >= 27 * 24
    sizes = [f.stat().st_size for f in frames]
    assert 3500 < np.mean(sizes) < 6000
    for f in frames[::50]:
        assert simplejpeg.decode_jpeg_header(f.read_bytes())[3] == "420"


def test_isogd_layout_read_back(tmp_path):
    write_synthetic_set(
        tmp_path, SynthSpec(clips_per_class=1, val_fraction=0.0, seed=2, format="isogd")
    )
    rgb = IsoGDDataset(tmp_path, "train", "rgb", clip_len=8, size=64)
    depth = IsoGDDataset(tmp_path, "train", "depth", clip_len=8, size=64)
    assert len(rgb) == len(depth) == 27
    assert [r.label for r in rgb.records] == list(range(27))
    assert (tmp_path / "classes.txt").read_text().splitlines() == JESTER_CLASSES
    assert rgb[3][0].shape == (3, 8, 64, 64) and depth[3][0].shape == (1, 8, 64, 64)
    frames, _ = render_clip(3, (2, 3, 0))
    assert len(read_video(rgb.records[3].source)) == len(frames)


def test_synth_command(tmp_path, capsys):
    assert (
        main(
            [
                "synth",
                str(tmp_path),
                "--clips-per-class",
                "1",
                "--val-fraction",
                "0",
                "--workers",
                "1",
                "--seed",
                "9",
            ]
        )
        == 0
    )
    assert "wrote 27 clips (27 train, 0 validation, 0 test)" in capsys.readouterr().out
    assert (tmp_path / "jester-v1-labels.csv").read_text().splitlines() == JESTER_CLASSES
    with pytest.raises(SystemExit):
        main(["synth", str(tmp_path), "--val-fraction", "1.5"])


def test_a_class_subset_writes_only_those_classes_in_that_order(tmp_path):
    spec = SynthSpec(clips_per_class=2, val_fraction=0.5, seed=1, classes=(3, 0))
    write_synthetic_set(tmp_path, spec)
    assert (tmp_path / "jester-v1-labels.csv").read_text().splitlines() == [
        "Swiping Up",
        "Swiping Left",
    ]
    train = JesterDataset(tmp_path, "train", clip_len=4, size=32)
    assert train.classes == ["Swiping Up", "Swiping Left"]
    assert sorted(r.label for r in train.records) == [0, 1]
    # A clip renders the same whatever subset it is written in.
    full = tmp_path / "full"
    write_synthetic_set(full, SynthSpec(clips_per_class=2, val_fraction=0.5, seed=1))
    clip = "00007"  # Swiping Up, first clip
    assert (tmp_path / "20bn-jester-v1" / clip / "00001.jpg").read_bytes() == (
        full / "20bn-jester-v1" / clip / "00001.jpg"
    ).read_bytes()
    with pytest.raises(ValueError, match="distinct indices"):
        write_synthetic_set(tmp_path / "bad", SynthSpec(classes=(0, 27)))


def test_the_clip_length_range_is_honoured_and_the_default_is_unchanged(tmp_path, capsys):
    """``--frames MIN,MAX`` (guards against the range ignored, or its end left out); the
    default draw is the Jester-like 24-48 of every earlier set, frame for frame."""
    lengths = {len(render_clip(k % 27, (0, k, 1), (16, 18), depth=False)[0]) for k in range(40)}
    assert lengths == {16, 17, 18}
    default, _ = render_clip(3, (2, 3, 0), depth=False)
    explicit, _ = render_clip(3, (2, 3, 0), (24, 48), depth=False)
    assert np.array_equal(default, explicit) and len(default) == 47  # as drawn before the option
    assert len(render_clip(3, (2, 3, 0), 9, depth=False)[0]) == 9
    options = ["--clips-per-class", "1", "--val-fraction", "0", "--workers", "1"]
    assert main(["synth", str(tmp_path), *options, "--classes", "0,1", "--frames", "10,12"]) == 0
    counts = [len(list(p.iterdir())) for p in (tmp_path / "20bn-jester-v1").iterdir()]
    assert len(counts) == 2 and all(10 <= n <= 12 for n in counts)
    for bad in ("12,10", "1,4", "10"):
        with pytest.raises(SystemExit):
            main(["synth", str(tmp_path), "--frames", bad])
    assert "expected MIN,MAX" in capsys.readouterr().err
