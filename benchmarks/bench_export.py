"""Exported models in ONNX Runtime against PyTorch eager, on the CPU, in one run.

For each preset (causal, fp32, eval mode, batch 1, random weights: the time does not depend
on them), exported with :func:`aclstm.export.export_gesture_net`:

* ``clip model``: one clip of the preset's frames and size -> logits; eager ``GestureNet``
  against the ``.onnx`` clip model in ONNX Runtime;
* ``streaming step``: one step (two new frames) -> logits, state carried; eager
  :class:`aclstm.models.streaming.Streamer` (what ``aclstm stream`` runs) against the
  ``.onnx`` streaming step driven by :class:`aclstm.export.runtime.ExportedStreamer`.
  Reported per frame (a step's time over its two frames);
* ``ConvLSTM alone``: :class:`aclstm.nn.ConvLSTM` (2 gated layers) against its export with
  time as an ONNX ``Scan`` and unrolled (:func:`aclstm.export.export_convlstm`).

Both sides use ``--threads`` threads (ONNX Runtime's intra-op threads set alike, not
spinning). Median and 90th percentile over ``--repeats`` calls after warm-up; ratio = eager
time / ONNX Runtime time (above 1: ONNX Runtime faster).

Target (2 CPU cores): ONNX Runtime >= 1.3x eager on the ``tiny`` streaming step.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench_cells import machine_description

from aclstm.export import export_gesture_net, load_exported
from aclstm.models import create

DEFAULT_SIZES = {"tiny": 32, "paper": 112}
DEFAULT_FRAMES = {"tiny": 8, "paper": 16}


def latencies(fn, repeats: int, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def summary(times: list[float], per: int = 1) -> tuple[float, float]:
    """Median and 90th percentile in ms, divided by ``per`` (frames a call covers)."""
    ordered = sorted(times)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return statistics.median(ordered) * 1e3 / per, p90 * 1e3 / per


def measure(preset: str, size: int, frames: int, repeats: int, folder: Path) -> list[tuple]:
    torch.manual_seed(0)
    net = create(preset, temporal_padding="causal", size=size, frames=frames).eval()
    classes = ["background", *(f"class {k}" for k in range(1, net.config.num_classes))]
    meta = {"classes": classes, "clip_len": frames, "size": size, "network": {}}
    rows = []

    clip = torch.randn(1, 3, frames, size, size)
    start = time.perf_counter()
    export_gesture_net(net, meta, folder / f"{preset}-clip.onnx")
    exported_in = time.perf_counter() - start
    onnx_clip, _ = load_exported(folder / f"{preset}-clip.onnx")
    with torch.inference_mode():
        eager = summary(latencies(lambda: net(clip), repeats))
    ort = summary(latencies(lambda: onnx_clip(clip), repeats))
    rows.append((preset, f"clip model, {frames}x{size}x{size}", eager, ort, exported_in))

    start = time.perf_counter()
    export_gesture_net(net, meta, folder / f"{preset}-step.onnx", streaming=True)
    exported_in = time.perf_counter() - start
    onnx_step, _ = load_exported(folder / f"{preset}-step.onnx", "streaming")
    pair = torch.randn(1, 3, 2, size, size)
    streamer, exported = net.streamer(), onnx_step.streamer()
    eager = summary(latencies(lambda: streamer.push(pair), repeats), per=2)
    ort = summary(latencies(lambda: exported.push(pair), repeats), per=2)
    rows.append((preset, f"streaming step, per frame, {size}x{size}", eager, ort, exported_in))
    return rows


def measure_convlstm(repeats: int, folder: Path) -> list[tuple]:
    """A ConvLSTM alone (2 gated layers, 64 channels, 28x28, 16 steps): eager against its
    export with time as an ONNX Scan and unrolled."""
    from aclstm.export import export_convlstm
    from aclstm.export.runtime import Runner
    from aclstm.nn import ConvLSTM

    torch.manual_seed(0)
    layer = ConvLSTM(64, 64, num_layers=2, cell="gated").eval()
    x = torch.randn(1, 16, 64, 28, 28)
    h = torch.zeros(2, 1, 64, 28, 28)
    with torch.inference_mode():
        eager = summary(latencies(lambda: layer(x, (h, h)), repeats))
    rows = []
    for time_mode in ("scan", "unrolled"):
        path = folder / f"convlstm-{time_mode}.onnx"
        start = time.perf_counter()
        export_convlstm(layer, path, time=time_mode, frames=16, size=(28, 28))
        exported_in = time.perf_counter() - start
        runner = Runner(path)
        ort = summary(latencies(lambda r=runner: r(x, h, h), repeats))
        what = f"ConvLSTM alone, 16x28x28, time {time_mode}"
        rows.append(("2x gated 64", what, eager, ort, exported_in))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presets", nargs="*", default=["tiny", "paper"], help="(tiny paper)")
    p.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime threads (2)")
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--no-convlstm", action="store_true", help="skip the ConvLSTM-alone rows")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for preset in args.presets:
            size, frames = DEFAULT_SIZES.get(preset, 112), DEFAULT_FRAMES.get(preset, 16)
            rows += measure(preset, size, frames, args.repeats, Path(folder))
        if not args.no_convlstm:
            rows += measure_convlstm(args.repeats, Path(folder))

    import onnxruntime

    print(f"Machine: {machine_description(torch.device('cpu'))}")
    print(
        f"ONNX Runtime {onnxruntime.__version__}, {args.threads} threads each, batch 1, fp32; "
        f"median (p90) of {args.repeats} calls"
    )
    print("| preset | what | eager ms | ONNX Runtime ms | eager / ORT | export s |")
    print("|---|---|---:|---:|---:|---:|")
    for preset, what, eager, ort, exported_in in rows:
        print(
            f"| {preset} | {what} | {eager[0]:.2f} ({eager[1]:.2f}) | {ort[0]:.2f} "
            f"({ort[1]:.2f}) | {eager[0] / ort[0]:.2f} | {exported_in:.0f} |"
        )
    tiny_step = next((r for r in rows if r[0] == "tiny" and "streaming" in r[1]), None)
    if tiny_step is not None:
        ratio = tiny_step[2][0] / tiny_step[3][0]
        print(f"target ONNX Runtime >= 1.3x eager on the tiny streaming step: "
              f"{'met' if ratio >= 1.3 else 'MISSED'} ({ratio:.2f}x)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
