"""Square crop, resize and mean subtraction of the released code."""

from __future__ import annotations

import random

import pytest
import torch

from aclstm.data.transforms import MEANS, crop_box, mirror_labels, prepare_clip


def test_crop_box_centre_and_random_offset():
    assert crop_box(100, 176, training=False) == (0, 38, 100)
    assert crop_box(240, 320, training=False) == (0, 40, 240)
    rng = random.Random(0)
    lefts = {crop_box(100, 176, training=True, rng=rng)[1] for _ in range(50)}
    assert min(lefts) >= 0 and max(lefts) <= 76 and len(lefts) > 10
    assert all(crop_box(100, 176, True, rng)[0] == 0 for _ in range(10))  # short axis fixed


def test_prepare_clip_shape_mean_and_crop():
    t, h, w = 4, 100, 176
    frames = torch.zeros(t, h, w, 3, dtype=torch.uint8)
    frames[:, :, 38:138] = torch.tensor([114, 109, 104], dtype=torch.uint8)  # the centre square
    clip = prepare_clip(frames, 112, MEANS["jester_rgb"], training=False)
    assert clip.shape == (3, t, 112, 112) and clip.dtype == torch.float32
    torch.testing.assert_close(clip, torch.zeros_like(clip))  # exactly the centre, mean removed


def test_prepare_clip_keeps_one_crop_for_all_frames():
    frames = torch.arange(176, dtype=torch.uint8).repeat(3, 100, 1).unsqueeze(-1)  # x-ramp
    clip = prepare_clip(frames, 100, (0.0,), training=True, rng=random.Random(3))
    assert (clip[:, 0] == clip[:, 1]).all() and (clip[:, 1] == clip[:, 2]).all()
    left = clip[0, 0, 0, 0].item()
    assert clip[0, 0, 0].tolist() == [left + k for k in range(100)]


def test_prepare_clip_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"expected frames \(T, H, W, C\)"):
        prepare_clip(torch.zeros(100, 176, 3, dtype=torch.uint8), 112, (0, 0, 0), False)
    with pytest.raises(ValueError, match="frames have 1 channels, the mean has 3"):
        prepare_clip(torch.zeros(2, 100, 176, 1, dtype=torch.uint8), 112, (0, 0, 0), False)


def test_mirror_labels_swap_left_right_and_the_sense_of_rotation():
    from aclstm.data.synth import JESTER_CLASSES

    mirror = mirror_labels(JESTER_CLASSES)
    swapped = {JESTER_CLASSES[i]: JESTER_CLASSES[j] for i, j in enumerate(mirror) if i != j}
    assert swapped == {
        "Swiping Left": "Swiping Right",
        "Swiping Right": "Swiping Left",
        "Sliding Two Fingers Left": "Sliding Two Fingers Right",
        "Sliding Two Fingers Right": "Sliding Two Fingers Left",
        "Turning Hand Clockwise": "Turning Hand Counterclockwise",
        "Turning Hand Counterclockwise": "Turning Hand Clockwise",
    }
    assert mirror_labels(["wave", "point left", "Point Right"]) == [0, 2, 1]  # any case
    # "Leftover" is not the word "left": its own mirror.
    assert mirror_labels(["Leftover", "Rightly so"]) == [0, 1]


def test_mirror_labels_refuse_a_class_without_its_mirror():
    with pytest.raises(ValueError, match="'Swiping Left' mirrors to 'Swiping Right'"):
        mirror_labels(["Swiping Left", "Thumb Up"])


@pytest.mark.parametrize("shape", [(100, 176), (240, 320), (60, 60)])
def test_uint8_resize_equals_the_float_bilinear_resize_on_textured_frames(shape):
    """Guards the uint8 bilinear resize of the default preprocessing: on a textured clip it
    equals torch's float bilinear resize of the same centre square to within rounding (one
    grey level); a shifted crop or another interpolation is tens of levels off."""
    import torch.nn.functional as F

    from helpers import textured

    frames = torch.from_numpy(textured(*shape))[None].repeat(2, 1, 1, 1)
    clip = prepare_clip(frames, 112, (0.0, 0.0, 0.0), training=False)
    top, left, side = crop_box(*shape, training=False)
    square = frames[:1, top : top + side, left : left + side].permute(0, 3, 1, 2).float()
    expected = F.interpolate(square, size=(112, 112), mode="bilinear", align_corners=False)
    diff = (clip[:, 0] - expected[0]).abs()
    assert diff.max() < 1.5 and diff.mean() < 0.5  # the uint8 kernel rounds in fixed point
    assert torch.equal(clip[:, 0], clip[:, 1])


def test_frame_centering_subtracts_each_frames_own_mean_per_channel():
    """``center="frame"``: the dataset-mean clip minus each frame's per-channel mean over the
    crop (guards against a mean over the whole clip, over channels, or over the uncropped
    frame), so a colour or brightness offset of one frame vanishes."""
    from helpers import textured

    frames = torch.stack([torch.from_numpy(textured(100, 176, seed=k)) for k in range(3)])
    frames[1] = (frames[1].int() // 2 + 60).to(torch.uint8)  # one frame darker, offset
    mean = MEANS["jester_rgb"]
    plain = prepare_clip(frames, 32, mean, training=False)
    centred = prepare_clip(frames, 32, mean, training=False, center="frame")
    torch.testing.assert_close(centred, plain - plain.mean(dim=(2, 3), keepdim=True))
    assert centred.mean(dim=(2, 3)).abs().max() < 1e-3
    assert plain.mean(dim=(2, 3)).std(dim=1).min() > 1  # the frames' means did differ
    shifted = prepare_clip((frames.int() + 7).clamp(max=255).to(torch.uint8), 32, mean, False,
                           center="frame")  # fmt: skip
    unclipped = (frames.int() + 7 <= 255).all(dim=-1)[:, :, 38:138]
    assert unclipped.float().mean() > 0.9  # the offset cancels where it was not clipped at 255
    assert (shifted - centred).abs().median() < 0.2
    with pytest.raises(ValueError, match="center must be one of"):
        prepare_clip(frames, 32, mean, training=False, center="clip")


def test_a_checkpoint_trained_with_frame_centering_predicts_folders_the_same_way(tmp_path):
    """The meta's ``center`` reaches ``load_input`` (guards against predict falling back to
    the data set's mean for a model trained on frame-centred clips)."""
    from aclstm.inference import load_input

    from helpers import write_frames

    write_frames(tmp_path / "clip", 6)
    meta = {"classes": ["a"], "clip_len": 4, "size": 32, "mean": [114.0, 109.0, 104.0]}
    plain, _, _ = load_input(str(tmp_path / "clip"), meta)
    centred, _, _ = load_input(str(tmp_path / "clip"), {**meta, "center": "frame"})
    assert plain.abs().mean() > 10  # solid grey frames, far from the data set's mean
    torch.testing.assert_close(centred, torch.zeros_like(centred), atol=1e-4, rtol=0)
