"""The training loop: it learns, writes its files, resumes bit for bit, stops on NaN (or skips
and counts NaN batches when told to)."""

from __future__ import annotations

import copy
import json
import math
import os
import re
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from aclstm.data import JesterDataset
from aclstm.data.synth import SynthSpec, write_synthetic_set
from aclstm.models import create
from aclstm.train.checkpoint import load_meta
from aclstm.train.loop import TrainSettings, evaluate, fit

from helpers import free_port


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


def test_best_holds_the_epoch_with_the_best_validation_top1(tmp_path, monkeypatch):
    """Guards best/: validation top-1 scripted as 0.2, 0.6, 0.4 over three epochs; best/ must
    hold epoch 2's weights and metrics (not the last epoch's, nor the first)."""
    from safetensors.torch import load_file

    import aclstm.train.loop as loop

    scripted, snapshots = iter([0.2, 0.6, 0.4]), []

    def scripted_evaluate(model, *args, **kwargs):
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return {**evaluate(model, *args, **kwargs), "top1": next(scripted)}

    monkeypatch.setattr(loop, "evaluate", scripted_evaluate)
    torch.manual_seed(0)
    data = RandomClips()
    fit(create("tiny", num_classes=8), data, data, tmp_path, TrainSettings(epochs=3, batch_size=4))
    assert load_meta(tmp_path / "best")["metrics"]["epoch"] == 2
    best = load_file(str(tmp_path / "best" / "model.safetensors"))
    assert all(torch.equal(best[k], snapshots[1][k]) for k in best)
    assert not torch.equal(best["classifier.weight"], snapshots[2]["classifier.weight"])


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


class DropoutNet(torch.nn.Module):
    """A small clip classifier with dropout: its training draws from the global random stream,
    which a resumed run must replay from the very step it stopped at."""

    def __init__(self, classes=8):
        super().__init__()
        self.conv = torch.nn.Conv3d(3, 4, 3, padding=1)
        self.drop = torch.nn.Dropout(0.5)
        self.head = torch.nn.Linear(4, classes)

    def forward(self, clips):
        return self.head(self.drop(self.conv(clips).mean(dim=(2, 3, 4))))


def test_a_run_stopped_mid_epoch_resumes_its_random_streams_bit_exactly(tmp_path):
    class Stop(Exception):
        pass

    settings = quiet(epochs=2, batch_size=2, checkpoint_every=1)
    data = RandomClips()

    def run(work_dir, resume=False, stop_at=None):
        torch.manual_seed(7)
        model = DropoutNet()
        if stop_at is not None:  # the optimiser step after the checkpoint of step stop_at - 1
            steps = iter(range(1, 100))
            real = torch.optim.SGD.step

            def step(self, *args, **kwargs):
                if next(steps) == stop_at:
                    raise Stop
                return real(self, *args, **kwargs)

            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(torch.optim.SGD, "step", step)
                with pytest.raises(Stop):
                    fit(model, data, data, work_dir, settings, log=lambda _: None)
            return model
        fit(model, data, data, work_dir, settings, resume=resume, log=lambda _: None)
        return model

    straight = run(tmp_path / "a")
    run(tmp_path / "b", stop_at=3)  # in epoch 1 of 4 steps, with step 2's checkpoint
    resumed = run(tmp_path / "b", resume=True)
    after = resumed.state_dict()
    for name, a in straight.state_dict().items():
        assert torch.equal(a, after[name]), name


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(tmp_path):
    data = RandomClips()
    model = create("tiny", num_classes=8)
    fit(model, data, data, tmp_path, TrainSettings(epochs=1, batch_size=4), log=lambda _: None)
    before = (tmp_path / "last" / "model.safetensors").read_bytes()
    with torch.no_grad():
        model.classifier.weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError) as info:
        fit(model, data, data, tmp_path, TrainSettings(epochs=1, batch_size=4), log=lambda _: None)
    assert str(info.value) == (
        f"non-finite loss nan at epoch 1, step 0; the last good checkpoint is {tmp_path / 'last'}"
        " (train.skip_nonfinite = true skips such batches instead)"
    )
    assert (tmp_path / "last" / "model.safetensors").read_bytes() == before


class RankedLogits(torch.nn.Module):
    """Logits that rank clip i's true class at place ``ranks[i]`` (0: first), whatever the
    input: top-1 and top-5 are then known exactly."""

    def __init__(self, labels, ranks, classes=10):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))  # evaluate asks for a device
        logits = torch.zeros(len(labels), classes)
        for i, (label, rank) in enumerate(zip(labels, ranks, strict=True)):
            others = [c for c in range(classes) if c != label]
            order = [*others[:rank], label, *others[rank:]]
            logits[i, order] = torch.arange(classes, 0, -1, dtype=torch.float)
        self.logits, self.calls = logits, 0

    def forward(self, x):
        out = self.logits[self.calls : self.calls + len(x)]
        self.calls += len(x)
        return out


def test_evaluate_counts_top1_and_top5():
    """Guards against top-5 computed as top-1 (or top-k of another k): true classes ranked
    0, 2, 4, 5, 9 give top-1 1/5 and top-5 3/5 exactly."""
    data = RandomClips(n=5, classes=10)
    model = RankedLogits(data.y.tolist(), ranks=[0, 2, 4, 5, 9])
    result = evaluate(model, data, batch_size=2)
    assert result["clips"] == 5
    assert result["top1"] == pytest.approx(1 / 5) and result["top5"] == pytest.approx(3 / 5)


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


class NaNClips(RandomClips):
    """RandomClips with the clips at ``bad`` full of NaN: their batches' losses are NaN."""

    def __init__(self, bad, n=8, classes=8):
        super().__init__(n, classes)
        self.x[list(bad)] = float("nan")


def quiet(**kwargs):
    return TrainSettings(progress=False, tensorboard=False, **kwargs)


def test_skip_nonfinite_skips_the_batch_counts_it_and_reports_it(tmp_path):
    torch.manual_seed(0)
    logs = []
    settings = quiet(epochs=2, batch_size=4, skip_nonfinite=True)
    metrics = fit(create("tiny", num_classes=8), NaNClips(bad=[3]), RandomClips(), tmp_path,
                  settings, log=logs.append)  # fmt: skip
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["train_nonfinite"] for r in records] == [1, 1]  # one of the 2 batches an epoch
    assert metrics["step"] == 4 and math.isfinite(metrics["train_loss"])
    assert logs[-1].endswith(", skipped 1 batch with a non-finite loss")


def test_a_skipped_batch_takes_no_optimiser_step_and_leaves_batch_norm_alone(tmp_path):
    torch.manual_seed(0)
    model = create("tiny", num_classes=8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    settings = quiet(epochs=1, batch_size=4, skip_nonfinite=True)
    metrics = fit(model, NaNClips(bad=range(8)), RandomClips(), tmp_path, settings,
                  log=lambda _: None)  # fmt: skip
    assert metrics["train_nonfinite"] == 2 and metrics["step"] == 2
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_too_many_non_finite_batches_in_a_row_stop_the_run_anyway(tmp_path):
    data = RandomClips()
    model = create("tiny", num_classes=8)
    fit(model, data, data, tmp_path, quiet(epochs=1, batch_size=2), log=lambda _: None)
    before = (tmp_path / "last" / "model.safetensors").read_bytes()
    settings = quiet(epochs=1, batch_size=2, skip_nonfinite=True, nonfinite_limit=2)
    with pytest.raises(
        FloatingPointError,
        match=r"^3 batches in a row had a non-finite loss \(more than train\.nonfinite_limit = "
        r"2\) at epoch 1, step 2; the last good checkpoint is .*last$",
    ):
        fit(model, NaNClips(bad=range(8)), data, tmp_path, settings, log=lambda _: None)
    assert (tmp_path / "last" / "model.safetensors").read_bytes() == before


def test_weights_gone_non_finite_are_not_checkpointed(tmp_path):
    """A step with a finite loss can still blow the weights up (here an infinite learning
    rate): the epoch's checkpoint is refused, the previous one stays."""
    data = RandomClips()
    model = create("tiny", num_classes=8)
    fit(model, data, data, tmp_path, quiet(epochs=1, batch_size=8), log=lambda _: None)
    before = (tmp_path / "last" / "model.safetensors").read_bytes()
    settings = quiet(epochs=1, batch_size=8, lr=float("inf"))
    with pytest.raises(FloatingPointError, match=r"^non-finite weights after epoch 1 \(\d+ tens"):
        fit(model, data, data, tmp_path, settings, log=lambda _: None)
    assert (tmp_path / "last" / "model.safetensors").read_bytes() == before


def test_resume_repairs_the_metrics_a_kill_left_behind(tmp_path):
    """Killed after the checkpoint of epoch 2 but before its record, with half a record of
    epoch 3 of an older attempt: resuming leaves one record per epoch, 1 to 3."""
    data = RandomClips()
    settings = quiet(epochs=2, batch_size=4)
    fit(create("tiny", num_classes=8), data, data, tmp_path, settings, log=lambda _: None)
    metrics = tmp_path / "metrics.jsonl"
    first, second = metrics.read_text().splitlines()
    metrics.write_text(first + '\n{"epoch": 3, "train_lo')
    settings = quiet(epochs=3, batch_size=4)  # a run extended by an epoch
    fit(create("tiny", num_classes=8), data, data, tmp_path, settings, resume=True,
        log=lambda _: None, allow_changes=True)  # fmt: skip
    records = [json.loads(x) for x in metrics.read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert records[1] == json.loads(second)  # from last/meta.json of epoch 2


TORCHRUN_SKIP = """
import sys, torch
from aclstm.models import create
from aclstm.train import distributed
from aclstm.train.loop import TrainSettings, fit

class Clips(torch.utils.data.Dataset):
    def __init__(self, bad):
        self.x = torch.randn(8, 3, 4, 32, 32, generator=torch.Generator().manual_seed(0))
        self.x[bad] = float("nan")
    def __len__(self):
        return 8
    def __getitem__(self, i):
        return self.x[i], i

distributed.init_from_env(torch.device("cpu"))
torch.manual_seed(0)
settings = TrainSettings(epochs=2, batch_size=4, progress=False, tensorboard=False,
                         skip_nonfinite=True)
metrics = fit(create("tiny", num_classes=8), Clips([3]), Clips([]), sys.argv[1], settings)
print(f"rank {distributed.rank()}: train_nonfinite {metrics['train_nonfinite']}")
distributed.shutdown()
"""


def torchrun_two_processes(script_text: str, tmp_path) -> subprocess.CompletedProcess:
    """Run ``script_text`` as 2 gloo processes under torchrun (one thread each), with the run
    folder ``tmp_path/run`` as its argument; it must succeed."""
    script = tmp_path / "script.py"
    script.write_text(script_text)
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
         f"--master_port={free_port()}", str(script), str(tmp_path / "run")],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_under_torchrun_one_process_nan_skips_the_batch_in_every_process(tmp_path):
    """Clip 3 lands in one process's half of a batch: both processes skip that step (neither
    waits for the other's gradients), count it once, and end with the same weights."""
    result = torchrun_two_processes(TORCHRUN_SKIP, tmp_path)
    assert result.stdout.count("skipped 1 batch with a non-finite loss") == 2  # 2 epochs
    assert "weights identical on all 2 processes" in result.stdout
    assert sorted(re.findall(r"rank \d: train_nonfinite \d", result.stdout)) == [
        "rank 0: train_nonfinite 1",
        "rank 1: train_nonfinite 1",
    ]


TORCHRUN_SIGTERM = """
import os, signal, sys, torch
from aclstm.models import create
from aclstm.train import distributed
from aclstm.train.interrupt import TrainingInterrupted
from aclstm.train.loop import TrainSettings, fit

class Clips(torch.utils.data.Dataset):
    x = torch.randn(16, 3, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    def __len__(self):
        return 16
    def __getitem__(self, i):
        return self.x[i], i % 8

distributed.init_from_env(torch.device("cpu"))
if distributed.rank() == 1:  # only rank 1 is signalled, inside its 3rd step
    real, count = torch.optim.SGD.step, [0]
    def step(self, *args, **kwargs):
        count[0] += 1
        if count[0] == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(self, *args, **kwargs)
    torch.optim.SGD.step = step
torch.manual_seed(0)
settings = TrainSettings(epochs=3, batch_size=4, progress=False, tensorboard=False)
try:
    fit(create("tiny", num_classes=8), Clips(), Clips(), sys.argv[1], settings)
except TrainingInterrupted as stopped:
    print(f"rank {distributed.rank()} stopped: {stopped}", flush=True)
distributed.shutdown()
"""


@pytest.mark.slow
def test_under_torchrun_a_signal_to_one_process_stops_all_at_the_same_step(tmp_path):
    from aclstm.train.checkpoint import load_training_state

    result = torchrun_two_processes(TORCHRUN_SIGTERM, tmp_path)
    for rank in (0, 1):
        assert f"rank {rank} stopped: SIGTERM: stopped after step 3 (epoch 1/3)" in result.stdout
    state = load_training_state(tmp_path / "run" / "last")
    assert (state["step"], state["epoch"], state["batches"]) == (3, 0, 3)


@pytest.mark.parametrize("native", [True, False], ids=["native-bf16", "emulated-bf16"])
def test_amp_auto_is_bf16_only_where_it_is_fast(monkeypatch, native):
    from aclstm.train import loop

    monkeypatch.setattr(loop, "cpu_has_native_bf16", lambda: native)
    cpu = torch.device("cpu")
    assert loop.resolve_amp("auto", cpu) == ("bf16" if native else None)
    assert loop.resolve_amp("bf16", cpu) == "bf16" and loop.resolve_amp(None, cpu) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: not native)
    assert loop.resolve_amp("auto", torch.device("cuda", 0)) == (None if native else "bf16")


@pytest.mark.parametrize(
    ("aten", "onednn", "expected"),
    [
        ("AVX512", None, True),
        ("AVX2", None, False),  # ATEN_CPU_CAPABILITY=avx2
        ("AVX512", "AVX2", False),  # ONEDNN_MAX_CPU_ISA=AVX2
        ("AVX512", "avx512_core", False),  # AVX-512 without bf16
        ("AVX512", "AVX512_CORE_BF16", True),
    ],
)
def test_capping_the_cpu_isa_turns_native_bf16_off(monkeypatch, aten, onednn, expected):
    """An AVX-512 machine standing in for an AVX2 one must train in fp32 under amp = "auto",
    as the AVX2 machine would (guards against detecting bf16 from the CPU's flags alone)."""
    from aclstm.train import loop

    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: aten)
    if onednn is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", onednn)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert loop.cpu_has_native_bf16() is expected
