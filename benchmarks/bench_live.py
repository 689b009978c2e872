"""``aclstm stream`` end to end: how many times faster than real time a checkpoint finds the
gestures of an H.264 video (decoding, preprocessing, network and segmentation included),
alone and beside another CPU-bound process, with 1 and 2 torch threads.

The video: ``--video``, or a synthetic continuous video (seed ``--seed``) encoded as H.264 at
10 frames/s, ConGD's rate. The busy neighbour is a separate Python process spinning on the
CPU, as another job on a shared 2-core machine would. Run each contender ``--repeats`` times;
the median is printed. On the synthetic video, whose truth is known, it also prints how late
each gesture is reported: from the gesture's true last frame to the frame on which the
stream reports it.

    python benchmarks/bench_live.py runs/demo-continuous/run/last
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import torch
from bench_cells import machine_description

from aclstm.analysis.segmentation import segmenter_settings
from aclstm.data.congd import Segment
from aclstm.data.synth_continuous import render_continuous
from aclstm.live import GestureStream, open_source, run_stream
from aclstm.train.runner import load_model

# The busy neighbour: pure Python arithmetic for up to an hour (killed when done).
SPIN = "import time\nt = time.time()\nwhile time.time() - t < 3600:\n    sum(range(999))"


def write_h264(path: Path, seed: int, fps: int = 10) -> list[Segment]:
    """A synthetic continuous video as H.264; returns its gestures."""
    video = render_continuous(seed, depth=False, frames=(16, 32))
    frames = video.frames
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return list(video.segments)


def report_lateness(
    checkpoint: str, video: Path, truth: list[Segment], phases: int | None = None
) -> str:
    """How many frames after a gesture's true end the stream reports it (each found gesture
    against the true one it overlaps most)."""
    model, meta = load_model(checkpoint)
    source = open_source(str(video), min_side=meta["size"])
    stream = GestureStream(model, meta, source.fps, segmenter_settings(meta, phases=phases))
    late = []

    def report(found) -> None:
        overlap = [
            (min(t.end, found.end_frame) - max(t.start, found.start_frame), t) for t in truth
        ]
        best, true = max(overlap, key=lambda pair: pair[0])
        if best >= 0:
            late.append(stream.frames - true.end)  # frames fed so far: the reporting frame

    run_stream(source, stream, report)
    if not late:
        return "no gesture found"
    return (
        f"{len(late)} gestures reported, {statistics.median(late):.0f} frames after their true "
        f"end (median; {min(late)} to {max(late)}) at {source.fps:g} frames/s"
    )


def stream_once(
    checkpoint: str, video: Path, threads: int, phases: int | None = None
) -> tuple[float, int, float]:
    """(seconds taken, frames, the video's frame rate) of one stream of ``video``."""
    torch.set_num_threads(threads)
    model, meta = load_model(checkpoint)
    source = open_source(str(video), min_side=meta["size"])
    stream = GestureStream(model, meta, source.fps, segmenter_settings(meta, phases=phases))
    started = time.perf_counter()
    summary = run_stream(source, stream)
    return time.perf_counter() - started, summary.frames, source.fps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="a continuous checkpoint (e.g. synth_continuous's)")
    p.add_argument("--video", type=Path, help="an H.264 file (default: a synthetic one)")
    p.add_argument("--seed", type=int, default=171, help="of the synthetic video (171)")
    p.add_argument("--repeats", type=int, default=3, help="runs of each contender (3)")
    p.add_argument("--phases", type=int, help="offsets of the step run (the checkpoint's)")
    args = p.parse_args(argv)
    print(machine_description(torch.device("cpu")))
    with tempfile.TemporaryDirectory() as folder:
        video = args.video
        if video is None:
            video = Path(folder) / "synthetic.mp4"
            truth = write_h264(video, args.seed)
            print(f"a synthetic continuous video of {len(truth)} gestures, H.264")
            print("reported:", report_lateness(args.checkpoint, video, truth, args.phases))
        stream_once(args.checkpoint, video, 1, args.phases)  # warm caches and the allocator
        print(f"{'contender':42s} {'frames/s':>9s} {'x real time':>12s}")
        for busy in (False, True):
            neighbour = subprocess.Popen([sys.executable, "-c", SPIN]) if busy else None
            try:
                for threads in (1, 2):
                    runs = [
                        stream_once(args.checkpoint, video, threads, args.phases)
                        for _ in range(args.repeats)
                    ]
                    seconds = statistics.median(r[0] for r in runs)
                    _, frames, fps = runs[0]
                    name = f"{threads} thread{'s' * (threads > 1)}" + (", a busy neighbour" * busy)
                    rate = frames / seconds
                    print(f"{name:42s} {rate:9.0f} {rate / fps:12.1f}")
            finally:
                if neighbour is not None:
                    neighbour.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
