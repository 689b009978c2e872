"""The training loop: SGD with the paper's polynomial decay, validation every epoch, atomic
best/last checkpoints, JSONL and TensorBoard logs, a progress bar, and a resume that continues
bit for bit. A non-finite loss stops the run, or, with ``skip_nonfinite``, skips the batch and
is counted. Under ``torchrun`` it runs data-parallel (see :mod:`aclstm.train.distributed`)."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from aclstm.data import collate_skipping
from aclstm.data.congd import IGNORE
from aclstm.models import FRAMES_PER_STEP, lookahead_of, weight_decay_param_groups

from . import distributed
from .checkpoint import (
    atomic_write,
    load_meta,
    load_training_state,
    load_weights,
    readable_folder,
    recover_checkpoint,
    save_checkpoint,
)
from .interrupt import CheckpointSchedule, StopRequest, TrainingInterrupted
from .sampler import StepBatchSampler
from .schedule import poly_lr

__all__ = [
    "NonFiniteGuard",
    "TrainSettings",
    "check_finite_weights",
    "cpu_has_native_bf16",
    "evaluate",
    "fit",
    "outputs_and_targets",
    "repair_metrics",
    "resolve_amp",
]


@dataclass
class TrainSettings:
    """The recipe (DESIGN.md §4 by default: SGD 0.9, lr 1e-3 -> 1e-6, power 0.9, wd 1e-4)."""

    epochs: int = 30
    batch_size: int = 16  # clips per optimiser step, over all processes and micro-batches
    optimizer: str = "sgd"  # the paper's; "adamw" (betas 0.9, 0.999) learns short runs faster
    lr: float = 1e-3
    end_lr: float = 1e-6
    power: float = 0.9
    momentum: float = 0.9
    weight_decay: float = 1e-4  # = Keras l2(5e-5) on kernels
    label_smoothing: float = 0.0  # of the training loss (0: the paper's plain cross-entropy)
    accumulate: int = 1  # micro-batches per optimiser step (per process)
    amp: str | None = None  # "bf16" (CPU or CUDA) or "fp16" (CUDA); see resolve_amp for "auto"
    compile: bool = False
    channels_last: bool = False
    num_workers: int = 0
    seed: int = 0
    progress: bool = True  # a progress bar on stderr (rank 0)
    tensorboard: bool = True  # TensorBoard event files in work_dir/tensorboard (rank 0)
    skip_nonfinite: bool = False  # a non-finite loss skips its batch (counted) instead of stopping
    nonfinite_limit: int = 10  # with skip_nonfinite: stop anyway after this many in a row
    checkpoint_every: int | str | None = None  # also inside epochs: N steps, or "10min", "30s"


# Settings that do not change what a run computes: a resumed run may differ in these freely.
RESUME_FREE = ("progress", "tensorboard", "num_workers", "checkpoint_every")


# oneDNN's ISA names from the first with native bf16 on (ONEDNN_MAX_CPU_ISA's values).
_ONEDNN_BF16_ISAS = ("AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX10")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (AVX512-BF16 or AMX). Only there does bf16
    autocast train faster than fp32 (1.2-1.3x for the tiny network on 2 cores); elsewhere
    oneDNN emulates bf16, slower than fp32."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return cpu_kernels_may_use_bf16() and any(
        getattr(torch.cpu, name, lambda: False)() for name in checks
    )


def cpu_kernels_may_use_bf16() -> bool:
    """Whether torch's CPU kernels may use AVX-512 with bf16: not where ``ATEN_CPU_CAPABILITY``
    or ``ONEDNN_MAX_CPU_ISA`` caps them lower (how an AVX-512 machine stands in for an AVX2
    one)."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL").upper()
    if cap != "ALL" and not cap.startswith(_ONEDNN_BF16_ISAS):
        return False
    return torch.backends.cpu.get_cpu_capability().startswith("AVX512")


def resolve_amp(amp: str | None, device: torch.device) -> str | None:
    """``amp = "auto"``: bf16 where it is fast on ``device`` (a CUDA GPU with bf16, a CPU with
    native bf16), else None (fp32); any other value is returned as it is."""
    if amp != "auto":
        return amp
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else None
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else None


def autocast(device: torch.device, amp: str | None):
    """The autocast context for ``amp`` ("bf16", "fp16" or None)."""
    if amp is None:
        return nullcontext()
    if amp not in ("bf16", "fp16"):
        raise ValueError(f"amp must be 'bf16' or 'fp16', got {amp!r}")
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("amp='fp16' needs a CUDA device; use 'bf16' on the CPU")
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def _to_device(clips: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    clips = clips.to(device, non_blocking=True)
    layout = torch.channels_last_3d if channels_last else torch.contiguous_format
    return clips.contiguous(memory_format=layout)


def outputs_and_targets(net, clips: torch.Tensor, labels: torch.Tensor, lookahead: int = 0):
    """Logits (N, classes) and their targets (N,): a clip's logits and label, or, for
    per-frame labels (B, T) (continuous videos), the logits of every ConvLSTM step with the
    label of the frame step t - ``lookahead`` ends on (frame 2(t - lookahead)); targets IGNORE
    (-1) are left out (the first ``lookahead`` steps name no step of the window)."""
    if labels.dim() == 1:
        return net(clips), labels
    logits = net(clips, per_step=True)  # (B, T', classes)
    targets = labels[:, ::FRAMES_PER_STEP][:, : logits.shape[1]]
    if lookahead:
        named = targets[:, : max(targets.shape[1] - lookahead, 0)]
        targets = F.pad(named, (targets.shape[1] - named.shape[1], 0), value=IGNORE)
    return logits.flatten(0, 1), targets.flatten()


@torch.no_grad()
def evaluate(
    model,
    dataset,
    batch_size: int = 16,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
    amp: str | None = None,
    channels_last: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Top-1 and top-5 accuracy, mean loss, the confusion matrix (rows: true class) and the
    skipped-clip count over ``dataset`` (of its clips, or of every step of its windows for
    per-frame labels, the ignored ones left out). Under torchrun each process reads its share
    and the sums are combined, so every process returns the whole data set's figures."""
    device = torch.device(device)
    world, rank = distributed.world_size(), distributed.rank()
    model.eval()
    shard = torch.utils.data.Subset(dataset, range(rank, len(dataset), world))
    loader = DataLoader(shard, batch_size, num_workers=num_workers, collate_fn=collate_skipping)
    num_classes = len(dataset.classes) if hasattr(dataset, "classes") else None
    confusion = None
    sums = torch.zeros(5, dtype=torch.float64)  # top1, top5, loss, seen, skipped
    bar = tqdm(loader, desc="evaluate", leave=False, disable=not progress or rank != 0)
    for batch in bar:
        sums[4] += batch.skipped
        if not len(batch.labels):
            continue
        clips, labels = _to_device(batch.clips, device, channels_last), batch.labels.to(device)
        with autocast(device, amp):
            logits, labels = outputs_and_targets(model, clips, labels, lookahead_of(model))
        known = labels != IGNORE
        logits, labels = logits[known].float(), labels[known]
        if confusion is None:
            rows = num_classes or logits.shape[1]
            confusion = torch.zeros(rows, logits.shape[1], dtype=torch.long)
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        sums[0] += (top[:, 0] == labels).sum().item()
        sums[1] += (top == labels[:, None]).any(dim=1).sum().item()
        sums[2] += F.cross_entropy(logits, labels, reduction="sum").item()
        sums[3] += len(labels)
        pairs = labels.cpu() * confusion.shape[1] + top[:, 0].cpu()
        confusion += torch.bincount(pairs, minlength=confusion.numel()).view_as(confusion)
    if confusion is None:
        confusion = torch.zeros(num_classes or 0, num_classes or 0, dtype=torch.long)
    sums = distributed.all_reduce_sum(sums)
    confusion = distributed.all_reduce_sum(confusion)
    seen = max(sums[3].item(), 1)
    return {
        "top1": sums[0].item() / seen,
        "top5": sums[1].item() / seen,
        "loss": sums[2].item() / seen,
        "clips": int(sums[3].item()),
        "skipped": int(sums[4].item()),
        "confusion": confusion.tolist(),
    }


def _rng_state() -> dict[str, Any]:
    """The global streams; a seeded data set's draws follow from (seed, epoch, index)."""
    return {"torch": torch.get_rng_state(), "python": random.getstate()}


def _restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_as_tuple(state["python"]))


def _as_tuple(value):
    """random.setstate wants tuples all the way down; a round trip may give lists."""
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def _micro_batch(s: TrainSettings, world: int) -> int:
    per_step = world * s.accumulate
    if s.batch_size % per_step:
        raise ValueError(
            f"batch_size {s.batch_size} does not split into {world} process(es) x "
            f"{s.accumulate} accumulation step(s)"
        )
    return s.batch_size // per_step


def make_optimizer(model: torch.nn.Module, s: TrainSettings) -> torch.optim.Optimizer:
    """SGD with momentum (the paper) or AdamW, weight decay on kernels only."""
    groups = weight_decay_param_groups(model, s.weight_decay)
    if s.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=s.lr, momentum=s.momentum)
    if s.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=s.lr)
    raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {s.optimizer!r}")


def _skip_note(metrics: dict[str, Any]) -> str:
    """``, skipped 3 train + 1 val unreadable clips, 2 batches with a non-finite loss`` (or
    nothing) for the end-of-epoch line."""
    note = ""
    if metrics["train_skipped"] or metrics["val_skipped"]:
        note += (
            f", skipped {metrics['train_skipped']} train + {metrics['val_skipped']} val "
            "unreadable clips"
        )
    if metrics["train_nonfinite"]:
        count = metrics["train_nonfinite"]
        note += f", skipped {count} batch{'es' if count != 1 else ''} with a non-finite loss"
    return note


def _tensorboard(work_dir: Path, enabled: bool):
    if not enabled:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(work_dir / "tensorboard"))


class NonFiniteGuard:
    """What a non-finite loss does: stop the run (the default), or with ``skip`` skip its
    batch, until more than ``limit`` batches in a row were non-finite. Under torchrun the
    processes agree first (one process's NaN skips the batch everywhere), so none hangs."""

    def __init__(self, skip: bool, limit: int, last: Path) -> None:
        if limit < 0:
            raise ValueError(f"train.nonfinite_limit must be >= 0, got {limit}")
        self.skip, self.limit, self.last = skip, limit, last
        self.in_a_row = 0

    def skips(self, loss_value: float, epoch: int, step: int) -> bool:
        """True: leave this batch out. Raises FloatingPointError when the run must stop."""
        bad = not math.isfinite(loss_value)
        if distributed.world_size() > 1:
            bad = distributed.all_reduce_sum(torch.tensor([float(bad)])).item() > 0
        if not bad:
            self.in_a_row = 0
            return False
        self.in_a_row += 1
        where = f"at epoch {epoch + 1}, step {step}; {last_good(self.last)}"
        if not self.skip:
            raise FloatingPointError(
                f"non-finite loss {loss_value} {where} (train.skip_nonfinite = true skips such "
                "batches instead)"
            )
        if self.in_a_row > self.limit:
            raise FloatingPointError(
                f"{self.in_a_row} batches in a row had a non-finite loss (more than "
                f"train.nonfinite_limit = {self.limit}) {where}"
            )
        return True


def last_good(last: Path) -> str:
    """Where the run's last good checkpoint is, for the message that stops the run."""
    if readable_folder(last).is_dir():
        return f"the last good checkpoint is {last}"
    return f"no checkpoint was written yet ({last})"


def _copy_buffers(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The BatchNorm statistics (every buffer) before a forward pass that may be skipped."""
    return {name: b.detach().clone() for name, b in model.named_buffers()}


@torch.no_grad()
def _restore_buffers(model: torch.nn.Module, saved: dict[str, torch.Tensor]) -> None:
    """Put back the buffers :func:`_copy_buffers` took, undoing a skipped batch's forward."""
    for name, b in model.named_buffers():
        b.copy_(saved[name])


def check_finite_weights(model: torch.nn.Module, epoch: int, last: Path) -> None:
    """Refuse to checkpoint weights that went non-finite (a step can turn them so with a
    finite loss), so ``last`` keeps the last good ones."""
    bad = [
        name
        for name, value in model.state_dict().items()
        if value.is_floating_point() and not torch.isfinite(value).all()
    ]
    if bad:
        raise FloatingPointError(
            f"non-finite weights after epoch {epoch + 1} ({len(bad)} tensors, e.g. {bad[0]}); "
            f"not saved: {last_good(last)}"
        )


def repair_metrics(path: Path, epoch: int, last_metrics: dict[str, Any] | None) -> None:
    """Make ``metrics.jsonl`` hold one record per epoch up to ``epoch`` (the checkpoint's)
    before a resumed run appends to it: a kill can land between a checkpoint and its record,
    mid-record, or after records of epochs whose checkpoint is gone. The checkpoint's own
    record (kept in its meta.json) fills a gap."""
    kept: dict[int, dict[str, Any]] = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a record cut short by a kill
        number = record.get("epoch") if isinstance(record, dict) else None
        if isinstance(number, int) and number <= epoch:
            kept[number] = record
    if last_metrics is not None and last_metrics.get("epoch") == epoch:
        kept[epoch] = last_metrics
    text = "".join(json.dumps(kept[k]) + "\n" for k in sorted(kept))
    atomic_write(path, lambda tmp: tmp.write_text(text))


@dataclass
class Resumed:
    """Where a resumed run starts: after ``step`` optimiser steps, in epoch ``epoch``
    (0-based) with its first ``batches`` micro-batches done and their ``totals``."""

    step: int
    epoch: int
    batches: int
    totals: list[float] | None
    best_top1: float
    rng: dict[str, Any]
    metrics: dict[str, Any] | None  # the last whole epoch's
    folder: Path


def resumable(work_dir: str | Path) -> bool:
    """Whether ``work_dir/last`` holds a checkpoint to resume from, once any checkpoint swap a
    kill interrupted is finished (a run killed in its first epoch, before its first
    checkpoint, has none)."""
    last = Path(work_dir) / "last"
    recover_checkpoint(last)
    return (readable_folder(last) / "state.pt").is_file()


def setting_changes(meta: dict[str, Any], settings: TrainSettings) -> list[str]:
    """The training settings that differ from those a checkpoint was trained with, as
    ``"lr: 0.001 -> 0.002"`` (those in :data:`RESUME_FREE` left out)."""
    before = meta.get("settings", {})
    now = asdict(settings)
    return [
        f"{key}: {before[key]!r} -> {now[key]!r}"
        for key in now
        if key in before and key not in RESUME_FREE and before[key] != now[key]
    ]


def _resume(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    work_dir: Path,
    resume: bool | str | Path,
    main_process: bool,
) -> Resumed:
    """Load weights, optimiser and random streams of the checkpoint to resume from, after
    finishing any checkpoint swap a kill interrupted."""
    last = work_dir / "last" if resume is True else Path(resume)
    if main_process and resume is True:  # the run's own folder; another run's is only read
        recover_checkpoint(last)
    distributed.barrier()
    load_weights(last, model)
    state = load_training_state(last)
    optimizer.load_state_dict(state["optimizer"])
    metrics = load_meta(last).get("metrics")
    if main_process:
        repair_metrics(work_dir / "metrics.jsonl", state["epoch"], metrics)
    return Resumed(
        state["step"], state["epoch"], state.get("batches", 0), state.get("totals"),
        state["best_top1"], state["rng"], metrics, last,
    )  # fmt: skip


def _write_last(
    work_dir: Path, model, optimizer, meta: dict[str, Any], position: dict[str, Any]
) -> None:
    """``work_dir/last``: weights, meta (with the last whole epoch's metrics) and the training
    state at ``position`` (step, epoch, batches, totals, best_top1), the random streams now."""
    state = {"optimizer": optimizer.state_dict(), **position, "rng": _rng_state()}
    save_checkpoint(work_dir / "last", model, meta, state)


def _save_within_epoch(work_dir: Path, model, optimizer, meta, position) -> None:
    """A checkpoint of ``last/`` between two steps (rank 0 writes, all wait)."""
    check_finite_weights(model, position["epoch"], work_dir / "last")
    if distributed.rank() == 0:
        _write_last(work_dir, model, optimizer, meta, position)
    distributed.barrier()


def _epoch_metrics(epoch: int, step: int, lr: float, totals, val, elapsed: float) -> dict:
    """The epoch's record (``metrics.jsonl``) from its summed training figures and validation."""
    seen = max(totals[2].item(), 1)
    return {
        "epoch": epoch + 1,
        "step": step,
        "lr": lr,
        "train_loss": totals[0].item() / seen,
        "train_top1": totals[1].item() / seen,
        "train_clips_per_s": totals[5].item() / elapsed,
        "train_skipped": int(totals[3].item()),
        "train_nonfinite": int(totals[4].item()),
        "val_top1": val["top1"],
        "val_top5": val["top5"],
        "val_loss": val["loss"],
        "val_skipped": val["skipped"],
        "epoch_seconds": elapsed,
    }


def _save_epoch(work_dir: Path, model, optimizer, meta, metrics, position, board) -> None:
    """The end of an epoch on rank 0: ``best/`` if it is the best so far, ``last/``, the
    record in ``metrics.jsonl`` and TensorBoard. ``best/`` comes before ``last/``: a kill
    between them resumes from the epoch before, which repeats this one exactly and writes the
    same ``best/`` again."""
    meta = {**meta, "metrics": metrics}
    if metrics["val_top1"] >= position["best_top1"]:
        save_checkpoint(work_dir / "best", model, meta)
    _write_last(work_dir, model, optimizer, meta, position)
    with open(work_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps(metrics) + "\n")
    if board is not None:
        for key in ("train_loss", "train_top1", "val_loss", "val_top1", "val_top5"):
            board.add_scalar(key.replace("_", "/", 1), metrics[key], metrics["epoch"])
        board.flush()


def _epoch_line(metrics: dict) -> str:
    return (
        f"loss {metrics['train_loss']:.3f}, train top-1 {metrics['train_top1']:.3f}, val top-1 "
        f"{metrics['val_top1']:.3f}, {metrics['train_clips_per_s']:.1f} clips/s, "
        f"{metrics['epoch_seconds']:.0f} s{_skip_note(metrics)}"
    )


def _resume_command() -> str:
    import shlex

    args = sys.argv[1:]
    return shlex.join(["aclstm", *args, *([] if "--resume" in args else ["--resume"])])


def _check_changes(folder: Path, s: TrainSettings, allow: bool, log) -> None:
    changes = setting_changes(load_meta(folder), s)
    if changes and not allow:
        raise ValueError(
            f"{folder} was trained with other settings ({'; '.join(changes)}): resumed so, the "
            "run would not be the one it was; resume with --allow-changes to go on with the "
            "new settings"
        )
    if changes:
        log(f"resuming with changed settings: {'; '.join(changes)}")


def _agree(signum: int | None, due: bool) -> tuple[int | None, bool]:
    """The signal any process was stopped by (SIGTERM before SIGINT), and whether any finds a
    checkpoint due: all processes act on the same step."""
    if distributed.world_size() == 1:
        return signum, due
    flags = torch.tensor([signum == signal.SIGTERM, signum == signal.SIGINT, due], dtype=float)
    term, interrupt, due = (distributed.all_reduce_sum(flags) > 0).tolist()
    return signal.SIGTERM if term else signal.SIGINT if interrupt else None, due


def _interrupted(stop: StopRequest, epoch: int, epochs: int, step: int, work_dir: Path, board):
    """End the run on the signal ``stop`` caught, its checkpoint written."""
    stop.__exit__()
    if board is not None:
        board.close()
    signum = stop.signum
    name = signal.Signals(signum).name
    raise TrainingInterrupted(
        signum,
        f"{name}: stopped after step {step} (epoch {min(epoch + 1, epochs)}/{epochs}); "
        f"checkpoint {work_dir / 'last'}; resume with: {_resume_command()}",
    )


def fit(
    model: torch.nn.Module,
    train_set,
    val_set,
    work_dir: str | Path,
    settings: TrainSettings,
    meta: dict[str, Any] | None = None,
    resume: bool | str | Path = False,
    device: torch.device | str = "cpu",
    log: Callable[[str], None] = print,
    allow_changes: bool = False,
) -> dict[str, Any]:
    """Train ``model`` and return the last epoch's metrics.

    Writes ``work_dir/last`` (weights, meta and training state, every epoch),
    ``work_dir/best`` (the best validation top-1), ``work_dir/metrics.jsonl`` and TensorBoard
    files. With ``resume`` it continues from ``work_dir/last``: weights, optimiser, step,
    epoch and every random stream, so the run ends with the same weights as one never
    interrupted, even one killed at any point (``resume`` may also name another checkpoint
    folder holding a training state); a checkpoint trained with other settings is refused
    unless ``allow_changes``. ``settings.checkpoint_every`` adds checkpoints inside epochs;
    SIGINT or SIGTERM stops the run after the step under way with a checkpoint written
    (:class:`TrainingInterrupted`). Under torchrun only rank 0 writes and logs.
    """
    work_dir = Path(work_dir)
    device = torch.device(device)
    s = settings
    world, rank = distributed.world_size(), distributed.rank()
    main_process = rank == 0
    torch.manual_seed(s.seed)
    random.seed(s.seed)
    sampler = StepBatchSampler(
        len(train_set), _micro_batch(s, world), s.accumulate, world, rank, s.seed
    )
    if sampler.steps_per_epoch == 0:
        raise ValueError(
            f"{len(train_set)} training clips make no step of {s.batch_size} clips; "
            "lower batch_size"
        )
    loader = DataLoader(
        train_set,
        batch_sampler=sampler,
        num_workers=s.num_workers,
        collate_fn=collate_skipping,
        pin_memory=device.type == "cuda",
    )
    total_steps = s.epochs * sampler.steps_per_epoch
    model.to(device)
    if s.channels_last and world > 1:
        # Measured: 2 gloo processes with channels_last weights drift ~1 % from the 1-process
        # run in 4 steps (contiguous weights agree to 1e-5); not used under DDP until explained.
        log("channels_last is off under torchrun (DDP with channels_last weights disagreed)")
        s = replace(s, channels_last=False)
    if s.channels_last:
        model.to_channels_last()
    if s.amp == "auto":
        s = replace(s, amp=resolve_amp(s.amp, device))
        log(f"amp = auto: {s.amp or 'fp32'} on this {device.type}")
    elif device.type == "cpu" and s.amp == "bf16" and not cpu_has_native_bf16():
        log("note: this CPU has no native bf16 instructions: bf16 autocast may be slower here")
    optimizer = make_optimizer(model, s)
    scaler = torch.amp.GradScaler(device.type, enabled=s.amp == "fp16")
    meta = {**(meta or {}), "settings": asdict(s)}
    step, start_epoch, best_top1 = 0, 0, -1.0
    metrics: dict[str, Any] = {}
    resumed = None
    if resume:
        resumed = _resume(model, optimizer, work_dir, resume, main_process)
        _check_changes(resumed.folder, s, allow_changes, log)
        step, start_epoch, best_top1 = resumed.step, resumed.epoch, resumed.best_top1
        metrics = resumed.metrics or {}
        if not resumed.batches:  # else once the epoch's data loader has drawn its seed
            _restore_rng(resumed.rng)
        within = f", {resumed.batches} micro-batches into it" if resumed.batches else ""
        log(f"resumed from {resumed.folder} at epoch {start_epoch}, step {step}{within}")
    guard = NonFiniteGuard(s.skip_nonfinite, s.nonfinite_limit, work_dir / "last")
    net = distributed.wrap(model, device)
    if s.compile:
        net = torch.compile(net)
    board = _tensorboard(work_dir, s.tensorboard and main_process)
    if main_process and not resume:
        (work_dir / "metrics.jsonl").unlink(missing_ok=True)  # a fresh run, fresh records

    schedule = CheckpointSchedule(s.checkpoint_every)
    lookahead = lookahead_of(model)
    with StopRequest() as stop:
        for epoch in range(start_epoch, s.epochs):
            model.train()
            done = resumed.batches if resumed is not None and epoch == resumed.epoch else 0
            sampler.set_epoch(epoch, done)
            if hasattr(train_set, "set_epoch"):  # workers start afresh each epoch and see it
                train_set.set_epoch(epoch)
            started = time.perf_counter()
            # loss sum, correct, seen (clips, or steps of continuous windows), skipped, NaN, clips
            totals = torch.zeros(6, dtype=torch.float64)
            batches = iter(loader)  # draws the epoch's seed from the global stream
            if done:  # resumed mid-epoch: its sums so far (kept by rank 0), the streams then
                if main_process and resumed.totals is not None:
                    totals = torch.tensor(resumed.totals, dtype=torch.float64)
                _restore_rng(resumed.rng)
            bar = tqdm(
                batches,
                total=len(loader),
                desc=f"epoch {epoch + 1}/{s.epochs}",
                unit="batch",
                leave=False,
                file=sys.stderr,
                disable=not (s.progress and main_process),
            )
            poisoned = False
            for micro, batch in enumerate(bar, start=done):
                totals[3] += batch.skipped
                if not len(batch.labels):
                    continue
                clips = _to_device(batch.clips, device, s.channels_last)
                labels = batch.labels.to(device)
                last_micro = (micro + 1) % s.accumulate == 0
                sync = nullcontext() if last_micro or world == 1 else net.no_sync()
                buffers = _copy_buffers(model) if s.skip_nonfinite else None
                with sync:
                    with autocast(device, s.amp):
                        logits, targets = outputs_and_targets(net, clips, labels, lookahead)
                        loss = F.cross_entropy(
                            logits.float(),
                            targets,
                            ignore_index=IGNORE,
                            label_smoothing=s.label_smoothing,
                        )
                    loss_value = loss.item()
                    skip = guard.skips(loss_value, epoch, step)
                    if not skip:
                        scaler.scale(loss / s.accumulate).backward()
                if skip:
                    _restore_buffers(model, buffers)  # the forward pass fed BatchNorm the bad batch
                    totals[4] += 1 if main_process else 0  # all processes skip it: count it once
                    poisoned = True  # the optimiser step this micro-batch belongs to is dropped
                else:
                    known = targets != IGNORE
                    totals[0] += loss_value * known.sum().item()
                    totals[1] += (logits.argmax(1) == targets)[known].sum().item()
                    totals[2] += known.sum().item()
                    totals[5] += len(labels)
                if last_micro:
                    lr = poly_lr(step, total_steps, s.lr, s.end_lr, s.power)
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                    if not poisoned:
                        scaler.step(optimizer)
                        scaler.update()
                    optimizer.zero_grad(set_to_none=True)
                    step += 1  # a dropped step too: the schedule stays on course
                    if board is not None and not poisoned:
                        board.add_scalar("train/loss", loss_value, step)
                        board.add_scalar("train/lr", lr, step)
                    poisoned = False
                    stop.signum, due = _agree(stop.signum, schedule.due(step))
                    if stop.signum or due:
                        position = {"step": step, "epoch": epoch, "batches": micro + 1}
                        position["totals"] = distributed.all_reduce_sum(totals.clone()).tolist()
                        position["best_top1"] = best_top1
                        _save_within_epoch(work_dir, model, optimizer, {**meta, "metrics": metrics},
                                           position)  # fmt: skip
                        schedule.written()
                    if stop.signum:
                        bar.close()
                        _interrupted(stop, epoch, s.epochs, step, work_dir, board)
                seen = max(totals[2].item(), 1)
                bar.set_postfix(
                    loss=f"{totals[0].item() / seen:.3f}",
                    acc=f"{totals[1].item() / seen:.3f}",
                    clips_s=f"{totals[5].item() * world / (time.perf_counter() - started):.1f}",
                )
            bar.close()
            totals = distributed.all_reduce_sum(totals)
            distributed.average_buffers(model)
            elapsed = time.perf_counter() - started
            val = evaluate(
                model, val_set, max(1, s.batch_size // world), s.num_workers, device, s.amp,
                s.channels_last, progress=s.progress,
            )  # fmt: skip
            lr = poly_lr(step, total_steps, s.lr, s.end_lr, s.power)
            metrics = _epoch_metrics(epoch, step, lr, totals, val, elapsed)
            best_top1 = max(best_top1, val["top1"])
            check_finite_weights(model, epoch, work_dir / "last")
            if main_process:
                position = {"step": step, "epoch": epoch + 1, "best_top1": best_top1}
                _save_epoch(work_dir, model, optimizer, meta, metrics, position, board)
                log(f"epoch {epoch + 1}/{s.epochs}: {_epoch_line(metrics)}")
            distributed.barrier()
            schedule.written()
            stop.signum = _agree(stop.signum, False)[0]
            if stop.signum:
                _interrupted(stop, epoch + 1, s.epochs, step, work_dir, board)
    if board is not None:
        board.close()
    if world > 1:
        if not distributed.replicas_agree(model):
            raise RuntimeError(f"the {world} processes ended with different weights")
        log(f"weights identical on all {world} processes")
    return metrics
