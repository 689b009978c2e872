"""From per-step class probabilities to gestures: where each one starts and ends, and what it is.

Online: :class:`Segmenter` takes a step's probabilities at a time and emits each gesture as
soon as it has ended. Class 0 is the background ("no gesture"); a network trained on isolated
clips can name other classes as background too (Jester's "No gesture" and "Doing other
things"). The rules, in steps of the network (two frames each):

* the probabilities are smoothed by a moving average over the last ``smoothing`` steps;
* a gesture starts when a gesture class's smoothed probability reaches ``enter``, and goes on
  while its probability stays at ``exit`` or above (hysteresis: ``exit`` < ``enter`` keeps a
  flicker near the threshold from cutting a gesture in two); another class reaching ``enter``
  above it ends it and starts the next (gestures back to back);
* a gesture shorter than ``min_steps`` is dropped;
* its score is the mean smoothed probability of its class over its steps.

A gesture is emitted on the step its probability falls below ``exit``: at most ``smoothing``
steps (2 x smoothing frames) after the true end when the network's own probability drops at
once, plus the network's own reaction time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from aclstm.data.congd import Segment
from aclstm.models.gesture_net import FRAMES_PER_STEP

__all__ = ["FRAMES_PER_STEP", "Gesture", "Segmenter", "SegmenterSettings", "segment_steps"]


@dataclass(frozen=True)
class SegmenterSettings:
    enter: float = 0.6
    exit: float = 0.4
    smoothing: int = 3
    min_steps: int = 3

    def __post_init__(self) -> None:
        if not 0.0 < self.exit <= self.enter <= 1.0:
            raise ValueError(
                f"need 0 < exit <= enter <= 1, got exit {self.exit}, enter {self.enter}"
            )
        if self.smoothing < 1 or self.min_steps < 1:
            raise ValueError("smoothing and min_steps must be at least 1 step")


@dataclass(frozen=True)
class Gesture:
    """A gesture found: its steps (0-based, inclusive), class index and score."""

    first_step: int
    last_step: int
    label: int
    score: float

    def frames(self) -> tuple[int, int]:
        """Its first and last frame, 1-based and inclusive: step t stands for frames 2t and
        2t + 1 (1-based), the two frames that end on it."""
        return max(1, FRAMES_PER_STEP * self.first_step), FRAMES_PER_STEP * self.last_step + 1

    def segment(self) -> Segment:
        start, end = self.frames()
        return Segment(start, end, self.label)


class Segmenter:
    """Online segmentation of a stream of per-step probabilities (see the module docstring).
    ``background``: the class indices that are not gestures (default: class 0)."""

    def __init__(
        self, settings: SegmenterSettings | None = None, background: Iterable[int] = (0,)
    ) -> None:
        self.settings = settings or SegmenterSettings()
        self.background = sorted(set(background))
        self.reset()

    def reset(self) -> None:
        self._recent: deque[np.ndarray] = deque(maxlen=self.settings.smoothing)
        self._step = 0
        self._active: int | None = None
        self._first = 0
        self._scores: list[float] = []

    def update(self, probabilities: Sequence[float]) -> list[Gesture]:
        """The next step's probabilities (one per class); returns the gestures that ended."""
        s = self.settings
        self._recent.append(np.asarray(probabilities, dtype=np.float64))
        smooth = np.mean(self._recent, axis=0)
        smooth[self.background] = -1.0  # only gesture classes can start or hold a gesture
        best = int(smooth.argmax())
        ended: list[Gesture] = []
        if self._active is not None:
            falls = smooth[self._active] < s.exit
            overtaken = best != self._active and smooth[best] >= s.enter
            if falls or overtaken:
                ended += self._close(self._step - 1)
        if self._active is None and smooth[best] >= s.enter:
            self._active, self._first, self._scores = best, self._step, []
        if self._active is not None:
            self._scores.append(float(smooth[self._active]))
        self._step += 1
        return ended

    def finish(self) -> list[Gesture]:
        """The end of the stream: the gesture still going, if any."""
        return self._close(self._step - 1) if self._active is not None else []

    def _close(self, last_step: int) -> list[Gesture]:
        label, first, scores = self._active, self._first, self._scores
        self._active = None
        if last_step - first + 1 < self.settings.min_steps:
            return []
        return [Gesture(first, last_step, label, float(np.mean(scores)))]


def segment_steps(
    probabilities: np.ndarray,
    settings: SegmenterSettings | None = None,
    background: Iterable[int] = (0,),
) -> list[Gesture]:
    """The gestures of a whole video's per-step probabilities (T', classes), as the online
    :class:`Segmenter` finds them."""
    segmenter = Segmenter(settings, background)
    found = [g for row in probabilities for g in segmenter.update(row)]
    return found + segmenter.finish()
