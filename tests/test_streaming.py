"""The causal network and its streaming engine: causality, per-step logits, and a stream that
equals the offline network for every cell, chunk size and stream."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from aclstm.models import create, list_presets
from aclstm.models.streaming import Streamer
from aclstm.nn import cell_names

from helpers import randomize_

FRAMES = 13  # not a multiple of any chunk below, nor of the network's temporal stride


def scrambled(net: nn.Module) -> nn.Module:
    """Random ConvLSTM and head weights, BatchNorm statistics and affine parameters, in eval
    mode: the initial ones (constant gates, mean 0 and variance 1) give logits near 0 that
    would hide a mix-up of frames."""
    randomize_(net.convlstm, scale=0.2)
    randomize_(net.classifier, scale=0.2)
    for module in net.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 1.5)
            nn.init.uniform_(module.weight, 0.5, 1.5)
            nn.init.uniform_(module.bias, -0.3, 0.3)
    return net.eval()


def causal_net(cell: str = "gated", padding: str = "symmetric") -> nn.Module:
    torch.manual_seed(0)
    net = create("tiny", cell=cell, padding=padding, temporal_padding="causal", num_classes=5)
    return scrambled(net)


def stream(streamer: Streamer, clip: torch.Tensor, chunk: int) -> torch.Tensor:
    pieces = [streamer.push(clip[:, :, i : i + chunk]) for i in range(0, clip.shape[2], chunk)]
    return torch.cat(pieces, dim=1)


@pytest.mark.parametrize("cell", cell_names())
def test_stream_equals_the_offline_network_for_every_cell_and_chunk(cell):
    net = causal_net(cell)
    clip = torch.randn(2, 3, FRAMES, 32, 32)
    with torch.no_grad():
        offline = net.forward_steps(clip)
    assert offline.shape == (2, (FRAMES + 1) // 2, 5)
    streamer = net.streamer()
    for chunk in (1, 2, 3, 7):
        streamer.reset()
        torch.testing.assert_close(stream(streamer, clip, chunk), offline, rtol=0, atol=1e-5)
    second = torch.randn(2, 3, 9, 32, 32)  # a second stream after reset(), another length
    streamer.reset()
    with torch.no_grad():
        torch.testing.assert_close(
            stream(streamer, second, 2), net.forward_steps(second), rtol=0, atol=1e-5
        )


def test_stream_with_tensorflow_padding_and_odd_frame_counts():
    net = causal_net("input_gate_attention", padding="tf")
    clip = torch.randn(1, 3, 11, 48, 48)
    with torch.no_grad():
        offline = net.forward_steps(clip)
    torch.testing.assert_close(stream(net.streamer(), clip, 3), offline, rtol=0, atol=1e-5)


def _perturbed_after(clip: torch.Tensor, frame: int) -> torch.Tensor:
    changed = clip.clone()
    changed[:, :, frame:] = torch.randn_like(changed[:, :, frame:])
    return changed


def test_steps_depend_on_past_frames_only():
    net = causal_net()
    clip = torch.randn(1, 3, 12, 32, 32)
    changed = _perturbed_after(clip, 7)  # frames 7.. (0-based)
    with torch.no_grad():
        features, features_changed = net.res3d(clip), net.res3d(changed)
        logits, logits_changed = net.forward_steps(clip), net.forward_steps(changed)
    # Step t sees frames <= 2t: steps 0-3 (frames <= 6) stay exactly, steps 4- (frame 8) move.
    torch.testing.assert_close(features_changed[:, :, :4], features[:, :, :4], rtol=0, atol=0)
    torch.testing.assert_close(logits_changed[:, :4], logits[:, :4], rtol=0, atol=0)
    moved = (features_changed - features).abs().amax(dim=(0, 1, 3, 4))
    assert (moved[4:] > 0.1).all()


def test_symmetric_padding_sees_the_next_frame():
    """As released: a step also sees the frame after it, which is why it cannot stream."""
    torch.manual_seed(0)
    net = create("tiny", num_classes=5).eval()
    clip = torch.randn(1, 3, 12, 32, 32)
    with torch.no_grad():
        moved = (net.res3d(_perturbed_after(clip, 7)) - net.res3d(clip)).abs()
    assert moved[:, :, 3].max() > 0.1  # step 3 ends on frame 6 and sees frame 7
    with pytest.raises(ValueError, match="streaming needs a causal network"):
        net.streamer()


def test_clip_logits_are_the_mean_of_the_step_logits():
    net = causal_net("output_gate_attention")
    clip = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(net(clip), net.forward_steps(clip).mean(dim=1))


def test_memory_held_does_not_grow_with_the_stream():
    net = causal_net()
    streamer = net.streamer()
    sizes = []
    for _ in range(40):
        streamer.push(torch.randn(1, 3, 1, 32, 32))
        sizes.append(streamer.state_bytes())
    # A frame that completes no step waits for the next one: two sizes, alternating.
    assert sizes[4] > 0 and len(set(sizes[4::2])) == 1 and len(set(sizes[5::2])) == 1
    assert streamer.frames_seen == 40 and streamer.steps_done == 20


def test_single_frames_complete_a_step_every_second_frame():
    streamer = causal_net().streamer()
    counts = [streamer.push(torch.randn(1, 3, 1, 32, 32)).shape[1] for _ in range(6)]
    assert counts == [1, 0, 1, 0, 1, 0]  # step t ends on frame 2t


def test_streaming_refuses_training_mode_and_bad_frames():
    net = causal_net()
    net.train()
    with pytest.raises(RuntimeError, match="eval mode"):
        net.streamer().push(torch.randn(1, 3, 2, 32, 32))
    net.eval()
    with pytest.raises(ValueError, match="built for 3 input channels"):
        net.streamer().push(torch.randn(1, 1, 2, 32, 32))


@pytest.mark.parametrize("preset", list_presets())
def test_every_preset_builds_and_runs_in_both_modes(preset):
    for temporal_padding in ("symmetric", "causal"):
        net = create(preset, temporal_padding=temporal_padding, num_classes=4).eval()
        with torch.no_grad():
            steps = net.forward_steps(torch.randn(1, 3, 4, 32, 32))
        assert steps.shape == (1, 2, 4)
    with pytest.raises(ValueError, match="temporal_padding must be one of"):
        create(preset, temporal_padding="future")


def test_causal_and_symmetric_networks_share_their_weights():
    """The option changes where time is padded, not the parameters: a released checkpoint
    loads into a causal network (to fine-tune it for streaming)."""
    symmetric = create("tiny").state_dict()
    causal = create("tiny", temporal_padding="causal").state_dict()
    assert {k: v.shape for k, v in symmetric.items()} == {k: v.shape for k, v in causal.items()}


def test_a_run_config_builds_a_causal_network_that_streams():
    from aclstm.config import config_from_dict
    from aclstm.train.runner import build_model

    config = config_from_dict({"model": {"preset": "tiny", "temporal_padding": "causal"}})
    net = build_model(config, num_classes=3).eval()
    assert net.config.temporal_padding == "causal"
    assert net.streamer().push(torch.randn(1, 3, 2, 32, 32)).shape == (1, 1, 3)


def test_a_streamed_strided_convolution_refuses_frames_that_complete_nothing():
    from aclstm.models.layers import Conv3d, StreamBuffer

    conv = Conv3d(2, 2, 3, (2, 1, 1), padding=1, causal=True).eval()
    conv.stream = StreamBuffer(next_index=1)  # the next frame, 1, ends no output of stride 2
    with pytest.raises(ValueError, match="complete none of its outputs"):
        conv(torch.randn(1, 2, 1, 4, 4))
    conv.stream = StreamBuffer(next_index=1)
    assert conv(torch.randn(1, 2, 2, 4, 4)).shape == (1, 2, 1, 4, 4)  # frame 2 ends one
