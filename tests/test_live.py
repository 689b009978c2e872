"""aclstm stream: a video file, a folder of frames, a pipe; lines, JSON, ConGD and timeline."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from aclstm.analysis.segmentation import SegmenterSettings
from aclstm.cli import main
from aclstm.data import read_congd_segments
from aclstm.data.synth_continuous import render_continuous
from aclstm.data.video import write_video
from aclstm.live import FrameSource, GestureStream, format_time, run_stream
from aclstm.models import create
from aclstm.train.checkpoint import save_checkpoint

CLASSES = ["background", "Swiping Left", "Swiping Right"]


def _meta(net) -> dict:
    return {
        "format": 1, "classes": CLASSES, "network": net.config.as_dict(), "preset": "tiny",
        "cell": "gated", "modality": "rgb", "mean": [0.0, 0.0, 0.0], "preprocessing": "default",
        "center": "frame", "clip_len": 8, "size": 32, "config": {},
    }  # fmt: skip


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A causal tiny network with a background class, at its initial weights: what these
    tests check is the plumbing around it, not what it finds."""
    torch.manual_seed(0)
    net = create("tiny", temporal_padding="causal", num_classes=3, size=32, frames=8)
    folder = tmp_path_factory.mktemp("ckpt") / "last"
    save_checkpoint(folder, net, _meta(net))
    return folder


def _video(tmp_path, frames: int = 24) -> str:
    video = render_continuous((0, 1), classes=(0, 1), frames=(8, 10), depth=False)
    path = tmp_path / "phone.mov"
    write_video(path, video.frames[:frames])
    return str(path)


def test_format_time():
    assert format_time(3.2) == "00:03.20" and format_time(64.5) == "01:04.50"


def test_a_stream_of_a_file_ends_with_what_it_found(checkpoint, tmp_path, capsys):
    path = _video(tmp_path)
    congd, timeline = tmp_path / "found.txt", tmp_path / "timeline.png"
    args = ["stream", str(checkpoint), path, "--congd", str(congd), "--timeline", str(timeline)]
    assert main([*args, "--name", "valid/001/00001", "--min-steps", "1"]) == 0
    err = capsys.readouterr().err
    assert "phone: ended after 24 frames" in err and "0 frames dropped" in err
    (entry,) = read_congd_segments(congd)
    assert entry.video == "valid/001/00001"
    assert timeline.read_bytes()[:4] == b"\x89PNG"


def test_json_lines_and_a_folder_of_frames(checkpoint, tmp_path, capsys):
    import simplejpeg

    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for k in range(10):
        image = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        (frames / f"{k:05d}.jpg").write_bytes(simplejpeg.encode_jpeg(image))
    assert main(["stream", str(checkpoint), str(frames), "--json", "--fps", "5"]) == 0
    out, err = capsys.readouterr()
    assert "frames: ended after 10 frames" in err
    for line in out.splitlines():
        found = json.loads(line)
        assert {"start", "end", "class", "score", "start_frame", "end_frame"} <= set(found)


def test_raw_frames_piped_on_stdin(checkpoint, tmp_path):
    frames = np.random.default_rng(1).integers(0, 255, (6, 40, 56, 3), dtype=np.uint8)
    done = subprocess.run(
        [sys.executable, "-m", "aclstm", "stream", str(checkpoint), "-", "--raw-size", "56x40"],
        input=frames.tobytes(),
        capture_output=True,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert b"stdin: ended after 6 frames" in done.stderr


def test_a_stream_that_ends_mid_gesture_reports_it():
    torch.manual_seed(0)
    net = create("tiny", temporal_padding="causal", num_classes=3).eval()
    with torch.no_grad():
        net.classifier.weight.zero_()
        net.classifier.bias.copy_(torch.tensor([-5.0, 5.0, 0.0]))  # always "Swiping Left"
    stream = GestureStream(net, _meta(net), fps=10.0)
    source = FrameSource(iter([np.zeros((32, 32, 3), np.uint8)] * 12), fps=10.0)
    summary = run_stream(source, stream)
    (found,) = summary.found  # closed at the end of the stream
    assert found.name == "Swiping Left" and found.gesture.frames() == (1, 11)


@pytest.mark.parametrize(
    "stride, lookahead, phases",
    [(1, 0, 1), (2, 0, 1), (2, 2, 1), (1, 3, 1), (2, 0, 4), (2, 2, 2), (1, 3, 2), (3, 1, 3)],
)
def test_a_stream_sees_what_the_offline_network_sees(stride, lookahead, phases):
    """Every stride-th frame, preprocessed one at a time, gives the per-step probabilities the
    whole strided clip gives offline (for a network with a lookahead, both name every step,
    the last ones at the end of the stream); run at several phases of the step, the combined
    rows the offline runs give; found gestures are in the video's frames."""
    from aclstm.data.transforms import prepare_clip
    from aclstm.recognition import phase_probabilities, step_probabilities

    torch.manual_seed(0)
    net = create(
        "tiny", temporal_padding="causal", num_classes=3, size=32, lookahead=lookahead
    ).eval()
    meta = {**_meta(net), "frame_stride": stride}
    frames = np.random.default_rng(2).integers(0, 255, (17, 40, 48, 3), dtype=np.uint8)
    settings = SegmenterSettings(0.01, 0.01, 1, 1, phases=phases)
    stream = GestureStream(net, meta, fps=10.0, settings=settings)
    summary = run_stream(FrameSource(iter(frames), fps=10.0), stream)
    clip = prepare_clip(torch.from_numpy(frames), 32, (0.0, 0.0, 0.0), False, center="frame")
    offline = phase_probabilities(net, clip, stride, phases)
    assert len(offline) == -(-17 * phases // (2 * stride))  # a row for each F / p frames
    assert np.allclose(np.array(stream.probabilities), offline, atol=1e-5)
    if phases == 1:
        assert np.allclose(offline, step_probabilities(net, clip[:, ::stride]), atol=1e-6)
    (found,) = summary.found  # "something happening" from the first step to the last
    assert (found.start_frame, found.end_frame) == (1, 17)


@pytest.mark.parametrize("lookahead", [0, 2])
def test_a_short_stream_at_four_phases_sees_what_the_offline_network_sees(lookahead):
    """Videos so short that the later phases see one frame each, or none: the stream and the
    offline runs still give the same rows (a causal network names a step from one frame)."""
    from aclstm.data.transforms import prepare_clip
    from aclstm.recognition import phase_probabilities

    torch.manual_seed(0)
    net = create(
        "tiny", temporal_padding="causal", num_classes=3, size=32, lookahead=lookahead
    ).eval()
    meta = {**_meta(net), "frame_stride": 2}
    for n in (1, 2, 4, 5):
        frames = np.random.default_rng(n).integers(0, 255, (n, 40, 48, 3), dtype=np.uint8)
        stream = GestureStream(net, meta, 10.0, SegmenterSettings(0.01, 0.01, 1, 1, phases=4))
        run_stream(FrameSource(iter(frames), fps=10.0), stream)
        clip = prepare_clip(torch.from_numpy(frames), 32, (0.0, 0.0, 0.0), False, center="frame")
        offline = phase_probabilities(net, clip, 2, 4)
        assert len(offline) == n and np.allclose(np.array(stream.probabilities), offline, atol=1e-5)


def _h264_with_a_corrupt_packet(path) -> int:
    """An H.264 file of 40 frames whose middle packet is garbage; returns that packet's
    frame number (1-based, in decoding order)."""
    import av

    frames = np.random.default_rng(3).integers(0, 255, (40, 48, 64, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    with av.open(str(path)) as container:
        packets = [(p.pos, p.size) for p in container.demux(video=0) if p.size]
    data = bytearray(path.read_bytes())
    position, size = packets[20]
    data[position + 4 : position + size] = bytes(range(256)) * ((size - 4) // 256) + bytes(
        (size - 4) % 256
    )
    path.write_bytes(bytes(data))
    return 21


def test_a_corrupt_frame_mid_stream_is_skipped_and_counted_or_an_error(
    checkpoint, tmp_path, capsys
):
    path = tmp_path / "damaged.mp4"
    _h264_with_a_corrupt_packet(path)
    assert main(["stream", str(checkpoint), str(path)]) == 0
    err = capsys.readouterr().err
    assert "ended after 39 frames" in err and "1 corrupt frames skipped" in err
    assert main(["stream", str(checkpoint), str(path), "--on-error", "raise"]) == 1
    err = capsys.readouterr().err
    assert "damaged.mp4: corrupt or truncated video" in err and "gestures found before" in err


def test_a_source_that_fails_ends_the_stream_with_what_was_found():
    """A camera unplugged mid-gesture: the gesture going on is closed and reported, and the
    error is in the summary."""
    from aclstm.data.io import DataError

    torch.manual_seed(0)
    net = create("tiny", temporal_padding="causal", num_classes=3).eval()
    with torch.no_grad():
        net.classifier.weight.zero_()
        net.classifier.bias.copy_(torch.tensor([-5.0, 5.0, 0.0]))  # always "Swiping Left"

    def unplugged():
        yield from [np.zeros((32, 32, 3), np.uint8)] * 10
        raise DataError("camera:0", "the camera stopped sending frames (Input/output error)")

    stream = GestureStream(net, _meta(net), fps=10.0)
    summary = run_stream(FrameSource(unplugged(), fps=10.0, live=False), stream)
    (found,) = summary.found
    assert (found.start_frame, found.end_frame) == (1, 9) and summary.frames == 10
    assert "camera:0: the camera stopped sending frames" in summary.error


def test_frames_dropped_behind_a_live_source_keep_the_source_numbering():
    torch.manual_seed(0)
    net = create("tiny", temporal_padding="causal", num_classes=3).eval()
    with torch.no_grad():
        net.classifier.weight.zero_()
        net.classifier.bias.copy_(torch.tensor([-5.0, 5.0, 0.0]))
    stream = GestureStream(net, _meta(net), fps=10.0)
    frame = np.zeros((32, 32, 3), np.uint8)
    for k in range(1, 21):  # frames 5-8 of 20 go by unseen
        stream.drop() if 5 <= k <= 8 else stream.feed(frame)
    (found,) = stream.finish()  # 16 frames fed: the gesture's last step sees the 15th
    assert (found.start_frame, found.end_frame) == (1, 19)


def test_missing_camera_and_unsized_pipe_are_refused(checkpoint, capsys):
    assert main(["stream", str(checkpoint), "camera:9"]) == 2
    assert "camera:9: no camera there" in capsys.readouterr().err
    assert main(["stream", str(checkpoint), "-"]) == 2
    assert "needs their size (--raw-size WxH)" in capsys.readouterr().err


def test_a_model_without_background_is_refused(tmp_path, capsys):
    net = create("tiny", temporal_padding="causal", num_classes=2, size=32, frames=8)
    meta = {**_meta(net), "classes": ["Swiping Left", "Swiping Right"]}
    save_checkpoint(tmp_path / "ckpt", net, meta)
    assert main(["stream", str(tmp_path / "ckpt"), _video(tmp_path, 6)]) == 2
    assert "no background class" in capsys.readouterr().err


def test_render_draws_the_gesture_going_on(tmp_path):
    import av

    from aclstm.live import Renderer

    def rendered(bias) -> list[float]:
        """How far each rendered frame's top rows are from the plain grey frame."""
        torch.manual_seed(0)
        net = create("tiny", temporal_padding="causal", num_classes=3).eval()
        with torch.no_grad():
            net.classifier.weight.zero_()
            net.classifier.bias.copy_(torch.tensor(bias))
        frames = [np.full((40, 64, 3), 90, np.uint8)] * 10
        path = tmp_path / f"{bias[0]}.mp4"
        stream = GestureStream(net, _meta(net), 10.0)
        run_stream(FrameSource(iter(frames), fps=10.0), stream, renderer=Renderer(path, 10.0))
        with av.open(str(path)) as container:
            decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert len(decoded) == 10 and decoded[0].shape == (40, 64, 3)
        return [np.abs(f[:14].astype(int) - 90).mean() for f in decoded]

    assert min(rendered([-5.0, 5.0, 0.0])) > 20  # "Swiping Left" throughout: a banner
    assert max(rendered([5.0, -5.0, 0.0])) < 5  # the background throughout: none


def test_a_jester_style_model_writes_1_based_list_labels(tmp_path):
    """Classes without a background at 0 (Jester's: 'No gesture' is one of them): a ConGD
    list's labels start at 1, so class k is written as k + 1."""
    from aclstm.recognition import list_label

    assert list_label(["background", "Swiping Left"], 1) == 1
    assert list_label(["Swiping Left", "No gesture"], 0) == 1
    torch.manual_seed(0)
    net = create("tiny", temporal_padding="causal", num_classes=2).eval()
    with torch.no_grad():
        net.classifier.weight.zero_()
        net.classifier.bias.copy_(torch.tensor([5.0, -5.0]))  # "Swiping Left" throughout
    meta = {**_meta(net), "classes": ["Swiping Left", "No gesture"]}
    stream = GestureStream(net, meta, 10.0)
    frames = [np.zeros((32, 32, 3), np.uint8)] * 8
    (found,) = run_stream(FrameSource(iter(frames), fps=10.0), stream).found
    assert found.name == "Swiping Left" and found.segment().label == 1
    assert found.as_dict()["index"] == 0 and found.as_dict()["label"] == 1
