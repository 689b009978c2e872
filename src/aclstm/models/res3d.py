"""Res3D blocks 1-4 (Tran et al. 2017) as the released code builds them (DESIGN.md §3)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from aclstm.nn.init import he_normal_

from .layers import Conv3d, batch_norm_3d, check_padding, check_temporal_padding, reset_weights


class ResidualUnit3d(nn.Module):
    """conv 3x3x3 -> BN -> ReLU -> conv 3x3x3 -> BN, plus the shortcut, then ReLU.

    The shortcut is a 1x1x1 conv + BN when ``project`` is set (the first unit of each block in
    the released code, even where the width does not change), else the identity. A strided
    first conv pads as TensorFlow does when ``tf_same`` is set; ``causal`` pads time before
    the clip only (the strided shortcut then keeps the frames the strided conv ends on).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        project: bool,
        tf_same: bool,
        causal: bool = False,
    ) -> None:
        super().__init__()
        self.conv1 = Conv3d(
            in_channels, out_channels, 3, stride, padding=1, bias=False, tf_same=tf_same,
            causal=causal,
        )  # fmt: skip
        self.bn1 = batch_norm_3d(out_channels)
        self.conv2 = Conv3d(out_channels, out_channels, 3, 1, padding=1, bias=False, causal=causal)
        self.bn2 = batch_norm_3d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if project:
            self.shortcut = nn.Sequential(
                Conv3d(in_channels, out_channels, 1, stride, bias=False, causal=causal),
                batch_norm_3d(out_channels),
            )
        elif stride != 1 or in_channels != out_channels:
            raise ValueError("a unit that changes the shape needs a projection shortcut")

    def forward(self, x: Tensor) -> Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + self.shortcut(x))


class Res3D(nn.Module):
    """Blocks 1-4 of Res3D: (B, C, T, H, W) -> (B, widths[3], T/2, H/4, W/4).

    Block 1: Conv3d (3, 7, 7), stride (1, 2, 2) -> BN -> ReLU. Blocks 2-4: two residual units
    each; the first unit of block 3 has stride 2 in T, H and W. ``padding="tf"`` places the
    strided layers' padding as the released Keras network does (see ``layers.PADDINGS``);
    ``temporal_padding="causal"`` makes every output depend on the frames up to its own
    (``layers.TEMPORAL_PADDINGS``): output t' of blocks 3-4 on input frames <= 2t'.
    Convolutions start as released: ``he_normal`` over Keras' fan-in.
    """

    def __init__(
        self,
        in_channels: int = 3,
        widths: Sequence[int] = (64, 64, 128, 256),
        padding: str = "symmetric",
        temporal_padding: str = "symmetric",
    ) -> None:
        super().__init__()
        if len(widths) != 4:
            raise ValueError(f"Res3D needs 4 widths (blocks 1-4), got {list(widths)}")
        tf_same = check_padding(padding) == "tf"
        causal = check_temporal_padding(temporal_padding) == "causal"
        w1, w2, w3, w4 = widths
        self.stem = nn.Sequential(
            Conv3d(
                in_channels,
                w1,
                (3, 7, 7),
                (1, 2, 2),
                padding=(1, 3, 3),
                bias=False,
                tf_same=tf_same,
                causal=causal,
            ),
            batch_norm_3d(w1),
            nn.ReLU(inplace=True),
        )
        self.block2 = self._block(w1, w2, 1, tf_same, causal)
        self.block3 = self._block(w2, w3, 2, tf_same, causal)
        self.block4 = self._block(w3, w4, 1, tf_same, causal)
        self.out_channels = w4
        self.reset_parameters()

    @staticmethod
    def _block(
        in_channels: int, out_channels: int, stride: int, tf_same: bool, causal: bool
    ) -> nn.Sequential:
        return nn.Sequential(
            ResidualUnit3d(in_channels, out_channels, stride, True, tf_same, causal),
            ResidualUnit3d(out_channels, out_channels, 1, False, tf_same, causal),
        )

    def reset_parameters(self) -> None:
        """The released ``he_normal`` on every convolution; BatchNorm at its defaults."""
        reset_weights(self, he_normal_)

    def forward(self, x: Tensor) -> Tensor:
        return self.block4(self.block3(self.block2(self.stem(x))))
