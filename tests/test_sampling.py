"""Frame sampling (DESIGN.md §5) against tables computed by hand."""

from __future__ import annotations

import random

import pytest

from aclstm.data.sampling import sample_indices


class FixedStream:
    """A random stream that returns given values, to pin the temporal jitter."""

    def __init__(self, values):
        self.values = list(values)

    def random(self):
        return self.values.pop(0)


def test_short_clip_repeats_its_last_frame():
    assert sample_indices(5, 8, training=True) == [0, 1, 2, 3, 4, 4, 4, 4]
    assert sample_indices(5, 8, training=False) == [0, 1, 2, 3, 4, 4, 4, 4]
    assert sample_indices(1, 3, training=False) == [0, 0, 0]


def test_stride_one_has_no_jitter():
    # n=12, T=8: div 1.5, floor(div) 1 -> floor(1.5 k) in training too.
    stream = FixedStream([])  # drawing from it would fail
    assert sample_indices(12, 8, training=True, rng=stream) == [0, 1, 3, 4, 6, 7, 9, 10]
    assert sample_indices(8, 8, training=True, rng=stream) == list(range(8))


def test_evaluation_is_uniform_and_deterministic():
    # Jester's most common length, 37 frames, to 16: div = 2.3125.
    expected = [0, 2, 4, 6, 9, 11, 13, 16, 18, 20, 23, 25, 27, 30, 32, 34]
    assert sample_indices(37, 16, training=False) == expected
    assert sample_indices(37, 16, training=False) == expected


def test_training_jitter_with_a_fixed_stream():
    # n=40, T=8: div 5, s 5, index floor(5k + 2.5 (u - 0.5)); the first is clamped to 0.
    u = [0.0, 0.2, 0.5, 0.8, 0.99, 0.3, 0.7, 0.999]
    got = sample_indices(40, 8, training=True, rng=FixedStream(u))
    assert got == [0, 4, 10, 15, 21, 24, 30, 36]  # unclamped first: floor(-1.25) = -2


@pytest.mark.parametrize("n", [1, 2, 7, 16, 17, 37, 67, 405])
@pytest.mark.parametrize("t", [1, 8, 16, 32])
def test_indices_stay_in_range_and_in_order(n, t):
    rng = random.Random(n * 100 + t)
    for training in (True, False):
        for _ in range(20):
            idx = sample_indices(n, t, training=training, rng=rng)
            assert len(idx) == t
            assert all(0 <= i <= n - 1 for i in idx)
            assert idx == sorted(idx)


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least one frame, got 0"):
        sample_indices(0, 8, training=False)
    with pytest.raises(ValueError, match="clip_len must be at least 1"):
        sample_indices(8, 0, training=False)


@pytest.mark.parametrize(("n", "t"), [(400, 8), (37, 16), (160, 32)])
def test_training_jitter_is_centred_on_the_uniform_grid(n, t):
    """Guards the jitter's centring: each index moves at most s/4 either side of floor(div·k)
    and 0 on average (a jitter drawn from u instead of u - 0.5 moves it s/4 later on average,
    a jitter of s instead of s/2 twice as far)."""
    div = n / t
    s = int(div)
    rng = random.Random(0)
    middle = range(1, t - 1)  # the first and last are clamped
    offsets = {k: [] for k in middle}
    for _ in range(2000):
        idx = sample_indices(n, t, training=True, rng=rng)
        for k in middle:
            offsets[k].append(idx[k] - div * k)
    for k in middle:
        assert min(offsets[k]) >= -s / 4 - 1 and max(offsets[k]) < s / 4
        mean = sum(offsets[k]) / len(offsets[k])
        assert abs(mean + 0.5) < max(0.1 * s, 0.3)  # floor() shifts the mean by about -0.5
