"""Which clips each process reads at each optimiser step, the same for any number of processes.

One optimiser step consumes a global batch of ``world_size x accumulate x micro_batch`` clips:
a shuffled slice of the epoch's permutation (fixed by the seed and the epoch). The slice is cut
into ``world_size x accumulate`` micro-batches; process ``rank`` reads micro-batches
``rank, rank + world_size, ...``. So a 2-process run and a 1-process run with ``accumulate=2``
see the same clips in the same micro-batches (BatchNorm statistics included), and a resumed run
replays an epoch from its seed alone.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

__all__ = ["StepBatchSampler"]


class StepBatchSampler(Sampler[list[int]]):
    """Micro-batches of indices for one process; incomplete last steps are dropped."""

    def __init__(
        self,
        num_items: int,
        micro_batch: int,
        accumulate: int = 1,
        world_size: int = 1,
        rank: int = 0,
        seed: int = 0,
        shuffle: bool = True,
    ) -> None:
        if micro_batch < 1 or accumulate < 1 or world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(
                f"bad sampler shape: micro_batch={micro_batch}, accumulate={accumulate}, "
                f"world_size={world_size}, rank={rank}"
            )
        self.num_items = num_items
        self.micro_batch = micro_batch
        self.accumulate = accumulate
        self.world_size = world_size
        self.rank = rank
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self.skip = 0  # micro-batches of the epoch already done (a run resumed mid-epoch)

    @property
    def global_batch(self) -> int:
        return self.micro_batch * self.accumulate * self.world_size

    @property
    def steps_per_epoch(self) -> int:
        return self.num_items // self.global_batch

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Draw ``epoch``'s order, and leave out its first ``skip`` micro-batches."""
        if not 0 <= skip <= self.steps_per_epoch * self.accumulate:
            raise ValueError(f"cannot skip {skip} micro-batches of an epoch of {len(self)}")
        self.epoch, self.skip = epoch, skip

    def __len__(self) -> int:
        return self.steps_per_epoch * self.accumulate - self.skip

    def __iter__(self) -> Iterator[list[int]]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.num_items, generator=generator).tolist()
        else:
            order = list(range(self.num_items))
        b = self.micro_batch
        for step in range(self.steps_per_epoch):
            start = step * self.global_batch
            for micro in range(self.accumulate):
                if step * self.accumulate + micro < self.skip:
                    continue
                slot = micro * self.world_size + self.rank
                yield order[start + slot * b : start + (slot + 1) * b]
