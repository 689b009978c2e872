"""Checkpoints: round trip, atomic writes, and refusing files that are not what they claim."""

from __future__ import annotations

import pickle

import pytest
import torch
from safetensors.torch import save_file

from aclstm.models import create
from aclstm.train.checkpoint import (
    CheckpointError,
    atomic_write,
    load_meta,
    load_training_state,
    load_weights,
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
    with pytest.raises(CheckpointError, match=r"state\.pt: refused"):
        load_training_state(tmp_path / "d")
    assert "this ran" not in capsys.readouterr().out
    (tmp_path / "d" / "model.safetensors").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: not a safetensors file"):
        load_weights(tmp_path / "d", create("tiny"))
    with pytest.raises(CheckpointError, match=r"meta\.json: not found"):
        load_meta(tmp_path / "d")
