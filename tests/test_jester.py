"""The Jester loader on small trees written by the tests, and its errors on bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import simplejpeg
import torch
from torch.utils.data import DataLoader

from aclstm.data import DataError, JesterDataset, collate_skipping
from aclstm.data.clips import ClipDataset, ClipRecord

from helpers import released_reference, textured, write_frames

CLASSES = ["Swiping Left", "Swiping Right", "Thumb Up"]


def write_jester(root: Path, new_names: bool = False, text_fix=lambda s: s) -> Path:
    names = {"labels": "labels.csv", "train": "train.csv", "validation": "validation.csv"}
    if not new_names:
        names = {k: f"jester-v1-{v}" for k, v in names.items()}
    csv_dir = root / "labels" if new_names else root
    csv_dir.mkdir(parents=True, exist_ok=True)
    (csv_dir / names["labels"]).write_text(text_fix("\n".join(CLASSES) + "\n"))
    (csv_dir / names["train"]).write_text(text_fix("11;Thumb Up\n12;Swiping Left\n"))
    (csv_dir / names["validation"]).write_text(text_fix("21;Swiping Right\n"))
    for clip_id, count in (("11", 20), ("12", 5), ("21", 24)):
        write_frames(root / "20bn-jester-v1" / clip_id, count)
    return csv_dir


@pytest.mark.parametrize("new_names", [False, True], ids=["20bn-names", "new-names"])
def test_reads_what_was_written(tmp_path, new_names):
    write_jester(tmp_path, new_names)
    train = JesterDataset(tmp_path, "train", clip_len=8, size=64, seed=0)
    assert train.classes == CLASSES
    assert len(train) == 2 and train.training
    clip, label = train[0]
    assert clip.shape == (3, 8, 64, 64) and clip.dtype == torch.float32 and label == 2
    assert train[1][1] == 0
    val = JesterDataset(tmp_path, "validation", clip_len=8, size=64)
    assert not val.training and val[0][1] == 1
    # Evaluation picks frames floor(3k) of 24, i.e. files 1, 4, 7, ...: grey 10, 40, 70, ...
    levels = (val[0][0][0].mean(dim=(1, 2)) + 114).round()
    assert levels.tolist() == [10.0 * (3 * k + 1) for k in range(8)]


def test_short_clip_repeats_last_frame_and_bom_crlf_blank_lines(tmp_path):
    write_jester(tmp_path, text_fix=lambda s: "\ufeff" + s.replace("\n", "\r\n\r\n"))
    train = JesterDataset(tmp_path, "train", clip_len=8, size=32, training=False)
    assert train.classes == CLASSES
    levels = (train[1][0][0].mean(dim=(1, 2)) + 114).round().tolist()
    assert levels == [10.0, 20.0, 30.0, 40.0, 50.0, 50.0, 50.0, 50.0]


def test_data_loader_with_workers(tmp_path):
    write_jester(tmp_path)
    train = JesterDataset(tmp_path, "train", clip_len=4, size=32)
    batch = next(iter(DataLoader(train, batch_size=2, num_workers=2, collate_fn=collate_skipping)))
    assert batch.clips.shape == (2, 3, 4, 32, 32) and batch.skipped == 0
    assert sorted(batch.labels.tolist()) == [0, 2]


def test_clips_stay_channels_last_from_the_frames_to_the_batch(tmp_path):
    """prepare_clip keeps the decoded frames' layout and the batch is ``channels_last_3d``, so
    neither transposes the pixels; the values are the plain stack's, and the training loop
    hands a network that is not channels-last a contiguous batch."""
    from aclstm.train.loop import _to_device

    write_jester(tmp_path)
    train = JesterDataset(tmp_path, "train", clip_len=4, size=32)
    samples = [train[0], train[1]]
    assert all(clip.permute(1, 2, 3, 0).is_contiguous() for clip, _ in samples)
    batch = collate_skipping(samples)
    assert batch.clips.is_contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(
        batch.clips, torch.stack([clip for clip, _ in samples]), rtol=0, atol=0
    )
    plain = torch.stack([clip.contiguous() for clip, _ in samples])  # clips of another layout
    torch.testing.assert_close(collate_skipping([(c, 0) for c in plain]).clips, plain)
    cpu = torch.device("cpu")
    assert _to_device(batch.clips, cpu, channels_last=False).is_contiguous()
    assert _to_device(plain, cpu, channels_last=True).is_contiguous(
        memory_format=torch.channels_last_3d
    )


def expect_error(tmp_path, match, split="train", **kwargs):
    with pytest.raises(DataError, match=match):
        ds = JesterDataset(tmp_path, split, clip_len=8, size=32, **kwargs)
        for k in range(len(ds)):
            ds[k]


def test_missing_labels_file(tmp_path):
    write_jester(tmp_path)
    (tmp_path / "jester-v1-labels.csv").unlink()
    expect_error(tmp_path, "no Jester labels file: expected jester-v1-labels.csv or labels.csv")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("11;Thumb Up;extra\n", r"jester-v1-train\.csv:1: expected 'id;class name' or 'id', got 3"),
        ("11;Thumb Up\n\n12;Waving\n", r"jester-v1-train\.csv:3: class 'Waving' is not in the"),
        ("11;Thumb Up\n11;Swiping Left\n", r"jester-v1-train\.csv:2: clip id 11 repeats line 1"),
        (";Thumb Up\n", r"jester-v1-train\.csv:1: expected 'id;class name'"),
    ],
    ids=["columns", "unknown-class", "duplicate-id", "empty-id"],
)
def test_bad_split_lines(tmp_path, content, match):
    write_jester(tmp_path)
    (tmp_path / "jester-v1-train.csv").write_text(content)
    expect_error(tmp_path, match)


def test_duplicate_class_name(tmp_path):
    write_jester(tmp_path)
    (tmp_path / "jester-v1-labels.csv").write_text("A\nB\nA\n")
    expect_error(tmp_path, r"jester-v1-labels\.csv:3: class 'A' repeats line 1")


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda d: (d / "00003.jpg").unlink(), r"11/00003\.jpg: frame not found"),
        (
            lambda d: (d / "00001.jpg").unlink() or (d / "00001.jpg").mkdir(),
            r"11/00001\.jpg: frame unreadable \(Is a directory\)",
        ),
        (lambda d: (d / "00001.jpg").write_bytes(b""), r"11/00001\.jpg: empty file"),
        (
            lambda d: (d / "00001.jpg").write_bytes((d / "00002.jpg").read_bytes()[:300]),
            r"11/00001\.jpg: corrupt JPEG",
        ),
        (lambda d: [p.unlink() for p in d.iterdir()], r"11: clip folder holds no \.jpg frames"),
        (lambda d: [p.unlink() for p in d.iterdir()] and d.rmdir(), r"11: clip folder not found"),
    ],
    ids=[
        "missing-frame",
        "unreadable-frame",
        "empty-jpeg",
        "truncated-jpeg",
        "empty-folder",
        "missing-folder",
    ],
)
def test_bad_frames_name_the_file_and_can_be_skipped(tmp_path, damage, match):
    write_jester(tmp_path)
    damage(tmp_path / "20bn-jester-v1" / "11")
    expect_error(tmp_path, match, training=False)
    skipping = JesterDataset(
        tmp_path, "train", clip_len=8, size=32, training=False, on_error="skip"
    )
    batch = collate_skipping([skipping[0], skipping[1]])
    assert batch.skipped == 1 and batch.labels.tolist() == [0]


def test_bad_arguments(tmp_path):
    write_jester(tmp_path)
    with pytest.raises(ValueError, match="split must be train, validation or test"):
        JesterDataset(tmp_path, "val")
    with pytest.raises(ValueError, match="on_error must be 'raise' or 'skip'"):
        JesterDataset(tmp_path, on_error="ignore")


def test_jpeg_decoding_scales_down_in_the_dct_domain_as_far_as_the_size_allows(tmp_path):
    from aclstm.data import read_jpeg

    write_frames(tmp_path / "f", 1, size=(100, 176))
    path = tmp_path / "f" / "00001.jpg"
    assert read_jpeg(path).shape == (100, 176, 3)
    assert read_jpeg(path, min_side=112).shape == (100, 176, 3)  # the paper's size: no scaling
    assert read_jpeg(path, min_side=50).shape == (50, 88, 3)
    assert read_jpeg(path, min_side=32).shape == (38, 66, 3)  # 3/8; 2/8 would give 25 < 32
    assert read_jpeg(path, min_side=12).shape == (13, 22, 3)


def test_clip_frames_decode_into_one_array_each_file_once(tmp_path, monkeypatch):
    import aclstm.data.io as io
    from aclstm.data import read_jpeg, read_jpegs

    write_frames(tmp_path / "f", 3, size=(100, 176))
    paths = [str(tmp_path / "f" / f"{k:05d}.jpg") for k in (1, 1, 2, 3, 3)]
    reads = []
    original = io._read_bytes
    monkeypatch.setattr(io, "_read_bytes", lambda p: reads.append(p) or original(p))
    frames = read_jpegs(paths, min_side=32)
    assert frames.shape == (5, 38, 66, 3) and frames.dtype == np.uint8
    assert reads == [paths[0], paths[2], paths[3]]  # repeated frames are copied, not re-read
    for frame, path in zip(frames, paths, strict=True):
        assert np.array_equal(frame, read_jpeg(path, min_side=32))


@pytest.mark.parametrize("size", [(120, 160), (90, 176)], ids=["more-pixels", "fewer-pixels"])
def test_a_frame_of_another_size_is_named(tmp_path, size):
    """Later frames decode straight into the slot the first one sized: one with more pixels
    overflows it, one with fewer fits; both are errors that name the frame."""
    from aclstm.data import read_jpegs

    write_frames(tmp_path / "f", 2, size=(100, 176))
    write_frames(tmp_path / "g", 1, size=size)
    odd = tmp_path / "g" / "00001.jpg"
    expected = rf"{odd}: frame decodes to {size[0]}x{size[1]}, the clip's first frame to 100x176"
    with pytest.raises(DataError, match=expected):
        read_jpegs([tmp_path / "f" / "00001.jpg", odd])


def test_a_corrupt_later_frame_is_named(tmp_path):
    from aclstm.data import read_jpegs

    write_frames(tmp_path / "f", 2, size=(100, 176))
    bad = tmp_path / "f" / "00002.jpg"
    bad.write_bytes(bad.read_bytes()[:300])
    with pytest.raises(DataError, match=rf"{bad}: corrupt JPEG"):
        read_jpegs([tmp_path / "f" / "00001.jpg", bad])


def test_draws_depend_on_seed_epoch_and_index_and_the_crop_can_stay_centred(tmp_path):
    """A clip of a seeded set gets the same draws in any process; set_epoch changes them."""
    import numpy as np
    import simplejpeg

    write_jester(tmp_path)
    folder = tmp_path / "20bn-jester-v1" / "12"  # 5 frames of noise: every crop differs
    rng = np.random.default_rng(0)
    for k in range(1, 6):
        frame = rng.integers(0, 256, size=(100, 176, 3), dtype=np.uint8)
        (folder / f"{k:05d}.jpg").write_bytes(simplejpeg.encode_jpeg(frame, quality=95))
    a = JesterDataset(tmp_path, "train", clip_len=5, size=32, seed=3)
    b = JesterDataset(tmp_path, "train", clip_len=5, size=32, seed=3)
    assert torch.equal(a[1][0], b[1][0])
    crops = set()
    for epoch in range(6):
        a.set_epoch(epoch)
        crops.add(a[1][0].sum().item())
    assert len(crops) > 1  # 5 frames for 5 wanted: no jitter, so only the crop moves
    centred = JesterDataset(tmp_path, "train", clip_len=5, size=32, seed=3)
    centred.random_crop = False
    evaluation = JesterDataset(tmp_path, "train", clip_len=5, size=32, training=False)
    for epoch in range(3):
        centred.set_epoch(epoch)
        assert torch.equal(centred[1][0], evaluation[1][0])


def test_horizontal_flip_mirrors_the_clip_and_swaps_its_label(tmp_path):
    write_jester(tmp_path)
    ramp = np.broadcast_to(np.linspace(0, 250, 176, dtype=np.uint8), (100, 176))
    for clip_id in ("11", "12"):  # frames darker on the left: a flip shows
        for path in (tmp_path / "20bn-jester-v1" / clip_id).glob("*.jpg"):
            frame = np.repeat(ramp[:, :, None], 3, axis=2).copy()
            path.write_bytes(simplejpeg.encode_jpeg(frame, quality=95))
    flipping = JesterDataset(tmp_path, "train", clip_len=5, size=32, seed=1)
    flipping.random_crop = False
    flipping.horizontal_flip = True
    plain = JesterDataset(tmp_path, "train", clip_len=5, size=32, training=False)
    seen = set()
    for epoch in range(12):
        flipping.set_epoch(epoch)
        for index, (as_is, mirrored) in ((0, (2, 2)), (1, (0, 1))):  # Thumb Up; Swiping Left
            clip, label = flipping[index]
            reference = plain[index][0]  # every frame the same: jitter cannot show
            if torch.allclose(clip, reference, atol=1e-4):
                assert label == as_is
                seen.add((index, "as is"))
            else:
                assert torch.allclose(clip.flip(-1), reference, atol=1e-4)
                assert label == mirrored
                seen.add((index, "mirrored"))
    assert len(seen) == 4  # both clips came both ways
    evaluation = JesterDataset(tmp_path, "train", clip_len=5, size=32, training=False)
    evaluation.horizontal_flip = True  # never flips outside training
    assert torch.equal(evaluation[1][0], plain[1][0]) and evaluation[1][1] == 0


def test_horizontal_flip_refuses_classes_without_their_mirror(tmp_path):
    write_jester(tmp_path)
    (tmp_path / "jester-v1-labels.csv").write_text("Swiping Left\nSwiping Up\nThumb Up\n")
    dataset = JesterDataset(tmp_path, "train", clip_len=4, size=32)
    with pytest.raises(ValueError, match="mirrors to 'Swiping Right', which is not a class"):
        dataset.horizontal_flip = True


def test_config_turns_the_flip_on(tmp_path):
    from aclstm.config import DataConfig
    from aclstm.data.factory import build_dataset

    write_jester(tmp_path)
    flipped = DataConfig(dataset="jester", root=str(tmp_path), horizontal_flip=True)
    assert build_dataset(flipped, "train", clip_len=4, size=32).horizontal_flip
    plain = DataConfig(dataset="jester", root=str(tmp_path))
    assert not build_dataset(plain, "train", clip_len=4, size=32).horizontal_flip


@pytest.mark.parametrize(
    ("shape", "size"), [((240, 320), 112), ((100, 176), 32), ((480, 640), 112)]
)
def test_reduced_size_decoding_gives_the_full_resolution_clip(tmp_path, shape, size):
    """Guards the default decoding, scaled down in the DCT domain (1/2, 3/8, 1/4 here): on
    textured frames its clip stays within a few grey levels of the full-resolution frame's
    centre square resized with PIL (measured mean 3-6, content sd ~30). A crop placed in the
    full frame's coordinates on the reduced one, a swapped axis or a wrong scale moves whole
    regions: mean differences of 40 and more."""
    folder = tmp_path / "clip"
    folder.mkdir()
    frames = [textured(*shape, seed=k) for k in (1, 2)]
    for k, frame in enumerate(frames, 1):
        (folder / f"{k:05d}.jpg").write_bytes(simplejpeg.encode_jpeg(frame, quality=90))
    dataset = ClipDataset([ClipRecord(folder, 0, 2)], ["x"], 2, size, mean=(0.0, 0.0, 0.0))
    clip, _ = dataset[0]
    for k in (0, 1):
        full = simplejpeg.decode_jpeg((folder / f"{k + 1:05d}.jpg").read_bytes())
        diff = np.abs(clip[:, k].permute(1, 2, 0).numpy() - released_reference(full, size))
        assert diff.mean() < 8 and np.percentile(diff, 99) < 25
