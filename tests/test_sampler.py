"""The step sampler: N processes read what one process with N-fold accumulation reads."""

from __future__ import annotations

import pytest

from aclstm.train.sampler import StepBatchSampler


def test_two_processes_split_the_micro_batches_of_one_process_with_accumulation():
    one = list(StepBatchSampler(50, micro_batch=3, accumulate=2, seed=7))
    rank0 = list(StepBatchSampler(50, micro_batch=3, world_size=2, rank=0, seed=7))
    rank1 = list(StepBatchSampler(50, micro_batch=3, world_size=2, rank=1, seed=7))
    assert len(one) == 2 * len(rank0) == 16  # 50 // 6 = 8 steps
    assert one[0::2] == rank0 and one[1::2] == rank1


def test_an_epoch_reads_each_item_at_most_once_and_drops_the_incomplete_step():
    sampler = StepBatchSampler(23, micro_batch=4, accumulate=2, seed=1)
    items = [i for batch in sampler for i in batch]
    assert len(items) == 16 == len(set(items)) and set(items) <= set(range(23))
    assert sampler.steps_per_epoch == 2 and len(sampler) == 4


def test_the_order_follows_seed_and_epoch_only():
    a, b = StepBatchSampler(40, 4, seed=3), StepBatchSampler(40, 4, seed=3)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    b.set_epoch(1)
    assert list(a) == list(b)
    assert list(StepBatchSampler(40, 4, seed=4)) != first
    assert [i for x in StepBatchSampler(8, 4, shuffle=False) for i in x] == list(range(8))


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="rank=2"):
        StepBatchSampler(10, 2, world_size=2, rank=2)


def test_an_epoch_resumed_mid_way_reads_the_rest_of_the_same_order():
    whole = StepBatchSampler(40, micro_batch=3, accumulate=2, seed=5)
    whole.set_epoch(2)
    rest = StepBatchSampler(40, micro_batch=3, accumulate=2, seed=5)
    rest.set_epoch(2, skip=4)
    assert list(rest) == list(whole)[4:] and len(rest) == len(whole) - 4
    with pytest.raises(ValueError, match="cannot skip 13"):
        rest.set_epoch(2, skip=13)
