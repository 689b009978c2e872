"""Export for deployment: ONNX (ONNX Runtime, TensorRT) and ``torch.export`` programs (``.pt2``).

* :func:`export_convlstm`: an :class:`aclstm.nn.ConvLSTM` on its own;
* :func:`export_checkpoint` / :func:`export_gesture_net`: a gesture network as its clip model,
  or as its streaming step (``aclstm export``);
* :func:`load_exported`: run such an export (``aclstm predict`` and ``aclstm stream`` do).

See docs/export.md for the graphs' inputs and outputs.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.export import Dim

from aclstm.nn.convlstm import ConvLSTM

from .gesture import ExportResult, export_checkpoint, export_gesture_net
from .graphs import TIME_MODES, ConvLSTMGraph, StreamingStep
from .program import FORMATS, MAX_DIFFERENCE, check_against, export_module, format_of
from .runtime import Runner, is_exported, load_exported, meta_path

__all__ = [
    "FORMATS",
    "MAX_DIFFERENCE",
    "TIME_MODES",
    "ConvLSTMGraph",
    "ExportResult",
    "StreamingStep",
    "export_checkpoint",
    "export_convlstm",
    "export_gesture_net",
    "is_exported",
    "load_exported",
    "meta_path",
]


def export_convlstm(
    module: ConvLSTM,
    out: str | Path,
    time: str = "scan",
    frames: int = 4,
    size: tuple[int, int] = (16, 16),
    batch: int = 2,
    format: str | None = None,
    check: bool = True,
) -> float | None:
    """Export ``module`` (left in eval mode) as ``(input, h_0, c_0) -> (output, h_n, c_n)``
    (shapes as :class:`ConvLSTM`'s; pass zero states for a fresh start) to ``out`` (.onnx or
    .pt2).

    Batch, height and width are dynamic. ``time="scan"`` keeps T dynamic too (an ONNX ``Scan``
    over the steps); ``"unrolled"`` writes one copy of the step per time step, for exactly
    ``frames`` steps. The example that is traced has ``batch`` x ``frames`` x ``size``.
    With ``check``, the file is loaded back and run beside PyTorch on another shape
    (a longer T where it is dynamic); returns the largest difference of the outputs (None
    unchecked), and removes the file if it exceeds :data:`MAX_DIFFERENCE` (or does not load).
    """
    format = format_of(out, format)
    graph = ConvLSTMGraph(module, time).eval()
    if frames < 2 or batch < 2:
        raise ValueError("trace with frames >= 2 and batch >= 2 (a 1 would be fixed)")

    def example(b: int, t: int, h: int, w: int) -> tuple[torch.Tensor, ...]:
        x = torch.randn(b, t, module.input_size, h, w)
        if not module.batch_first:
            x = x.transpose(0, 1).contiguous()
        state = torch.randn(module.num_layers * module.num_directions, b, module.hidden_size, h, w)
        return x, state, torch.randn_like(state)

    dims = {"batch": Dim("batch"), "height": Dim("height"), "width": Dim("width")}
    batch_axis, time_axis = (0, 1) if module.batch_first else (1, 0)
    x_dims = {batch_axis: dims["batch"], 3: dims["height"], 4: dims["width"]}
    if time == "scan":
        x_dims[time_axis] = Dim("time")
    state_dims = {1: dims["batch"], 3: dims["height"], 4: dims["width"]}
    export_module(
        graph, example(batch, frames, *size), out, format,
        ["input", "h_0", "c_0"], ["output", "h_n", "c_n"], [x_dims, state_dims, state_dims],
    )  # fmt: skip
    if not check:
        return None
    probe = example(batch + 1, frames + 3 if time == "scan" else frames, size[0] + 4, size[1])
    return check_against(out, lambda: zip(graph(*probe), Runner(out)(*probe), strict=True))
