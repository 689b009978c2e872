"""benchmarks/bench_network.py runs, and its ratios are against the convlstm network."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_network


def test_ratios_are_peer_time_over_own_time():
    rows = [
        {"cell": "convlstm", "train_ms": 300.0, "infer_ms": 90.0},
        {"cell": "gated", "train_ms": 100.0, "infer_ms": 60.0},
    ]
    bench_network.add_ratios(rows)
    assert (rows[0]["train_vs_convlstm"], rows[0]["infer_vs_convlstm"]) == (1.0, 1.0)
    assert rows[1]["train_vs_convlstm"] == pytest.approx(3.0)
    assert rows[1]["infer_vs_convlstm"] == pytest.approx(1.5)


def test_ratios_are_absent_without_the_peer():
    rows = [{"cell": "gated", "train_ms": 100.0, "infer_ms": 60.0}]
    bench_network.add_ratios(rows)
    assert rows[0]["train_vs_convlstm"] is None


def test_the_preset_gives_the_default_clip_size():
    args = bench_network.parse_args([])
    assert (args.preset, args.frames, args.size, args.batch) == ("tiny", 8, 64, 8)
    paper = bench_network.parse_args(["--preset", "paper", "--batch", "16"])
    assert (paper.frames, paper.size) == (16, 112)
    with pytest.raises(SystemExit):
        bench_network.parse_args(["--repeats", "3"])


@pytest.fixture
def restore_threads():
    """The benchmark sets torch's thread count; give the rest of the suite its own back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("extra", [[], ["--channels-last", "--amp", "bf16"]])
def test_a_small_run_prints_one_row_per_cell(extra, tmp_path, capsys, restore_threads):
    """One thread: on a busy 2-core machine, two threads wait on each other in every op."""
    argv = "--frames 2 --size 16 --batch 2 --cells convlstm gated --warmup 0 --threads 1"
    argv = [*argv.split(), "--json", str(tmp_path / "r.json"), *extra]
    assert bench_network.main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("Machine: ") and "1 torch threads" in out and "load average" in out
    table = [line for line in out.splitlines() if line.startswith("| ")]
    assert len(table) == 3  # header and two cells
    assert table[1].startswith("| convlstm | convlstm+convlstm |")
    assert "| 1.00× | 1.00× |" in table[1]
    assert table[2].startswith("| gated | gated+gated |")
    result = json.loads((tmp_path / "r.json").read_text())
    for row in result["rows"]:
        assert row["train_ms"] > 0 and row["infer_ms"] > 0
        assert row["train_clips_per_s"] == pytest.approx(2 / row["train_ms"] * 1e3)
        assert row["convlstm_share_train"] > 0 and row["convlstm_share_infer"] > 0
