"""The gesture network of Fig. 1: shapes, parameters, presets, options, training sanity."""

from __future__ import annotations

import pytest
import torch

from aclstm.models import (
    GestureNet,
    count_parameters,
    create,
    example_clip,
    list_presets,
    preset_config,
    released_layer_cells,
    weight_decay_param_groups,
)
from aclstm.nn import cell_names

# Total parameters of the paper preset (27 classes) per cell; recorded in the README.
PAPER_PARAMETERS = {
    "convlstm": 20_661_595,
    "gated": 12_282_203,
    "input_attention": 12_420_443,
    "input_gate_attention": 12_354_651,
    "output_gate_attention": 12_354_651,
}


@pytest.mark.parametrize("cell", cell_names())
def test_paper_parameter_counts(cell):
    model = create("paper", cell=cell, num_classes=27)
    assert count_parameters(model) == PAPER_PARAMETERS[cell]
    # The stages outside the ConvLSTM are the same for every cell.
    assert count_parameters(model.res3d) == 8_261_696
    assert count_parameters(model.mobilenet) == 2_932_992
    assert count_parameters(model.classifier) == 1024 * 27 + 27


def test_released_layer_composition():
    assert released_layer_cells("convlstm") == ["convlstm", "convlstm"]
    assert released_layer_cells("a") == ["gated", "gated"]
    for attention in ("input_attention", "input_gate_attention", "output_gate_attention"):
        assert released_layer_cells(attention) == [attention, "gated"]
    model = create("tiny", cell="b")
    assert model.convlstm.cell_names == ["input_attention", "gated"]
    custom = create("tiny", layer_cells=("gated", "input_gate_attention"))
    assert custom.convlstm.cell_names == ["gated", "input_gate_attention"]
    with pytest.raises(ValueError, match="names 1 cells for 2 ConvLSTM layers"):
        create("tiny", layer_cells=("gated",))


@pytest.mark.parametrize("frames", [16, 32])
def test_paper_shapes_at_112(frames):
    """On the meta device: the shapes, without the compute (the tiny net's values are tested
    on the CPU throughout)."""
    with torch.device("meta"):
        model = create("paper", cell="gated", num_classes=249).eval()
    x = example_clip(model.config, batch=1, frames=frames, device="meta")
    with torch.no_grad():
        logits, maps = model(x, return_maps=True)
    assert logits.shape == (1, 249)
    assert maps["hidden"].shape == (1, frames // 2, 256, 28, 28)


def test_tiny_shapes_maps_and_attention():
    model = create("tiny", cell="input_gate_attention", num_classes=5).eval()
    x = example_clip(model.config, batch=3)
    assert x.shape == (3, 3, 8, 64, 64)
    logits, maps = model(x, return_maps=True)
    assert logits.shape == (3, 5)
    assert maps["hidden"].shape == (3, 4, 64, 16, 16)
    first, second = maps["attention"]
    assert first.shape == (3, 4, 64, 16, 16) and second is None  # (c) then gated
    # Other resolutions and clip lengths follow from the input.
    assert model(torch.randn(2, 3, 6, 96, 48)).shape == (2, 5)


@pytest.mark.parametrize(("modality", "channels"), [("rgb", 3), ("depth", 1), ("flow", 2)])
def test_modalities(modality, channels):
    model = create("tiny", modality=modality)
    assert model.config.in_channels == channels
    assert model(torch.randn(1, channels, 4, 32, 32)).shape == (1, 27)


def test_bad_inputs_are_named():
    model = create("tiny")
    with pytest.raises(ValueError, match="built for 3 input channels, got 1"):
        model(torch.randn(1, 1, 8, 64, 64))
    with pytest.raises(ValueError, match="at least 2 frames, got T=1"):
        model(torch.randn(1, 3, 1, 64, 64))
    causal = create("tiny", temporal_padding="causal", num_classes=3).eval()
    assert causal.forward_steps(torch.randn(1, 3, 1, 64, 64)).shape == (1, 1, 3)  # one step
    with pytest.raises(ValueError, match="divisible by 16, got 64x40"):
        model(torch.randn(1, 3, 8, 64, 40))
    with pytest.raises(ValueError, match=r"clips \(B, 3, T, H, W\)"):
        model(torch.randn(3, 8, 64, 64))
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        create("huge")
    with pytest.raises(ValueError, match="unknown GestureNetConfig field"):
        create("tiny", colour="red")
    with pytest.raises(ValueError, match="unknown modality 'thermal'"):
        create("tiny", modality="thermal")


@pytest.mark.parametrize("cell", cell_names())
def test_every_parameter_gets_a_gradient(cell):
    model = create("tiny", cell=cell, num_classes=4)
    loss = torch.nn.functional.cross_entropy(
        model(torch.randn(2, 3, 4, 32, 32)), torch.tensor([1, 3])
    )
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_eval_mode_is_deterministic_and_batch_independent():
    torch.manual_seed(0)
    model = create("tiny").eval()
    x = torch.randn(3, 3, 8, 64, 64)
    with torch.no_grad():
        a, b = model(x), model(x)
        single = model(x[1:2])
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(single, a[1:2], rtol=1e-4, atol=1e-5)


def test_batch_norm_follows_keras_and_weight_decay_skips_norms_and_biases():
    model = create("tiny")
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert norms and all(m.eps == 1e-3 and m.momentum == 0.01 for m in norms)
    decay, no_decay = weight_decay_param_groups(model, 1e-4)
    assert decay["weight_decay"] == 1e-4 and no_decay["weight_decay"] == 0.0
    decayed = {id(p) for p in decay["params"]}
    names = {id(p): n for n, p in model.named_parameters()}
    assert len(decay["params"]) + len(no_decay["params"]) == len(names)
    for pid, name in names.items():
        is_norm_or_bias = (
            name.endswith("bias")
            or ".bn" in name
            or any(
                name.startswith(f"{prefix}.")
                and isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                for prefix, m in model.named_modules()
                if prefix
            )
        )
        assert (pid in decayed) != is_norm_or_bias, name
    assert id(model.convlstm.cells[0].gates_x.weight) in decayed  # the cells' kernels too


def test_reset_classifier_for_fine_tuning():
    model = create("tiny", num_classes=27)
    backbone = model.res3d.stem[0].weight.clone()
    model.reset_classifier(249)
    assert model.config.num_classes == 249
    assert model(torch.randn(1, 3, 4, 32, 32)).shape == (1, 249)
    torch.testing.assert_close(model.res3d.stem[0].weight, backbone)


def test_presets_and_width_multiplier():
    assert {"paper", "tiny"} <= set(list_presets())
    half = preset_config("paper", width_multiplier=0.5)
    assert half.res3d_widths == (32, 32, 64, 128) and half.lstm_hidden == 128
    assert half.mobilenet[-1] == (512, 2)
    assert preset_config("paper").frames == 16 and preset_config("paper").size == 112
    assert GestureNet(half).eval()(torch.randn(1, 3, 2, 32, 32)).shape == (1, 27)


def test_channels_last_3d_and_autocast():
    """Tolerances sized to the logits: BatchNorm's statistics are set from the clips first, so
    the logits are of order 0.3 and differ between the two clips (a fresh network's are ~1e-3
    and nearly constant, which any tolerance of 1e-4 would pass). channels_last is the same
    computation (1e-5 of the logits' size); bf16 rounds (measured 1.4 %, allowed 5 %)."""
    torch.manual_seed(0)
    model = create("tiny")
    x = torch.randn(2, 3, 8, 64, 64) * 50  # mean-subtracted pixels
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = None  # running statistics = this batch's
    with torch.no_grad():
        model.train()(x)
        expected = model.eval()(x)
        scale = expected.abs().max()
        assert (expected[0] - expected[1]).abs().max() > 0.1 * scale
        fast = model.to_channels_last()
        assert fast.res3d.stem[0].weight.is_contiguous(memory_format=torch.channels_last_3d)
        got = fast(x.contiguous(memory_format=torch.channels_last_3d))
        assert (got - expected).abs().max() <= 1e-5 * scale
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)
    assert low.dtype == torch.bfloat16 and torch.isfinite(low).all()
    assert (low.float() - expected).abs().max() <= 0.05 * scale


@pytest.mark.slow
def test_tiny_net_overfits_eight_clips():
    """Training accuracy (the training forward's own predictions) reaches 100% in 60 steps."""
    torch.manual_seed(0)
    model = create("tiny", cell="gated", num_classes=8)
    x = torch.randn(8, 3, 8, 64, 64)
    y = torch.arange(8)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    accuracies = []
    for _ in range(60):
        logits = model(x)
        accuracies.append((logits.argmax(1) == y).float().mean().item())
        if accuracies[-1] == 1.0:
            break
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(logits, y).backward()
        optimizer.step()
    assert accuracies[-1] == 1.0, accuracies
    assert accuracies[0] < 0.5


@pytest.mark.slow
def test_compiled_tiny_net_equals_eager():
    """The whole network through Dynamo and AOTAutograd ("aot_eager": the graphs inductor would
    get, without its code generation; test_compile.py keeps an inductor case)."""
    torch.manual_seed(0)
    model = create("tiny", cell="gated").eval()
    x = torch.randn(2, 3, 8, 64, 64)
    with torch.no_grad():
        expected = model(x)
        got = torch.compile(model, backend="aot_eager")(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_short_clips_under_cpu_bf16_convolve_in_fp32():
    """torch 2.13's CPU bf16 Conv3d returned inf/NaN weight gradients for about 1 in 10 inputs
    2 frames long; the network's Conv3d computes those in fp32 (and only those)."""
    from aclstm.models.layers import Conv3d

    torch.manual_seed(0)
    conv = Conv3d(32, 32, 3, padding=1, bias=False).to(memory_format=torch.channels_last_3d)
    for frames, dtype in ((2, torch.float32), (4, torch.bfloat16)):
        x = torch.randn(6, 32, frames, 8, 8).to(memory_format=torch.channels_last_3d)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert conv(x).dtype == dtype
    assert conv(torch.randn(1, 32, 2, 4, 4)).dtype == torch.float32  # no autocast: unchanged
    for _ in range(60):  # with bf16 there, P(all 60 finite) was about 0.002
        x = torch.randn(6, 32, 2, 8, 8).to(memory_format=torch.channels_last_3d)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = conv(x)
        (grad,) = torch.autograd.grad(y.float().mul(0.01).sum(), conv.weight)
        assert torch.isfinite(grad).all()
