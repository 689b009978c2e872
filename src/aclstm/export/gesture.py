"""Exporting a trained checkpoint: the clip model, or the streaming step, with its meta.

After writing, the file is loaded back in its runtime and run on an example beside the
PyTorch network; the largest difference of the logits is returned, and an export that
disagrees is removed with an error (:func:`~aclstm.export.program.check_against`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.export import Dim

from aclstm.files import atomic_write
from aclstm.models.gesture_net import FRAMES_PER_STEP, GestureNet
from aclstm.recognition import background_classes

from .graphs import StreamingStep
from .program import check_against, export_module, format_of
from .runtime import Runner, meta_path

__all__ = ["ExportResult", "export_checkpoint", "export_gesture_net"]

# Steps of a stream the streaming step's check runs (state carried from one to the next).
CHECK_STEPS = 4


@dataclass(frozen=True)
class ExportResult:
    path: Path
    meta_path: Path
    kind: str  # "clip" or "streaming"
    format: str  # "onnx" or "pt2"
    max_difference: float | None  # of the logits against PyTorch; None when not checked
    note: str = ""  # what the user should know (a symmetric network streamed causal)

    @property
    def streaming(self) -> bool:
        return self.kind == "streaming"


def _clip_graph(net: GestureNet, meta: dict[str, Any]):
    """The clip model: clips (B, C, T, H, W) -> logits (B, classes), B dynamic."""
    config = net.config
    example = torch.randn(2, config.in_channels, meta["clip_len"], meta["size"], meta["size"])
    spec = {
        "kind": "clip",
        "inputs": {"clips": ["batch", config.in_channels, meta["clip_len"], *[meta["size"]] * 2]},
        "outputs": {"logits": ["batch", config.num_classes]},
    }
    return net, (example,), ["clips"], ["logits"], [{0: Dim("batch")}], spec


def _streaming_graph(net: GestureNet, meta: dict[str, Any]):
    """The streaming step over two frames, B dynamic (see :class:`StreamingStep`)."""
    step = StreamingStep(net, meta["size"])
    buffers = step.buffer_shapes(2)  # the example's batch of 2 (1 would be fixed)
    state = step.state_shape(2)
    frames = step.example_frames(2).normal_()
    example = (frames, torch.randn(state), torch.randn(state), *map(torch.randn, buffers))
    batch = Dim("batch")
    dynamic = [{0: batch}, {1: batch}, {1: batch}, ({0: batch},) * len(buffers)]  # *buffers
    # Everything carried from step to step, each input coming back as the output NAME_next.
    carried = {
        "h": [state[0], "batch", *state[2:]],
        "c": [state[0], "batch", *state[2:]],
        **{f"buffer_{k}": ["batch", *s[1:]] for k, s in enumerate(buffers)},
    }
    spec = {
        "kind": "streaming",
        "frames_per_step": FRAMES_PER_STEP,
        "lookahead": net.config.lookahead,  # logits of step t name step t - lookahead
        "state_shape": [state[0], 1, *state[2:]],
        "buffers": [[1, *s[1:]] for s in buffers],
        "inputs": {"frames": ["batch", *frames.shape[1:]], **carried},
        "outputs": {
            "logits": ["batch", 1, net.config.num_classes],
            **{f"{name}_next": shape for name, shape in carried.items()},
        },
    }
    inputs, outputs = list(spec["inputs"]), list(spec["outputs"])
    return step, example, inputs, outputs, dynamic, spec


def _logits(graph, example: tuple[Tensor, ...], runner: Runner, kind: str):
    """(PyTorch's, the file's) logits: of one batch of clips, or of each of
    :data:`CHECK_STEPS` steps of a stream, each side carrying its own state."""
    if kind == "clip":
        yield graph(*example), runner(*example)[0]
        return
    ours, theirs = list(example), list(example)
    for _ in range(CHECK_STEPS):
        a, b = graph(*ours), runner(*theirs)
        yield a[0], b[0]
        frames = torch.randn_like(example[0])
        ours, theirs = [frames, *a[1:]], [frames, *b[1:]]


def export_gesture_net(
    net: GestureNet,
    meta: dict[str, Any],
    out: str | Path,
    format: str | None = None,
    streaming: bool = False,
    check: bool = True,
) -> ExportResult:
    """Export ``net`` (with its checkpoint ``meta``) to ``out`` and its meta beside it
    (:func:`~aclstm.export.runtime.meta_path`), in fp32; ``net`` is left in eval mode.
    Everything that can be refused is refused before a file is written; a failed check
    removes what was written."""
    out = Path(out)
    format = format_of(out, format)
    note = ""
    if streaming:
        background_classes(meta["classes"])  # a stream needs "no gesture" to segment
        if net.config.temporal_padding != "causal":
            note = (
                "the network was trained with symmetric temporal padding; its streaming step "
                "uses causal padding (the same weights), less accurate than a causal network"
            )
        net = net.causal()
    net = net.eval().float()
    graph, example, inputs, outputs, dynamic, spec = (
        _streaming_graph if streaming else _clip_graph
    )(net, meta)
    spec = {**spec, "format": format, "source_network": net.config.as_dict()}
    exported_meta = {**meta, "export": spec}
    export_module(graph, example, out, format, inputs, outputs, dynamic)
    difference = None
    if check:  # the file is loaded inside the check: one that does not load is removed too
        difference = check_against(out, lambda: _logits(graph, example, Runner(out), spec["kind"]))
    try:
        text = json.dumps(exported_meta, indent=2)
        atomic_write(meta_path(out), lambda partial: partial.write_text(text))
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return ExportResult(out, meta_path(out), spec["kind"], format, difference, note)


def export_checkpoint(
    checkpoint: str | Path,
    out: str | Path,
    format: str | None = None,
    streaming: bool = False,
    check: bool = True,
) -> ExportResult:
    """:func:`export_gesture_net` of a checkpoint folder (``aclstm export``)."""
    from aclstm.train.runner import load_model

    format_of(out, format)  # a bad name is refused before the checkpoint is read
    net, meta = load_model(checkpoint)
    return export_gesture_net(net, meta, out, format, streaming, check)
