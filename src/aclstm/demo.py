"""``aclstm demo``: the whole pipeline offline, on the built-in synthetic gesture set.

Generate the set (unless it is there), train the ``synth_demo`` config (the gated cell), evaluate
the last checkpoint on the validation split, check that it reads temporal order (validation
clips played backwards must be predicted as their time-reversed partner class), draw the curves
and the confusion matrix, predict a held-out test clip, and end with ``val_top1=<value>``.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from aclstm.analysis.report import plot_curves, read_metrics
from aclstm.analysis.reversal import time_reversal_check
from aclstm.config import load_config
from aclstm.data.factory import build_dataset
from aclstm.inference import load_input, topk_predictions
from aclstm.train.runner import evaluate_checkpoint, load_model, train

__all__ = ["CONTINUOUS_CONFIG", "DEMO_CONFIG", "run_continuous_demo", "run_demo"]

DEMO_CONFIG = Path(__file__).parent / "configs" / "synth_demo.toml"
CONTINUOUS_CONFIG = Path(__file__).parent / "configs" / "synth_continuous.toml"


def run_demo(work_dir: Path, overrides: list[str] = (), log=print) -> int:
    started = time.perf_counter()
    data_root = work_dir / "data"
    config = load_config(DEMO_CONFIG, [f"data.root={json.dumps(str(data_root))}", *overrides])
    run = work_dir / "run"
    last = train(config, run, log=log)
    train_seconds = time.perf_counter() - started

    report = evaluate_checkpoint(run / "last", "val", out=run, progress=False)
    plot_curves(read_metrics(run / "metrics.jsonl"), run / "curves.png")

    model, meta = load_model(run / "last")
    val = build_dataset(config.data, "val", meta["clip_len"], meta["size"], training=False)
    reversal = time_reversal_check(model, val)
    log(
        f"time reversal: {reversal['clips']} validation clips of {reversal['pairs']} class pairs "
        f"played backwards, {reversal['top1']:.3f} predicted as the reverse gesture, "
        f"{reversal['as_forward']:.3f} as the gesture played forwards"
    )
    clip, label, source = load_input("test:0", meta)
    predictions = topk_predictions(model, clip, meta["classes"], k=3)
    log(f"predict {source} (true class: {meta['classes'][label]}):")
    for p in predictions:
        log(f"  {p['probability']:6.3f}  {p['class']}")

    summary = {
        "val_top1": report["top1"],
        "val_top5": report["top5"],
        "val_clips": report["clips"],
        "time_reversal": reversal,
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


def run_continuous_demo(work_dir: Path, overrides: list[str] = (), log=print) -> int:
    """``aclstm demo --continuous``: generate the synthetic continuous set (unless there),
    train ``synth_continuous``, score it on the validation videos (mean Jaccard, Levenshtein),
    then stream one validation video through it as ``aclstm stream`` would: each gesture
    printed as it is found, the timeline drawn, and that video's Jaccard index."""
    from aclstm.analysis.continuous import jaccard_index
    from aclstm.analysis.segmentation import segmenter_settings
    from aclstm.analysis.timeline import save_stream_timeline
    from aclstm.live import GestureStream, open_source, run_stream

    started = time.perf_counter()
    config = load_config(
        CONTINUOUS_CONFIG, [f"data.root={json.dumps(str(work_dir / 'data'))}", *overrides]
    )
    run = work_dir / "run"
    train(config, run, log=log)
    report = evaluate_checkpoint(run / "last", "val", out=run, progress=False)
    scores = report["continuous"]
    log(
        f"validation videos: mean Jaccard {scores['mean_jaccard_2017']:.3f} (2017), "
        f"{scores['mean_jaccard_2014']:.3f} (2014), Levenshtein accuracy "
        f"{scores['levenshtein_accuracy']:.3f}"
    )

    model, meta = load_model(run / "last")
    videos = build_dataset(config.data, "val", meta["clip_len"], meta["size"], training=False)
    video = videos.videos[0]
    source = open_source(str(video.source), min_side=meta["size"])
    stream = GestureStream(model, meta, source.fps, segmenter_settings(meta))
    log(f"streaming {video.entry.video} ({source.fps:g} fps):")
    summary = run_stream(source, stream, report=lambda found: log(f"  {found.line()}"))
    truth = video.entry.segments
    found = [f.segment() for f in summary.found]
    log("  truth: " + "  ".join(_describe(s, meta["classes"], source.fps) for s in truth))
    timeline = save_stream_timeline(
        run / "timeline.png", np.array(stream.probabilities),
        [replace(f.segment(), label=f.gesture.label) for f in summary.found], meta["classes"],
        source.fps, truth, title=video.entry.video,
        frames_per_step=stream.segmenter.frames_per_step,
    )  # fmt: skip
    video_jaccard = jaccard_index(truth, found)
    log(
        f"{len(found)} gestures found, {len(truth)} true; Jaccard index of this video "
        f"{video_jaccard:.3f}; timeline {timeline} ({(time.perf_counter() - started) / 60:.1f} "
        "min in all)"
    )
    print(f"mean_jaccard={scores['mean_jaccard_2017']:.4f}")
    return 0


def _describe(segment, classes: list[str], fps: float) -> str:
    from aclstm.live import format_time

    return (
        f"{format_time((segment.start - 1) / fps)}-{format_time(segment.end / fps)} "
        f"{classes[segment.label]}"
    )
