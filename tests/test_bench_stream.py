"""benchmarks/bench_stream.py runs, and a streamed frame costs a window's work over its length."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_stream


def test_streaming_does_one_frames_work_per_frame(capsys):
    rows = bench_stream.main(
        ["--presets", "tiny", "--frames", "6", "--window", "4", "--threads", "1"]
    )
    out = capsys.readouterr().out
    assert rows == 0 and "| streaming |" in out and "| streaming, 2 frames a push |" in out
    # The window re-runs 4 frames at every frame: 4x a streamed frame's multiply-adds, as
    # both networks do the same work per frame (the same weights, padded differently).
    assert "| window, every frame |" in out and "4.0x the MACs" in out
    assert "2.0x the MACs" in out  # every second frame
