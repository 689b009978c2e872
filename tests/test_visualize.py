"""Fig. 3 (``aclstm visualize``): the channel choice, the step-to-frame mapping, the figure."""

from __future__ import annotations

import json

import matplotlib.image
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_cli import tiny_run_options

from aclstm import models
from aclstm.analysis.visualize import (
    display_frames,
    draw_visualization,
    reduce_attention,
    step_frames,
    strongest_channels,
    visualization_maps,
)
from aclstm.cli import _default_visualize_out, main
from aclstm.data.synth import SynthSpec, write_synthetic_set
from aclstm.models import Res3D

MEAN = (114.0, 109.0, 104.0)


def test_strongest_channel_is_the_largest_sum_not_the_largest_peak():
    hidden = torch.zeros(3, 4, 5, 5)
    hidden[:, 0, 2, 2] = 10.0  # the highest peak, sum 10
    hidden[:, 1] = 0.5  # sum 12.5: wins where nothing beats it
    hidden[:, 2] = -1.0  # a large magnitude, but a negative sum
    hidden[1, 3] = 0.6  # sum 15 at step 1 only
    hidden[2, 3, :2] = 1.4  # sum 14 at step 2 only
    assert strongest_channels(hidden).tolist() == [1, 3, 3]


def test_channel_wise_attention_is_reduced_to_its_mean_over_channels():
    attention = torch.rand(2, 6, 4, 4)
    torch.testing.assert_close(reduce_attention(attention), attention.mean(dim=1))
    single = torch.rand(2, 1, 4, 4)
    torch.testing.assert_close(reduce_attention(single), single[:, 0])


@pytest.mark.parametrize(
    ("frames", "expected"),
    [(16, [0, 2, 4, 6, 8, 10, 12, 14]), (7, [0, 2, 4, 6]), (2, [0]), (3, [0, 2])],
)
def test_step_t_shows_frame_2t(frames, expected):
    """The released layout; the widths do not matter."""
    assert step_frames(Res3D(3, (2, 2, 2, 2)), frames) == expected


@pytest.mark.parametrize("padding", ["symmetric", "tf"])
@pytest.mark.parametrize("frames", [2, 3, 7, 8])
def test_step_frames_counts_the_steps_the_network_returns(frames, padding):
    net = models.create("tiny", num_classes=3, padding=padding).eval()
    with torch.no_grad():
        _, maps = net(torch.randn(1, 3, frames, 16, 16), return_maps=True)
    assert len(step_frames(net.res3d, frames)) == maps["hidden"].shape[1]


def _linear(module: torch.nn.Module) -> torch.nn.Module:
    """The module with its ReLUs made identities: the receptive field stays, and no dead
    unit can hide a frame from the gradient."""
    for parent in module.modules():
        for name, child in parent.named_children():
            if isinstance(child, torch.nn.ReLU):
                setattr(parent, name, torch.nn.Identity())
    return module


def _receptive_field_centres(res3d, frames: int) -> dict[int, float]:
    """Centres of each step's frames with a nonzero gradient, for steps whose field lies
    inside the clip (the padding cuts the fields of the first and last steps)."""
    _linear(res3d).eval()
    x = torch.randn(1, 3, frames, 8, 8, requires_grad=True)
    out = res3d(x)
    centres = {}
    for t in range(out.shape[2]):
        (grad,) = torch.autograd.grad(out[:, :, t].sum(), x, retain_graph=True)
        used = grad.abs().sum(dim=(0, 1, 3, 4)).nonzero().flatten().tolist()
        if used[0] > 0 and used[-1] < frames - 1:
            centres[t] = (used[0] + used[-1]) / 2
    return centres


@pytest.mark.parametrize(
    ("stem_stride", "padding"), [(1, "symmetric"), (2, "symmetric"), (1, "tf")]
)
def test_step_frames_are_the_centres_of_the_measured_receptive_fields(stem_stride, padding):
    """Measured with gradients, and for a Res3D with one more temporal stride (centres 4t).
    With TensorFlow's padding (the released network) block 3 pads only after the clip, so
    step t is centred on frame 2t + 1."""
    res3d = Res3D(3, (2, 2, 2, 2), padding=padding)
    res3d.stem[0].stride = (stem_stride, 2, 2)
    frames = 56 * stem_stride  # the fields reach 20 frames (40 with the stride) either side
    centres = _receptive_field_centres(res3d, frames)
    assert len(centres) >= 3
    mapping = step_frames(res3d, frames)
    assert {t: mapping[t] for t in centres} == centres
    first = [0, 2 * stem_stride, 4 * stem_stride] if padding == "symmetric" else [1, 3, 5]
    assert mapping[:3] == first


def test_maps_follow_the_strongest_channel_of_each_step(monkeypatch):
    """A forward that returns known hidden and attention maps: each step's map is its
    strongest channel, upsampled, with its hot spot where it was put."""
    net = models.create("tiny", cell="input_gate_attention", num_classes=4)
    steps, channels, side = 4, 6, 8
    hidden = torch.rand(1, steps, channels, side, side) * 0.1
    winners = [5, 0, 3, 3]
    for t, c in enumerate(winners):
        hidden[0, t, c, t, 2 * t] = 5.0  # a hot spot at row t, column 2t
    attention = torch.rand(1, steps, 3, side, side)
    logits = torch.tensor([[0.0, 2.0, 1.0, -1.0]])

    def fake_forward(x, return_maps=False):
        assert x.shape == (1, 3, 8, 32, 32) and return_maps
        return logits, {"hidden": hidden, "attention": [attention, None]}

    monkeypatch.setattr(net, "forward", fake_forward)
    clip = torch.zeros(3, 8, 32, 32)
    clip[:, 2] = 40.0  # frame 2, shown for step 1, is brighter than the rest
    vis = visualization_maps(net, clip, MEAN)

    assert vis.channels == winners
    assert vis.frame_indices == [0, 2, 4, 6]
    expected = F.interpolate(
        hidden[0, range(steps), winners][:, None], size=(32, 32), mode="bilinear"
    )[:, 0]
    np.testing.assert_allclose(vis.hidden, expected.numpy(), rtol=1e-6)
    for t in range(steps):
        row, col = np.unravel_index(vis.hidden[t].argmax(), (32, 32))
        assert (row // 4, col // 4) == (t, 2 * t)  # 8x8 -> 32x32: 4 pixels per position
    assert vis.frames.shape == (4, 32, 32, 3)
    np.testing.assert_allclose(vis.frames[0, 0, 0], np.array(MEAN) / 255, rtol=1e-6)
    np.testing.assert_allclose(vis.frames[1, 0, 0], (np.array(MEAN) + 40) / 255, rtol=1e-6)
    assert vis.predicted == 1
    assert vis.probabilities.sum() == pytest.approx(1.0)
    (strip,) = vis.attention
    assert (strip.layer, strip.cell, strip.channels) == (0, "input_gate_attention", 3)
    reduced = F.interpolate(attention[0].mean(1, keepdim=True), (32, 32), mode="bilinear")
    np.testing.assert_allclose(strip.maps, reduced[:, 0].numpy(), rtol=1e-6)


def test_frames_get_their_mean_back_and_one_channel_shows_grey():
    clip = torch.full((1, 4, 2, 2), -27.0)
    clip[0, 3] = 300.0  # past white after the mean: clipped to 1
    frames = display_frames(clip, [127.0], [1, 3])
    assert frames.shape == (2, 2, 2)
    np.testing.assert_allclose(frames[0], 100 / 255, rtol=1e-6)
    np.testing.assert_allclose(frames[1], 1.0)


def test_the_default_figure_lies_beside_the_checkpoint_named_after_the_input(tmp_path):
    video = tmp_path / "my clip.mp4"
    video.write_bytes(b"")
    run = tmp_path / "run"
    (run / "best").mkdir(parents=True)
    assert _default_visualize_out(str(run / "best"), "val:12") == run / "visualize-val-12.png"
    assert _default_visualize_out(str(run / "best"), str(video)) == run / "visualize-my_clip.png"
    meta = str(run / "best" / "meta.json")
    assert _default_visualize_out(meta, "test:0") == run / "visualize-test-0.png"


# End to end, on tiny checkpoints trained for one epoch on a tiny synthetic set.


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    spec = SynthSpec(clips_per_class=2, val_fraction=0.5, seed=5, classes=(0, 1, 2, 3))
    write_synthetic_set(root, spec, workers=1)
    return root


def _train(run, root, cell: str):
    options = tiny_run_options(
        root, epochs=1, batch_size=4, extra=[f'model.cell="{cell}"', "model.frames=8"]
    )
    assert main(["train", "synth_demo", "--work-dir", str(run), *options]) == 0
    return run / "last"


@pytest.fixture(scope="module")
def gated_checkpoint(tmp_path_factory, synth_root):
    return _train(tmp_path_factory.mktemp("gated"), synth_root, "gated")


@pytest.fixture(scope="module")
def attention_checkpoint(tmp_path_factory, synth_root):
    return _train(tmp_path_factory.mktemp("attention"), synth_root, "input_attention")


def _image_axes(figure) -> list:
    return [ax for ax in figure.axes if ax.images]


def _png_shape(path) -> tuple[int, int]:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return matplotlib.image.imread(path).shape[:2]


def test_visualize_gated_draws_one_strip(gated_checkpoint, capsys):
    """Default --out: beside the checkpoint, named after the input."""
    assert main(["visualize", str(gated_checkpoint), "val:3"]) == 0
    printed = capsys.readouterr().out
    assert "labelled 'Swiping Up'" in printed and "frames [0, 2, 4, 6]" in printed
    out = gated_checkpoint.parent / "visualize-val-3.png"
    assert str(out) in printed
    height, width = _png_shape(out)
    assert width > 2.5 * height  # one row of four panels

    from aclstm.inference import load_input
    from aclstm.train.runner import load_model

    model, meta = load_model(gated_checkpoint)
    clip, label, source = load_input("val:3", meta)
    vis = visualization_maps(model, clip, meta["mean"])
    figure = draw_visualization(vis, meta["classes"], label, source)
    assert len(_image_axes(figure)) == 4 and vis.attention == []
    assert "Swiping Up" in figure._suptitle.get_text()
    assert vis.frames.shape == (4, 32, 32, 3) and vis.hidden.shape == (4, 32, 32)
    assert vis.frames.min() >= 0 and vis.frames.max() <= 1


def test_visualize_input_attention_draws_two_strips(attention_checkpoint, tmp_path, capsys):
    out = tmp_path / "figures" / "fig3.png"
    assert main(["visualize", str(attention_checkpoint), "val:0", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "attention of layer 1 (input_attention): one map" in printed
    height, width = _png_shape(out)
    assert 1.2 * height < width < 2.5 * height  # two rows of four panels

    from aclstm.inference import load_input
    from aclstm.train.runner import load_model

    model, meta = load_model(attention_checkpoint)
    clip, label, _ = load_input("val:0", meta)
    vis = visualization_maps(model, clip, meta["mean"])
    assert len(_image_axes(draw_visualization(vis, meta["classes"], label))) == 8
    (strip,) = vis.attention
    # A softmax over the 8x8 positions, upsampled: positive, with a mean near 1/64 (bilinear
    # upsampling keeps the mean only up to the borders).
    assert strip.maps.shape == (4, 32, 32) and strip.maps.min() > 0
    np.testing.assert_allclose(strip.maps.mean(axis=(1, 2)), 1 / 64, rtol=0.1)
    assert json.loads((attention_checkpoint / "meta.json").read_text())["cell"] == (
        "input_attention"
    )
