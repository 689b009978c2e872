"""The training loop: it learns, writes its files, resumes bit for bit, stops on NaN."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F

from aclstm.data import JesterDataset
from aclstm.data.synth import SynthSpec, write_synthetic_set
from aclstm.models import create
from aclstm.train.checkpoint import load_meta
from aclstm.train.loop import TrainSettings, evaluate, fit


class RandomClips(torch.utils.data.Dataset):
    def __init__(self, n=8, classes=8, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 3, 4, 32, 32, generator=g)
        self.y = torch.arange(n) % classes

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


def test_fit_learns_and_writes_its_files(tmp_path):
    torch.manual_seed(0)
    data = RandomClips()
    model = create("tiny", num_classes=8)
    settings = TrainSettings(epochs=12, batch_size=4, lr=0.05)
    logs = []
    metrics = fit(model, data, data, tmp_path, settings, meta={"cell": "gated"}, log=logs.append)
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 12 and lines[-1] == metrics
    assert lines[-1]["train_loss"] < 0.5 * lines[0]["train_loss"]
    assert lines[-1]["train_top1"] == 1.0
    assert metrics["step"] == 24 and metrics["lr"] == pytest.approx(1e-6)
    meta = load_meta(tmp_path / "last")
    assert meta["cell"] == "gated" and meta["settings"]["epochs"] == 12
    assert (tmp_path / "best" / "model.safetensors").exists()
    assert "epoch 12/12" in logs[-1]


@pytest.fixture(scope="module")
def tiny_jester(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    write_synthetic_set(root, SynthSpec(clips_per_class=1, val_fraction=0.0, seed=1))
    return root


class Interrupted(Exception):
    pass


def test_resume_gives_bit_identical_weights(tmp_path, tiny_jester):
    settings = TrainSettings(epochs=3, batch_size=9, lr=0.01)

    def run(work_dir, resume=False, interrupt_after=None):
        torch.manual_seed(123)  # the model's initial weights
        model = create("tiny", num_classes=27)
        train = JesterDataset(tiny_jester, "train", clip_len=4, size=32, seed=5)

        def log(message):  # called once an epoch is checkpointed: stop there, as if killed
            if interrupt_after and message.startswith(f"epoch {interrupt_after}/"):
                raise Interrupted

        fit(model, train, train, work_dir, settings, resume=resume, log=log)
        return model

    straight = run(tmp_path / "a")
    with pytest.raises(Interrupted):
        run(tmp_path / "b", interrupt_after=1)
    resumed = run(tmp_path / "b", resume=True)
    for (name, a), b in zip(
        straight.state_dict().items(), resumed.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3]


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(tmp_path):
    data = RandomClips()
    model = create("tiny", num_classes=8)
    fit(model, data, data, tmp_path, TrainSettings(epochs=1, batch_size=4), log=lambda _: None)
    before = (tmp_path / "last" / "model.safetensors").read_bytes()
    with torch.no_grad():
        model.classifier.weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="non-finite loss nan at epoch 1,"):
        fit(model, data, data, tmp_path, TrainSettings(epochs=1, batch_size=4), log=lambda _: None)
    assert (tmp_path / "last" / "model.safetensors").read_bytes() == before


def test_evaluate_counts_top1_and_top5():
    data = RandomClips(n=6, classes=6)
    model = create("tiny", num_classes=6)
    result = evaluate(model, data, batch_size=4)
    assert result["clips"] == 6 and 0 <= result["top1"] <= result["top5"] <= 1


def test_skipped_clips_are_counted_and_reported_at_the_end_of_the_epoch(tmp_path):
    root = tmp_path / "data"
    write_synthetic_set(root, SynthSpec(clips_per_class=1, val_fraction=0.0, seed=2))
    for clip in ("00001", "00002", "00003"):  # three unreadable clips: no JPEG is readable
        for frame in (root / "20bn-jester-v1" / clip).iterdir():
            frame.write_bytes(b"not a jpeg")
    train = JesterDataset(root, "train", clip_len=4, size=32, on_error="skip", seed=0)
    val = JesterDataset(root, "train", clip_len=4, size=32, training=False, on_error="skip")
    logs = []
    settings = TrainSettings(epochs=1, batch_size=9, progress=False, tensorboard=False)
    metrics = fit(create("tiny", num_classes=27), train, val, tmp_path / "run", settings,
                  log=logs.append)  # fmt: skip
    assert metrics["train_skipped"] == 3 and metrics["val_skipped"] == 3
    assert "skipped 3 train + 3 val unreadable clips" in logs[-1]


@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_label_smoothing_is_applied_to_the_training_loss(tmp_path, smoothing):
    torch.manual_seed(0)
    data = RandomClips(n=8, classes=8)
    model = create("tiny", num_classes=8)
    start = copy.deepcopy(model).train()
    settings = TrainSettings(
        epochs=1, batch_size=8, lr=0.0, end_lr=0.0, label_smoothing=smoothing, progress=False
    )
    metrics = fit(model, data, data, tmp_path, settings, log=lambda _: None)
    with torch.no_grad():  # one step over all 8 clips: BatchNorm sees the same batch
        expected = F.cross_entropy(start(data.x), data.y, label_smoothing=smoothing)
    assert metrics["train_loss"] == pytest.approx(expected.item(), rel=1e-5)
