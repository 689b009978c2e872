"""Memory on long videos: ``aclstm predict`` on a 3-minute 1080p H.264 video, and a stream of it.

1. Writes a video of ``--seconds`` seconds at ``--fps`` of 1920x1080 (libx264, ultrafast):
   shapes moving over a gradient, so every frame differs.
2. Writes a checkpoint of the demo's network (the ``synth_demo`` config, random weights: the
   memory does not depend on them).
3. Runs ``aclstm predict CHECKPOINT VIDEO`` as a child process and reports its peak resident
   memory (``ru_maxrss``) and time. Target: <= 1 GiB.
4. Streams the video frame by frame through the causal version of the network
   (:func:`aclstm.data.video.iter_video`, scaled down as decoded, then
   :class:`aclstm.models.streaming.Streamer`), sampling this process's resident memory every
   ``--sample-every`` frames: the growth from the first tenth of the samples to the last
   tenth shows whether memory depends on the stream's length.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import torch
from bench_cells import machine_description
from soak import rss_mib

from aclstm.config import config_from_dict, read_config_file
from aclstm.data.synth import JESTER_CLASSES
from aclstm.data.transforms import prepare_clip
from aclstm.data.video import iter_video
from aclstm.models import GestureNet
from aclstm.train.checkpoint import save_checkpoint
from aclstm.train.runner import build_model, checkpoint_meta, network_config

CONFIG = Path(__file__).resolve().parents[1] / "src/aclstm/configs/synth_demo.toml"


def write_long_video(path: Path, seconds: int, fps: int, width: int, height: int) -> None:
    """Moving discs over a gradient, H.264 in MP4."""
    ys, xs = np.mgrid[0:height, 0:width]
    base = np.stack([xs * 255 // width, ys * 255 // height, np.full_like(xs, 96)], -1)
    base = base.astype(np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "28"}
        for k in range(seconds * fps):
            frame = base.copy()
            for j in range(3):
                cx = int((k * (4 + 3 * j) + 300 * j) % width)
                cy = int(height / 2 + height / 3 * np.sin(k / (20 + 7 * j)))
                frame[max(cy - 80, 0) : cy + 80, max(cx - 80, 0) : cx + 80] = (255, 60 * j, 40)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def demo_checkpoint(folder: Path) -> dict:
    config = config_from_dict(read_config_file(CONFIG), str(CONFIG))
    model = build_model(config, len(JESTER_CLASSES))
    meta = checkpoint_meta(config, model, list(JESTER_CLASSES))
    save_checkpoint(folder, model, meta)
    return meta


def predict_peak(checkpoint: Path, video: Path) -> tuple[float, float, str]:
    """Peak RSS (MiB) and seconds of ``aclstm predict`` in a child process, and its output."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "aclstm", "predict", str(checkpoint), str(video), "--topk", "1"],
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"aclstm predict failed:\n{done.stderr}")
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return peak_kib / 1024, seconds, done.stdout.strip().splitlines()[-1].strip()


def stream_memory(meta: dict, video: Path, sample_every: int) -> tuple[list[float], int, float]:
    """RSS samples (MiB) while streaming the video through the causal network."""
    network = GestureNet(replace(network_config(meta), temporal_padding="causal")).eval()
    streamer = network.streamer()
    size, mean = meta["size"], meta["mean"]
    samples, frames = [], 0
    start = time.perf_counter()
    for frame in iter_video(video, min_side=size):
        x = prepare_clip(torch.from_numpy(frame)[None], size, mean, False, center=meta["center"])
        streamer.push(x[None])
        frames += 1
        if frames % sample_every == 0:
            samples.append(rss_mib())
    return samples, frames, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=int, default=180, help="(180)")
    p.add_argument("--fps", type=int, default=30, help="(30)")
    p.add_argument("--width", type=int, default=1920)
    p.add_argument("--height", type=int, default=1080)
    p.add_argument("--sample-every", type=int, default=250, help="frames between RSS samples")
    p.add_argument("--max-peak-mib", type=float, default=1024.0)
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    print(f"Machine: {machine_description(torch.device('cpu'))}")
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "long.mp4"
        start = time.perf_counter()
        write_long_video(video, args.seconds, args.fps, args.width, args.height)
        frames, took = args.seconds * args.fps, time.perf_counter() - start
        print(
            f"video: {args.seconds} s, {frames} frames of {args.width}x{args.height} H.264, "
            f"{video.stat().st_size / 2**20:.0f} MiB, written in {took:.0f} s"
        )
        meta = demo_checkpoint(Path(tmp) / "checkpoint")
        peak, seconds, answer = predict_peak(Path(tmp) / "checkpoint", video)
        verdict = "met" if peak <= args.max_peak_mib else "MISSED"
        print(f"aclstm predict: peak RSS {peak:.0f} MiB in {seconds:.1f} s ({answer})")
        print(f"target peak RSS <= {args.max_peak_mib:.0f} MiB: {verdict}")
        samples, streamed, seconds = stream_memory(meta, video, args.sample_every)
        tenth = max(1, len(samples) // 10)
        growth = statistics.median(samples[-tenth:]) - statistics.median(samples[:tenth])
        print(
            f"stream: {streamed} frames in {seconds:.0f} s ({streamed / seconds:.0f} frames/s, "
            f"decoding included); RSS {samples[0]:.0f} -> {samples[-1]:.0f} MiB, "
            f"growth {growth:+.1f} MiB (median of the last tenth of the samples minus the first)"
        )
    return 0 if peak <= args.max_peak_mib else 1


if __name__ == "__main__":
    sys.exit(main())
