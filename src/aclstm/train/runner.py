"""From a run configuration to a trained checkpoint, and from a checkpoint back to a model.

The checkpoint's ``meta.json`` holds everything the other commands need to use the network
without the config: its classes, the network's full config, the modality, the mean, the clip
length and size, and the run's config.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from aclstm.config import RunConfig
from aclstm.data.factory import CONTINUOUS, build_dataset, ensure_synthetic_set, modality_mean
from aclstm.models import GestureNet, GestureNetConfig, preset_config

from . import distributed
from .checkpoint import CheckpointError, load_meta, load_weights
from .interrupt import parse_checkpoint_every
from .lock import WorkDirLock
from .loop import TrainSettings, fit, resumable

__all__ = [
    "META_FORMAT",
    "build_model",
    "checkpoint_meta",
    "load_model",
    "model_config",
    "train",
    "train_settings",
]

META_FORMAT = 1


def model_config(config: RunConfig, num_classes: int) -> GestureNetConfig:
    """The network a run config describes: its preset, cell, width and overrides, with as many
    input channels as the data has (the length of its mean: depth 1, or 3 as released)."""
    m = config.model
    channels = len(modality_mean(config.data))
    return preset_config(
        m.preset,
        cell=m.cell,
        width_multiplier=m.width_multiplier,
        **{"num_classes": num_classes, "in_channels": channels, **m.overrides},
    )


def build_model(config: RunConfig, num_classes: int) -> GestureNet:
    """The configured network with a head of ``num_classes``."""
    return GestureNet(model_config(config, num_classes))


def train_settings(config: RunConfig) -> TrainSettings:
    t = config.train
    return TrainSettings(
        epochs=t.epochs,
        batch_size=t.batch_size,
        optimizer=t.optimizer,
        lr=t.lr,
        end_lr=t.end_lr,
        power=t.power,
        momentum=t.momentum,
        weight_decay=t.weight_decay,
        label_smoothing=t.label_smoothing,
        accumulate=t.accumulate,
        amp=t.amp,
        compile=t.compile,
        channels_last=t.channels_last,
        num_workers=config.data.num_workers,
        seed=t.seed,
        skip_nonfinite=t.skip_nonfinite,
        nonfinite_limit=t.nonfinite_limit,
        checkpoint_every=t.checkpoint_every,
    )


def checkpoint_meta(config: RunConfig, model: GestureNet, classes: list[str]) -> dict[str, Any]:
    """What a checkpoint's ``meta.json`` holds for ``model`` built from ``config``."""
    return {
        "format": META_FORMAT,
        "classes": classes,
        "network": model.config.as_dict(),
        "preset": config.model.preset,
        "cell": config.model.cell,
        "modality": config.data.modality,
        "mean": list(modality_mean(config.data)),
        "preprocessing": config.data.preprocessing,
        "center": config.data.center,
        "clip_len": model.config.frames,
        "size": model.config.size,
        "frame_stride": config.data.frame_stride,
        "config": config.as_dict(),
    }


def _init_from(model: GestureNet, checkpoint: str, log) -> None:
    """Start from another run's weights; a head of another size starts afresh (fine-tuning,
    e.g. Jester's 27 classes to IsoGD's 249)."""
    meta = load_meta(checkpoint)
    source = network_config(meta)
    if source.num_classes != model.config.num_classes:
        donor = GestureNet(source)
        load_weights(checkpoint, donor)
        donor.reset_classifier(model.config.num_classes)
        model.load_state_dict(donor.state_dict())
        log(
            f"initialised from {checkpoint} with a new {model.config.num_classes}-way head "
            f"(it had {source.num_classes})"
        )
    else:
        load_weights(checkpoint, model)
        log(f"initialised from {checkpoint}")


def train(
    config: RunConfig,
    work_dir: str | Path,
    resume: bool | str | Path = False,
    progress: bool = True,
    log=print,
    allow_changes: bool = False,
) -> dict[str, Any]:
    """Train as ``config`` says and write the run into ``work_dir`` (which no other run may
    use meanwhile); returns the last epoch's metrics. ``resume=True`` with no checkpoint in
    ``work_dir`` starts afresh. Joins the process group when launched by torchrun."""
    work_dir = Path(work_dir)
    parse_checkpoint_every(config.train.checkpoint_every)  # a bad value stops nothing midway
    device = distributed.device_for_process(config.train.device)
    distributed.init_from_env(device)
    main_process = distributed.rank() == 0
    say = log if main_process else (lambda _: None)
    try:
        with WorkDirLock(work_dir, enabled=main_process):
            distributed.barrier()  # the others wait until rank 0 holds the work dir
            if resume is True and not _resumable_everywhere(work_dir, main_process):
                say(f"no checkpoint in {work_dir / 'last'} to resume from: starting afresh")
                resume = False
            return _train(config, work_dir, resume, progress, say, allow_changes, device)
    finally:
        distributed.shutdown()


def _resumable_everywhere(work_dir: Path, main_process: bool) -> bool:
    """Rank 0 finishes any interrupted checkpoint swap and tells the others what it found."""
    found = resumable(work_dir) if main_process else False
    if distributed.world_size() > 1:
        found = distributed.all_reduce_sum(torch.tensor([float(found)])).item() > 0
    return found


def _train(config, work_dir: Path, resume, progress: bool, say, allow_changes: bool, device):
    """The run itself, with the work dir held (see :func:`train`)."""
    main_process = distributed.rank() == 0
    if config.data.dataset in ("synth", "synth_congd"):
        if main_process:
            ensure_synthetic_set(config.data, log=say)
        distributed.barrier()
    torch.manual_seed(config.train.seed)  # the initial weights
    probe = build_model(config, num_classes=1).config
    frames, size = probe.frames, probe.size
    train_set = build_dataset(config.data, "train", frames, size, seed=config.train.seed)
    val_set = build_dataset(config.data, "val", frames, size)
    if val_set.classes != train_set.classes:
        raise ValueError("the train and val splits name different classes")
    model = build_model(config, num_classes=len(train_set.classes))
    if config.train.init_from and not resume:
        _init_from(model, config.train.init_from, say)
    work_dir.mkdir(parents=True, exist_ok=True)
    if main_process:
        (work_dir / "config.json").write_text(_json(config.as_dict()))
    settings = replace(train_settings(config), progress=progress)
    unit = "windows" if config.data.dataset in CONTINUOUS else "clips"
    say(
        f"training {config.model.preset} ({'+'.join(model.config.cells())}) on "
        f"{len(train_set)} {unit}, validating on {len(val_set)}, {len(train_set.classes)} "
        f"classes, {device}, {distributed.world_size()} process(es)"
    )
    return fit(
        model,
        train_set,
        val_set,
        work_dir,
        settings,
        meta=checkpoint_meta(config, model, train_set.classes),
        resume=resume,
        device=device,
        log=say,
        allow_changes=allow_changes,
    )


def _evaluate_videos(model, config: RunConfig, split: str, meta, predictions: Path) -> dict:
    """Whole videos of a continuous split: gestures found (written as a ConGD list), mean
    Jaccard (2017 and 2014) and Levenshtein accuracy."""
    from aclstm.analysis.continuous import score_videos
    from aclstm.data.congd import write_congd_list
    from aclstm.recognition import recognise_videos

    videos = build_dataset(config.data, split, meta["clip_len"], meta["size"], training=False)
    videos.window, videos.frame_stride = None, 1  # whole videos, every frame
    result = recognise_videos(
        model, videos, config.segment, frame_stride=meta.get("frame_stride", 1)
    )
    write_congd_list(predictions, result["segments"].items())
    scores = result["scores"]
    if scores is None:
        return {"videos": len(result["segments"]), "predictions": str(predictions)}
    truth = result["truth"]
    found = {name: result["segments"][name] for name in truth}
    return {
        "videos": len(scores.videos),
        "mean_jaccard_2017": scores.mean_jaccard,
        "mean_jaccard_2014": score_videos(truth, found, "2014").mean_jaccard,
        "levenshtein_accuracy": scores.levenshtein_accuracy,
        "predictions": str(predictions),
    }


def _json(value) -> str:
    import json

    return json.dumps(value, indent=2) + "\n"


def network_config(meta: dict[str, Any]) -> GestureNetConfig:
    """The network config stored in a checkpoint's meta, with its tuples restored."""
    if "network" not in meta:
        raise CheckpointError("meta.json has no 'network' entry: not an aclstm training run")
    fields = GestureNetConfig.__dataclass_fields__
    unknown = set(meta["network"]) - set(fields)
    if unknown:
        raise CheckpointError(f"meta.json names unknown network fields {sorted(unknown)}")

    def tuples(value):
        return tuple(tuples(v) for v in value) if isinstance(value, list) else value

    return GestureNetConfig(**{k: tuples(v) for k, v in meta["network"].items()})


def load_model(checkpoint: str | Path, device: str | torch.device = "cpu"):
    """``(model, meta)`` of a checkpoint folder, in eval mode on ``device``."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_dir() and checkpoint.name in ("model.safetensors", "meta.json"):
        checkpoint = checkpoint.parent
    meta = load_meta(checkpoint)
    model = GestureNet(network_config(meta))
    load_weights(checkpoint, model)
    return model.to(device).eval(), meta


def evaluate_checkpoint(
    checkpoint: str | Path,
    split: str = "val",
    out: str | Path | None = None,
    data_overrides: list[str] = (),
    batch_size: int = 16,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate a checkpoint on a split of its data set (or the one the overrides name) and
    write ``report.json`` and ``confusion.png`` into ``out`` (default: beside the checkpoint,
    ``evaluate-<split>``). Returns the report."""
    import json

    from aclstm.analysis.report import per_class_accuracy, plot_confusion
    from aclstm.config import apply_overrides, config_from_dict

    from .loop import evaluate

    checkpoint = Path(checkpoint)
    model, meta = load_model(checkpoint)
    config = config_from_dict(
        apply_overrides(meta["config"], list(data_overrides)), f"{checkpoint}/meta.json"
    )
    dataset = build_dataset(config.data, split, meta["clip_len"], meta["size"], training=False)
    if dataset.classes != meta["classes"]:
        raise ValueError(
            f"the {split} data names {len(dataset.classes)} classes, the checkpoint was trained "
            f"on {len(meta['classes'])}: {checkpoint} does not fit this data set"
        )
    result = evaluate(model, dataset, batch_size, config.data.num_workers, progress=progress)
    classes = meta["classes"]
    report = {
        "checkpoint": str(checkpoint),
        "split": split,
        "clips": result["clips"],
        "skipped": result["skipped"],
        "top1": result["top1"],
        "top5": result["top5"],
        "loss": result["loss"],
        "per_class": per_class_accuracy(result["confusion"], classes),
        "classes": classes,
        "confusion": result["confusion"],
    }
    out = Path(out) if out is not None else checkpoint.parent / f"evaluate-{split}"
    out.mkdir(parents=True, exist_ok=True)
    if config.data.dataset in CONTINUOUS:
        report["continuous"] = _evaluate_videos(model, config, split, meta, out / "predictions.txt")
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    title = f"{checkpoint.name}, {split}: top-1 {report['top1']:.3f} over {report['clips']} clips"
    plot_confusion(result["confusion"], classes, out / "confusion.png", title)
    report["out"] = str(out)
    return report
