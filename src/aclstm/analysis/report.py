"""Reports of a run: per-class accuracy, the confusion-matrix figure and the training curves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["per_class_accuracy", "plot_confusion", "plot_curves", "pyplot", "read_metrics"]


def per_class_accuracy(confusion, classes: list[str]) -> list[dict]:
    """One row per class: its name, clips and top-1 accuracy (None for a class with no clip)."""
    matrix = np.asarray(confusion)
    rows = []
    for k, name in enumerate(classes):
        total = int(matrix[k].sum()) if k < len(matrix) else 0
        correct = int(matrix[k, k]) if total else 0
        rows.append({"class": name, "clips": total, "top1": correct / total if total else None})
    return rows


def pyplot():
    """matplotlib.pyplot on the Agg backend: figures go to files, no display is needed."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int = 110, tight: bool = False) -> Path:
    """Write ``fig`` as a PNG at ``path`` (its folder made if missing) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight" if tight else None)
    pyplot().close(fig)
    return path


MAX_LABELLED = 60  # classes a confusion figure labels one by one


def plot_confusion(confusion, classes: list[str], path: str | Path, title: str = "") -> Path:
    """A row-normalised confusion matrix (true class down, predicted across) as a PNG."""
    plt = pyplot()
    matrix = np.asarray(confusion, dtype=np.float64)
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    n = len(classes)
    # Up to MAX_LABELLED classes every one is labelled and the figure grows with them; beyond
    # (IsoGD's 249) it stays at that size and labels every k-th class: a figure 82 inches wide
    # took 10 s to write, 9,000 pixels a side.
    side = max(5.0, 0.32 * min(n, MAX_LABELLED) + 2.5)
    step = -(-n // MAX_LABELLED)
    fig, ax = plt.subplots(figsize=(side, side))
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ticks = range(0, n, step)
    ax.set_xticks(ticks, [classes[k] for k in ticks], rotation=90, fontsize=7)
    ax.set_yticks(ticks, [classes[k] for k in ticks], fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 40:
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    colour = "white" if rates[i, j] > 0.5 else "black"
                    ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=6,
                            color=colour)  # fmt: skip
    ax.set_title(title or "confusion matrix (counts; colour: share of the true class)")
    fig.colorbar(image, ax=ax, fraction=0.04)
    fig.tight_layout()
    return save_figure(fig, path)


def read_metrics(path: str | Path) -> list[dict]:
    """The per-epoch records of a run's ``metrics.jsonl``."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def plot_curves(records: list[dict], path: str | Path) -> Path:
    """Loss and top-1 accuracy per epoch, training beside validation, as a PNG."""
    plt = pyplot()
    epochs = [r["epoch"] for r in records]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    loss_ax.plot(epochs, [r["train_loss"] for r in records], "o-", label="train")
    loss_ax.plot(epochs, [r["val_loss"] for r in records], "o-", label="validation")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("cross-entropy")
    loss_ax.legend()
    acc_ax.plot(epochs, [r["train_top1"] for r in records], "o-", label="train top-1")
    acc_ax.plot(epochs, [r["val_top1"] for r in records], "o-", label="validation top-1")
    acc_ax.plot(epochs, [r["val_top5"] for r in records], "--", label="validation top-5")
    acc_ax.set_xlabel("epoch")
    acc_ax.set_ylabel("accuracy")
    acc_ax.set_ylim(0, 1.02)
    acc_ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)
