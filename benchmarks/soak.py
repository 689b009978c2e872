"""Soak: 1,000 training steps of the ``tiny`` net on the CPU with resident memory flat.

The real path end to end: the synthetic gesture set written as JPEG folders, ``JesterDataset``
decoding and sampling clips, :func:`aclstm.train.loop.fit` training with validation, last/
and best/ checkpoints, metrics.jsonl and TensorBoard every epoch. The resident set size (RSS,
from ``/proc/self/statm``) is sampled at the end of every epoch; the first epochs warm the
allocator up; growth is the median RSS of the last tenth of the samples after the warm-up
minus the median of the first tenth.

Exits 1 when the growth exceeds ``--max-growth-mib``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench_cells import machine_description

from aclstm.data import JesterDataset
from aclstm.data.synth import SynthSpec, write_synthetic_set
from aclstm.models import create
from aclstm.train.loop import TrainSettings, fit

MIB = 1024 * 1024


def rss_mib() -> float:
    """Resident memory of this process now, in MiB (Linux: /proc/self/statm)."""
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / MIB


def slope_per_1000_steps(samples: list[tuple[int, float]]) -> float:
    """Least-squares slope of RSS over steps, in MiB per 1,000 steps."""
    n = len(samples)
    mean_x = sum(x for x, _ in samples) / n
    mean_y = sum(y for _, y in samples) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in samples)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in samples)
    return 1000 * sxy / sxx if sxx else 0.0


def summarise(samples: list[tuple[int, float]], warmup_steps: int) -> dict[str, float | str]:
    """RSS figures over the samples taken after the warm-up. Growth compares the medians of
    its first and last tenths: RSS swings by several MiB from one epoch to the next (the
    allocator returns and takes back pages), and a single sample would measure that swing."""
    warm = [s for s in samples if s[0] > warmup_steps] or samples
    tenth = max(1, len(warm) // 10)
    start = statistics.median(y for _, y in warm[:tenth])
    end = statistics.median(y for _, y in warm[-tenth:])
    return {
        "steps": samples[-1][0],
        "rss_first_mib": samples[0][1],
        "rss_min_after_warmup_mib": min(y for _, y in warm),
        "rss_max_after_warmup_mib": max(y for _, y in warm),
        "rss_start_median_mib": start,
        "rss_end_median_mib": end,
        "growth_mib": end - start,
        "slope_mib_per_1000_steps": slope_per_1000_steps(warm),
        "start_steps": f"{warm[0][0]}-{warm[tenth - 1][0]}",
        "end_steps": f"{warm[-tenth][0]}-{warm[-1][0]}",
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--train-clips-per-class", type=int, default=20, help="4 classes")
    p.add_argument("--warmup-steps", type=int, default=100)
    p.add_argument("--max-growth-mib", type=float, default=16.0)
    p.add_argument("--json", metavar="FILE", help="also write the figures here")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        root, run = Path(tmp) / "data", Path(tmp) / "run"
        spec = SynthSpec(clips_per_class=args.train_clips_per_class + 4, val_fraction=4 / 24,
                         seed=0, classes=(0, 1, 2, 3))  # fmt: skip
        write_synthetic_set(root, spec, workers=2)
        train = JesterDataset(root, "train", clip_len=args.frames, size=args.size, seed=0)
        val = JesterDataset(root, "validation", clip_len=args.frames, size=args.size)
        steps_per_epoch = len(train) // args.batch_size
        epochs = -(-args.steps // steps_per_epoch)
        settings = TrainSettings(epochs=epochs, batch_size=args.batch_size,
                                 optimizer="adamw", progress=False)  # fmt: skip
        torch.manual_seed(0)
        model = create("tiny", num_classes=len(train.classes), frames=args.frames,
                       size=args.size, bn_momentum=0.1)  # fmt: skip
        samples: list[tuple[int, float]] = [(0, rss_mib())]

        def sample(message: str) -> None:
            if message.startswith("epoch "):
                epoch = int(message.split()[1].split("/")[0])
                samples.append((epoch * steps_per_epoch, rss_mib()))

        started = time.perf_counter()
        metrics = fit(model, train, val, run, settings, log=sample)
        seconds = time.perf_counter() - started

    figures = summarise(samples[1:], args.warmup_steps)
    figures.update(
        seconds=seconds,
        epochs=epochs,
        train_clips=len(train),
        final_train_loss=metrics["train_loss"],
        torch=torch.__version__,
        threads=torch.get_num_threads(),
        machine=machine_description(torch.device("cpu")),
    )
    print(
        f"Machine: {figures['machine']}\n"
        f"{figures['steps']} steps ({epochs} epochs of {steps_per_epoch}, batch "
        f"{args.batch_size}, {args.frames}x{args.size}x{args.size}) in {seconds:.0f} s\n"
        f"RSS after epoch 1: {figures['rss_first_mib']:.1f} MiB; after {args.warmup_steps} "
        f"steps between {figures['rss_min_after_warmup_mib']:.1f} and "
        f"{figures['rss_max_after_warmup_mib']:.1f} MiB\n"
        f"median over steps {figures['start_steps']} {figures['rss_start_median_mib']:.1f} MiB, "
        f"over steps {figures['end_steps']} {figures['rss_end_median_mib']:.1f} MiB: growth "
        f"{figures['growth_mib']:+.1f} MiB (bound {args.max_growth_mib:g}); least-squares slope "
        f"{figures['slope_mib_per_1000_steps']:+.2f} MiB per 1000 steps"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"samples": samples, **figures}, indent=2) + "\n")
    if figures["growth_mib"] > args.max_growth_mib:
        print(f"FAIL: RSS grew by more than {args.max_growth_mib} MiB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
