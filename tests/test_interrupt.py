"""Stopping between steps: the checkpoint schedule, the signal handling, the work-dir lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from aclstm.train.interrupt import CheckpointSchedule, StopRequest, parse_checkpoint_every
from aclstm.train.lock import WorkDirBusy, WorkDirLock


@pytest.mark.parametrize(
    ("value", "parsed"),
    [(None, (0, 0.0)), (0, (0, 0.0)), (500, (500, 0.0)), ("10min", (0, 600.0)),
     ("30s", (0, 30.0)), ("1.5h", (0, 5400.0))],
)  # fmt: skip
def test_checkpoint_every_is_steps_or_a_time(value, parsed):
    assert parse_checkpoint_every(value) == parsed


@pytest.mark.parametrize("value", ["10", "ten minutes", "0min", -3, "5 days"])
def test_a_bad_checkpoint_every_is_refused(value):
    with pytest.raises(ValueError, match=r"train\.checkpoint_every must be"):
        parse_checkpoint_every(value)


def test_a_checkpoint_is_due_every_n_steps_or_after_so_long():
    assert [CheckpointSchedule(3).due(step) for step in range(1, 7)] == [0, 0, 1, 0, 0, 1]
    now = [0.0]
    timed = CheckpointSchedule("1min", clock=lambda: now[0])
    now[0] = 59.0
    assert not timed.due(1)
    now[0] = 61.0
    assert timed.due(2)
    timed.written()
    assert not timed.due(3)
    assert not any(CheckpointSchedule(None).due(step) for step in range(1, 100))


def test_the_first_signal_is_noted_and_a_second_ctrl_c_interrupts_at_once():
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN where the suite runs in the background
    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.signum == signal.SIGTERM
        os.kill(os.getpid(), signal.SIGINT)  # the first SIGINT is noted too (SIGTERM kept)
        assert stop.signum == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before  # put back


def test_one_run_per_work_dir_and_a_dead_holder_blocks_nothing(tmp_path):
    with WorkDirLock(tmp_path):
        holder = f"pid {os.getpid()} on "
        # Another process trying the same folder is refused, naming this one.
        code = textwrap.dedent(f"""
            from aclstm.train.lock import WorkDirLock
            try:
                WorkDirLock({str(tmp_path)!r}).__enter__()
            except OSError as err:
                print(err)
        """)
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert "is in use by another training run" in done.stdout and holder in done.stdout
    # A process killed while holding it: the lock went with it.
    code = textwrap.dedent(f"""
        import os, signal
        from aclstm.train.lock import WorkDirLock
        WorkDirLock({str(tmp_path)!r}).__enter__()
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    assert subprocess.run([sys.executable, "-c", code]).returncode == -signal.SIGKILL
    with WorkDirLock(tmp_path), pytest.raises(WorkDirBusy):  # a second holder is refused
        WorkDirLock(tmp_path).__enter__()
