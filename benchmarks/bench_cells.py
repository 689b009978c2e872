"""Speed of the five cells, against Keras 3's ConvLSTM2D and a bare convolution, in one run.

The default is DESIGN.md's setting: a 2-layer 256->256 3x3 ConvLSTM at B=2, T=8, 28x28, fp32;
the backward pass starts from one fixed gradient of the output, so no loss is timed.
Contenders are timed in turn within every repetition, so a slow spell of the machine falls on
all of them; the medians and their ratios are printed, with the targets:

* ``convlstm`` fwd+bwd at least 1.10x faster than Keras 3 ``ConvLSTM2D`` (torch backend);
* ``convlstm`` fwd+bwd at no less than 90% of the GFLOP/s of one bare convolution with the same
  FLOPs (``L*(C_in+C_out) -> 4*C_out``, KxK, over all B*T frames), the practical ceiling;
* ``gated`` fwd+bwd at least 15x faster than ``convlstm``.

Keras is the optional ``bench`` extra (``pip install -e '.[bench]'``); without it the Keras
row is skipped. It runs in a process of its own, interleaved there with ``convlstm``: once
Keras has run, the small cells stay slower for the rest of the process. On a GPU:
``--device cuda --batch 16 --amp bf16 [--compile]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from torch.utils.flop_counter import FlopCounterMode

from aclstm.nn import ConvLSTM, cell_names


@dataclass
class Contender:
    name: str
    forward: Callable[[], object]  # one forward pass, no autograd
    train_step: Callable[[], object]  # one forward and backward pass
    dense: bool  # only dense convolutions: FlopCounterMode counts its backward right
    fwd_ms: list[float] = field(default_factory=list)
    train_ms: list[float] = field(default_factory=list)
    train_gflop: float | None = None


def machine_description(device: torch.device) -> str:
    """The device, and for a CPU its model, its vector ISA flags and the kernels torch runs
    (an AVX-512 CPU capped to AVX2 with ATEN_CPU_CAPABILITY / ONEDNN_MAX_CPU_ISA says so)."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
        model = next(line.split(":", 1)[1].strip() for line in info.splitlines()
                     if line.startswith("model name"))  # fmt: skip
        flags = set(next(line for line in info.splitlines() if line.startswith("flags")).split())
    except (OSError, StopIteration):
        pass
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags] or ["?"]
    kernels = torch.backends.cpu.get_cpu_capability()
    if "ONEDNN_MAX_CPU_ISA" in os.environ:
        kernels += f", oneDNN capped at {os.environ['ONEDNN_MAX_CPU_ISA']}"
    return (
        f"{model} ({' '.join(isa)}; torch kernels {kernels}), {os.cpu_count()} logical cores, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}"
    )


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_contender(name, module, x, autocast, dense) -> Contender:
    def forward():
        with torch.no_grad(), autocast():
            return module(x)

    grad: list[torch.Tensor] = []  # one fixed gradient from above, made on the first call

    def train_step():
        with autocast():
            out = module(x)
        out = out[0] if isinstance(out, tuple) else out
        if not grad:
            grad.append(torch.randn_like(out))
        out.backward(grad[0])  # the module's backward alone, no loss to compute

    return Contender(name, forward, train_step, dense)


def keras_contender(args, device, autocast) -> Contender | None:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError:
        print("keras is not installed (pip install -e '.[bench]'): skipping the Keras peer")
        return None
    if keras.backend.backend() != "torch":
        print(f"KERAS_BACKEND is {keras.backend.backend()!r}, not 'torch': skipping Keras")
        return None
    layers = [keras.layers.Input((args.steps, args.size, args.size, args.channels))]
    for _ in range(args.layers):
        layers.append(
            keras.layers.ConvLSTM2D(
                args.channels, args.kernel, padding="same", return_sequences=True
            )
        )
    model = keras.Sequential(layers)
    x = torch.randn(args.batch, args.steps, args.size, args.size, args.channels, device=device)
    return make_contender(f"keras {keras.__version__} ConvLSTM2D", model, x, autocast, True)


def count_gflop(fn: Callable[[], object]) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


def run(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.amp)

    def autocast():
        if amp_dtype is None:
            return nullcontext()
        return torch.autocast(device.type, dtype=amp_dtype)

    b, t, c, s = args.batch, args.steps, args.channels, args.size
    x = torch.randn(b, t, c, s, s, device=device)
    contenders: list[Contender] = []
    for name in args.cells:
        module = ConvLSTM(c, c, args.kernel, num_layers=args.layers, cell=name).to(device)
        if args.compile:
            module = torch.compile(module)
        contenders.append(make_contender(name, module, x, autocast, name == "convlstm"))
    if args.keras_peer:
        peer = keras_contender(args, device, autocast)
        if peer is not None:
            contenders.append(peer)
    else:
        bare = torch.nn.Conv2d(args.layers * 2 * c, 4 * c, args.kernel, padding="same")
        bare = torch.compile(bare.to(device)) if args.compile else bare.to(device)
        frames = torch.randn(b * t, args.layers * 2 * c, s, s, device=device, requires_grad=True)
        contenders.append(
            make_contender("bare convolution (same FLOPs)", bare, frames, autocast, True)
        )

    for contender in contenders:
        if contender.dense and not args.compile:
            contender.train_gflop = count_gflop(contender.train_step)
        for _ in range(args.warmup):
            contender.forward()
            contender.train_step()
    synchronize(device)
    for _ in range(args.repeats):
        for contender in contenders:
            for fn, times in (
                (contender.forward, contender.fwd_ms),
                (contender.train_step, contender.train_ms),
            ):
                fn()  # untimed: refills the caches the previous contender emptied
                synchronize(device)
                start = time.perf_counter()
                fn()
                synchronize(device)
                times.append((time.perf_counter() - start) * 1e3)

    rows = []
    for contender in contenders:
        fwd, train = statistics.median(contender.fwd_ms), statistics.median(contender.train_ms)
        rate = contender.train_gflop / (train / 1e3) if contender.train_gflop else None
        rows.append(
            {
                "name": contender.name,
                "fwd_ms": fwd,
                "train_ms": train,
                "train_gflop": contender.train_gflop,
                "train_gflops_per_s": rate,
            }
        )
    return {
        "machine": machine_description(device),
        "config": {k: v for k, v in vars(args).items() if k != "json"},
        "rows": rows,
        "ratios": ratios(rows),
    }


def ratios(rows: list[dict]) -> dict[str, float]:
    by_name = {r["name"]: r for r in rows}
    out: dict[str, float] = {}
    std = by_name.get("convlstm")
    keras = next((r for r in rows if r["name"].startswith("keras")), None)
    bare = next((r for r in rows if r["name"].startswith("bare")), None)
    if std and keras:
        out["convlstm_vs_keras_train_speedup"] = keras["train_ms"] / std["train_ms"]
        out["convlstm_vs_keras_fwd_speedup"] = keras["fwd_ms"] / std["fwd_ms"]
    if std and bare and std["train_gflops_per_s"] and bare["train_gflops_per_s"]:
        out["convlstm_share_of_bare_conv_gflops"] = (
            std["train_gflops_per_s"] / bare["train_gflops_per_s"]
        )
    if std:
        for r in rows:
            if r["name"] in cell_names() and r["name"] != "convlstm":
                out[f"{r['name']}_vs_convlstm_train_speedup"] = std["train_ms"] / r["train_ms"]
    return out


TARGETS = {  # ratio key: (minimum, what it means)
    "convlstm_vs_keras_train_speedup": (1.10, "convlstm fwd+bwd vs Keras ConvLSTM2D"),
    "convlstm_share_of_bare_conv_gflops": (0.90, "convlstm fwd+bwd GFLOP/s vs bare conv"),
    "gated_vs_convlstm_train_speedup": (15.0, "gated fwd+bwd vs convlstm"),
}


def report(result: dict) -> str:
    cfg = result["config"]
    lines = [
        f"Machine: {result['machine']}",
        f"Setting: {cfg['layers']}-layer {cfg['channels']}->{cfg['channels']} "
        f"{cfg['kernel']}x{cfg['kernel']}, B={cfg['batch']}, T={cfg['steps']}, "
        f"{cfg['size']}x{cfg['size']}, device {cfg['device']}, amp {cfg['amp']}, "
        f"compile {cfg['compile']}; median of {cfg['repeats']} runs",
        "",
        "| contender | fwd ms | fwd+bwd ms | fwd+bwd GFLOP/s |",
        "|---|---:|---:|---:|",
    ]
    for r in result["rows"]:
        rate = f"{r['train_gflops_per_s']:.0f}" if r["train_gflops_per_s"] else "—"
        lines.append(f"| {r['name']} | {r['fwd_ms']:.1f} | {r['train_ms']:.1f} | {rate} |")
    lines.append("")
    for r in result["rows"]:
        if "convlstm_beside" in r:
            beside = r["convlstm_beside"]
            lines.append(
                f"{r['name']} ran in a process of its own, interleaved with convlstm "
                f"(fwd {beside['fwd_ms']:.1f} ms, fwd+bwd {beside['train_ms']:.1f} ms there); "
                "its ratios are to that convlstm"
            )
            lines.append("")
    for key, value in result["ratios"].items():
        target = TARGETS.get(key)
        verdict = ""
        if target:
            verdict = f"  (target >= {target[0]:g}: {'met' if value >= target[0] else 'MISSED'})"
        lines.append(f"{key}: {value:.3f}{verdict}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--steps", type=int, default=8, help="T")
    p.add_argument("--channels", type=int, default=256, help="C_in = C_out")
    p.add_argument("--size", type=int, default=28, help="H = W")
    p.add_argument("--kernel", type=int, default=3)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--cells", nargs="+", default=cell_names(), choices=cell_names())
    p.add_argument("--repeats", type=int, default=7, help="timed runs (median), at least 5")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", choices=["none", "bf16", "fp16"], default="none")
    p.add_argument("--compile", action="store_true", help="torch.compile our modules")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--no-keras", action="store_true", help="skip the Keras peer")
    p.add_argument(
        "--keras-peer",
        action="store_true",
        help="(internal) time only convlstm and Keras: the process main() starts for the peer",
    )
    p.add_argument("--json", help="also write the results to this JSON file")
    args = p.parse_args(argv)
    if args.repeats < 5:
        p.error("--repeats must be at least 5")
    return args


def merge_keras_peer(result: dict, argv: list[str]) -> None:
    """Time Keras in a process of its own, beside ``convlstm`` again, and add its row and its
    ratios to ``result``. Own process: once Keras has run, the small cells stay about 17 %
    slower for the rest of the process (docs/benchmarks.md), which would skew their ratios."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "keras.json")
        command = [sys.executable, os.path.abspath(__file__), *argv]
        command += ["--cells", "convlstm", "--keras-peer", "--json", out]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0 or not os.path.exists(out):
            print(f"the Keras peer's process failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
            return
        with open(out) as f:
            peer = json.load(f)
    keras = [r for r in peer["rows"] if r["name"].startswith("keras")]
    if not keras:
        print(done.stdout.strip().splitlines()[0])  # why Keras was skipped
        return
    beside = next(r for r in peer["rows"] if r["name"] == "convlstm")
    result["rows"].append({**keras[0], "convlstm_beside": beside})
    result["ratios"].update(ratios([beside, keras[0]]))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    if not args.no_keras and not args.keras_peer:
        merge_keras_peer(result, argv if argv is not None else sys.argv[1:])
    print(report(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
