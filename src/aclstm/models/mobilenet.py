"""The MobileNet top of the network: separable conv -> BN -> ReLU6 blocks, per time step."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from aclstm.nn.init import glorot_uniform_

from .layers import Conv2d, batch_norm_2d, check_padding, reset_weights

# (width, stride) of the released code: 28x28 -> 4x4 at the paper's size.
PAPER_MOBILENET = ((256, 1), (256, 2), *((512, 1),) * 5, (1024, 2), (1024, 2))


class SeparableBlock(nn.Sequential):
    """Depthwise 3x3 (stride s) + pointwise 1x1 -> BN -> ReLU6, as Keras' SeparableConv2D.

    ``bias``: the pointwise convolution's bias (Keras' default, which the released network
    keeps, though BN follows); ``tf_same``: a strided block pads as TensorFlow does.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        bias: bool = False,
        tf_same: bool = False,
    ) -> None:
        super().__init__(
            Conv2d(
                in_channels,
                in_channels,
                3,
                stride,
                padding=1,
                groups=in_channels,
                bias=False,
                tf_same=tf_same and stride > 1,
            ),
            nn.Conv2d(in_channels, out_channels, 1, bias=bias),
            batch_norm_2d(out_channels),
            nn.ReLU6(inplace=True),
        )


class MobileNetTop(nn.Sequential):
    """Separable blocks over (N, C, H, W) frames; the caller folds time into the batch.

    Kernels start as Keras' ``SeparableConv2D`` defaults, which the released network keeps:
    ``glorot_uniform`` (Keras' fans) and zero biases.
    """

    def __init__(
        self,
        in_channels: int,
        blocks: Sequence[tuple[int, int]] = PAPER_MOBILENET,
        bias: bool = False,
        padding: str = "symmetric",
    ) -> None:
        tf_same = check_padding(padding) == "tf"
        layers = []
        for width, stride in blocks:
            layers.append(SeparableBlock(in_channels, width, stride, bias, tf_same))
            in_channels = width
        super().__init__(*layers)
        self.out_channels = in_channels
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_weights(self, glorot_uniform_)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x)
