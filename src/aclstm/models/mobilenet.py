"""The MobileNet top of the network: separable conv -> BN -> ReLU6 blocks, per time step."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from .layers import batch_norm_2d

# (width, stride) of the released code: 28x28 -> 4x4 at the paper's size.
PAPER_MOBILENET = ((256, 1), (256, 2), *((512, 1),) * 5, (1024, 2), (1024, 2))


class SeparableBlock(nn.Sequential):
    """Depthwise 3x3 (stride s) + pointwise 1x1 -> BN -> ReLU6, as Keras' SeparableConv2D."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__(
            nn.Conv2d(
                in_channels, in_channels, 3, stride, padding=1, groups=in_channels, bias=False
            ),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            batch_norm_2d(out_channels),
            nn.ReLU6(inplace=True),
        )


class MobileNetTop(nn.Sequential):
    """Separable blocks over (N, C, H, W) frames; the caller folds time into the batch."""

    def __init__(
        self, in_channels: int, blocks: Sequence[tuple[int, int]] = PAPER_MOBILENET
    ) -> None:
        layers = []
        for width, stride in blocks:
            layers.append(SeparableBlock(in_channels, width, stride))
            in_channels = width
        super().__init__(*layers)
        self.out_channels = in_channels

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x)
