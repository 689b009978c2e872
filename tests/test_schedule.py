"""The polynomial decay of DESIGN.md §4 at its first, a middle and its last step."""

from __future__ import annotations

import pytest

from aclstm.train.schedule import poly_lr


def test_first_middle_and_last_steps():
    total = 30 * 7410  # Jester: 30 epochs of 118,562 clips at batch 16
    assert poly_lr(0, total) == pytest.approx(1e-3)
    # Halfway: (1e-3 - 1e-6) * 0.5 ** 0.9 + 1e-6
    assert poly_lr(total // 2, total) == pytest.approx(0.000999 * 0.5**0.9 + 1e-6, rel=1e-12)
    assert poly_lr(total - 1, total) == pytest.approx(0.000999 * (1 / total) ** 0.9 + 1e-6)
    assert poly_lr(total, total) == pytest.approx(1e-6)
    assert poly_lr(total + 5, total) == pytest.approx(1e-6)


def test_monotone_and_other_settings():
    rates = [poly_lr(s, 100, lr=0.1, end_lr=0.0, power=2.0) for s in range(101)]
    assert rates == sorted(rates, reverse=True)
    assert rates[50] == pytest.approx(0.1 * 0.25)


def test_bad_arguments():
    with pytest.raises(ValueError, match="total_steps must be positive"):
        poly_lr(0, 0)
    with pytest.raises(ValueError, match="step must be >= 0"):
        poly_lr(-1, 10)
