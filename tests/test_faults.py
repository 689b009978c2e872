"""Kill a training run at several points (inside a step, inside validation, inside a
checkpoint write, between the renames of a checkpoint swap): the newest complete checkpoint
loads, ``--resume`` finishes the run, and its final weights equal an uninterrupted run's bit
for bit (CPU, one thread, deterministic algorithms). tests/fault_injection.py does the killing.

The kill inside a checkpoint write is a real SIGKILL of a child process (what it leaves on
disk, a half-written file in an unfinished folder, is the point). The other kill points stop
the run in this process with an exception nothing in the library catches, which leaves the
same state as SIGKILL there (nothing is written at those points) at a fraction of the cost of
starting processes; the resumed runs and the reference run in this process too."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from aclstm.cli import main
from aclstm.data.synth import SynthSpec, write_synthetic_set
from aclstm.train.checkpoint import load_training_state
from aclstm.train.runner import load_model

from fault_injection import Countdown, Killed, inject
from helpers import tiny_run_options

pytestmark = pytest.mark.slow  # a few short training runs per test

FAULT_SCRIPT = Path(__file__).with_name("fault_injection.py")
EPOCHS = 3  # of 3 steps: 12 clips of 4 classes, batch 4; 12 validation clips, 3 batches


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    write_synthetic_set(root, SynthSpec(clips_per_class=6, val_fraction=0.5, seed=4,
                                        classes=(0, 1, 2, 3)))  # fmt: skip
    return root


def train_argv(run: Path, data: Path, resume: bool = False, extra=(), flags=()) -> list[str]:
    argv = ["train", "synth_demo", "--work-dir", str(run), *(["--resume"] if resume else [])]
    return [*argv, *flags, *tiny_run_options(data, epochs=EPOCHS, batch_size=4, extra=extra)]


def aclstm_killed(fault: str, run: Path, data: Path):
    """``aclstm train`` in a child process, SIGKILLed where ``fault`` says."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(FAULT_SCRIPT), fault, *train_argv(run, data)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


@contextlib.contextmanager
def as_the_child_runs():
    """One thread and deterministic algorithms, as in the child process; restored after."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def aclstm_here(
    run: Path, data: Path, monkeypatch, fault="none::0", resume=False, extra=(), status=0, flags=()
) -> str:
    """``aclstm train`` in this process, stopped where ``fault`` says (a signal: it must end
    with ``status``); returns its output, stdout and stderr."""
    kind, name, n = fault.split(":")
    out = io.StringIO()
    with (
        monkeypatch.context() as patches,
        as_the_child_runs(),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(out),
    ):
        inject(kind, name, Countdown(int(n), in_process=True), patches.setattr)
        if kind in ("none", "signal"):
            assert main(train_argv(run, data, resume, extra, flags)) == status, out.getvalue()
        else:
            with pytest.raises(Killed):
                main(train_argv(run, data, resume, extra, flags))
    return out.getvalue()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data):
    run = tmp_path_factory.mktemp("reference")
    with pytest.MonkeyPatch.context() as monkeypatch:
        aclstm_here(run, data, monkeypatch)
    return run


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


@pytest.mark.parametrize(
    ("fault", "newest"),
    [
        ("step::5", 1),  # the 2nd step of epoch 2
        ("validate::5", 1),  # the 2nd batch of epoch 2's validation
        ("write:state.pt:2", 1),  # halfway through epoch 2's last/state.pt
        ("rename:.last.old:1", 2),  # epoch 2's last/ complete as .last.new, epoch 1's in last/
        ("rename:last:2", 2),  # no last/ at all: epoch 1's in .last.old, epoch 2's in .last.new
    ],
    ids=["in-a-step", "in-validation", "in-a-checkpoint-file", "before-the-swap", "mid-swap"],
)
def test_a_killed_run_resumes_to_the_weights_of_an_uninterrupted_one(
    fault, newest, data, reference, tmp_path, monkeypatch
):
    run = tmp_path / "run"
    if fault.startswith("write:"):  # a real SIGKILL, in a child process
        killed = aclstm_killed(fault, run, data)
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    else:
        aclstm_here(run, data, monkeypatch, fault)

    _, meta = load_model(run / "last")  # the newest complete checkpoint, whole
    assert meta["metrics"]["epoch"] == load_training_state(run / "last")["epoch"] == newest

    resumed = aclstm_here(run, data, monkeypatch, resume=True)
    assert f"resumed from {run / 'last'} at epoch {newest}," in resumed
    assert_same_weights(run / "last", reference / "last")
    assert_same_weights(run / "best", reference / "best")
    ours, theirs = records(run), records(reference)
    assert [r["epoch"] for r in ours] == list(range(1, EPOCHS + 1))
    assert [r["train_loss"] for r in ours] == [r["train_loss"] for r in theirs]
    assert [r["val_loss"] for r in ours] == [r["val_loss"] for r in theirs]
    assert not [p.name for p in run.iterdir() if p.name.startswith(".last")]  # nothing left


def assert_same_run(run: Path, reference: Path) -> None:
    assert_same_weights(run / "last", reference / "last")
    assert_same_weights(run / "best", reference / "best")
    ours, theirs = records(run), records(reference)
    assert [r["epoch"] for r in ours] == list(range(1, EPOCHS + 1))
    assert [r["train_loss"] for r in ours] == [r["train_loss"] for r in theirs]


@pytest.mark.parametrize(
    ("every", "kill_at", "resumed_at"),
    [
        (1, 2, "epoch 0, step 1, 1 micro-batches into it"),  # inside the first epoch
        (2, 6, "epoch 1, step 4, 1 micro-batches into it"),  # between step 4's and step 6's
        (2, 9, "epoch 2, step 8, 2 micro-batches into it"),  # in the last epoch
    ],
    ids=["first-epoch", "between-checkpoints", "last-epoch"],
)
def test_a_run_killed_mid_epoch_resumes_from_its_step_checkpoint_bit_exactly(
    every, kill_at, resumed_at, data, reference, tmp_path, monkeypatch
):
    """Checkpoints every ``every`` steps (the reference run wrote none inside epochs: they do
    not change what is computed), a kill inside step ``kill_at``: resumed, the run ends with
    the uninterrupted run's weights and records."""
    run = tmp_path / "run"
    extra = [f"train.checkpoint_every={every}"]
    aclstm_here(run, data, monkeypatch, f"step::{kill_at}", extra=extra)
    resumed = aclstm_here(run, data, monkeypatch, resume=True, extra=extra)
    assert f"resumed from {run / 'last'} at {resumed_at}" in resumed
    assert_same_run(run, reference)


@pytest.mark.parametrize(("name", "status"), [("INT", 130), ("TERM", 143)])
def test_a_signal_stops_after_the_step_with_a_checkpoint_and_says_how_to_resume(
    name, status, data, reference, tmp_path, monkeypatch
):
    run = tmp_path / "run"
    stopped = aclstm_here(run, data, monkeypatch, f"signal:{name}:5", status=status)
    assert f"SIG{name}: stopped after step 5 (epoch 2/{EPOCHS})" in stopped
    assert f"checkpoint {run / 'last'}; resume with: aclstm " in stopped
    assert "--resume" in stopped and "Traceback" not in stopped
    assert load_training_state(run / "last")["step"] == 5
    resumed = aclstm_here(run, data, monkeypatch, resume=True)
    assert "at epoch 1, step 5, 2 micro-batches into it" in resumed
    assert_same_run(run, reference)


def test_resume_with_nothing_to_resume_starts_afresh(data, reference, tmp_path, monkeypatch):
    run = tmp_path / "run"
    aclstm_here(run, data, monkeypatch, "step::2")  # killed before the first checkpoint
    started = aclstm_here(run, data, monkeypatch, resume=True)
    assert f"no checkpoint in {run / 'last'} to resume from: starting afresh" in started
    assert_same_run(run, reference)


def test_changed_settings_are_named_and_need_allow_changes(data, tmp_path, monkeypatch):
    run = tmp_path / "run"
    aclstm_here(run, data, monkeypatch, "step::5")
    changed = ["train.lr=0.002"]
    refused = aclstm_here(run, data, monkeypatch, resume=True, extra=changed, status=2)
    assert "was trained with other settings (lr: 0.0025 -> 0.002)" in refused
    assert "--allow-changes" in refused
    flags = ["--allow-changes"]
    allowed = aclstm_here(run, data, monkeypatch, resume=True, extra=changed, flags=flags)
    assert "resuming with changed settings: lr: 0.0025 -> 0.002" in allowed


def test_a_second_run_into_a_busy_work_dir_is_refused(data, tmp_path, capsys):
    from aclstm.train.lock import WorkDirLock

    run = tmp_path / "run"
    with WorkDirLock(run):
        assert main(train_argv(run, data)) == 2
    err = capsys.readouterr().err
    assert f"{run} is in use by another training run (pid {os.getpid()} on " in err
    assert not (run / "metrics.jsonl").exists()
