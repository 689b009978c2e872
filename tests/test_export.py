"""aclstm export: ONNX Runtime and torch.export programs against PyTorch, for the five cells,
the clip model and the streaming step over a whole stream; the CLI; nothing partial left."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from aclstm.cli import main
from aclstm.export import StreamingStep, export_convlstm, load_exported
from aclstm.export.runtime import ExportedStreamer
from aclstm.models import create
from aclstm.nn import ConvLSTM, cell_names
from aclstm.train.checkpoint import save_checkpoint

CLASSES = ["background", "Swiping Left", "Swiping Right"]
TOLERANCE = 1e-4  # fp32 logits and states, the bound


def _onnx_run(path, *inputs: torch.Tensor) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, {n: t.numpy() for n, t in zip(names, inputs, strict=True)})


def _max_difference(ours, theirs) -> float:
    return max(
        float(np.abs(np.asarray(a) - np.asarray(b)).max())
        for a, b in zip(ours, theirs, strict=True)
    )


def _sequence(module: ConvLSTM, batch: int, steps: int, height: int, width: int):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, steps, module.input_size, height, width, generator=g)
    layers = module.num_layers * module.num_directions
    h = torch.randn(layers, batch, module.hidden_size, height, width, generator=g)
    return x, h, torch.randn(h.shape, generator=g)


@pytest.fixture(scope="module")
def every_cell():
    """One ConvLSTM with a layer of each of the five cells (both directions are checked in
    a test of their own)."""
    torch.manual_seed(0)
    return ConvLSTM(3, 6, num_layers=5, cell=cell_names()).eval()


def test_each_cell_exported_with_scan_runs_any_length_in_onnxruntime(every_cell, tmp_path):
    path = tmp_path / "cells.onnx"
    assert export_convlstm(every_cell, path) < TOLERANCE  # checked on export
    model = onnx.load(str(path))
    ops = {node.op_type for node in model.graph.node}
    assert "Scan" in ops and all(node.domain in ("", "ai.onnx") for node in model.graph.node)
    scan = next(node for node in model.graph.node if node.op_type == "Scan")
    body = {node.op_type for node in scan.attribute[0].g.node}  # the step, scanned over time
    # the CPU's hand-written paths (tanh through the sigmoid) stepped aside: plain Tanh
    assert "Tanh" in body or "Tanh" in ops
    for shape in [(1, 2, 8, 8), (3, 9, 12, 20)]:  # batch, time, height, width of any size
        inputs = _sequence(every_cell, *shape)
        with torch.no_grad():
            output, (h_n, c_n) = every_cell(inputs[0], (inputs[1], inputs[2]))
        assert _max_difference([output, h_n, c_n], _onnx_run(path, *inputs)) < TOLERANCE


def test_each_cell_as_a_pt2_program_reloaded(every_cell, tmp_path):
    path = tmp_path / "cells.pt2"
    export_convlstm(every_cell, path, check=False)
    program = torch.export.load(path).module()
    inputs = _sequence(every_cell, 3, 7, 12, 16)
    with torch.no_grad():
        output, (h_n, c_n) = every_cell(inputs[0], (inputs[1], inputs[2]))
        assert _max_difference([output, h_n, c_n], program(*inputs)) < TOLERANCE


@pytest.mark.parametrize("batch_first", [True, False])
def test_the_scanned_graph_equals_the_module_both_directions(batch_first):
    """The scan (run eagerly here) is the module's recurrence, backward direction included."""
    from aclstm.export import ConvLSTMGraph

    torch.manual_seed(0)
    module = ConvLSTM(3, 4, num_layers=2, cell=["b", "c"], bidirectional=True,
                      batch_first=batch_first).eval()  # fmt: skip
    x, h, c = _sequence(module, 2, 5, 8, 8)
    if not batch_first:
        x = x.transpose(0, 1).contiguous()
    with torch.no_grad():
        output, (h_n, c_n) = module(x, (h, c))
        assert _max_difference([output, h_n, c_n], ConvLSTMGraph(module)(x, h, c)) < 1e-6


def test_unrolled_time_is_fixed_and_a_bidirectional_layer_exports(tmp_path):
    torch.manual_seed(0)
    module = ConvLSTM(3, 4, cell="d", bidirectional=True, batch_first=False).eval()
    path = tmp_path / "unrolled.onnx"
    export_convlstm(module, path, time="unrolled", frames=3)
    x, h, c = _sequence(module, 2, 3, 8, 12)
    x = x.transpose(0, 1).contiguous()  # time-first, as the module takes it
    with torch.no_grad():
        output, (h_n, c_n) = module(x, (h, c))
    assert _max_difference([output, h_n, c_n], _onnx_run(path, x, h, c)) < TOLERANCE
    assert "Scan" not in {node.op_type for node in onnx.load(str(path)).graph.node}
    with pytest.raises(Exception, match=r"(?i)dimension|shape"):
        _onnx_run(path, torch.cat([x, x[:1]]), h, c)  # a fourth step: not in the graph


def _meta(net, classes=CLASSES) -> dict:
    return {
        "format": 1, "classes": classes, "network": net.config.as_dict(), "preset": "tiny",
        "cell": "gated", "modality": "rgb", "mean": [0.0, 0.0, 0.0], "preprocessing": "default",
        "center": "frame", "clip_len": 8, "size": 32, "config": {},
    }  # fmt: skip


def _shared_folder(tmp_path_factory, name: str, build) -> Path:
    """A folder made once for all pytest-xdist workers (each export takes seconds): the
    first worker to get the lock builds it, the others find it done."""
    from filelock import FileLock  # a dependency of torch

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # this run's, common to its workers (popen-gw0, popen-gw1, ...)
    folder = root / name
    with FileLock(str(root / f"{name}.lock")):
        if not (folder / "done").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            (folder / "done").touch()
    return folder


def _write_checkpoint(folder: Path) -> None:
    """A causal tiny network with a background class; its BatchNorm statistics moved off
    their defaults, so that a mistake in them would show."""
    torch.manual_seed(0)
    net = create("tiny", temporal_padding="causal", num_classes=3, size=32, frames=8)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    save_checkpoint(folder / "last", net, _meta(net))


# The exports the tests share: the clip model and the streaming step, ONNX and .pt2.
EXPORTS = {
    "clip": ("clip.onnx",),
    "clip_pt2": ("clip.pt2",),
    "streaming": ("step.onnx", "--streaming"),
    "streaming_pt2": ("step.pt2", "--streaming"),
}


def _write_exports(folder: Path) -> None:
    _write_checkpoint(folder)
    for name, *flags in EXPORTS.values():
        assert main(["export", str(folder / "last"), str(folder / name), *flags]) == 0


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    return _shared_folder(tmp_path_factory, "aclstm-exports", _write_exports)


@pytest.fixture(scope="module")
def checkpoint(exported) -> Path:
    return exported / "last"


@pytest.fixture(scope="module")
def exports(exported) -> dict[str, Path]:
    """The exports made through the CLI, by kind."""
    return {kind: exported / spec[0] for kind, spec in EXPORTS.items()}


def _net(checkpoint):
    from aclstm.train.runner import load_model

    return load_model(checkpoint)[0]


@pytest.mark.parametrize("kind", ["clip", "clip_pt2"])
def test_the_clip_model_exported_equals_pytorch(checkpoint, exports, kind):
    net = _net(checkpoint)
    clips = torch.randn(3, 3, 8, 32, 32)  # another batch size than the export's example
    with torch.no_grad():
        expected = net(clips)
    model, meta = load_exported(exports[kind])
    assert meta["classes"] == CLASSES and meta["export"]["kind"] == "clip"
    assert (model(clips) - expected).abs().max() < TOLERANCE
    if kind == "clip":  # ONNX Runtime's own API, without aclstm's runner
        logits = torch.from_numpy(_onnx_run(exports[kind], clips)[0])
    else:  # torch.export's own loader
        logits = torch.export.load(exports[kind]).module()(clips)
    assert (logits - expected).abs().max() < TOLERANCE


@pytest.mark.parametrize("kind", ["streaming", "streaming_pt2"])
def test_the_streaming_step_over_a_whole_stream_equals_the_offline_network(
    checkpoint, exports, kind
):
    """Pushed in chunks of 1 to 5 frames, state carried by the host, the exported step gives
    every step's logits of the offline network on the whole clip."""
    net = _net(checkpoint)
    clip = torch.randn(2, 3, 20, 32, 32)
    with torch.no_grad():
        offline = net.forward_steps(clip)  # (B, 10, classes)
    model, _ = load_exported(exports[kind], "streaming")
    streamer = model.streamer()
    assert isinstance(streamer, ExportedStreamer)
    chunks, start = [], 0
    for n in (1, 3, 2, 5, 1, 4, 4):
        chunks.append(streamer.push(clip[:, :, start : start + n]))
        start += n
    assert start == 20 and streamer.steps_done == 10
    assert (torch.cat(chunks, dim=1) - offline).abs().max() < TOLERANCE
    streamer.reset()  # a new stream starts from zeros
    assert (streamer.push(clip[:, :, :4]) - offline[:, :2]).abs().max() < TOLERANCE


def test_the_streaming_step_names_its_inputs_and_outputs(exports):
    meta = json.loads(exports["streaming"].with_name("step.onnx.json").read_text())
    spec = meta["export"]
    session = ort.InferenceSession(str(exports["streaming"]), providers=["CPUExecutionProvider"])
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    assert inputs == list(spec["inputs"]) and outputs == list(spec["outputs"])
    assert inputs[:3] == ["frames", "h", "c"] and outputs[:3] == ["logits", "h_next", "c_next"]
    assert len(spec["buffers"]) == len(inputs) - 3 > 0
    assert spec["inputs"]["frames"] == ["batch", 3, 2, 32, 32]
    assert spec["lookahead"] == meta["network"].get("lookahead", 0)  # how a host reads logits


def test_predict_runs_an_onnx_export_as_the_checkpoint(checkpoint, exports, tmp_path, capsys):
    from aclstm.data.video import write_video

    frames = np.random.default_rng(0).integers(0, 255, (12, 40, 48, 3), dtype=np.uint8)
    write_video(tmp_path / "clip.mp4", frames)
    answers = []
    for model in (checkpoint, exports["clip"]):
        assert main(["predict", str(model), str(tmp_path / "clip.mp4"), "--json"]) == 0
        answers.append(json.loads(capsys.readouterr().out)["predictions"])
    assert [p["class"] for p in answers[0]] == [p["class"] for p in answers[1]]
    for a, b in zip(*answers, strict=True):
        assert abs(a["probability"] - b["probability"]) < TOLERANCE


def test_stream_runs_an_onnx_export_as_the_checkpoint(checkpoint, exports, tmp_path, capsys):
    from aclstm.data.synth_continuous import render_continuous
    from aclstm.data.video import write_video

    video = render_continuous((0, 1), classes=(0, 1), frames=(8, 10), depth=False)
    write_video(tmp_path / "v.mov", video.frames[:40])
    for phases in ("1", "2"):  # 2: two streams of the export, each with its own state
        found = []
        for model in (checkpoint, exports["streaming"]):
            args = ["stream", str(model), str(tmp_path / "v.mov"), "--json", "--min-steps", "1"]
            args += ["--enter", "0.3", "--exit", "0.2", "--phases", phases]
            assert main(args) == 0
            found.append([json.loads(line) for line in capsys.readouterr().out.splitlines()])
        assert found[0] and [f["class"] for f in found[0]] == [f["class"] for f in found[1]]
        assert [f["start_frame"] for f in found[0]] == [f["start_frame"] for f in found[1]]


def test_each_kind_is_refused_where_the_other_is_needed(exports, capsys):
    assert main(["stream", str(exports["clip"]), "camera:9"]) == 2
    assert "is a clip export; this needs a streaming export" in capsys.readouterr().err
    assert main(["predict", str(exports["streaming"]), "val:0"]) == 2
    assert "needs a clip export" in capsys.readouterr().err


def test_an_export_without_its_meta_is_refused_naming_it(exports, tmp_path, capsys):
    lonely = tmp_path / "lonely.onnx"
    lonely.write_bytes(exports["clip"].read_bytes())
    assert main(["predict", str(lonely), "val:0"]) == 2
    assert "lonely.onnx.json: not found" in capsys.readouterr().err


def test_refusals_come_before_any_file_is_written(checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["export", str(checkpoint), str(out / "model.txt")]) == 2
    assert "name the format with a .onnx or .pt2" in capsys.readouterr().err
    assert main(["export", str(checkpoint), str(out / "m.onnx"), "--format", "pt2"]) == 2
    assert "a .onnx file name for format 'pt2'" in capsys.readouterr().err
    torch.manual_seed(0)
    isolated = create("tiny", temporal_padding="causal", num_classes=2, size=32, frames=8)
    folder = tmp_path / "isolated"
    save_checkpoint(folder, isolated, _meta(isolated, ["Swiping Left", "Swiping Right"]))
    assert main(["export", str(folder), str(out / "m.onnx"), "--streaming"]) == 2
    assert "no background class" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


def test_a_failed_export_leaves_nothing_behind(checkpoint, tmp_path, monkeypatch, capsys):
    def half_written(program, path, *args, **kwargs):
        path.write_bytes(b"PK\x03\x04 half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch.export, "save", half_written)
    assert main(["export", str(checkpoint), str(tmp_path / "m.pt2")]) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_an_export_that_disagrees_with_pytorch_is_removed(checkpoint, tmp_path, monkeypatch):
    from aclstm.export import runtime

    real_call = runtime.Runner.__call__
    monkeypatch.setattr(
        runtime.Runner, "__call__", lambda self, *x: [o + 0.01 for o in real_call(self, *x)]
    )
    with pytest.raises(RuntimeError, match=r"differ from PyTorch's by 0\.01"):
        main(["export", str(checkpoint), str(tmp_path / "m.onnx")])
    assert list(tmp_path.iterdir()) == []


def test_streaming_step_refuses_a_symmetric_network():
    net = create("tiny", num_classes=3, size=32).eval()
    with pytest.raises(ValueError, match="causal"):
        StreamingStep(net)
    assert StreamingStep(net.causal().eval()).buffer_shapes(1)


def test_the_host_loop_of_the_docs_runs_a_stream(checkpoint, exports, tmp_path, monkeypatch):
    """docs/export.md's ONNX Runtime + NumPy loop, on the streaming export: the scores it
    prints are the offline network's logits, step by step."""
    import contextlib
    import io
    import re

    docs = (Path(__file__).resolve().parents[1] / "docs" / "export.md").read_text()
    (block,) = [b for b in re.findall(r"```py\n(.*?)```", docs, re.DOTALL) if "ort." in b]
    shutil.copy(exports["streaming"], tmp_path / "stream.onnx")
    shutil.copy(exports["streaming"].with_name("step.onnx.json"), tmp_path / "stream.onnx.json")
    monkeypatch.chdir(tmp_path)
    clip = torch.randn(1, 3, 12, 32, 32)
    pairs = [clip[:, :, k : k + 2].numpy() for k in range(0, 12, 2)]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(block, "docs/export.md", "exec"), {"pairs_of_preprocessed_frames": pairs})
    with torch.no_grad():
        offline = _net(checkpoint).forward_steps(clip)[0].numpy()
    scores = np.array(
        [[float(v) for v in line.split()] for line in printed.getvalue().splitlines()]
    )
    assert scores.shape == offline.shape and np.abs(scores - offline).max() < TOLERANCE


def test_an_export_streams_without_the_training_code(exports, tmp_path):
    """A deployment needs the runtime and the preprocessing: aclstm stream on an export
    imports nothing of aclstm.train (checkpoints, configs, the training loop)."""
    import subprocess
    import sys

    from aclstm.data.video import write_video

    frames = np.random.default_rng(0).integers(0, 255, (8, 40, 48, 3), dtype=np.uint8)
    write_video(tmp_path / "v.mp4", frames)
    code = (
        "import sys; from aclstm.cli import main; "
        f"rc = main(['stream', {str(exports['streaming'])!r}, {str(tmp_path / 'v.mp4')!r}]); "
        "print(rc, sorted(m for m in sys.modules if m.startswith(('aclstm.train', "
        "'aclstm.config'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.splitlines()[-1] == "0 []", done.stderr
