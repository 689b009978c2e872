"""benchmarks/bench_live.py runs end to end and prints its four contenders."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_live

from aclstm.data.congd import Segment
from aclstm.data.video import write_video
from aclstm.models import create
from aclstm.train.checkpoint import save_checkpoint


def _checkpoint(tmp_path, bias=None):
    torch.manual_seed(0)
    net = create("tiny", temporal_padding="causal", num_classes=3, size=32, frames=8)
    meta = {
        "format": 1, "classes": ["background", "Swiping Left", "Swiping Right"],
        "network": net.config.as_dict(), "preset": "tiny", "cell": "gated", "modality": "rgb",
        "mean": [0.0, 0.0, 0.0], "preprocessing": "default", "center": "frame", "clip_len": 8,
        "size": 32, "frame_stride": 2, "config": {},
    }  # fmt: skip
    if bias is not None:  # the same class at every step
        with torch.no_grad():
            net.classifier.weight.zero_()
            net.classifier.bias.copy_(torch.tensor(bias))
    save_checkpoint(tmp_path / "ckpt", net, meta)
    return str(tmp_path / "ckpt")


def test_lateness_counts_from_the_true_end_to_the_reporting_frame(tmp_path):
    """A network that says "Swiping Left" throughout: one gesture, reported when the stream
    ends (frame 20), 8 frames after the true gesture's end (frame 12)."""
    ckpt = _checkpoint(tmp_path, [-5.0, 5.0, 0.0])
    write_video(tmp_path / "v.avi", np.zeros((20, 48, 64, 3), np.uint8))
    truth = [Segment(5, 12, 1)]
    line = bench_live.report_lateness(ckpt, tmp_path / "v.avi", truth)
    assert line.startswith("1 gestures reported, 8 frames after their true end (median; 8 to 8)")


def test_bench_live_measures_alone_and_beside_a_busy_neighbour(tmp_path, capsys):
    _checkpoint(tmp_path)
    frames = np.random.default_rng(0).integers(0, 255, (20, 48, 64, 3), dtype=np.uint8)
    write_video(tmp_path / "v.avi", frames)
    argv = [str(tmp_path / "ckpt"), "--video", str(tmp_path / "v.avi"), "--repeats", "1"]
    assert bench_live.main(argv) == 0
    out = capsys.readouterr().out
    for name in ("1 thread ", "2 threads ", "1 thread, a busy neighbour", "2 threads, a busy"):
        assert name in out
    assert "x real time" in out
