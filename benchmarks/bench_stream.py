"""Frame-by-frame recognition: the streaming engine against the peers' sliding windows.

For each preset, one new frame at a time, in eval mode, fp32 (or ``--amp bf16``):

* ``streaming``: :class:`aclstm.models.streaming.Streamer` — the causal network, each frame
  pushed once, stream buffers and (h, c) carried; a step every second frame;
* ``streaming, 2 frames a push``: the same stream pushed two frames at a time (one step a
  push; a frame waits for the next, one frame of delay), the push's time spread over both;
* ``window, every frame``: what Real-time-GesRec and MMAction2's webcam demo do — the clip
  network re-run over the last ``--window`` frames at every new frame;
* ``window, every 2nd frame``: the same, re-run at every second frame (half the work, twice the
  delay).

Per frame: the median and 99th-percentile latency of the work a frame triggers (for the
every-2nd window, the call's time spread over its two frames: its p99 is the call's own),
frames per second over the run, and multiply-adds (convolutions and matrix products, counted
by torch's FlopCounterMode). The ratios compare each window with streaming, in the same run.

Targets (2 CPU cores, fp32): ``tiny`` at the demo's size (32x32) streams at >= 200 frames/s,
and streaming needs >= 8x fewer multiply-adds per frame than the 16-frame window.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import nullcontext

import torch
from bench_cells import machine_description, synchronize
from torch.utils.flop_counter import FlopCounterMode

from aclstm.models import create

DEFAULT_SIZES = {"tiny": 32, "paper": 112}


def macs(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 2


def timed(fn, device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def run_preset(
    preset: str, size: int, args, device
) -> list[tuple[str, float, float, float, float]]:
    """(name, median ms, p99 ms, frames/s, MACs per frame) of each contender."""
    causal = create(preset, temporal_padding="causal").to(device).eval()
    clip_net = create(preset).to(device).eval()  # the peers' clip model: as released
    frames = torch.randn(args.frames + args.window, 1, 3, 1, size, size, device=device)
    autocast = (
        (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if args.amp else nullcontext
    )
    rows = []
    with torch.inference_mode(), autocast():
        streamer = causal.streamer()
        for frame in frames[: args.window]:  # warm-up, and the first steps
            streamer.push(frame)
        per_frame = [timed(lambda f=f: streamer.push(f), device) for f in frames[args.window :]]
        total = sum(per_frame)
        pair = frames[args.window : args.window + 2]
        work = macs(lambda: [streamer.push(f) for f in pair]) / 2
        rows.append(("streaming", per_frame, args.frames / total, work))
        streamer.reset()
        for k in range(0, args.window, 2):
            streamer.push(torch.cat(list(frames[k : k + 2]), dim=2))
        pairs = [
            timed(lambda k=k: streamer.push(torch.cat(list(frames[k : k + 2]), dim=2)), device)
            for k in range(args.window, len(frames) - 1, 2)
        ]
        spread = [t / 2 for t in pairs for _ in range(2)]
        rows.append(("streaming, 2 frames a push", spread, len(spread) / sum(spread), work))

        history = torch.cat(list(frames), dim=2)  # (1, 3, T, H, W)

        def window_at(t: int):
            return clip_net(history[:, :, t - args.window : t])

        window_at(args.window)  # warm-up
        calls = [
            timed(lambda t=t: window_at(t), device) for t in range(args.window + 1, len(frames) + 1)
        ]
        work = macs(lambda: window_at(args.window))
        rows.append(("window, every frame", calls, len(calls) / sum(calls), work))
        halves = [c / 2 for c in calls[::2] for _ in range(2)]
        rows.append(("window, every 2nd frame", halves, len(halves) / sum(halves), work / 2))
    return [
        (
            name,
            statistics.median(times) * 1e3,
            sorted(times)[min(len(times) - 1, int(0.99 * len(times)))] * 1e3,
            fps,
            work,
        )
        for name, times, fps, work in rows
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presets", default="tiny,paper", help="(tiny,paper)")
    p.add_argument("--size", type=int, help="frame size (tiny 32, paper 112)")
    p.add_argument("--frames", type=int, help="frames timed (tiny 400, paper 24)")
    p.add_argument("--window", type=int, default=16, help="the sliding window's clip (16)")
    p.add_argument("--threads", type=int, default=2, help="torch threads on the CPU (2)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", action="store_true", help="bf16 autocast")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"Machine: {machine_description(device)}")
    print(f"{'bf16 autocast' if args.amp else 'fp32'}, batch 1, one frame at a time")
    for preset in args.presets.split(","):
        size = args.size or DEFAULT_SIZES.get(preset, 112)
        frames = args.frames or (400 if preset == "tiny" else 24)
        rows = run_preset(
            preset, size, argparse.Namespace(**{**vars(args), "frames": frames}), device
        )
        print(f"\n{preset}, {size}x{size}, {frames} frames timed")
        print("| | median ms/frame | p99 ms | frames/s | MMACs/frame | against streaming |")
        print("|---|---:|---:|---:|---:|---|")
        stream = rows[0]
        for name, median, p99, fps, work in rows:
            ratio = (
                ""
                if name.startswith("streaming")
                else (f"{work / stream[4]:.1f}x the MACs, {stream[3] / fps:.1f}x slower")
            )
            print(f"| {name} | {median:.2f} | {p99:.2f} | {fps:.0f} | {work / 1e6:.1f} | {ratio} |")
        if preset == "tiny" and size == 32 and not args.amp and device.type == "cpu":
            print(f"target >= 200 frames/s streaming: {'met' if stream[3] >= 200 else 'MISSED'}")
        fewer = rows[2][4] / stream[4]
        print(f"target >= 8x fewer MACs than the {args.window}-frame window: "
              f"{'met' if fewer >= 8 else 'MISSED'} ({fewer:.1f}x)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
