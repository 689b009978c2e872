"""Clips per second of the whole gesture network, training and inference, for each cell.

Res3D + two ConvLSTM layers + MobileNet top (``aclstm.models``), one network per cell, at a
preset and clip size. The peer is the ``convlstm`` network, measured in the same run: every
row gives its speed relative to it. Each repetition times every contender in turn (one
untimed call, then the timed one), so a slow spell of the machine falls on all of them; the
table gives medians.

* ``train``: one SGD step (momentum 0.9) — forward, cross-entropy, backward, update — on a
  batch of random clips and labels, in training mode;
* ``inference``: one forward pass in eval mode under ``torch.inference_mode``;
* ``ConvLSTM share``: the ConvLSTM stage alone (both layers), fed Res3D's output shape and
  timed the same way (fwd+bwd for training, forward for inference), over the network's time.

The defaults suit a 2-core CPU (``tiny`` preset, 8x64x64 clips, batch 8). The paper's size on a
GPU: ``--preset paper --frames 16 --size 112 --batch 16 --device cuda --amp bf16
[--channels-last] [--compile]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from bench_cells import machine_description, synchronize

from aclstm.models import count_parameters, create, preset_config
from aclstm.nn import cell_names


@dataclass
class Contender:
    """One timed callable and its timings in milliseconds."""

    name: str
    fn: Callable[[], object]
    ms: list[float] = field(default_factory=list)


def autocast_factory(device: torch.device, amp: str) -> Callable[[], object]:
    """A context manager factory for the requested mixed precision (or none)."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    if dtype is None:
        return nullcontext
    return lambda: torch.autocast(device.type, dtype=dtype)


def clip_batch(args: argparse.Namespace, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Random clips (B, 3, T, H, W) and labels; clips in ``channels_last_3d`` when asked."""
    x = torch.randn(args.batch, 3, args.frames, args.size, args.size, device=device)
    if args.channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    y = torch.randint(0, args.classes, (args.batch,), device=device)
    return x, y


def build_network(args: argparse.Namespace, cell: str, device: torch.device) -> torch.nn.Module:
    """The preset's network with ``cell``, on ``device``, channels-last when asked."""
    torch.manual_seed(0)
    model = create(args.preset, cell=cell, num_classes=args.classes).to(device)
    if args.channels_last:
        model.to_channels_last()
    return model


def network_steps(model, x, y, autocast, compile_: bool) -> tuple[Callable, Callable]:
    """``(train_step, infer)`` of the whole network: an SGD step, and one forward pass."""
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    run = torch.compile(model) if compile_ else model
    loss_fn = torch.nn.CrossEntropyLoss()

    def train_step():
        model.train()
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            logits = run(x)
        loss_fn(logits.float(), y).backward()
        optimizer.step()

    def infer():
        model.eval()
        with torch.inference_mode(), autocast():
            return run(x)

    return train_step, infer


def stage_steps(model, x, autocast, compile_: bool) -> tuple[Callable, Callable]:
    """``(fwd+bwd, forward)`` of the ConvLSTM stage alone, on a tensor of the shape Res3D
    gives it (T', B, C, H', W'), with a fixed random gradient from above."""
    with torch.no_grad():
        features = model.res3d.eval()(x).permute(2, 0, 1, 3, 4).contiguous()
    features.requires_grad_(True)
    stage = torch.compile(model.convlstm) if compile_ else model.convlstm
    with torch.no_grad(), autocast():
        grad = torch.randn_like(stage(features)[0])

    inputs = [features, *model.convlstm.parameters()]

    def train_step():
        with autocast():
            out, _ = stage(features)
        torch.autograd.grad(out, inputs, grad)  # the gradients the network's backward makes

    def infer():
        with torch.inference_mode(), autocast():
            return stage(features)

    return train_step, infer


def time_in_turn(contenders: list[Contender], repeats: int, device: torch.device) -> None:
    """Per repetition, every contender in turn: one untimed call, then a timed one."""
    for _ in range(repeats):
        for contender in contenders:
            contender.fn()  # untimed: refills the caches the previous contender emptied
            synchronize(device)
            start = time.perf_counter()
            contender.fn()
            synchronize(device)
            contender.ms.append((time.perf_counter() - start) * 1e3)


def run(args: argparse.Namespace) -> dict:
    """Build the networks, warm them up, time them in turn; medians per cell."""
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    autocast = autocast_factory(device, args.amp)
    x, y = clip_batch(args, device)
    contenders: dict[tuple[str, str], Contender] = {}
    networks = {}
    for cell in args.cells:
        model = build_network(args, cell, device)
        networks[cell] = model
        train_step, infer = network_steps(model, x, y, autocast, args.compile)
        stage_train, stage_infer = stage_steps(model, x, autocast, args.compile)
        for kind, fn in (
            ("train", train_step),
            ("infer", infer),
            ("stage_train", stage_train),
            ("stage_infer", stage_infer),
        ):
            contenders[cell, kind] = Contender(f"{cell} {kind}", fn)
    load_before = os.getloadavg()[0]
    for contender in contenders.values():
        for _ in range(args.warmup):
            contender.fn()
    synchronize(device)
    time_in_turn(list(contenders.values()), args.repeats, device)
    rows = []
    for cell in args.cells:
        median = {
            kind: statistics.median(contenders[cell, kind].ms)
            for kind in ("train", "infer", "stage_train", "stage_infer")
        }
        rows.append(
            {
                "cell": cell,
                "layers": "+".join(networks[cell].config.cells()),
                "parameters": count_parameters(networks[cell]),
                "train_ms": median["train"],
                "infer_ms": median["infer"],
                "train_clips_per_s": args.batch / median["train"] * 1e3,
                "infer_clips_per_s": args.batch / median["infer"] * 1e3,
                "convlstm_share_train": median["stage_train"] / median["train"],
                "convlstm_share_infer": median["stage_infer"] / median["infer"],
            }
        )
    add_ratios(rows)
    return {
        "machine": machine_description(device),
        "load_average": {"before": load_before, "after": os.getloadavg()[0]},
        "config": {k: v for k, v in vars(args).items() if k != "json"},
        "rows": rows,
    }


def add_ratios(rows: list[dict], peer: str = "convlstm") -> None:
    """Each row's clips/s over the peer network's, for training and inference (None without
    the peer in the run)."""
    base = next((r for r in rows if r["cell"] == peer), None)
    for r in rows:
        for kind in ("train", "infer"):
            key = f"{kind}_vs_{peer}"
            r[key] = base[f"{kind}_ms"] / r[f"{kind}_ms"] if base else None


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def report(result: dict) -> str:
    """The run as markdown: the machine, the setting, one table row per cell."""
    cfg = result["config"]
    load = result["load_average"]
    lines = [
        f"Machine: {result['machine']}",
        f"Setting: preset {cfg['preset']}, {cfg['frames']}x{cfg['size']}x{cfg['size']} clips, "
        f"batch {cfg['batch']}, {cfg['classes']} classes, device {cfg['device']}, "
        f"amp {cfg['amp']}, channels_last {cfg['channels_last']}, compile {cfg['compile']}; "
        f"median of {cfg['repeats']} runs after {cfg['warmup']} warm-up",
        f"1-minute load average: {load['before']:.2f} before timing, {load['after']:.2f} after",
        "",
        "| cell | ConvLSTM layers | parameters | train clips/s | train ms/step "
        "| inference clips/s | inference ms/batch | train speed vs convlstm "
        "| inference speed vs convlstm | ConvLSTM share, train | ConvLSTM share, inference |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['cell']} | {r['layers']} | {r['parameters']:,} "
            f"| {r['train_clips_per_s']:.1f} | {r['train_ms']:.1f} "
            f"| {r['infer_clips_per_s']:.1f} | {r['infer_ms']:.1f} "
            f"| {_ratio(r['train_vs_convlstm'])} | {_ratio(r['infer_vs_convlstm'])} "
            f"| {r['convlstm_share_train']:.0%} | {r['convlstm_share_infer']:.0%} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="tiny", help="network preset (tiny; paper for a GPU)")
    p.add_argument("--frames", type=int, help="T of the clip (the preset's: tiny 8, paper 16)")
    p.add_argument("--size", type=int, help="H = W of the clip (the preset's: tiny 64, paper 112)")
    p.add_argument("--batch", type=int, default=8, help="clips per step (8)")
    p.add_argument("--classes", type=int, default=27, help="head size (27, Jester)")
    p.add_argument("--cells", nargs="+", default=cell_names(), choices=cell_names())
    p.add_argument("--repeats", type=int, default=7, help="timed runs (median), at least 5")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls of each first (2)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", choices=["none", "bf16", "fp16"], default="none")
    p.add_argument("--channels-last", action="store_true", help="channels-last weights, clips")
    p.add_argument("--compile", action="store_true", help="torch.compile the networks")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--json", help="also write the results to this JSON file")
    args = p.parse_args(argv)
    if args.repeats < 5:
        p.error("--repeats must be at least 5")
    preset = preset_config(args.preset)
    args.frames = args.frames or preset.frames
    args.size = args.size or preset.size
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    print(report(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
