"""The paper's Fig. 3: what the ConvLSTM looks at, step by step, over the input frames.

For every recurrent step of the last ConvLSTM layer, the channel of its hidden state with the
largest activation sum over H' x W' (the caption: "the feature map which has the largest
activation sum among the channels") is upsampled to the input size and drawn as a heat-map over
the input frame at the centre of that step's temporal receptive field. Layers with attention
(variants (b)-(d)) get a second strip: their attention maps over the same frames, channel-wise
maps reduced to their mean over channels (the layers' channels do not correspond to the
hidden-state channels of the last layer, so "the same channel" has no meaning across layers).

``visualization_maps`` returns the numbers; ``draw_visualization`` / ``save_visualization``
draw them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aclstm.models.layers import tf_same_pads
from aclstm.models.res3d import Res3D

from .report import pyplot, save_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "AttentionStrip",
    "Visualization",
    "display_frames",
    "draw_visualization",
    "reduce_attention",
    "save_visualization",
    "step_frames",
    "strongest_channels",
    "upsample_maps",
    "visualization_maps",
]


@dataclass
class AttentionStrip:
    """One ConvLSTM layer's attention maps, one (H, W) map per step."""

    layer: int  # 0-based ConvLSTM layer
    cell: str
    channels: int  # channels of the raw map: 1 for input_attention, C for (c) and (d)
    maps: np.ndarray  # (T', H, W), reduced over channels and upsampled to the input size


@dataclass
class Visualization:
    """Everything Fig. 3 draws, as numbers."""

    frames: np.ndarray  # (T', H, W, 3) or (T', H, W): input frames, mean added back, in [0, 1]
    frame_indices: list[int]  # the input frame shown for each step
    channels: list[int]  # the hidden channel with the largest activation sum, per step
    hidden: np.ndarray  # (T', H, W): those channels' maps, upsampled to the input size
    probabilities: np.ndarray  # (num_classes,)
    attention: list[AttentionStrip] = field(default_factory=list)

    @property
    def predicted(self) -> int:
        return int(self.probabilities.argmax())


def _temporal_convs(res3d: Res3D) -> list[nn.Conv3d]:
    """The Conv3d layers along Res3D's main path, input first (the shortcuts sample the same
    positions as the units' first convolutions)."""
    convs = [m for m in res3d.stem if isinstance(m, nn.Conv3d)]
    for block in (res3d.block2, res3d.block3, res3d.block4):
        for unit in block:
            convs += [unit.conv1, unit.conv2]
    return convs


def step_frames(res3d: Res3D, frames: int) -> list[int]:
    """The input frame at the centre of each output step's temporal receptive field.

    Worked out from the kernels, strides, paddings and dilations in time of Res3D's
    convolutions (TensorFlow's "same" padding, where a layer has it, for the length it gets):
    with the released layout (one stride-2 convolution in block 3) step t is centred on frame
    2t, e.g. steps 0..7 of a 16-frame clip show frames 0, 2, ..., 14.
    """
    geometry = []  # (kernel, stride, padding before, dilation) of each layer, in time
    length = frames
    for conv in _temporal_convs(res3d):
        k, s, d = conv.kernel_size[0], conv.stride[0], conv.dilation[0]
        before = after = conv.padding[0]
        if getattr(conv, "tf_same", False):
            before, after = tf_same_pads([length], [k], [s])
        geometry.append((k, s, before, d))
        length = (length + before + after - d * (k - 1) - 1) // s + 1
    centres = [float(j) for j in range(length)]
    for k, s, before, d in reversed(geometry):
        centres = [j * s - before + d * (k - 1) / 2 for j in centres]
    return [min(max(round(c), 0), frames - 1) for c in centres]


def strongest_channels(hidden: Tensor) -> Tensor:
    """Per step, the channel with the largest activation sum over H x W: (T, C, H, W) -> (T,)."""
    return hidden.sum(dim=(-2, -1)).argmax(dim=-1)


def reduce_attention(attention: Tensor) -> Tensor:
    """(T, C, H, W) attention maps -> (T, H, W): the mean over channels (the map itself when
    C is 1, as for ``input_attention``)."""
    return attention.mean(dim=1)


def upsample_maps(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """(T, h, w) -> (T, H, W), bilinear."""
    return F.interpolate(maps[:, None].float(), size=size, mode="bilinear", align_corners=False)[
        :, 0
    ]


def display_frames(clip: Tensor, mean: Sequence[float], indices: Sequence[int]) -> np.ndarray:
    """The frames ``indices`` of a mean-subtracted clip (C, T, H, W) as images in [0, 1]:
    RGB (T', H, W, 3) for 3 channels, else grey (T', H, W), the mean over channels."""
    frames = clip[:, list(indices)].float().cpu()
    frames = frames + torch.tensor(mean, dtype=frames.dtype).view(-1, 1, 1, 1)
    frames = (frames / 255.0).clamp(0.0, 1.0)
    if frames.shape[0] == 3:
        return frames.permute(1, 2, 3, 0).numpy()
    return frames.mean(dim=0).numpy()


@torch.no_grad()
def visualization_maps(model: nn.Module, clip: Tensor, mean: Sequence[float]) -> Visualization:
    """Run a ``GestureNet`` on one clip (C, T, H, W), preprocessed as trained, and collect
    Fig. 3's maps: the strongest hidden channel per step of the last ConvLSTM layer and every
    layer's attention maps, upsampled to the clip's H x W."""
    model.eval()
    device = next(model.parameters()).device
    logits, maps = model(clip.unsqueeze(0).to(device), return_maps=True)
    size = tuple(clip.shape[-2:])
    hidden = maps["hidden"][0].float()  # (T', C, H', W')
    channels = strongest_channels(hidden)
    chosen = hidden[torch.arange(hidden.shape[0], device=hidden.device), channels]
    indices = step_frames(model.res3d, clip.shape[1])
    if len(indices) != hidden.shape[0]:
        raise ValueError(
            f"Res3D's geometry gives {len(indices)} steps for {clip.shape[1]} frames, "
            f"the network returned {hidden.shape[0]}"
        )
    cells = model.config.cells()
    strips = [
        AttentionStrip(
            layer=layer,
            cell=cells[layer],
            channels=att.shape[2],
            maps=upsample_maps(reduce_attention(att[0].float()), size).cpu().numpy(),
        )
        for layer, att in enumerate(maps["attention"])
        if att is not None
    ]
    return Visualization(
        frames=display_frames(clip, mean, indices),
        frame_indices=indices,
        channels=channels.tolist(),
        hidden=upsample_maps(chosen, size).cpu().numpy(),
        probabilities=logits.float().softmax(dim=1)[0].cpu().numpy(),
        attention=strips,
    )


def _title(vis: Visualization, classes: Sequence[str], label: int, source: str) -> str:
    p = vis.probabilities[vis.predicted]
    text = f"{source}: predicted {classes[vis.predicted]!r} ({p:.2f})"
    if label >= 0:
        text += f", labelled {classes[label]!r}"
    return text


def _strip(
    fig: Figure,
    axes: Sequence,
    frames: np.ndarray,
    maps: np.ndarray,
    labels: Sequence[str],
    row_label: str,
) -> None:
    """One row: every frame with its map over it, one colour scale for the row."""
    low, high = float(maps.min()), float(maps.max())
    image = None
    for ax, frame, heat, label in zip(axes, frames, maps, labels, strict=True):
        ax.imshow(frame, cmap=None if frame.ndim == 3 else "gray", vmin=0, vmax=1)
        image = ax.imshow(heat, cmap="jet", alpha=0.5, vmin=low, vmax=high)
        ax.set_title(label, fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].set_ylabel(row_label, fontsize=7)
    fig.colorbar(image, ax=list(axes), fraction=0.02, pad=0.01)


def draw_visualization(
    vis: Visualization, classes: Sequence[str], label: int = -1, source: str = ""
) -> Figure:
    """Fig. 3 as a matplotlib figure: a row of hidden-state heat-maps, then one row per
    layer with attention; columns are the recurrent steps."""
    plt = pyplot()
    steps = len(vis.frame_indices)
    rows = 1 + len(vis.attention)
    fig, axes = plt.subplots(
        rows, steps, figsize=(1.6 * steps + 1.2, 1.9 * rows + 0.6), squeeze=False
    )
    labels = [
        f"step {t}, frame {f}\nchannel {c}"
        for t, (f, c) in enumerate(zip(vis.frame_indices, vis.channels, strict=True))
    ]
    _strip(fig, axes[0], vis.frames, vis.hidden, labels, "last ConvLSTM layer\nstrongest channel")
    for row, strip in zip(axes[1:], vis.attention, strict=True):
        how = "" if strip.channels == 1 else f"\nmean of {strip.channels} channels"
        step_labels = [f"step {t}, frame {f}" for t, f in enumerate(vis.frame_indices)]
        _strip(
            fig,
            row,
            vis.frames,
            strip.maps,
            step_labels,
            f"layer {strip.layer + 1} attention\n{strip.cell}{how}",
        )
    fig.suptitle(_title(vis, classes, label, source), fontsize=9)
    return fig


def save_visualization(
    vis: Visualization,
    path: str | Path,
    classes: Sequence[str],
    label: int = -1,
    source: str = "",
) -> Path:
    """Draw Fig. 3 into a PNG file."""
    return save_figure(draw_visualization(vis, classes, label, source), path, tight=True)
