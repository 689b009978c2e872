"""The aclstm command end to end: train, evaluate, predict, resume, torchrun, and --help."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
import simplejpeg
import torch
from safetensors.torch import load_file

from aclstm.cli import build_parser, main
from aclstm.data.synth import SynthSpec, render_clip, write_synthetic_set
from aclstm.data.video import write_video
from aclstm.train.checkpoint import load_training_state
from aclstm.train.runner import load_model

from helpers import free_port, tiny_run_options

COMMANDS = [
    "complexity",
    "synth",
    "train",
    "evaluate",
    "predict",
    "export",
    "convert-keras",
    "visualize",
    "score",
    "stream",
    "demo",
    "reproduce",
]


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    write_synthetic_set(root, SynthSpec(clips_per_class=2, val_fraction=0.5, seed=3))
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory, synth_root):
    run = tmp_path_factory.mktemp("run")
    assert main(["train", "synth_demo", "--work-dir", str(run), *tiny_run_options(synth_root)]) == 0
    return run


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: aclstm {command}")
    assert len(out.splitlines()) > 5


def test_the_parser_knows_every_command():
    choices = build_parser()._subparsers._group_actions[0].choices
    assert sorted(choices) == sorted(COMMANDS)


def test_train_writes_a_complete_run_folder(trained, capsys):
    records = [json.loads(x) for x in (trained / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    for folder in ("last", "best"):
        meta = json.loads((trained / folder / "meta.json").read_text())
        assert meta["classes"][0] == "Swiping Left" and len(meta["classes"]) == 27
        assert (meta["clip_len"], meta["size"], meta["cell"]) == (4, 32, "gated")
        assert meta["network"]["lstm_hidden"] == 64
    assert (trained / "last" / "state.pt").exists()
    assert any((trained / "tensorboard").iterdir())
    assert json.loads((trained / "config.json").read_text())["train"]["epochs"] == 2


def test_init_from_starts_from_the_checkpoint_with_a_new_head(trained, tmp_path, capsys):
    """Guards train.init_from (the README's Jester -> IsoGD fine-tuning): on four classes with
    the learning rate at 0, every weight but the head ends as the donor's, and the head is new
    and 4 wide. A run that ignored init_from (fresh weights) or kept the donor's head fails."""
    run = tmp_path / "finetune"
    extra = [
        "data.synth.classes=[0, 1, 2, 3]",
        "data.synth.clips_per_class=2",
        "data.synth.val_fraction=0.5",
        f"train.init_from={json.dumps(str(trained / 'last'))}",
        "train.lr=0.0",
        "train.end_lr=0.0",
    ]
    options = tiny_run_options(tmp_path / "four", epochs=1, batch_size=2, extra=extra)
    assert main(["train", "synth_demo", "--work-dir", str(run), *options]) == 0
    assert "with a new 4-way head (it had 27)" in capsys.readouterr().out
    donor = load_file(str(trained / "last" / "model.safetensors"))
    tuned = load_file(str(run / "last" / "model.safetensors"))
    assert tuned["classifier.weight"].shape[0] == 4 and donor["classifier.weight"].shape[0] == 27
    weights = [k for k in donor if not k.startswith("classifier.") and "running" not in k]
    weights = [k for k in weights if not k.endswith("num_batches_tracked")]
    assert len(weights) > 50
    for name in weights:
        assert torch.equal(tuned[name], donor[name]), name


def test_evaluate_reports_per_class_accuracy_and_draws_the_confusion_matrix(trained, capsys):
    out = trained / "eval"
    assert main(["evaluate", str(trained / "last"), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "top-1" in printed and "Drumming Fingers" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["clips"] == 27 and len(report["per_class"]) == 27
    confusion = torch.tensor(report["confusion"])
    assert confusion.shape == (27, 27) and confusion.sum() == 27
    assert report["top1"] == pytest.approx(confusion.diag().sum().item() / 27)
    assert (out / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_predict_reads_a_video_a_frame_folder_and_a_dataset_clip(trained, tmp_path, capsys):
    frames, _ = render_clip(1, seed=11, num_frames=12)
    video = tmp_path / "clip.avi"
    write_video(video, frames)
    folder = tmp_path / "frames"
    folder.mkdir()
    for k, frame in enumerate(frames, 1):
        (folder / f"img_{k:03d}.jpg").write_bytes(simplejpeg.encode_jpeg(frame))
    for source in (str(video), str(folder), "val:3"):
        assert main(["predict", str(trained / "last"), source, "--topk", "3", "--json"]) == 0
        answer = json.loads(capsys.readouterr().out)
        probabilities = [p["probability"] for p in answer["predictions"]]
        assert len(probabilities) == 3 and probabilities == sorted(probabilities, reverse=True)
        assert 0 < sum(probabilities) <= 1 + 1e-6
    assert answer["label"] == "Swiping Up"  # val:3: the validation clip of class 3
    assert main(["predict", str(trained / "last"), str(video)]) == 0
    assert str(video) in capsys.readouterr().out


def test_resume_continues_the_run(tmp_path, synth_root):
    run = tmp_path / "run"
    options = tiny_run_options(synth_root, epochs=1)
    assert main(["train", "synth_demo", "--work-dir", str(run), *options]) == 0
    more = tiny_run_options(synth_root, epochs=2)
    resume = ["--resume", "--allow-changes"]  # two epochs now, not one
    assert main(["train", "synth_demo", "--work-dir", str(run), *resume, *more]) == 0
    epochs = [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "no_such_config"], "no such config file, and no shipped config"),
        (["train", "synth_demo", "--cfg-options", "train.lrr=1"], "unknown key 'lrr'"),
        (["evaluate", "no/such/run"], "meta.json: not found"),
        (["predict", "no/such/run", "x.avi"], "meta.json: not found"),
        (["visualize", "no/such/run", "val:0"], "meta.json: not found"),
    ],
)
def test_mistakes_exit_2_with_a_message_not_a_traceback(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_crash_in_native_code_prints_where_python_was():
    """An abort (as a C++ library raises it) prints a Python traceback, not just the signal."""
    code = (
        "import os, signal; from aclstm.cli import print_tracebacks_on_crash; "
        "print_tracebacks_on_crash(); os.kill(os.getpid(), signal.SIGABRT)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == -signal.SIGABRT
    assert "Fatal Python error: Aborted" in result.stderr and "<string>" in result.stderr


@pytest.mark.slow
def test_torchrun_two_cpu_processes_match_one_process_with_the_same_global_batch(
    tmp_path, synth_root
):
    """2 gloo processes x micro-batch 3 == 1 process x 2 accumulated micro-batches of 3.

    The learned parameters agree; BatchNorm's running statistics differ by construction (one
    process updates them micro-batch after micro-batch, two processes average theirs).
    Agreement is measured against how far training moved each tensor (a run at lr 0 gives
    the initial weights): rounding differs between the two (one thread or two per process,
    another reduction order) and can grow over the steps (0.5 % of the update on some data,
    e.g. where it flips a max-pooling tie), while a real fault (summed instead of averaged
    gradients, a missed all-reduce, other clips) differs by the size of the update itself."""
    # SGD: AdamW's normalised steps would magnify rounding differences of near-zero gradients.
    # channels_last is off under DDP (see fit); off here too, to compare like with like.
    extra = ["train.optimizer=sgd", "train.channels_last=false"]
    options = tiny_run_options(synth_root, epochs=1, batch_size=6, extra=extra)
    single, initial = tmp_path / "single", tmp_path / "initial"
    for work_dir, still in ((single, []), (initial, ["train.lr=0.0"])):
        assert main(["train", "synth_demo", "--work-dir", str(work_dir), *options,
                     "train.accumulate=2", *still]) == 0  # fmt: skip
    ddp = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
         f"--master_port={free_port()}", "-m", "aclstm", "train", "synth_demo",
         "--work-dir", str(ddp), *options],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    # Both streams on failure: whether "weights identical" was printed places a crash before
    # or after the end of training.
    assert result.returncode == 0, f"{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    assert "2 process(es)" in result.stdout
    assert "weights identical on all 2 processes" in result.stdout
    a, b, start = (load_file(str(d / "last" / "model.safetensors")) for d in (single, ddp, initial))
    assert a.keys() == b.keys()
    parameters = [k for k in a if not k.endswith(("running_mean", "running_var", "tracked"))]
    assert len(parameters) > 50
    for key in parameters:
        moved = (a[key] - start[key]).norm().item()
        assert moved > 0, f"{key}: training did not move it"
        differ = (b[key] - a[key]).norm().item()
        assert differ <= 0.02 * moved, f"{key}: DDP and one process differ by {differ / moved:.1%}"


@pytest.mark.slow
def test_a_short_run_on_four_synthetic_classes_learns(tmp_path):
    """The four swipes (chance 0.25): the loss falls and validation accuracy leaves chance
    far behind within a few dozen steps of the demo's recipe."""
    run = tmp_path / "run"
    options = tiny_run_options(tmp_path / "data", epochs=12, batch_size=8)
    options += ["data.synth.classes=[0, 1, 2, 3]", "data.synth.clips_per_class=30",
                "model.frames=8"]  # fmt: skip
    assert main(["train", "synth_demo", "--work-dir", str(run), *options]) == 0
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["train_loss"] < 0.5 * records[0]["train_loss"]
    assert max(r["val_top1"] for r in records[-3:]) >= 0.6


def test_demo_runs_the_whole_pipeline_and_ends_with_val_top1(tmp_path, capsys):
    """The demo at a toy size: every file of the run folder, a prediction, the last line."""
    work = tmp_path / "demo"
    options = ["data.synth.clips_per_class=4", "data.synth.val_fraction=0.25",
               "data.synth.test_fraction=0.25", "data.num_workers=0", "train.epochs=1",
               "model.frames=4"]  # fmt: skip
    assert main(["demo", "--work-dir", str(work), "--cfg-options", *options]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("val_top1=") and 0 <= float(out[-1].split("=")[1]) <= 1
    assert any(line.startswith("predict ") for line in out)
    run = work / "run"
    for name in ("metrics.json", "curves.png", "confusion.png", "report.json", "metrics.jsonl"):
        assert (run / name).stat().st_size > 0, name
    for name in ("model.safetensors", "meta.json"):
        assert (run / "last" / name).exists() and (run / "best" / name).exists()
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["val_top1"] == pytest.approx(float(out[-1].split("=")[1]), abs=1e-4)
    assert summary["val_clips"] == 27 and summary["prediction"]["label"] == "Swiping Left"
    reversal = summary["time_reversal"]  # 20 of the 27 classes have a time-reversed partner
    assert reversal["clips"] == 20 and reversal["pairs"] == 10
    assert min(reversal["top1"], reversal["as_forward"]) >= 0
    assert reversal["top1"] + reversal["as_forward"] <= 1
    assert any(line.startswith("time reversal: 20 validation clips") for line in out)


def test_a_full_disk_during_a_checkpoint_write_exits_2_and_keeps_the_previous_one(
    tmp_path, synth_root, monkeypatch, capsys
):
    """The disk fills up while epoch 2 writes last/state.pt: the run stops with exit code 2 and
    a message naming the folder, and last/ still holds epoch 1, complete."""
    from aclstm.train import checkpoint

    real_write, states = checkpoint._write_bytes, []

    def write(path, data):
        if path.name == "state.pt":
            states.append(path)
            if len(states) == 2:
                real_write(path, data[: len(data) // 2])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real_write(path, data)

    monkeypatch.setattr(checkpoint, "_write_bytes", write)
    run = tmp_path / "run"
    assert main(["train", "synth_demo", "--work-dir", str(run), *tiny_run_options(synth_root)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"aclstm train: error: {run / 'last'}: checkpoint write failed: the disk is full (No "
        "space left on device); the previous checkpoint there is intact"
    )
    monkeypatch.undo()
    assert load_training_state(run / "last")["epoch"] == 1
    _, meta = load_model(run / "last")
    assert meta["metrics"]["epoch"] == 1
    assert not [p.name for p in run.iterdir() if p.name.startswith(".last")]


def test_resuming_with_another_cell_names_the_mismatch(trained, synth_root, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    options = tiny_run_options(synth_root, extra=["model.cell=convlstm"])[2:]
    argv = ["train", "synth_demo", "--work-dir", str(run), "--resume", "--no-progress"]
    assert main([*argv, "--cfg-options", *options]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"{run / 'last' / 'model.safetensors'}: does not fit the model: missing keys" in err
    assert "(the checkpoint's network differs in cell: 'gated', the model's 'convlstm')" in err


def test_skip_nonfinite_flag_turns_a_diverged_run_into_counted_skips(tmp_path, synth_root, capsys):
    """An infinite learning rate: the first step makes every later loss NaN. Without the flag
    the run stops at once (exit 2); with it, the non-finite batches are skipped and counted
    until more than train.nonfinite_limit come in a row."""
    options = tiny_run_options(synth_root, epochs=1, extra=["train.lr=inf"])
    common = ["train", "synth_demo", "--work-dir", str(tmp_path / "run")]
    assert main([*common, *options]) == 2
    assert (
        "error: non-finite loss nan at epoch 1, step 1; no checkpoint was written yet "
        f"({tmp_path / 'run' / 'last'}) (train.skip_nonfinite = true skips such batches instead)"
    ) in capsys.readouterr().err
    flagged = [*common, "--skip-nonfinite", *options, "train.nonfinite_limit=1"]
    assert main(flagged) == 2
    assert (
        "error: 2 batches in a row had a non-finite loss (more than train.nonfinite_limit = 1) "
        "at epoch 1, step 2; no checkpoint was written yet"
    ) in capsys.readouterr().err
