"""A fresh module's weights follow the released code's initialisers (TF 1.2 Keras 2).

The rules, from GuangmingZhu/AttentionConvLSTM: he_normal (truncated at 2 sd, sd sqrt(2/fan_in),
no 0.8796 correction) with Keras' fan-in (a depthwise kernel's is K·K·C) for Res3D, the ConvLSTM
kernels and the head; Keras' default glorot_uniform for MobileNet's SeparableConv2D; gate
weights constant 1/C_out in GatedConvLSTM2D, 1/C_in (input side) in the attention layers.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from aclstm import models
from aclstm.nn import create_cell
from aclstm.nn.init import glorot_uniform_, he_normal_, keras_fans

TRUNCATED_SD = 0.87962566103423978  # sd of a unit normal truncated at ±2


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def assert_he_normal(weight: torch.Tensor, fan_in: int) -> None:
    """Samples of TF 1.2's he_normal: bounded by ±2·sqrt(2/fan_in) (a corrected draw, with a
    1.14x larger sd, crosses it), with the truncated sd to within 4 standard errors."""
    w = weight.detach().double().flatten()
    sd = math.sqrt(2.0 / fan_in)
    assert w.abs().max() <= 2 * sd * (1 + 1e-6), f"a value beyond 2 sd: fan-in is not {fan_in}"
    assert abs(w.mean()) < 4 * sd / math.sqrt(w.numel())
    tolerance = 4 / math.sqrt(2 * w.numel())
    assert w.std() == pytest.approx(TRUNCATED_SD * sd, rel=tolerance), f"fan-in {fan_in}"


def assert_glorot_uniform(weight: torch.Tensor, fan_in: int, fan_out: int) -> None:
    w = weight.detach().double().flatten()
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    assert w.abs().max() <= limit * (1 + 1e-6)
    assert w.abs().max() > 0.95 * limit  # uses the whole range, not a narrower one
    assert w.std() == pytest.approx(limit / math.sqrt(3), rel=4 / math.sqrt(2 * w.numel()))


def test_keras_fans_of_each_kernel_layout():
    assert keras_fans(nn.Conv3d(3, 64, (3, 7, 7))) == (3 * 147, 64 * 147)
    assert keras_fans(nn.Conv2d(256, 256, 3, groups=256)) == (9 * 256, 9)  # (K, K, C, 1)
    assert keras_fans(nn.Conv2d(128, 256, 3, groups=128)) == (9 * 128, 18)  # multiplier 2
    assert keras_fans(nn.Conv2d(256, 512, 1)) == (256, 512)
    assert keras_fans(nn.Linear(1024, 249)) == (1024, 249)
    with pytest.raises(ValueError, match="groups=2"):
        keras_fans(nn.Conv2d(8, 8, 3, groups=2))


def test_he_normal_is_tf12s_uncorrected_truncated_normal():
    conv = he_normal_(nn.Conv2d(256, 256, 3, groups=256))
    assert_he_normal(conv.weight, 9 * 256)
    assert torch.count_nonzero(conv.bias) == 0
    # The draw reaches out to the truncation bound: not a narrower (e.g. corrected) normal.
    assert conv.weight.abs().max() > 1.9 * math.sqrt(2 / (9 * 256))


def test_glorot_uniform_uses_keras_fans():
    depthwise = glorot_uniform_(nn.Conv2d(512, 512, 3, groups=512, bias=False))
    assert_glorot_uniform(depthwise.weight, 9 * 512, 9)


@pytest.mark.parametrize("cell", ["gated", "input_attention", "input_gate_attention", "d"])
def test_cells_start_as_the_released_layers(cell):
    """C_in != C_out tells the gate widths apart; every depthwise kernel is he_normal over
    K·K·C (sd 0.026 at C = 256; with K·K alone it was 18x that)."""
    c_in, c_out = 192, 256
    module = create_cell(cell, c_in, c_out)
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    assert convs
    for conv in convs:
        assert_he_normal(conv.weight, keras_fans(conv)[0])
        assert conv.bias is None or torch.count_nonzero(conv.bias) == 0
    depthwise = module.conv_x.depthwise.weight
    assert depthwise.std() < 0.1 * math.sqrt(2 / 9)  # not over K·K alone
    input_width = c_out if module.name == "gated" else c_in
    assert torch.all(module.gates_x.weight == 1.0 / input_width)
    assert torch.all(module.gates_h.weight == 1.0 / c_out)
    assert torch.count_nonzero(module.gates_x.bias) == 0


def test_res3d_convolutions_are_he_normal_over_fan_in():
    res3d = models.Res3D(3)
    convs = [m for m in res3d.modules() if isinstance(m, nn.Conv3d)]
    assert len(convs) == 1 + 3 * 2 * 2 + 3  # stem, 2 units of 2 convs in 3 blocks, 3 shortcuts
    for conv in convs:
        assert_he_normal(conv.weight, keras_fans(conv)[0])
    # The stem: fan-in 3·3·7·7 = 441, sd 0.059 (over fan-out it was 4x smaller).
    assert res3d.stem[0].weight.detach().std().item() == pytest.approx(
        TRUNCATED_SD * math.sqrt(2 / 441), rel=0.1
    )


@pytest.mark.parametrize("bias", [False, True])
def test_mobilenet_kernels_are_glorot_uniform(bias):
    top = models.MobileNetTop(256, bias=bias)
    convs = [m for m in top.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 2 * 9
    for conv in convs:
        assert_glorot_uniform(conv.weight, *keras_fans(conv))
        assert (conv.bias is not None) == (bias and conv.groups == 1)
        assert conv.bias is None or torch.count_nonzero(conv.bias) == 0


def test_network_head_is_he_normal_also_after_reset_classifier():
    net = models.create("paper", num_classes=249)
    assert_he_normal(net.classifier.weight, 1024)
    assert torch.count_nonzero(net.classifier.bias) == 0
    net.reset_classifier(300)
    assert_he_normal(net.classifier.weight, 1024)


def test_network_reset_parameters_restores_every_rule():
    net = models.create("tiny", cell="c")
    fresh = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(3.0)
    net.reset_parameters()
    for name, value in net.state_dict().items():
        if "running" in name or "num_batches" in name:
            continue
        if fresh[name].unique().numel() == 1:  # constants: gate weights, biases, BN
            assert torch.equal(value, fresh[name]), name
        else:
            assert not torch.equal(value, fresh[name]), name  # drawn anew
            assert value.std() == pytest.approx(fresh[name].std(), rel=0.5), name
