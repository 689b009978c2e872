"""The modules that are exported: every input and output a tensor, the state explicit.

* :class:`ConvLSTMGraph`: :class:`aclstm.nn.ConvLSTM` with its state as inputs, time either
  unrolled (a fixed T) or a ``scan`` over a time dimension of any length;
* :class:`StreamingStep`: one step of a causal :class:`GestureNet` on a stream, (new frames,
  h, c, stream buffers) -> (the step's logits, new h, new c, new buffers), the host driving
  time. It runs the network's own modules, so its logits are the offline network's.

The clip model needs no wrapper: :class:`GestureNet` itself is exported.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch._higher_order_ops.scan import scan

from aclstm.models.gesture_net import FRAMES_PER_STEP, GestureNet
from aclstm.models.layers import Conv3d, StreamBuffer
from aclstm.nn.cells import ConvLSTMCellBase, State
from aclstm.nn.convlstm import ConvLSTM

__all__ = ["TIME_MODES", "ConvLSTMGraph", "StreamingStep", "scan_cell"]

# How an exported ConvLSTM handles time: "scan" (ONNX Scan: any T) or "unrolled" (one copy of
# the step per time step: the T of the example only).
TIME_MODES = ("scan", "unrolled")


def scan_cell(cell: ConvLSTMCellBase, x: Tensor, state: State, reverse: bool = False):
    """:func:`aclstm.nn.convlstm.run_cell` as a ``scan``: the input-only work on all T·B frames
    at once, then the recurrence as one scanned step, so that an export keeps T dynamic.
    Returns the hidden states (T, B, C_out, H, W) and the last ``(h, c)``."""
    t, b = x.shape[:2]
    terms = tuple(p.unflatten(0, (t, b)) for p in cell.precompute(x.flatten(0, 1)))
    if reverse:
        terms = tuple(p.flip(0) for p in terms)

    def step(carry: State, pre: tuple[Tensor, ...]):
        h, c, _ = cell.step(pre, carry)
        return (h, c), h.clone()  # scan's outputs may not alias its carry

    (h, c), outputs = scan(step, state, terms)
    return (outputs.flip(0) if reverse else outputs), (h, c)


class ConvLSTMGraph(nn.Module):
    """``(input, h_0, c_0) -> (output, h_n, c_n)`` of a :class:`ConvLSTM`, shapes as its own
    (``batch_first`` as the module says; pass zeros for a fresh start). ``time="scan"`` runs the
    recurrence as a scan over the time dimension, ``"unrolled"`` as T copies of the step."""

    def __init__(self, module: ConvLSTM, time: str = "scan") -> None:
        super().__init__()
        if time not in TIME_MODES:
            raise ValueError(f"time must be one of {', '.join(TIME_MODES)}; got {time!r}")
        self.module = module
        self.time = time

    def forward(self, x: Tensor, h_0: Tensor, c_0: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        module = self.module
        if self.time == "unrolled":
            output, (h_n, c_n) = module(x, (h_0, c_0))
            return output, h_n, c_n
        module._check_input(x, (h_0, c_0))
        layer_input = x.transpose(0, 1) if module.batch_first else x
        h_n, c_n = [], []
        for layer in range(module.num_layers):
            outputs = []
            for direction in range(module.num_directions):
                index = layer * module.num_directions + direction
                out, (h, c) = scan_cell(
                    module.cells[index], layer_input, (h_0[index], c_0[index]), direction == 1
                )
                outputs.append(out)
                h_n.append(h)
                c_n.append(c)
            layer_input = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=2)
        output = layer_input.transpose(0, 1) if module.batch_first else layer_input
        return output, torch.stack(h_n), torch.stack(c_n)


class StreamingStep(nn.Module):
    """One ConvLSTM step of a causal :class:`GestureNet` on a stream, as a pure function.

    Inputs: ``frames`` (B, C, 2, H, W), the stream's next two preprocessed frames (Res3D
    halves time once: two frames make one step); ``h`` and ``c`` (layers, B, hidden, H/4, W/4);
    then one buffer per causal 3D convolution with a temporal kernel k_t > 1: its last k_t - 1
    input frames (B, C_in, k_t - 1, H_l, W_l), which stand in for the zero padding of the
    offline network. Outputs: the step's ``logits`` (B, 1, classes), the new ``h`` and ``c``,
    the new buffers. A stream starts from zeros everywhere (:meth:`initial_state`). ``size``:
    the frames' H = W (default: the network config's).
    """

    def __init__(self, net: GestureNet, size: int | None = None) -> None:
        super().__init__()
        if net.config.temporal_padding != "causal":
            raise ValueError("a streaming step needs a causal network (GestureNet.causal())")
        if net.training:
            raise ValueError("a streaming step needs the network in eval mode")
        self.net = net
        self.size = size or net.config.size
        convs = [m for m in net.res3d.modules() if isinstance(m, Conv3d)]
        self._convs = convs
        self._buffered = [m for m in convs if m.kernel_size[0] > 1]

    def buffer_shapes(self, batch: int = 1) -> list[tuple[int, ...]]:
        """The shapes of the buffers, in input order, for a batch of ``batch`` streams."""
        shapes = []

        def record(conv: Conv3d, args: tuple[Tensor, ...]) -> None:
            _, channels, _, height, width = args[0].shape
            shapes.append((batch, channels, conv.kernel_size[0] - 1, height, width))

        hooks = [conv.register_forward_pre_hook(record) for conv in self._buffered]
        try:
            with torch.no_grad():
                self.net.res3d(self.example_frames(1))
        finally:
            for hook in hooks:
                hook.remove()
        return shapes

    def example_frames(self, batch: int = 1) -> Tensor:
        size = self.size
        return torch.zeros(batch, self.net.config.in_channels, FRAMES_PER_STEP, size, size)

    def state_shape(self, batch: int = 1) -> tuple[int, ...]:
        config = self.net.config
        side = self.size // 4
        return (config.lstm_layers, batch, config.lstm_hidden, side, side)

    def initial_state(self, batch: int = 1) -> tuple[Tensor, ...]:
        """Zero ``h``, ``c`` and buffers: the start of a stream."""
        h = torch.zeros(self.state_shape(batch))
        return (h, torch.zeros_like(h), *(torch.zeros(s) for s in self.buffer_shapes(batch)))

    def forward(self, frames: Tensor, h: Tensor, c: Tensor, *buffers: Tensor):
        if len(buffers) != len(self._buffered):
            raise ValueError(f"expected {len(self._buffered)} buffers, got {len(buffers)}")
        streams = {id(conv): StreamBuffer() for conv in self._convs}
        for conv, frames_before in zip(self._buffered, buffers, strict=True):
            streams[id(conv)].frames = frames_before
        for conv in self._convs:
            conv.stream = streams[id(conv)]
        try:
            features = self.net.res3d(frames)  # (B, C, 1, H', W')
            new_buffers = [streams[id(conv)].frames for conv in self._buffered]
        finally:
            for conv in self._convs:
                conv.stream = None
        hidden, (h, c) = self.net.convlstm(features.permute(2, 0, 1, 3, 4), (h, c))
        logits = self.net.classifier(self.net.step_features(hidden)).transpose(0, 1)
        return (logits, h, c, *(b.clone() for b in new_buffers))
