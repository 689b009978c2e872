"""Whole-video recognition: per-step probabilities, segmented and scored; its alignment of
steps to frames checked with an oracle network that knows the truth."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from aclstm.analysis.segmentation import SegmenterSettings
from aclstm.data import ConGDDataset, frame_labels
from aclstm.data.synth import SynthSpec, write_synthetic_set
from aclstm.models import create
from aclstm.recognition import background_classes, recognise_videos, step_probabilities


@pytest.fixture(scope="module")
def continuous_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("congd")
    spec = SynthSpec(4, 0.25, 0.0, seed=1, format="congd", classes=(0, 1, 4, 5), frames=(12, 16))
    write_synthetic_set(root, spec, workers=1)
    return root


class Oracle(nn.Module):
    """Per-step logits that name, at each step, the true label of the frame it ends on."""

    def __init__(self, labels: list[np.ndarray], classes: int) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))
        self.labels, self.classes = list(labels), classes

    def forward_steps(self, clip: torch.Tensor) -> torch.Tensor:
        frames = self.labels.pop(0)
        assert clip.shape[2] == len(frames)
        steps = torch.as_tensor(frames[::2])
        return 20.0 * nn.functional.one_hot(steps, self.classes).float()[None]


def test_background_classes_found_or_refused():
    assert background_classes(["background", "Swiping Left", "No gesture"]) == [0, 2]
    assert background_classes(["Swiping Left", "Doing other things"]) == [1]
    with pytest.raises(ValueError, match="no background class"):
        background_classes(["Swiping Left", "Swiping Right"])


@pytest.mark.parametrize(
    ("stride", "phases", "off_by", "jaccard"),
    [(1, 1, 1, 0.93), (3, 1, 3, 0.75), (2, 2, 1, 0.9), (3, 6, 1, 0.93)],
)
def test_an_oracle_scores_nearly_one(continuous_set, stride, phases, off_by, jaccard):
    """A step stands for 2 x stride frames: a boundary between two steps is put half-way, off
    by stride frames at most; run at p phases (rows of 2 x stride / p frames: 2 or 1 here),
    by one."""
    dataset = ConGDDataset(continuous_set, "train", size=32, training=False)
    offsets = range(0, 2 * stride, 2 * stride // phases)
    labels = [
        frame_labels(v.entry.segments, dataset.num_frames(k))[offset::stride]
        for k, v in enumerate(dataset.videos)
        for offset in offsets
    ]  # in the order the runs are made: each video's, run by run
    oracle = Oracle(labels, len(dataset.classes))
    sharp = SegmenterSettings(enter=0.6, exit=0.4, smoothing=1, min_steps=1, phases=phases)
    result = recognise_videos(oracle, dataset, sharp, frame_stride=stride)
    assert not oracle.labels  # every run was made
    scores = result["scores"]
    assert len(scores.videos) == len(dataset.videos) == 2
    assert scores.mean_jaccard > jaccard
    assert scores.levenshtein_accuracy == 1.0
    for video, segments in result["segments"].items():
        truth = next(v.entry.segments for v in dataset.videos if v.entry.video == video)
        assert [s.label for s in segments] == [s.label for s in truth]
        for got, want in zip(segments, truth, strict=True):
            assert abs(got.start - want.start) <= off_by and abs(got.end - want.end) <= off_by


def test_an_untrained_network_runs_and_scores_within_bounds(continuous_set):
    dataset = ConGDDataset(continuous_set, "valid", size=32, training=False)
    net = create("tiny", temporal_padding="causal", num_classes=len(dataset.classes))
    result = recognise_videos(net, dataset)
    assert set(result["segments"]) == {v.entry.video for v in dataset.videos}
    assert 0.0 <= result["scores"].mean_jaccard <= 1.0
    with pytest.raises(ValueError, match="window=None"):
        recognise_videos(net, ConGDDataset(continuous_set, "valid", window=8, size=32))
    strided = ConGDDataset(continuous_set, "valid", size=32, frame_stride=2)
    with pytest.raises(ValueError, match="frame_stride=1"):  # the runs need every frame
        recognise_videos(net, strided, frame_stride=2)
    with pytest.raises(ValueError, match=r"phases must divide the 4 frames .* \(1, 2, 4\)"):
        recognise_videos(net, dataset, SegmenterSettings(phases=3), frame_stride=2)


def test_training_and_evaluating_on_a_continuous_set(tmp_path, capsys, monkeypatch):
    """A causal tiny network trained per step on windows of the synthetic continuous set, then
    evaluated on whole videos: the loop, the factory and the report, end to end; training and
    validation both shift the targets by the config's lookahead."""
    import json

    from aclstm.cli import main
    from aclstm.train import loop

    lookaheads = []
    original = loop.outputs_and_targets

    def spy(net, clips, labels, lookahead=0):
        lookaheads.append(lookahead)
        return original(net, clips, labels, lookahead)

    monkeypatch.setattr(loop, "outputs_and_targets", spy)

    options = [
        "--no-progress", "--cfg-options", "model.frames=8", "data.synth.clips_per_class=4",
        "data.synth.classes=[0, 1, 4, 5]", "data.synth.frames=[12, 16]",
        "data.synth.val_fraction=0.25", "data.windows_per_video=2", "train.epochs=1",
        "train.batch_size=4", "train.amp=null", "train.channels_last=false",
        f"data.root={json.dumps(str(tmp_path / 'data'))}",
    ]  # fmt: skip
    assert main(["train", "synth_continuous", "--work-dir", str(tmp_path / "run"), *options]) == 0
    out = capsys.readouterr().out
    assert "on 4 windows, validating on 1, 28 classes" in out  # 2 videos x 2 windows
    meta = json.loads((tmp_path / "run/last/meta.json").read_text())
    assert meta["classes"][0] == "background" and meta["network"]["temporal_padding"] == "causal"
    assert meta["network"]["lookahead"] == 2 and set(lookaheads) == {2}
    assert main(["evaluate", str(tmp_path / "run/last"), "--no-progress", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    continuous = report["continuous"]
    assert continuous["videos"] == 1 and 0.0 <= continuous["mean_jaccard_2017"] <= 1.0
    assert continuous["mean_jaccard_2014"] <= continuous["mean_jaccard_2017"]
    predictions = (tmp_path / "run/evaluate-val/predictions.txt").read_text()
    assert predictions.startswith("valid/001/")


def test_each_step_is_trained_on_the_label_of_the_frame_it_ends_on():
    from aclstm.train.loop import outputs_and_targets

    class Steps(nn.Module):
        def forward(self, clips, per_step=False):
            assert per_step
            return torch.zeros(clips.shape[0], (clips.shape[2] + 1) // 2, 4)

    labels = torch.tensor([[0, 0, 3, 3, 3, 0, -1], [1, 2, 2, 2, 0, 0, 0]])
    logits, targets = outputs_and_targets(Steps(), torch.zeros(2, 3, 7, 8, 8), labels)
    assert logits.shape == (8, 4)
    assert targets.tolist() == [0, 3, 3, -1, 1, 2, 0, 0]  # frames 0, 2, 4, 6 of each clip
    clips = torch.ones(2, 1, 2, 2, 2)  # clip labels: the logits and labels as they are
    clip_logits, clip_targets = outputs_and_targets(
        lambda x: torch.zeros(x.shape[0], 5), clips, torch.tensor([1, 0])
    )
    assert clip_targets.tolist() == [1, 0] and clip_logits.shape == (2, 5)


def test_with_a_lookahead_step_t_is_trained_on_the_label_of_step_t_minus_d():
    from aclstm.models import lookahead_of
    from aclstm.train.loop import outputs_and_targets

    class Steps(nn.Module):
        def forward(self, clips, per_step=False):
            return torch.zeros(clips.shape[0], (clips.shape[2] + 1) // 2, 4)

    labels = torch.tensor([[0, 0, 3, 3, 3, 0, 2, 2, 1, 1]])  # steps name frames 0, 2, .. 8
    _, targets = outputs_and_targets(Steps(), torch.zeros(1, 3, 10, 8, 8), labels, lookahead=2)
    assert targets.tolist() == [-1, -1, 0, 3, 3]  # the first two steps name no step
    _, short = outputs_and_targets(Steps(), torch.zeros(1, 3, 2, 8, 8), labels[:, :2], 2)
    assert short.tolist() == [-1]  # a window shorter than the lookahead trains nothing
    net = create("tiny", num_classes=4, lookahead=3)
    assert lookahead_of(net) == 3 and lookahead_of(Steps()) == 0
    with pytest.raises(ValueError, match="lookahead must be 0 or more steps, got -1"):
        create("tiny", lookahead=-1)


def test_step_probabilities_undo_the_lookahead():
    """Row t names step t: the network's row t + d, the clip followed by its last frame held
    for d steps, so that every step of the clip is named."""
    torch.manual_seed(0)
    net = create("tiny", temporal_padding="causal", num_classes=3, size=32, lookahead=2).eval()
    clip = torch.randn(3, 11, 32, 32)
    got = step_probabilities(net, clip)
    padded = torch.cat([clip, clip[:, -1:].expand(-1, 4, -1, -1)], dim=1)
    with torch.no_grad():
        raw = net.forward_steps(padded[None])[0].softmax(-1).numpy()
    assert got.shape == (6, 3)  # ceil(11 / 2) steps, as without a lookahead
    np.testing.assert_allclose(got, raw[2:], atol=1e-6)
