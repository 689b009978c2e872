"""benchmarks/bench_data.py runs on a Jester copy given with --root and describes its frames."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_data

import aclstm.data.resize as resize_module
from aclstm.data.synth import SynthSpec, write_synthetic_set


def test_measures_a_jester_root_and_names_its_frames_coding(tmp_path, capsys):
    spec = SynthSpec(clips_per_class=1, val_fraction=0.0, seed=2, classes=(0, 1, 2))
    write_synthetic_set(tmp_path, spec)
    assert bench_data.main(["--root", str(tmp_path), "--clips", "2", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert f"2 clips of {tmp_path} (" in out and "KB a frame on average, 4:2:0)" in out
    for row in ("pipeline (simplejpeg)", "decode only (bound)", "pipeline / decode-only bound"):
        assert row in out
    assert "target >= 300 clips/s/core: " in out
    assert "target pipeline >= 0.75 of the bound: " in out
    machine = next(line for line in out.splitlines() if line.startswith("Machine: "))
    assert "torch kernels " in machine and "1 torch threads" in machine
    if resize_module.KERNEL is None:
        assert "crop + resize + mean: torch (the compiled kernel is not built)" in out
    else:  # the pipeline with and without it, and the kernel back in place after the peer
        assert f"crop + resize + mean: compiled kernel ({resize_module.KERNEL} code)" in out
        assert "| pipeline with torch's resize |" in out
        assert resize_module._cropresize is not None


def test_the_machine_line_names_the_isa_and_a_capped_one(monkeypatch):
    """Every figure must name the CPU kind it was measured on, and an AVX-512 machine standing
    in for an AVX2 one must say so."""
    import torch
    from bench_cells import machine_description

    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    line = machine_description(torch.device("cpu"))
    assert "torch kernels AVX2, oneDNN capped at AVX2" in line
    if Path("/proc/cpuinfo").exists():
        assert "avx2" in line.split("(")[1] or "?" in line


def test_a_root_without_jester_files_is_named(tmp_path, capsys):
    assert bench_data.main(["--root", str(tmp_path)]) == 2
    assert "no Jester labels file" in capsys.readouterr().err
