"""The gesture network on a stream, frame by frame, with everything it needs carried forward.

A causal network (``temporal_padding="causal"``) computes step t' from frames <= 2t' only, so
a stream can be fed a few frames at a time: each temporal convolution keeps the last inputs
its kernel still needs (a :class:`~aclstm.models.layers.StreamBuffer`, in place of the zero
padding; the stride-2 layers emit every second frame), the ConvLSTM layers carry (h, c), and
the MobileNet top and the head run on each new step. The logits are the offline network's
(:meth:`GestureNet.forward_steps`), and the memory held is the same whatever the stream's
length. The network's own modules and weights do the work: nothing is copied.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor

from .gesture_net import GestureNet
from .layers import Conv3d, StreamBuffer

__all__ = ["Streamer"]


class Streamer:
    """Feeds a causal :class:`GestureNet` a stream of frames, a chunk at a time.

    ``push(frames)`` takes the stream's next frames, (B, C, n, H, W) with any n >= 1, and
    returns the logits of the ConvLSTM steps they complete, (B, steps, num_classes): one step
    per two frames (the network halves time once), so a single frame may complete none.
    ``reset()`` starts a new stream. The network must be in eval mode (BatchNorm's batch
    statistics would differ from chunk to chunk) and is run without autograd.
    """

    def __init__(self, net: GestureNet) -> None:
        if net.config.temporal_padding != "causal":
            raise ValueError(
                "streaming needs a causal network (temporal_padding='causal'): with symmetric "
                "padding each step also sees the frame after it"
            )
        self.net = net
        self._convs = [m for m in net.res3d.modules() if isinstance(m, Conv3d)]
        # Res3D's stages in order, each with the temporal stride of its convolutions (its
        # branches stride time alike). A strided stage is fed only frames that complete one
        # of its outputs; the others wait here, so no stage runs for nothing.
        self._stages = [
            (stage, max(m.stride[0] for m in stage.modules() if isinstance(m, Conv3d)))
            for stage in net.res3d.children()
        ]
        self.reset()

    def reset(self) -> None:
        """Forget the stream: the next push starts a new one."""
        self._buffers = [StreamBuffer() for _ in self._convs]
        self._waiting: list[Tensor | None] = [None] * len(self._stages)
        self._stage_frames = [0] * len(self._stages)  # frames each stage has been fed
        self._state: tuple[Tensor, Tensor] | None = None
        self.frames_seen = 0
        self.steps_done = 0

    def _res3d(self, x: Tensor) -> Tensor | None:
        """Res3D on the stream's next frames, stage by stage; None while no step is done."""
        for k, (stage, stride) in enumerate(self._stages):
            if self._waiting[k] is not None:
                x = torch.cat([self._waiting[k], x], dim=2)
                self._waiting[k] = None
            start = self._stage_frames[k]
            if stride > 1 and (-start) % stride >= x.shape[2]:  # completes no output yet
                self._waiting[k] = x
                return None
            self._stage_frames[k] += x.shape[2]
            x = stage(x)
        return x

    @contextlib.contextmanager
    def _buffers_installed(self) -> Iterator[None]:
        for conv, buffer in zip(self._convs, self._buffers, strict=True):
            conv.stream = buffer
        try:
            yield
        finally:
            for conv in self._convs:
                conv.stream = None

    @torch.inference_mode()
    def push(self, frames: Tensor) -> Tensor:
        """The logits (B, steps, num_classes) of the steps that ``frames`` complete."""
        if self.net.training:
            raise RuntimeError("stream with the network in eval mode: call net.eval() first")
        self.net.check_input(frames, min_frames=1)
        with self._buffers_installed():
            features = self._res3d(frames)  # (B, C, steps, H', W')
        self.frames_seen += frames.shape[2]
        if features is None:
            return frames.new_zeros((frames.shape[0], 0, self.net.config.num_classes))
        steps = features.shape[2]
        hidden, self._state = self.net.convlstm(features.permute(2, 0, 1, 3, 4), self._state)
        self.steps_done += steps
        return self.net.classifier(self.net.step_features(hidden)).transpose(0, 1)

    def state_bytes(self) -> int:
        """Bytes of everything carried from one push to the next."""
        tensors = [b.frames for b in self._buffers if b.frames is not None]
        tensors += [w for w in self._waiting if w is not None] + list(self._state or ())
        return sum(t.numel() * t.element_size() for t in tensors)
