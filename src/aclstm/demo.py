"""``aclstm demo``: the whole pipeline offline, on the built-in synthetic gesture set.

Generate the set (unless it is there), train the ``synth_demo`` config (the gated cell), evaluate
the last checkpoint on the validation split, draw the curves and the confusion matrix, predict
a held-out test clip, and end with ``val_top1=<value>``.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from aclstm.analysis.report import plot_curves, read_metrics
from aclstm.config import RunConfig, load_config
from aclstm.inference import load_input, topk_predictions
from aclstm.train.loop import cpu_has_native_bf16
from aclstm.train.runner import evaluate_checkpoint, load_model, train

__all__ = ["DEMO_CONFIG", "demo_config", "run_demo"]

DEMO_CONFIG = Path(__file__).parent / "configs" / "synth_demo.toml"


def demo_config(work_dir: Path, overrides: list[str] = (), log=print) -> RunConfig:
    """The demo's config with its data under ``work_dir``. Its bf16 is there for speed alone:
    on a CPU that would emulate bf16 (slower than fp32) the demo trains in fp32, unless
    ``overrides`` set ``train.amp`` themselves."""
    data_root = work_dir / "data"
    config = load_config(DEMO_CONFIG, [f"data.root={json.dumps(str(data_root))}", *overrides])
    chosen = any(o.strip().startswith("train.amp") for o in overrides)
    cpu_only = not torch.cuda.is_available()
    if config.train.amp == "bf16" and not chosen and cpu_only and not cpu_has_native_bf16():
        log("this CPU has no native bf16: the demo trains in fp32 (about 1.25x slower)")
        config = replace(config, train=replace(config.train, amp=None))
    return config


def run_demo(work_dir: Path, overrides: list[str] = (), log=print) -> int:
    started = time.perf_counter()
    config = demo_config(work_dir, overrides, log)
    run = work_dir / "run"
    last = train(config, run, log=log)
    train_seconds = time.perf_counter() - started

    report = evaluate_checkpoint(run / "last", "val", out=run, progress=False)
    plot_curves(read_metrics(run / "metrics.jsonl"), run / "curves.png")

    model, meta = load_model(run / "last")
    clip, label, source = load_input("test:0", meta)
    predictions = topk_predictions(model, clip, meta["classes"], k=3)
    log(f"predict {source} (true class: {meta['classes'][label]}):")
    for p in predictions:
        log(f"  {p['probability']:6.3f}  {p['class']}")

    summary = {
        "val_top1": report["top1"],
        "val_top5": report["top5"],
        "val_clips": report["clips"],
        "train_top1": last["train_top1"],
        "epochs": last["epoch"],
        "seconds": time.perf_counter() - started,
        "seconds_to_train": train_seconds,
        "checkpoint": str(run / "last"),
        "prediction": {"input": source, "label": meta["classes"][label], "top": predictions},
    }
    (run / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    log(
        f"run folder {run}: metrics.json, curves.png, confusion.png, report.json, last/, best/ "
        f"({summary['seconds'] / 60:.1f} min in all)"
    )
    print(f"val_top1={report['top1']:.4f}")
    return 0
