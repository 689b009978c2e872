"""Clips per second per core of the data pipeline, on a Jester-like set written here.

One process, one torch thread (one core). Three measurements over the same clips, in turn
within each repetition:

* ``pipeline``: ``JesterDataset`` in training mode — count frames on disk, sample 16 with
  jitter, decode with simplejpeg, crop, resize to 112x112, subtract the mean;
* ``decode only`` (the bound): simplejpeg decoding of the same 16 frames, nothing else;
* ``pipeline with Pillow`` (the peer): the same pipeline decoding with Pillow instead,
  when Pillow is installed.

Target: ``pipeline`` at >= 300 clips/s/core.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import simplejpeg
import torch

from aclstm.data import JesterDataset, sample_indices
from aclstm.data.clips import frame_files
from aclstm.data.synth import SynthSpec, write_synthetic_set


def clips_per_second(fn, n: int) -> float:
    start = time.perf_counter()
    for k in range(n):
        fn(k)
    return n / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips-per-class", type=int, default=4)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--clip-len", type=int, default=16)
    p.add_argument("--size", type=int, default=112)
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_synthetic_set(root, SynthSpec(args.clips_per_class, val_fraction=0.0), workers=2)
        ds = JesterDataset(root, "train", clip_len=args.clip_len, size=args.size, seed=0)
        n = len(ds)

        def pipeline(k):
            ds[k]

        def decode_only(k):
            files = frame_files(ds.records[k].source)
            for i in sample_indices(len(files), args.clip_len, training=False):
                simplejpeg.decode_jpeg(files[i].read_bytes())

        contenders = {"pipeline (simplejpeg)": pipeline, "decode only (bound)": decode_only}
        try:
            from PIL import Image

            pil_ds = JesterDataset(root, "train", clip_len=args.clip_len, size=args.size, seed=0)
            import aclstm.data.clips as clips_module

            def pil_read(paths, min_side=0):
                frames = []
                for path in paths:
                    with Image.open(path) as im:
                        frames.append(np.asarray(im.convert("RGB")))
                return np.stack(frames)

            def pipeline_pil(k):
                original = clips_module.read_jpegs
                clips_module.read_jpegs = pil_read
                try:
                    pil_ds[k]
                finally:
                    clips_module.read_jpegs = original

            contenders["pipeline with Pillow (peer)"] = pipeline_pil
        except ImportError:
            print("Pillow is not installed: skipping the Pillow peer")

        rates: dict[str, list[float]] = {name: [] for name in contenders}
        for fn in contenders.values():  # warm the page cache
            clips_per_second(fn, n)
        for _ in range(args.repeats):
            for name, fn in contenders.items():
                rates[name].append(clips_per_second(fn, n))

    print(
        f"{n} Jester-like clips (176x100 JPEG frames, 24-48 a clip) -> "
        f"3x{args.clip_len}x{args.size}x{args.size}; one core; median of {args.repeats}"
    )
    print("| measurement | clips/s/core |\n|---|---:|")
    medians = {name: statistics.median(v) for name, v in rates.items()}
    for name, value in medians.items():
        print(f"| {name} | {value:.0f} |")
    pipe = medians["pipeline (simplejpeg)"]
    print(f"pipeline / decode-only bound: {pipe / medians['decode only (bound)']:.2f}")
    if "pipeline with Pillow (peer)" in medians:
        print(f"pipeline / Pillow pipeline: {pipe / medians['pipeline with Pillow (peer)']:.2f}")
    print(f"target >= 300 clips/s/core: {'met' if pipe >= 300 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
