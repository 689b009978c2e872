"""From per-step class probabilities to gestures: where each one starts and ends, and what it is.

Online: :class:`Segmenter` takes a step's probabilities at a time and emits each gesture as
soon as it has ended. Class 0 is the background ("no gesture"); a network trained on isolated
clips can name other classes as background too (Jester's "No gesture" and "Doing other
things"). The rules, in steps of the network (each two of the frames it sees: 2 x its frame
stride of the video's):

* the probabilities are smoothed by a moving average over the last ``smoothing`` steps;
* "something is happening" is the smoothed probability of all gesture classes together
  (1 - the background's): a stretch of gesture starts when it reaches ``enter`` and goes on
  while it stays at ``exit`` or above (hysteresis: ``exit`` < ``enter`` keeps a flicker near
  the threshold from cutting a gesture in two). Its start does not wait for the network to
  know *which* gesture it is: early steps of a gesture are where it hesitates;
* when the stretch ends, each of its steps takes the gesture class most probable there; weak
  runs (shorter than ``min_steps``, or whose class never reaches ``enter``: the network
  hesitating) join the run before them (the first ones, the next), and each run left is a
  gesture (so gestures back to back, with no background between, come apart); a stretch
  shorter than ``min_steps`` is dropped;
* a gesture's score is the mean smoothed probability of its class over its steps.

A gesture is emitted on the step the stretch falls below ``exit``: at most ``smoothing``
steps after the true end when the network's own probability drops at
once, plus the network's own reaction time, plus its ``lookahead`` (a network trained to name
a step that many steps later: its probabilities arrive that much later).

With ``phases`` > 1 the rows segmented are not the network's steps but finer ones: the network
run at that many offsets of its step, averaged frame by frame (:mod:`aclstm.analysis.phases`);
``smoothing`` and ``min_steps`` then count those rows, ``frames_per_step / phases`` frames each.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from aclstm.data.congd import Segment
from aclstm.models.gesture_net import FRAMES_PER_STEP

__all__ = [
    "FRAMES_PER_STEP",
    "Gesture",
    "Segmenter",
    "SegmenterSettings",
    "segment_steps",
    "segmenter_settings",
]


@dataclass(frozen=True)
class SegmenterSettings:
    """The thresholds on "something is happening" (``enter`` to start a gesture, ``exit`` to
    end it), the steps averaged (``smoothing``) and the shortest gesture (``min_steps``), and
    the offsets of the network's step it is run at (``phases``: 1, or a divisor of the frames
    a step stands for; see :mod:`aclstm.analysis.phases`)."""

    enter: float = 0.6
    exit: float = 0.4
    smoothing: int = 3
    min_steps: int = 3
    phases: int = 1

    def __post_init__(self) -> None:
        if not 0.0 < self.exit <= self.enter <= 1.0:
            raise ValueError(
                f"need 0 < exit <= enter <= 1, got exit {self.exit}, enter {self.enter}"
            )
        if self.smoothing < 1 or self.min_steps < 1:
            raise ValueError("smoothing and min_steps must be at least 1 step")
        if self.phases < 1:
            raise ValueError(f"phases must be at least 1, got {self.phases}")


def segmenter_settings(meta: dict[str, Any], **changes: Any) -> SegmenterSettings:
    """The ``[segment]`` settings a checkpoint (or an export's meta) was configured with (the
    defaults for one from before there were any), with ``changes`` (None: unchanged). A change
    of ``phases`` scales ``smoothing`` and ``min_steps`` (unless they are changed too) so that
    they stay as many frames: they count rows, of frames_per_step / phases frames."""
    stored = SegmenterSettings(**meta.get("config", {}).get("segment", {}))
    changes = {name: value for name, value in changes.items() if value is not None}
    phases = changes.get("phases", stored.phases)
    for name in ("smoothing", "min_steps"):
        if phases != stored.phases and name not in changes:
            changes[name] = max(1, round(getattr(stored, name) * phases / stored.phases))
    return replace(stored, **changes)


@dataclass(frozen=True)
class Gesture:
    """A gesture found: its steps (0-based, inclusive), class index and score, the video's
    frames a step stands for (2 x the network's frame stride, or a phase-combined row's
    share of them) and how many of those come before frame F t (``lead``; None: F // 2)."""

    first_step: int
    last_step: int
    label: int
    score: float
    frames_per_step: int = FRAMES_PER_STEP
    lead: int | None = None

    def frames(self) -> tuple[int, int]:
        """Its first and last frame, 1-based and inclusive. Step t sees the video up to frame
        F t + 1 (F frames a step; 1-based); a gesture that starts or ends between two steps
        is taken to do so half-way: step t stands for the F frames from F t - F // 2 + 1 (with
        F = 2, frames 2t and 2t + 1). Rows combined from several phases
        (:class:`~aclstm.analysis.phases.PhaseCombiner`) stand for the frames from
        F t - lead + 1 on."""
        f = self.frames_per_step
        lead = f // 2 if self.lead is None else self.lead
        first = f * self.first_step - lead + 1
        return max(1, first), f * self.last_step - lead + f

    def segment(self) -> Segment:
        start, end = self.frames()
        return Segment(start, end, self.label)


class Segmenter:
    """Online segmentation of a stream of per-step probabilities (see the module docstring).
    ``background``: the class indices that are not gestures (default: class 0);
    ``frames_per_step`` and ``lead``: the video's frames a step (a row) stands for, as in
    :class:`Gesture`."""

    def __init__(
        self,
        settings: SegmenterSettings | None = None,
        background: Iterable[int] = (0,),
        frames_per_step: int = FRAMES_PER_STEP,
        lead: int | None = None,
    ) -> None:
        self.settings = settings or SegmenterSettings()
        self.background = sorted(set(background))
        self.frames_per_step = frames_per_step
        self.lead = lead
        self.reset()

    def reset(self) -> None:
        self._recent: deque[np.ndarray] = deque(maxlen=self.settings.smoothing)
        self._step = 0
        self._first: int | None = None  # the first step of the stretch going on
        self._rows: list[np.ndarray] = []  # its smoothed gesture-class probabilities

    def update(self, probabilities: Sequence[float]) -> list[Gesture]:
        """The next step's probabilities (one per class); returns the gestures that ended."""
        s = self.settings
        self._recent.append(np.asarray(probabilities, dtype=np.float64))
        smooth = np.mean(self._recent, axis=0)
        happening = 1.0 - smooth[self.background].sum()
        smooth[self.background] = -1.0  # only gesture classes can name a gesture
        ended: list[Gesture] = []
        if self._first is not None and happening < s.exit:
            ended = self._close()
        elif self._first is None and happening >= s.enter:
            self._first = self._step
        if self._first is not None:
            self._rows.append(smooth)
        self._step += 1
        return ended

    def finish(self) -> list[Gesture]:
        """The end of the stream: the gesture still going, if any."""
        return self._close() if self._first is not None else []

    def current(self) -> tuple[int, float] | None:
        """While a gesture is going on: its most probable class now and that probability."""
        if self._first is None:
            return None
        label = int(self._rows[-1].argmax())
        return label, float(self._rows[-1][label])

    def _close(self) -> list[Gesture]:
        first, rows = self._first, np.array(self._rows)
        self._first, self._rows = None, []
        if len(rows) < self.settings.min_steps:
            return []
        labels = rows.argmax(axis=1)
        runs: list[list[int]] = []  # [label, first index, last index]
        for k, label in enumerate(labels):
            if runs and runs[-1][0] == label:
                runs[-1][2] = k
            else:
                runs.append([int(label), k, k])
        strong = [
            b - a + 1 >= self.settings.min_steps
            and rows[a : b + 1, label].max() >= self.settings.enter
            for label, a, b in runs
        ]
        runs = _merge_weak(runs, strong)
        step, lead = self.frames_per_step, self.lead
        return [
            Gesture(first + a, first + b, label, float(rows[a : b + 1, label].mean()), step, lead)
            for label, a, b in runs
        ]


def _merge_weak(runs: list[list[int]], strong: list[bool]) -> list[list[int]]:
    """Weak runs (shorter than ``min_steps``, or whose class never reaches ``enter``: the
    network hesitating) join the strong run before them, or the first strong one after them;
    neighbours of the same label then become one. With no strong run, the stretch is one
    gesture, of its longest run's class."""
    if not any(strong):
        longest = max(runs, key=lambda r: r[2] - r[1])
        return [[longest[0], runs[0][1], runs[-1][2]]]
    merged: list[list[int]] = []
    pending_start = None  # weak runs before the first strong one
    for (label, a, b), is_strong in zip(runs, strong, strict=True):
        if not is_strong:
            if merged:
                merged[-1][2] = b
            elif pending_start is None:
                pending_start = a
            continue
        if merged and merged[-1][0] == label:
            merged[-1][2] = b
        else:
            merged.append([label, a if pending_start is None else pending_start, b])
            pending_start = None
    return merged


def segment_steps(
    probabilities: np.ndarray,
    settings: SegmenterSettings | None = None,
    background: Iterable[int] = (0,),
    frames_per_step: int = FRAMES_PER_STEP,
    lead: int | None = None,
) -> list[Gesture]:
    """The gestures of a whole video's per-step probabilities (T', classes), as the online
    :class:`Segmenter` finds them."""
    segmenter = Segmenter(settings, background, frames_per_step, lead)
    found = [g for row in probabilities for g in segmenter.update(row)]
    return found + segmenter.finish()
