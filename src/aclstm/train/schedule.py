"""The learning-rate schedule of the paper: polynomial decay, updated every step."""

from __future__ import annotations

__all__ = ["poly_lr"]


def poly_lr(
    step: int, total_steps: int, lr: float = 1e-3, end_lr: float = 1e-6, power: float = 0.9
) -> float:
    """``(lr - end_lr) * (1 - step / total_steps) ** power + end_lr`` (DESIGN.md §4).

    ``step`` counts from 0; at ``total_steps`` (and after) the rate is ``end_lr``.
    """
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    progress = min(step, total_steps) / total_steps
    return (lr - end_lr) * (1.0 - progress) ** power + end_lr
