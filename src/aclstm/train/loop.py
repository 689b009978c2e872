"""The training loop: SGD with the paper's polynomial decay, validation every epoch, atomic
best/last checkpoints, a JSONL metrics file, and a resume that continues bit for bit."""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from aclstm.data import collate_skipping
from aclstm.models import weight_decay_param_groups

from .checkpoint import load_training_state, load_weights, save_checkpoint
from .schedule import poly_lr

__all__ = ["TrainSettings", "evaluate", "fit"]


@dataclass
class TrainSettings:
    """The recipe (DESIGN.md §4 by default: SGD 0.9, lr 1e-3 -> 1e-6, power 0.9, wd 1e-4)."""

    epochs: int = 30
    batch_size: int = 16
    lr: float = 1e-3
    end_lr: float = 1e-6
    power: float = 0.9
    momentum: float = 0.9
    weight_decay: float = 1e-4  # = Keras l2(5e-5) on kernels
    accumulate: int = 1  # micro-batches per optimiser step
    amp: str | None = None  # "bf16" or "fp16" (CUDA)
    num_workers: int = 0
    seed: int = 0


def _autocast(device: torch.device, amp: str | None):
    if amp is None:
        return nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    return torch.autocast(device.type, dtype=dtype)


@torch.no_grad()
def evaluate(
    model,
    dataset,
    batch_size: int = 16,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
    amp: str | None = None,
) -> dict[str, Any]:
    """Top-1 and top-5 accuracy, mean loss and the skipped-clip count over ``dataset``."""
    device = torch.device(device)
    model.eval()
    loader = DataLoader(dataset, batch_size, num_workers=num_workers, collate_fn=collate_skipping)
    correct1 = correct5 = seen = skipped = 0
    loss_sum = 0.0
    for batch in loader:
        skipped += batch.skipped
        if not len(batch.labels):
            continue
        clips, labels = batch.clips.to(device), batch.labels.to(device)
        with _autocast(device, amp):
            logits = model(clips).float()
        loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        correct1 += (top[:, 0] == labels).sum().item()
        correct5 += (top == labels[:, None]).any(dim=1).sum().item()
        seen += len(labels)
    denominator = max(seen, 1)
    return {
        "top1": correct1 / denominator,
        "top5": correct5 / denominator,
        "loss": loss_sum / denominator,
        "clips": seen,
        "skipped": skipped,
    }


def _rng_state(train_set, sampler_generator: torch.Generator) -> dict[str, Any]:
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "sampler": sampler_generator.get_state(),
    }
    if hasattr(train_set, "rng"):
        state["dataset"] = train_set.rng().getstate()
    return state


def _restore_rng(state: dict[str, Any], train_set, sampler_generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_as_tuple(state["python"]))
    sampler_generator.set_state(state["sampler"])
    if "dataset" in state and hasattr(train_set, "rng"):
        train_set.rng().setstate(_as_tuple(state["dataset"]))


def _as_tuple(value):
    """random.setstate wants tuples all the way down; a round trip may give lists."""
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def fit(
    model: torch.nn.Module,
    train_set,
    val_set,
    work_dir: str | Path,
    settings: TrainSettings,
    meta: dict[str, Any] | None = None,
    resume: bool = False,
    device: torch.device | str = "cpu",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train ``model`` and return the last epoch's metrics.

    Writes ``work_dir/last`` (weights, meta and training state, every epoch),
    ``work_dir/best`` (the best validation top-1) and ``work_dir/metrics.jsonl``. With
    ``resume`` it continues from ``work_dir/last``: weights, optimiser, step, epoch and every
    random stream, so the run ends with the same weights as one never interrupted.
    """
    work_dir = Path(work_dir)
    device = torch.device(device)
    s = settings
    torch.manual_seed(s.seed)
    random.seed(s.seed)
    sampler_generator = torch.Generator().manual_seed(s.seed)
    loader = DataLoader(
        train_set,
        s.batch_size,
        shuffle=True,
        drop_last=True,
        generator=sampler_generator,
        num_workers=s.num_workers,
        collate_fn=collate_skipping,
        persistent_workers=s.num_workers > 0,
    )
    steps_per_epoch = len(loader) // s.accumulate
    if steps_per_epoch == 0:
        raise ValueError(
            f"{len(train_set)} training clips make no step of batch "
            f"{s.batch_size} x {s.accumulate} accumulation"
        )
    total_steps = s.epochs * steps_per_epoch
    model.to(device)
    optimizer = torch.optim.SGD(
        weight_decay_param_groups(model, s.weight_decay), lr=s.lr, momentum=s.momentum
    )
    scaler = torch.amp.GradScaler(device.type, enabled=s.amp == "fp16")
    meta = {**(meta or {}), "settings": asdict(s)}
    step, start_epoch, best_top1 = 0, 0, -1.0
    if resume:
        last = work_dir / "last"
        load_weights(last, model)
        state = load_training_state(last)
        optimizer.load_state_dict(state["optimizer"])
        step, start_epoch, best_top1 = state["step"], state["epoch"], state["best_top1"]
        _restore_rng(state["rng"], train_set, sampler_generator)
        log(f"resumed from {last} at epoch {start_epoch}, step {step}")

    metrics: dict[str, Any] = {}
    for epoch in range(start_epoch, s.epochs):
        model.train()
        started = time.perf_counter()
        loss_sum = correct = seen = skipped = 0
        for micro, batch in enumerate(loader):
            skipped += batch.skipped
            if not len(batch.labels):
                continue
            clips, labels = batch.clips.to(device), batch.labels.to(device)
            with _autocast(device, s.amp):
                logits = model(clips)
                loss = F.cross_entropy(logits.float(), labels)
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                raise FloatingPointError(
                    f"non-finite loss {loss_value} at epoch {epoch}, step {step}; the last "
                    f"good checkpoint is {work_dir / 'last'}"
                )
            scaler.scale(loss / s.accumulate).backward()
            loss_sum += loss_value * len(labels)
            correct += (logits.argmax(1) == labels).sum().item()
            seen += len(labels)
            if (micro + 1) % s.accumulate == 0:
                for group in optimizer.param_groups:
                    group["lr"] = poly_lr(step, total_steps, s.lr, s.end_lr, s.power)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                step += 1
        elapsed = time.perf_counter() - started
        val = evaluate(model, val_set, s.batch_size, s.num_workers, device, s.amp)
        metrics = {
            "epoch": epoch + 1,
            "step": step,
            "lr": poly_lr(step, total_steps, s.lr, s.end_lr, s.power),
            "train_loss": loss_sum / max(seen, 1),
            "train_top1": correct / max(seen, 1),
            "train_clips_per_s": seen / elapsed,
            "train_skipped": skipped,
            "val_top1": val["top1"],
            "val_top5": val["top5"],
            "val_loss": val["loss"],
            "val_skipped": val["skipped"],
        }
        best_top1 = max(best_top1, val["top1"])
        state = {
            "optimizer": optimizer.state_dict(),
            "step": step,
            "epoch": epoch + 1,
            "best_top1": best_top1,
            "rng": _rng_state(train_set, sampler_generator),
        }
        save_checkpoint(work_dir / "last", model, {**meta, "metrics": metrics}, state)
        if val["top1"] >= best_top1:
            save_checkpoint(work_dir / "best", model, {**meta, "metrics": metrics})
        with open(work_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(metrics) + "\n")
        note = f", skipped {skipped} unreadable clips" if skipped else ""
        log(
            f"epoch {epoch + 1}/{s.epochs}: loss {metrics['train_loss']:.3f}, "
            f"train top-1 {metrics['train_top1']:.3f}, val top-1 {val['top1']:.3f}, "
            f"{metrics['train_clips_per_s']:.1f} clips/s{note}"
        )
    return metrics
