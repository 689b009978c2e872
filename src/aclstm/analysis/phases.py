"""The network run at several offsets of its step ("phases") and averaged frame by frame, so
that gestures start and end on a finer grid than the network's step.

A causal network that sees every s-th frame names one step every F = 2s frames, and a gesture
found from its steps starts and ends on that grid (on the synthetic continuous set, F = 4: the
true gestures with their boundaries rounded to the grid score a mean Jaccard of 0.92, not 1).
With ``phases`` = p (a divisor of F), the network is run p times over the video, starting at
frames q = 0, F/p, 2F/p, ... (0-based), each run on every s-th frame from there; each run's
step k stands for the F frames around frame q + F k, from q + F k - F // 2 on (the convention
of :meth:`~aclstm.analysis.segmentation.Gesture.frames`). Combined row j is the mean of the
rows of the runs that stand for frame r j, r = F / p (all p of them, except near a video's
start and end, where some runs have not begun or have ended), and stands for the r frames
those rows all stand for: from r j - lead on, lead = (F // 2) mod r. With p = 1 the combined
rows are the network's own rows. The price: p times the network's computation (decoding and
preprocessing are shared).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["PhaseCombiner", "combine_phases", "phase_offsets"]


def phase_offsets(phases: int, frames_per_step: int) -> list[int]:
    """The frames (0-based) the runs start at: 0, F/p, 2F/p, ... for F ``frames_per_step``."""
    if phases < 1 or frames_per_step % phases:
        divisors = [k for k in range(1, frames_per_step + 1) if frames_per_step % k == 0]
        raise ValueError(
            f"phases must divide the {frames_per_step} frames a step stands for "
            f"({', '.join(map(str, divisors))}), got {phases}"
        )
    return [k * (frames_per_step // phases) for k in range(phases)]


class PhaseCombiner:
    """Combines the runs' rows online, into rows of ``frames_per_step // phases`` frames.

    ``add(run, row)`` takes run ``run``'s next row (each run's rows in order) and returns the
    combined rows it completes, in order: a row is complete once every run that will stand for
    its frame has given its row. ``finish(num_frames)``, when the runs have ended on a video
    of that many frames, returns the rows left, each the mean of the runs that reached it.
    Which rows a run gives decides the result, not the order they come in, so a stream and
    an offline pass over the same video agree."""

    def __init__(self, phases: int, frames_per_step: int) -> None:
        self.offsets = phase_offsets(phases, frames_per_step)
        self.frames_per_step = frames_per_step
        self.frames_per_row = frames_per_step // phases
        # Row j stands for frames_per_row frames from frame j * frames_per_row - lead on.
        self.lead = (frames_per_step // 2) % self.frames_per_row
        self._rows: list[dict[int, np.ndarray]] = [{} for _ in self.offsets]  # still needed
        self._given = [0] * phases  # rows each run has given
        self._next = 0  # the combined row to give next

    def _sources(self, row: int) -> list[tuple[int, int]]:
        """(run, that run's row) for each run that stands for combined row ``row``'s frame."""
        frame, f = row * self.frames_per_row, self.frames_per_step
        found = [(run, (frame - offset + f // 2) // f) for run, offset in enumerate(self.offsets)]
        return [(run, k) for run, k in found if k >= 0]

    def _take(self, sources: list[tuple[int, int]]) -> np.ndarray:
        combined = np.mean([self._rows[run][k] for run, k in sources], axis=0)
        for run, k in sources:  # later combined rows need this row of the run or later ones
            for old in [old for old in self._rows[run] if old < k]:
                del self._rows[run][old]
        self._next += 1
        return combined

    def add(self, run: int, row: np.ndarray) -> list[np.ndarray]:
        self._rows[run][self._given[run]] = np.asarray(row)
        self._given[run] += 1
        done = []
        while True:
            sources = self._sources(self._next)
            if any(k >= self._given[r] for r, k in sources):  # a run has not come this far
                return done
            done.append(self._take(sources))

    def finish(self, num_frames: int) -> list[np.ndarray]:
        done = []
        while self._next * self.frames_per_row < num_frames:
            sources = [(r, k) for r, k in self._sources(self._next) if k < self._given[r]]
            if not sources:  # no run reached this far
                break
            done.append(self._take(sources))
        return done


def combine_phases(
    runs: Sequence[Sequence[np.ndarray]], frames_per_step: int, num_frames: int
) -> np.ndarray:
    """The combined rows (rows, classes) of whole runs over a video of ``num_frames`` frames,
    run i started at the i-th of :func:`phase_offsets` (one too late for the video: no rows)."""
    combiner = PhaseCombiner(len(runs), frames_per_step)
    rows = [
        done for run, given in enumerate(runs) for row in given for done in combiner.add(run, row)
    ]
    return np.array(rows + combiner.finish(num_frames))
