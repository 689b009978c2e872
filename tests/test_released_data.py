"""``data.preprocessing = "released"``: clips made as the authors' code makes them (scipy's
imresize = PIL's bilinear resize of the full-resolution frame, crop offset ``int(room·u)``,
every modality as 3-channel frames), and IsoGD's frames named by the released lists."""

from __future__ import annotations

import random

import numpy as np
import pytest
import simplejpeg
import torch

from aclstm.config import DataConfig, ModelConfig, RunConfig
from aclstm.data.clips import ClipDataset, ClipRecord
from aclstm.data.factory import build_dataset
from aclstm.data.transforms import crop_box, prepare_clip
from aclstm.train.runner import model_config

from helpers import released_reference, textured


@pytest.mark.parametrize("shape", [(240, 320), (480, 640), (101, 176), (60, 80)])
def test_released_resize_equals_pillow_and_the_default_does_not(shape):
    frame = textured(*shape)
    frames = torch.from_numpy(frame)[None]
    expected = released_reference(frame)
    got = prepare_clip(frames, 112, (0.0, 0.0, 0.0), False, preprocessing="released")
    got = got[:, 0].permute(1, 2, 0).round().long().numpy()
    assert np.abs(got - expected).max() <= 1  # torch's uint8 kernel rounds as Pillow, ±1
    assert (got == expected).mean() > 0.95
    if shape[0] > 112:  # shrinking: the plain bilinear resize aliases on this texture
        default = prepare_clip(frames, 112, (0.0, 0.0, 0.0), False)[:, 0].permute(1, 2, 0)
        assert np.abs(default.long().numpy() - expected).max() > 20


def test_released_crop_floors_the_offset():
    assert crop_box(100, 177, training=False) == (0, 38, 100)  # round(38.5) = 38 (to even)
    assert crop_box(100, 179, training=False) == (0, 40, 100)  # round(39.5) = 40
    assert crop_box(100, 179, training=False, floor=True) == (0, 39, 100)  # int(79 / 2)

    class Fixed(random.Random):
        def random(self):
            return 0.999

    assert crop_box(100, 200, True, Fixed(), floor=True) == (0, 99, 100)  # int(99.9)
    assert crop_box(100, 200, True, Fixed()) == (0, 100, 100)


def write_textured_frames(folder, count, shape=(240, 320), name="{:06d}.jpg"):
    folder.mkdir(parents=True)
    for k in range(1, count + 1):
        jpeg = simplejpeg.encode_jpeg(textured(*shape, seed=k), quality=95)
        (folder / name.format(k)).write_bytes(jpeg)


def test_released_dataset_reads_full_resolution_frames(tmp_path):
    """(The default decodes a 240x320 JPEG at half size for a 112x112 clip: cheaper, and up
    to tens of grey levels away from the released clip.)"""
    write_textured_frames(tmp_path / "clip", 4)
    record = ClipRecord(tmp_path / "clip", 0, 4, "{:06d}.jpg")
    dataset = ClipDataset([record], ["x"], clip_len=4, size=112, mean=(0.0, 0.0, 0.0))
    dataset.preprocessing = "released"
    clip, _ = dataset[0]
    for k in range(4):
        frame = simplejpeg.decode_jpeg((tmp_path / "clip" / f"{k + 1:06d}.jpg").read_bytes())
        got = clip[:, k].permute(1, 2, 0).round().long().numpy()
        assert np.abs(got - released_reference(frame)).max() <= 1


def test_isogd_flow_frames_from_the_released_lists(tmp_path):
    """The released list format, paths under the authors' /ssd/dataset; flow (and depth) are
    3-channel JPEGs read as such, mean 128 on each channel, and the network gets 3 channels."""
    folder = tmp_path / "IsoGD_Image/valid_image/Flow/F_00001"
    write_textured_frames(folder, 5, shape=(120, 160))
    (tmp_path / "valid_flow_list.txt").write_text(
        "/ssd/dataset/IsoGD_Image/valid_image/Flow/F_00001/ 5 108\n"
    )
    data = DataConfig(
        dataset="isogd_frames",
        root=str(tmp_path),
        modality="flow",
        preprocessing="released",
        path_prefix=["/ssd/dataset", str(tmp_path)],
    )
    dataset = build_dataset(data, "val", clip_len=4, size=112)
    clip, label = dataset[0]
    assert clip.shape == (3, 4, 112, 112)
    assert dataset.classes[label] == "109"  # released labels 0..248 are IsoGD's 1..249
    frame = simplejpeg.decode_jpeg((folder / "000001.jpg").read_bytes())
    expected = released_reference(frame) - 128
    assert np.abs(clip[:, 0].permute(1, 2, 0).numpy() - expected).max() <= 1
    run = RunConfig(model=ModelConfig(preset="tiny"), data=data)
    assert model_config(run, 249).in_channels == 3


def test_depth_is_one_channel_by_default_and_three_as_released(tmp_path):
    depth = DataConfig(dataset="isogd_frames", root=str(tmp_path), modality="depth")
    released = DataConfig(
        dataset="isogd_frames", root=str(tmp_path), modality="depth", preprocessing="released"
    )
    assert model_config(RunConfig(data=depth), 249).in_channels == 1
    assert model_config(RunConfig(data=released), 249).in_channels == 3


def test_unknown_preprocessing_is_refused(tmp_path):
    data = DataConfig(dataset="synth", root=str(tmp_path), preprocessing="scipy")
    with pytest.raises(ValueError, match=r"data\.preprocessing must be one of default, released"):
        build_dataset(data, "val", 4, 32)
    data = DataConfig(dataset="synth", root=str(tmp_path), center="clip")
    with pytest.raises(ValueError, match=r"data\.center must be one of dataset, frame"):
        build_dataset(data, "val", 4, 32)


def test_isogd_frames_names_an_unknown_modality_before_looking_for_its_list(tmp_path):
    data = DataConfig(dataset="isogd_frames", root=str(tmp_path), modality="ir")
    with pytest.raises(ValueError, match="IsoGD modality must be rgb, depth or flow, got 'ir'"):
        build_dataset(data, "val", 4, 32)
