"""Res3D + ConvLSTM + MobileNet (paper Fig. 1), every ConvLSTM cell pluggable."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import ClassVar

import torch
from torch import Tensor, nn

from aclstm.nn import ConvLSTM, resolve_cell_name
from aclstm.nn.init import he_normal_

from .layers import BN_MOMENTUM
from .mobilenet import PAPER_MOBILENET, MobileNetTop
from .res3d import Res3D

# Input channels per modality.
MODALITY_CHANNELS = {"rgb": 3, "depth": 1, "flow": 2}

# Res3D halves time once: ConvLSTM step t ends on frame 2t (0-based) of the clip.
FRAMES_PER_STEP = 2


def released_layer_cells(cell: str, num_layers: int = 2) -> list[str]:
    """The released networks' stacks: an attention variant is followed by ``gated`` layers;
    ``convlstm`` and ``gated`` fill every layer."""
    name = resolve_cell_name(cell)
    if name in ("convlstm", "gated"):
        return [name] * num_layers
    return [name] + ["gated"] * (num_layers - 1)


@dataclass(frozen=True)
class GestureNetConfig:
    """Everything that shapes the network; presets are named instances of it."""

    num_classes: int = 27
    in_channels: int = 3
    cell: str = "gated"
    layer_cells: tuple[str, ...] | None = None  # one cell per ConvLSTM layer, overrides `cell`
    res3d_widths: tuple[int, int, int, int] = (64, 64, 128, 256)
    lstm_hidden: int = 256
    lstm_layers: int = 2
    kernel_size: int = 3
    gate_activation: str = "sigmoid"
    mobilenet: tuple[tuple[int, int], ...] = PAPER_MOBILENET
    frames: int = 16  # the clip length the preset is meant for; any T >= 2 runs
    size: int = 112  # the input resolution the preset is meant for; any multiple of 16 runs
    bn_momentum: float = BN_MOMENTUM  # Keras' 0.99 as PyTorch's 0.01; short runs want 0.1
    padding: str = "symmetric"  # strided layers' "same" padding: symmetric, or "tf" as released
    mobilenet_bias: bool = False  # a bias on MobileNet's pointwise convs (the released net's)
    temporal_padding: str = "symmetric"  # or "causal": step t sees frames <= 2t (streamable)
    # Continuous recognition: step t's logits name step t - lookahead, so that a causal network
    # sees `lookahead` steps past a step before it names it (trained so; undone by
    # step_probabilities and the stream, which report that many steps later).
    lookahead: int = 0

    def cells(self) -> list[str]:
        if self.layer_cells is not None:
            if len(self.layer_cells) != self.lstm_layers:
                raise ValueError(
                    f"layer_cells names {len(self.layer_cells)} cells for "
                    f"{self.lstm_layers} ConvLSTM layers"
                )
            return [resolve_cell_name(c) for c in self.layer_cells]
        return released_layer_cells(self.cell, self.lstm_layers)

    def as_dict(self) -> dict:
        return asdict(self)


class GestureNet(nn.Module):
    """Clips (B, C, T, H, W) -> logits (B, num_classes).

    Res3D blocks 1-4 give (B, 256, T/2, H/4, W/4); two ConvLSTM layers run over those T/2
    steps keeping H/4 x W/4; the MobileNet top processes every step on its own (time folded
    into the batch; its stride-2 blocks take 28x28 to 4x4 at the paper's size); the head
    averages over steps and positions and applies one linear layer.
    """

    # Stage label -> attribute, in the order data flows.
    stage_attributes: ClassVar[dict[str, str]] = {
        "res3d": "res3d",
        "convlstm": "convlstm",
        "mobilenet": "mobilenet",
        "head": "classifier",
    }

    def __init__(self, config: GestureNetConfig | None = None, **overrides) -> None:
        super().__init__()
        config = replace(config or GestureNetConfig(), **overrides)
        if config.lookahead < 0:
            raise ValueError(f"lookahead must be 0 or more steps, got {config.lookahead}")
        self.config = config
        self.res3d = Res3D(
            config.in_channels, config.res3d_widths, config.padding, config.temporal_padding
        )
        self.convlstm = ConvLSTM(
            self.res3d.out_channels,
            config.lstm_hidden,
            config.kernel_size,
            num_layers=config.lstm_layers,
            cell=config.cells(),
            batch_first=False,  # time-first: each step's frames stay one flat batch
            gate_activation=config.gate_activation,
        )
        self.mobilenet = MobileNetTop(
            config.lstm_hidden, config.mobilenet, config.mobilenet_bias, config.padding
        )
        self.classifier = nn.Linear(self.mobilenet.out_channels, config.num_classes)
        he_normal_(self.classifier)  # as the released training scripts pass it
        for module in self.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.momentum = config.bn_momentum

    def reset_parameters(self) -> None:
        """Every weight as the released code starts it (each stage's own rule)."""
        for stage in self.stages().values():
            if isinstance(stage, nn.Linear):
                he_normal_(stage)
            else:
                stage.reset_parameters()

    def to_channels_last(self) -> GestureNet:
        """Channels-last weights: ``channels_last_3d`` for the 3D convolutions and
        ``channels_last`` for the 2D ones (``Module.to`` takes one format for all, which fails
        on a network with both). Feed it clips in ``channels_last_3d``."""
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                module.to(memory_format=torch.channels_last_3d)
            elif isinstance(module, nn.Conv2d):
                module.to(memory_format=torch.channels_last)
        return self

    def check_input(self, x: Tensor, min_frames: int | None = None) -> None:
        """Clear errors for a clip of the wrong shape, before any layer sees it. A clip needs
        ``min_frames`` frames: by default 2, or 1 for a causal network (its first step sees
        its first frame only, as a stream's does)."""
        if min_frames is None:
            min_frames = 1 if self.config.temporal_padding == "causal" else 2
        c = self.config.in_channels
        if x.dim() != 5:
            raise ValueError(
                f"GestureNet expects clips (B, {c}, T, H, W), got shape {tuple(x.shape)}"
            )
        _, channels, t, h, w = x.shape
        if channels != c:
            raise ValueError(
                f"GestureNet was built for {c} input channels, got {channels} "
                f"(rgb: 3, depth: 1, flow: 2); input shape {tuple(x.shape)}"
            )
        if t < min_frames:
            raise ValueError(f"GestureNet needs at least {min_frames} frames, got T={t}")
        if h % 16 or w % 16:
            raise ValueError(f"GestureNet needs H and W divisible by 16, got {h}x{w}")

    def step_features(self, hidden: Tensor) -> Tensor:
        """The MobileNet top on each step of the last ConvLSTM layer's hidden maps
        (T', B, C, H', W'), pooled over positions: (T', B, C_top)."""
        steps, batch = hidden.shape[:2]
        top = self.mobilenet(hidden.flatten(0, 1))  # (T'·B, C_top, h, w)
        return top.mean(dim=(2, 3)).view(steps, batch, -1)

    def forward_features(
        self, x: Tensor, return_attention: bool = False
    ) -> tuple[Tensor, Tensor, list[Tensor | None]]:
        """Per-step pooled features (T', B, C_top), the last ConvLSTM layer's hidden maps
        (T', B, C, H', W'), and the attention maps of each ConvLSTM layer (empty unless asked
        for)."""
        self.check_input(x)
        features = self.res3d(x)  # (B, C, T', H', W')
        sequence = features.permute(2, 0, 1, 3, 4)  # (T', B, C, H', W')
        attention: list[Tensor | None] = []
        if return_attention:
            hidden, _, attention = self.convlstm(sequence, return_attention=True)
        else:
            hidden, _ = self.convlstm(sequence)
        return self.step_features(hidden), hidden, attention

    def forward(self, x: Tensor, return_maps: bool = False, per_step: bool = False):
        """Logits (B, num_classes) of the whole clip: the head on the features averaged over
        steps; with ``return_maps`` also a dict of the second ConvLSTM layer's hidden maps per
        step, ``hidden`` (B, T', C, H', W'), and ``attention``: each layer's attention maps
        (B, T', ·, H', W'), None for layers without attention. ``per_step``: the logits of
        every step instead, :meth:`forward_steps` (through ``forward``, so a DDP or compiled
        wrapper runs it)."""
        if per_step:
            return self.forward_steps(x)
        steps, hidden, attention = self.forward_features(x, return_attention=return_maps)
        logits = self.classifier(steps.mean(dim=0))
        if not return_maps:
            return logits
        maps = {
            "hidden": hidden.transpose(0, 1),
            "attention": [None if a is None else a.transpose(0, 1) for a in attention],
        }
        return logits, maps

    def forward_steps(self, x: Tensor) -> Tensor:
        """Logits of every ConvLSTM step, (B, T', num_classes): the head on each step's own
        features. Their mean is :meth:`forward`'s clip logits (the head is linear). With
        ``temporal_padding="causal"`` step t' depends on frames <= 2t' only, and
        :meth:`streamer` computes the same logits frame by frame."""
        steps, _, _ = self.forward_features(x)
        return self.classifier(steps).transpose(0, 1)

    def causal(self) -> GestureNet:
        """This network if its temporal padding is causal, else a causal copy with the same
        weights (which streams, less accurately than a network trained causal)."""
        if self.config.temporal_padding == "causal":
            return self
        net = GestureNet(replace(self.config, temporal_padding="causal"))
        net.load_state_dict(self.state_dict())
        return net.to(next(self.parameters()).device).train(self.training)

    def streamer(self):
        """A :class:`~aclstm.models.streaming.Streamer` over this network (causal, eval mode)."""
        from .streaming import Streamer

        return Streamer(self)

    def reset_classifier(self, num_classes: int) -> None:
        """A new, freshly initialised head, e.g. 27 Jester classes -> 249 IsoGD classes."""
        old = self.classifier
        self.classifier = he_normal_(nn.Linear(old.in_features, num_classes).to(old.weight.device))
        self.config = replace(self.config, num_classes=num_classes)

    def stages(self) -> dict[str, nn.Module]:
        """The four stages of Fig. 1 by label, in the order data flows through them."""
        return {label: getattr(self, attr) for label, attr in self.stage_attributes.items()}


def lookahead_of(model: nn.Module) -> int:
    """The steps a network's per-step outputs lag the steps they name (``lookahead`` of
    :class:`GestureNetConfig`; 0 for any other module)."""
    return getattr(getattr(model, "config", None), "lookahead", 0)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def example_clip(
    config: GestureNetConfig,
    batch: int = 1,
    frames: int | None = None,
    size: int | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """A random clip shaped for ``config`` (for shape checks and benchmarks)."""
    t = frames or config.frames
    s = size or config.size
    return torch.randn(batch, config.in_channels, t, s, s, device=device)


__all__ = [
    "FRAMES_PER_STEP",
    "MODALITY_CHANNELS",
    "GestureNet",
    "GestureNetConfig",
    "count_parameters",
    "example_clip",
    "lookahead_of",
    "released_layer_cells",
]
