"""``aclstm reproduce``: five cells, one recipe, Table 1's columns and its figure."""

from __future__ import annotations

import json

import pytest

import aclstm.train.runner
from aclstm.cli import main
from aclstm.reproduce import base_config, format_table, run_config

TINY = [
    "data.synth.clips_per_class=4",
    "data.synth.classes=[0,1,2]",
    "model.frames=4",
    "train.batch_size=3",
]


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce")
    args = ["reproduce", "--out", str(out), "--epochs", "1", "--seeds", "0,1", "--no-progress"]
    assert main([*args, "--cells", "convlstm", "b", "--cfg-options", *TINY]) == 0
    return out, args


def test_reproduce_writes_table_json_and_figure(reproduced):
    out, _ = reproduced
    table = json.loads((out / "table1.json").read_text())
    rows = table["rows"]
    assert [r["cell"] for r in rows] == ["convlstm", "input_attention"]  # paper order, b = (b)
    for row in rows:
        assert len(row["val_top1"]) == 2  # one per seed
        assert 0.0 <= row["val_top1_mean"] <= 1.0
        assert row["train_clips_per_s"] > 0
    assert "4 frames of 32x32" in table["setting"]
    md = (out / "table1.md").read_text()
    assert "| ConvLSTM | convlstm |" in md and "| Variant (b) | input_attention |" in md
    assert (out / "table1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for cell in ("convlstm", "input_attention"):
        for seed in (0, 1):
            result = json.loads((out / "runs" / cell / f"seed{seed}" / "result.json").read_text())
            assert (result["cell"], result["seed"]) == (cell, seed)
            assert result["config"]["model"]["cell"] == cell
            assert result["config"]["train"]["seed"] == seed


def test_size_columns_match_the_complexity_command(reproduced, capsys):
    out, _ = reproduced
    rows = json.loads((out / "table1.json").read_text())["rows"]
    # the tiny network's ConvLSTM: 64 -> 64 channels on 8x8 maps (32x32 input / 4)
    sizes = ["--input-size", "64", "--hidden-size", "64", "--height", "8", "--width", "8"]
    capsys.readouterr()
    assert main(["complexity", *sizes, "--json"]) == 0
    expected = {r["cell"]: r for r in json.loads(capsys.readouterr().out)}
    for row in rows:
        for key in ("channels", "paper_params", "params", "paper_mult_adds", "mult_adds"):
            assert row[key] == expected[row["cell"]][key], (row["cell"], key)


def test_finished_runs_are_reused_not_retrained(reproduced, monkeypatch, capsys):
    _, args = reproduced

    def no_training(*_, **__):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(aclstm.train.runner, "train", no_training)
    assert main([*args, "--cells", "convlstm", "--cfg-options", *TINY]) == 0
    assert "finished before, reusing its result" in capsys.readouterr().out
    # ... but a changed recipe is a new run
    changed = [*args, "--cells", "convlstm", "--cfg-options", *TINY, "train.lr=0.01"]
    with pytest.raises(AssertionError, match="trained again"):
        main(changed)


def test_preset_brings_its_own_clip_size_and_init_from_names_each_run():
    values = base_config("synth", root="somewhere", preset="paper", epochs=3)
    config = run_config(values, "c", seed=4)
    assert "frames" not in config.model.overrides and "size" not in config.model.overrides
    assert (config.model.preset, config.model.cell, config.train.seed) == ("paper", "c", 4)
    assert config.train.epochs == 3 and config.data.root == "somewhere"
    values = base_config("isogd", root="iso", overrides=['train.init_from="j/{cell}/s{seed}"'])
    assert run_config(values, "gated", seed=1).train.init_from == "j/gated/s1"


def test_unknown_data_kind_and_missing_root_are_named(tmp_path, capsys):
    assert main(["reproduce", "--out", str(tmp_path), "--data", "kinetics"]) == 2
    assert "--data must be one of synth, jester, isogd" in capsys.readouterr().err
    assert main(["reproduce", "--out", str(tmp_path), "--data", "jester"]) == 2
    assert "--data jester needs the data set's ROOT folder" in capsys.readouterr().err


def test_table_shows_the_papers_accuracy_for_jester_only():
    assert "paper (Jester)" in format_table([], "jester", [0])
    assert "paper" not in format_table([], "synth", [0]).split("|")[3]
