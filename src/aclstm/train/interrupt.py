"""Stopping a run between two steps: SIGINT (Ctrl-C) and SIGTERM (a cluster preempting the
job) ask the loop to stop after the step under way, and checkpoints come every N steps or T
minutes inside epochs, so an interrupted run loses a few steps at most."""

from __future__ import annotations

import re
import signal
import threading
import time
from types import FrameType

__all__ = ["CheckpointSchedule", "StopRequest", "TrainingInterrupted", "parse_checkpoint_every"]

_UNITS = {"s": 1.0, "min": 60.0, "h": 3600.0}
_EVERY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|min|h)\s*$")


class TrainingInterrupted(Exception):
    """The run stopped on a signal after writing its checkpoint; ``exit_status`` is the
    shell's for that signal (130 for SIGINT, 143 for SIGTERM)."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_status = 128 + signum


def parse_checkpoint_every(value: int | str | None) -> tuple[int, float]:
    """``train.checkpoint_every``: a number of optimiser steps (``500``), a time (``"10min"``,
    ``"30s"``, ``"1h"``) or None/0 (once an epoch only). Returns (steps, seconds), 0 unused."""
    if value is None or value == 0:
        return 0, 0.0
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"train.checkpoint_every must be >= 0 steps, got {value}")
        return value, 0.0
    match = _EVERY.match(str(value))
    if not match or float(match[1]) <= 0:
        raise ValueError(
            "train.checkpoint_every must be a number of steps or a time such as "
            f'"10min", "30s" or "1h"; got {value!r}'
        )
    return 0, float(match[1]) * _UNITS[match[2]]


class CheckpointSchedule:
    """Whether a mid-epoch checkpoint is due after a step (see :func:`parse_checkpoint_every`)."""

    def __init__(self, every: int | str | None, clock=time.monotonic) -> None:
        self.steps, self.seconds = parse_checkpoint_every(every)
        self._clock = clock
        self._last = clock()

    def due(self, step: int) -> bool:
        if self.steps and step % self.steps == 0:
            return True
        return bool(self.seconds) and self._clock() - self._last >= self.seconds

    def written(self) -> None:
        """A checkpoint was written (at a step or at the end of an epoch): time starts again."""
        self._last = self._clock()


class StopRequest:
    """``with StopRequest() as stop:`` SIGINT and SIGTERM set ``stop.signum`` instead of ending
    the process; the loop looks at it between steps. A second Ctrl-C ends at once (Python's
    KeyboardInterrupt); a second SIGTERM ends as SIGTERM does. Outside the main thread
    (where signals cannot be caught) it does nothing."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = self.signum or signum
        # The next one of this kind is not caught: a second Ctrl-C stops at once.
        default = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
        signal.signal(signum, default)

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
