"""Run configs: shipped files are valid, _base_ merges, overrides parse, mistakes are named."""

from __future__ import annotations

import pytest

from aclstm.cli import SHIPPED_CONFIGS, shipped_configs
from aclstm.config import ConfigError, apply_overrides, config_from_dict, load_config
from aclstm.models import preset_config
from aclstm.train.runner import build_model


@pytest.mark.parametrize("name", shipped_configs())
def test_every_shipped_config_is_valid_and_builds_its_network_config(name):
    config = load_config(SHIPPED_CONFIGS / f"{name}.toml")
    network = preset_config(
        config.model.preset, cell=config.model.cell, num_classes=27, **config.model.overrides
    )
    assert network.cell == config.model.cell


def test_the_paper_configs_differ_only_in_the_cell():
    gated = load_config(SHIPPED_CONFIGS / "jester_gated.toml")
    for cell in ("convlstm", "input_attention", "input_gate_attention", "output_gate_attention"):
        other = load_config(SHIPPED_CONFIGS / f"jester_{cell}.toml")
        assert other.model.cell == cell
        assert other.train == gated.train and other.data == gated.data
    assert gated.train.lr == 1e-3 and gated.train.epochs == 30 and gated.train.batch_size == 16


def test_isogd_config_fine_tunes_with_32_frames():
    config = load_config(SHIPPED_CONFIGS / "isogd_rgb.toml")
    assert config.model.overrides["frames"] == 32
    assert config.data.dataset == "isogd" and config.train.init_from
    assert (config.train.epochs, config.train.batch_size) == (15, 8)
    assert config.model.cell == "gated"  # inherited from the Jester recipe


def test_base_merges_tables_key_by_key(tmp_path):
    (tmp_path / "base.toml").write_text('[train]\nlr = 0.5\nepochs = 3\n[data]\nroot = "x"\n')
    (tmp_path / "child.toml").write_text('_base_ = "base.toml"\n[train]\nepochs = 7\n')
    config = load_config(tmp_path / "child.toml")
    assert (config.train.lr, config.train.epochs, config.data.root) == (0.5, 7, "x")


def test_a_base_chain_that_loops_is_an_error(tmp_path):
    (tmp_path / "a.toml").write_text('_base_ = "b.toml"\n')
    (tmp_path / "b.toml").write_text('_base_ = "a.toml"\n')
    with pytest.raises(ConfigError, match="loops"):
        load_config(tmp_path / "a.toml")


def test_overrides_parse_toml_values():
    values = apply_overrides(
        {},
        [
            "train.lr=0.01",
            "train.compile=true",
            "model.cell=b",
            'data.root="/data/jester"',
            "data.synth.clips_per_class=5",
            "data.mean=[1, 2, 3]",
        ],
    )
    assert values == {
        "train": {"lr": 0.01, "compile": True},
        "model": {"cell": "b"},
        "data": {"root": "/data/jester", "synth": {"clips_per_class": 5}, "mean": [1, 2, 3]},
    }
    config = load_config(None, ["train.lr=1", "model.frames=8", "model.size=32"])
    assert config.train.lr == 1.0 and isinstance(config.train.lr, float)
    assert config.model.overrides == {"frames": 8, "size": 32}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[train]\nlrr = 0.1\n", r"\[train\] unknown key 'lrr'"),
        ('[train]\nlr = "fast"\n', r"\[train\] lr = 'fast': expected float, got str"),
        ("[train]\nepochs = 1.5\n", r"epochs = 1.5: expected int"),
        ("[model]\nframes = true\n", r"\[model\] frames = True: expected int"),
        ("[optimiser]\nlr = 1\n", r"unknown table\(s\) 'optimiser'"),
        ("[data.synth]\nclips = 3\n", r"\[data.synth\] unknown key 'clips'"),
        ("train = 3\n", r"'train' must be a table"),
        ("[train\n", r"not valid TOML"),
    ],
)
def test_mistakes_name_the_file_and_the_key(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_null_unsets_an_optional_value_and_only_an_optional_one(tmp_path):
    (tmp_path / "amp.toml").write_text('[train]\namp = "bf16"\n')
    assert load_config(tmp_path / "amp.toml").train.amp == "bf16"
    assert load_config(tmp_path / "amp.toml", ["train.amp=null"]).train.amp is None
    with pytest.raises(ConfigError, match=r"lr = None: expected float"):
        load_config(None, ["train.lr=null"])


def test_bad_overrides_are_named():
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(None, ["train.lr"])
    with pytest.raises(ConfigError, match="names no table"):
        load_config(None, ["lr=0.1"])
    with pytest.raises(ConfigError, match="config file not found"):
        load_config("no/such/file.toml")


def test_an_unknown_model_key_lists_the_network_fields():
    with pytest.raises(ConfigError, match=r"\[model\] unknown key 'depth' \(known: .*lstm_hidden"):
        load_config(None, ["model.depth=3"])


def test_depth_modality_gives_a_one_channel_network():
    config = load_config(None, ["model.preset=tiny", "data.dataset=isogd", "data.modality=depth"])
    assert build_model(config, num_classes=249).config.in_channels == 1


def test_skip_nonfinite_reaches_the_training_settings():
    from aclstm.train.runner import train_settings

    assert not train_settings(load_config(None)).skip_nonfinite
    settings = train_settings(
        load_config(None, ["train.skip_nonfinite=true", "train.nonfinite_limit=3"])
    )
    assert settings.skip_nonfinite and settings.nonfinite_limit == 3
    with pytest.raises(ConfigError, match=r"skip_nonfinite = 1: expected bool, got int"):
        load_config(None, ["train.skip_nonfinite=1"])


def test_congd_config_streams_and_fine_tunes_from_isogd():
    config = load_config(SHIPPED_CONFIGS / "congd_rgb.toml")
    assert config.model.overrides["temporal_padding"] == "causal"
    assert config.model.overrides["frames"] == 32 and config.model.preset == "paper"
    assert config.data.dataset == "congd" and config.data.windows_per_video == 2
    assert config.train.init_from == "runs/isogd_rgb/best"
    net = build_model(config, num_classes=250)
    assert net.config.temporal_padding == "causal" and net.config.lstm_hidden == 256


def test_segment_settings_checked_and_carried_by_a_checkpoint():
    from aclstm.analysis.segmentation import SegmenterSettings, segmenter_settings

    config = config_from_dict({"segment": {"enter": 0.7, "min_steps": 2}}, "c.toml")
    assert config.segment == SegmenterSettings(enter=0.7, exit=0.4, smoothing=3, min_steps=2)
    meta = {"config": config.as_dict()}
    assert segmenter_settings(meta, smoothing=1) == SegmenterSettings(0.7, 0.4, 1, 2)
    assert segmenter_settings({"config": {}}) == SegmenterSettings()  # an older checkpoint
    # Other phases: smoothing and min_steps count rows of F / phases frames, so they are
    # scaled to stay as many frames, unless given.
    four = {"config": {"segment": {"phases": 4, "smoothing": 2, "min_steps": 8}}}
    assert segmenter_settings(four, phases=1) == SegmenterSettings(smoothing=1, min_steps=2)
    assert segmenter_settings(four, phases=2, min_steps=3).min_steps == 3
    assert segmenter_settings(four, phases=4, min_steps=None) == SegmenterSettings(
        0.6, 0.4, 2, 8, 4
    )
    with pytest.raises(ConfigError, match=r"\[segment\] phases must be at least 1, got 0"):
        config_from_dict({"segment": {"phases": 0}}, "c.toml")
    with pytest.raises(ConfigError, match=r"c\.toml: \[segment\] need 0 < exit <= enter"):
        config_from_dict({"segment": {"enter": 0.3}}, "c.toml")
