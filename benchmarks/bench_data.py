"""Clips per second per core of the data pipeline, on a Jester-like set written here.

One process, one torch thread (one core). Measurements over the same clips, in turn
within each repetition:

* ``pipeline``: ``JesterDataset`` in training mode — count frames on disk, sample 16 with
  jitter, decode with simplejpeg, crop, resize to 112x112, subtract the mean (crop to mean in
  one pass by the compiled kernel, where it is built: ``aclstm.data.resize``);
* ``pipeline with torch's resize``: the same with torch's uint8 resize, then the float
  conversion and mean (what runs where the kernel is not built);
* ``decode only`` (the bound): simplejpeg decoding of the same 16 frames, nothing else;
* ``pipeline with Pillow`` (the peer): the same pipeline decoding with Pillow instead,
  when Pillow is installed.

Decoding dominates, and its cost follows the frames' coding (bytes a frame, chroma
subsampling), so the script prints both. The synthetic frames are coded to Jester's size
(see ``aclstm.data.synth.JPEG_QUALITIES``); ``--root`` measures a Jester copy on disk instead.

Targets: ``pipeline`` at >= 300 clips/s/core, and at >= 0.75 of the decode-only bound (the
work besides decoding, a third of it at most), on CPUs with and without AVX-512.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import simplejpeg
import torch
from bench_cells import machine_description

import aclstm.data.clips as clips_module
import aclstm.data.resize as resize_module
from aclstm.data import DataError, JesterDataset, sample_indices
from aclstm.data.clips import frame_files
from aclstm.data.synth import SynthSpec, write_synthetic_set

_SUBSAMPLING = {"444": "4:4:4", "422": "4:2:2", "420": "4:2:0", "440": "4:4:0", "411": "4:1:1"}


def clips_per_second(fn, n: int) -> float:
    start = time.perf_counter()
    for k in range(n):
        fn(k)
    return n / (time.perf_counter() - start)


def describe_frames(files: list[list[Path]]) -> str:
    """Average size and the chroma subsampling(s) of the frames measured."""
    sizes = [os.path.getsize(f) for clip in files for f in clip]
    kinds = set()
    for clip in files:
        _, _, _, subsampling = simplejpeg.decode_jpeg_header(clip[0].read_bytes())
        kinds.add(_SUBSAMPLING.get(subsampling, subsampling))
    return f"{np.mean(sizes) / 1000:.1f} KB a frame on average, {'/'.join(sorted(kinds))}"


def pil_read_jpegs(paths, min_side: int = 0) -> np.ndarray:
    """The peer's decoding: Pillow, frame by frame, stacked."""
    from PIL import Image

    frames = []
    for path in paths:
        with Image.open(path) as image:
            frames.append(np.asarray(image.convert("RGB")))
    return np.stack(frames)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", type=Path, help="a Jester copy to measure instead of synthetic clips")
    p.add_argument("--clips", type=int, default=108, help="clips of the train split measured")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--clip-len", type=int, default=16)
    p.add_argument("--size", type=int, default=112)
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    with contextlib.ExitStack() as stack:
        root = args.root
        if root is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            per_class = -(-args.clips // 27)
            write_synthetic_set(root, SynthSpec(per_class, val_fraction=0.0), workers=2)
        try:
            ds = JesterDataset(root, "train", clip_len=args.clip_len, size=args.size, seed=0)
        except DataError as err:
            print(f"bench_data: {err}", file=sys.stderr)
            return 2
        ds.records = ds.records[: args.clips]
        n = len(ds)
        files = [frame_files(record.source) for record in ds.records]  # listed once, untimed
        picks = [sample_indices(len(f), args.clip_len, training=False) for f in files]

        def pipeline(k):
            ds[k]

        def decode_only(k):
            for i in picks[k]:
                simplejpeg.decode_jpeg(files[k][i].read_bytes())

        def pipeline_with(module, name: str, value):
            """The pipeline with ``module.name`` replaced by ``value`` (a peer's part)."""

            def run(k):
                with mock.patch.object(module, name, value):  # about 5 us a call
                    ds[k]

            return run

        pipeline_torch_resize = pipeline_with(resize_module, "_cropresize", None)
        pipeline_pillow = pipeline_with(clips_module, "read_jpegs", pil_read_jpegs)

        contenders = {"pipeline (simplejpeg)": pipeline, "decode only (bound)": decode_only}
        if resize_module.KERNEL is not None:
            contenders["pipeline with torch's resize"] = pipeline_torch_resize
        try:
            import PIL  # noqa: F401

            contenders["pipeline with Pillow (peer)"] = pipeline_pillow
        except ImportError:
            print("Pillow is not installed: skipping the Pillow peer")

        # Each contender runs over all the clips in turn, as a loader worker runs its one
        # pipeline; taken in turn on each clip, they share the caches, and the one with the
        # most memory in use (the pipeline, against the bound) loses most.
        rates: dict[str, list[float]] = {name: [] for name in contenders}
        for fn in contenders.values():  # warm the page cache and the frame counts
            clips_per_second(fn, n)
        for _ in range(args.repeats):
            for name, fn in contenders.items():
                rates[name].append(clips_per_second(fn, n))
        frames = describe_frames(files)

    source = "Jester-like synthetic clips" if args.root is None else f"clips of {args.root}"
    print(f"Machine: {machine_description(torch.device('cpu'))}")
    kernel = resize_module.KERNEL
    print(
        f"crop + resize + mean: compiled kernel ({kernel} code)"
        if kernel
        else "crop + resize + mean: torch (the compiled kernel is not built)"
    )
    print(
        f"{n} {source} ({frames}) -> 3x{args.clip_len}x{args.size}x{args.size}; "
        f"one core; median of {args.repeats}"
    )
    print("| measurement | clips/s/core |\n|---|---:|")
    medians = {name: statistics.median(v) for name, v in rates.items()}
    for name, value in medians.items():
        print(f"| {name} | {value:.0f} |")
    pipe = medians["pipeline (simplejpeg)"]
    ratio = pipe / medians["decode only (bound)"]
    print(f"pipeline / decode-only bound: {ratio:.2f}")
    if "pipeline with torch's resize" in medians:
        torch_ratio = medians["pipeline with torch's resize"] / medians["decode only (bound)"]
        print(f"pipeline with torch's resize / decode-only bound: {torch_ratio:.2f}")
    if "pipeline with Pillow (peer)" in medians:
        print(f"pipeline / Pillow pipeline: {pipe / medians['pipeline with Pillow (peer)']:.2f}")
    print(f"target >= 300 clips/s/core: {'met' if pipe >= 300 else 'MISSED'}")
    print(f"target pipeline >= 0.75 of the bound: {'met' if ratio >= 0.75 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
