"""Checkpoints: round trip, a folder replaced as a whole (interrupted saves, a full disk), and
refusing files that are not what they claim."""

from __future__ import annotations

import errno
import os
import pickle
import signal

import pytest
import torch
from safetensors.torch import save_file

from aclstm.models import create
from aclstm.train import checkpoint
from aclstm.train.checkpoint import (
    CheckpointError,
    CheckpointWriteError,
    atomic_write,
    load_meta,
    load_training_state,
    load_weights,
    recover_checkpoint,
    save_checkpoint,
)


def test_round_trip(tmp_path):
    torch.manual_seed(0)
    model = create("tiny", cell="gated", num_classes=5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 3, 4, 32, 32)).sum().backward()
    optimizer.step()
    state = {
        "optimizer": optimizer.state_dict(),
        "step": 7,
        "epoch": 1,
        "torch_rng": torch.get_rng_state(),
    }
    save_checkpoint(tmp_path / "ckpt", model, {"classes": list("abcde"), "cell": "gated"}, state)
    assert load_meta(tmp_path / "ckpt")["classes"] == list("abcde")
    other = create("tiny", cell="gated", num_classes=5)
    load_weights(tmp_path / "ckpt", other)
    for (name, a), b in zip(model.state_dict().items(), other.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    loaded = load_training_state(tmp_path / "ckpt")
    assert loaded["step"] == 7 and torch.equal(loaded["torch_rng"], state["torch_rng"])
    restored = torch.optim.SGD(other.parameters(), lr=0.1, momentum=0.9)
    restored.load_state_dict(loaded["optimizer"])
    assert not list((tmp_path / "ckpt").glob(".*.tmp"))  # no temporary files left behind


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "meta.json"
    target.write_text("old")

    def crash(path):
        path.write_text("half of the new")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic_write(target, crash)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["meta.json"]


def test_weights_of_another_cell_or_preset_are_named(tmp_path):
    save_checkpoint(tmp_path / "a", create("tiny", cell="convlstm"), {})
    with pytest.raises(CheckpointError, match=r"does not fit the model: missing keys \["):
        load_weights(tmp_path / "a", create("tiny", cell="gated"))
    save_checkpoint(tmp_path / "b", create("tiny", num_classes=27), {})
    with pytest.raises(CheckpointError, match=r"shape mismatches, e\.g\. classifier\.bias"):
        load_weights(tmp_path / "b", create("tiny", num_classes=249))


def test_missing_and_extra_keys(tmp_path):
    model = create("tiny")
    weights = {k: v.contiguous() for k, v in model.state_dict().items()}
    weights["extra.weight"] = torch.zeros(1)
    del weights["classifier.bias"]
    (tmp_path / "c").mkdir()
    save_file(weights, str(tmp_path / "c" / "model.safetensors"))
    with pytest.raises(
        CheckpointError,
        match=r"missing keys \['classifier.bias'\]; "
        r"unexpected keys \['extra.weight'\]",
    ):
        load_weights(tmp_path / "c", model)


class Payload:
    """An object that pickle would rebuild by calling code: must never be loaded."""

    def __reduce__(self):
        return (print, ("this ran",))


def test_pickled_objects_are_refused(tmp_path, capsys):
    (tmp_path / "d").mkdir()
    with open(tmp_path / "d" / "state.pt", "wb") as f:
        pickle.dump({"step": 1, "payload": Payload()}, f, protocol=2)
    with pytest.raises(CheckpointError) as info:
        load_training_state(tmp_path / "d")
    assert str(info.value) == (
        f"{tmp_path / 'd' / 'state.pt'}: refused: it holds pickled objects that could run code "
        "when loaded (Unsupported global: GLOBAL print was not an allowed global by default); "
        "not loaded"
    )
    assert "this ran" not in capsys.readouterr().out
    (tmp_path / "d" / "model.safetensors").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: not a safetensors file"):
        load_weights(tmp_path / "d", create("tiny"))
    with pytest.raises(CheckpointError, match=r"meta\.json: not found"):
        load_meta(tmp_path / "d")


def versioned(folder, version, with_state=True):
    """Save checkpoint number ``version``: weights, meta and state all say which it is."""
    torch.manual_seed(version)
    model = create("tiny", num_classes=5)
    state = {"version": version} if with_state else None
    save_checkpoint(folder, model, {"version": version}, state)
    return model


def assert_loads_version(folder, version):
    """Weights, meta and state read from ``folder`` all belong to checkpoint ``version``."""
    assert load_meta(folder)["version"] == version
    assert load_training_state(folder)["version"] == version
    torch.manual_seed(version)
    expected = create("tiny", num_classes=5).state_dict()
    loaded = create("tiny", num_classes=5)
    load_weights(folder, loaded)
    for name, value in loaded.state_dict().items():
        assert torch.equal(value, expected[name]), name


class Killed(BaseException):
    """Stands for SIGKILL: nothing below the raise runs (no except clause catches it)."""


@pytest.mark.parametrize(("renames_done", "newest"), [(0, 1), (1, 2), (2, 2)])
def test_an_interrupted_swap_leaves_a_complete_checkpoint_and_the_next_save_finishes_it(
    tmp_path, monkeypatch, renames_done, newest
):
    """A save ends in three renames (.partial- -> .new, folder -> .old, .new -> folder);
    stopped after any number of them, the loaders read the newest complete copy (never a mix
    of old and new files), recovery puts it in place, and the next save works."""
    folder = tmp_path / "last"
    versioned(folder, 1)
    real_rename, calls = checkpoint._rename, []

    def rename_or_die(source, target):
        if len(calls) == renames_done:
            raise Killed
        calls.append(target)
        real_rename(source, target)

    monkeypatch.setattr(checkpoint, "_rename", rename_or_die)
    with pytest.raises(Killed):
        versioned(folder, 2)
    monkeypatch.undo()
    assert_loads_version(folder, newest)
    recover_checkpoint(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]
    assert_loads_version(folder, newest)
    versioned(folder, 3)
    assert_loads_version(folder, 3)


def test_a_save_killed_while_writing_leaves_the_previous_checkpoint(tmp_path):
    """A kill mid-write leaves a .partial- folder of half-written files beside the old
    checkpoint: the loaders ignore it, the next save deletes it."""
    folder = tmp_path / "last"
    versioned(folder, 1)
    partial = tmp_path / ".last.partial-x1y2"
    partial.mkdir()
    data = (folder / "model.safetensors").read_bytes()
    (partial / "model.safetensors").write_bytes(data[: len(data) // 2])
    assert_loads_version(folder, 1)
    versioned(folder, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]
    assert_loads_version(folder, 2)


def full_disk_after(monkeypatch, files_written):
    """Let ``files_written`` checkpoint files through, then fail the next one halfway with
    ENOSPC, as a filled-up disk would."""
    real_write, calls = checkpoint._write_bytes, []

    def write(path, data):
        calls.append(path)
        if len(calls) > files_written:
            real_write(path, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real_write(path, data)

    monkeypatch.setattr(checkpoint, "_write_bytes", write)


@pytest.mark.parametrize("files_written", [0, 1, 2])
def test_a_full_disk_keeps_the_previous_checkpoint_and_says_so(
    tmp_path, monkeypatch, files_written
):
    folder = tmp_path / "last"
    versioned(folder, 1)
    full_disk_after(monkeypatch, files_written)
    with pytest.raises(CheckpointWriteError) as info:
        versioned(folder, 2)
    assert str(info.value) == (
        f"{folder}: checkpoint write failed: the disk is full (No space left on device); "
        "the previous checkpoint there is intact"
    )
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]  # no partial folder left
    assert_loads_version(folder, 1)


def test_a_write_the_kernel_refuses_keeps_the_previous_checkpoint(tmp_path):
    """A real failing write, no monkeypatching: a file-size limit (RLIMIT_FSIZE) below the
    size of the weights makes the kernel refuse the write midway (EFBIG)."""
    resource = pytest.importorskip("resource", reason="RLIMIT_FSIZE is POSIX only")
    folder = tmp_path / "last"
    versioned(folder, 1)
    size = (folder / "model.safetensors").stat().st_size
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size // 2, hard))
    try:
        with pytest.raises(CheckpointWriteError, match="checkpoint write failed: File too large"):
            versioned(folder, 2)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous_handler)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]
    assert_loads_version(folder, 1)


def test_every_file_of_a_checkpoint_is_fsynced(tmp_path, monkeypatch):
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd (Linux) to name the synced files")
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    versioned(tmp_path / "last", 1)
    names = [os.path.basename(p) for p in synced]
    assert {"model.safetensors", "meta.json", "state.pt"} <= set(names)
    assert str(tmp_path) in synced  # the renames, through the parent folder
    # The temporary folder itself, after its files and before the first rename (guards the
    # folder's fsync: without it the new files' names may not survive a power loss).
    files = [i for i, n in enumerate(names) if n in ("model.safetensors", "meta.json", "state.pt")]
    folder = [i for i, n in enumerate(names) if n.startswith(".last.partial-")]
    assert folder and max(files) < folder[0] < synced.index(str(tmp_path))


def test_a_checkpoint_folder_gets_the_permissions_of_any_new_folder(tmp_path):
    """Checkpoints travel between people: the folder must not come out private (0700)."""
    versioned(tmp_path / "last", 1)
    (tmp_path / "plain").mkdir()
    mode = (tmp_path / "plain").stat().st_mode
    assert (tmp_path / "last").stat().st_mode == mode
    assert (tmp_path / "last" / "meta.json").stat().st_mode & 0o777 == mode & 0o666
