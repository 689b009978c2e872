"""Table 1's parameter sizes and multiply-adds, from the formulas and from the modules."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from aclstm.analysis.complexity import (
    cell_complexity,
    paper_mult_adds,
    paper_param_count,
)
from aclstm.cli import main
from aclstm.nn import cell_names, create_cell

TABLE1_PARAMS = {  # paper Table 1 at K=3, C_in=C_out=256, exact values of Eqs. 7, 16, 20, 24
    "convlstm": 4_718_592,
    "gated": 528_896,
    "input_attention": 666_880,
    "input_gate_attention": 601_344,
    "output_gate_attention": 601_344,
}


def weights_without_biases(module) -> int:
    return sum(p.numel() for name, p in module.named_parameters() if not name.endswith("bias"))


@pytest.mark.parametrize("cell", cell_names())
def test_table1_parameter_sizes(cell):
    assert paper_param_count(cell, 256, 256, 3) == TABLE1_PARAMS[cell]
    assert weights_without_biases(create_cell(cell, 256, 256)) == TABLE1_PARAMS[cell]
    # The paper's Mult-Adds column is the parameter count at 28 x 28 positions.
    assert paper_mult_adds(cell, 256, 256, 3, 28, 28) == TABLE1_PARAMS[cell] * 784


@pytest.mark.parametrize("cell", cell_names())
@pytest.mark.parametrize(("cin", "cout", "k"), [(16, 40, 3), (48, 8, 5), (7, 13, (3, 1))])
def test_general_formulas_match_the_modules(cell, cin, cout, k):
    module = create_cell(cell, cin, cout, kernel_size=k)
    assert paper_param_count(cell, cin, cout, k) == weights_without_biases(module)


def test_formulas_by_hand_for_unequal_widths():
    cin, cout, kk = 10, 6, 9
    assert paper_param_count("convlstm", cin, cout) == kk * 16 * 6 * 4
    assert paper_param_count("a", cin, cout) == (kk + 24) * 16
    assert paper_param_count("b", cin, cout) == (kk + 24) * 16 + kk * 22 + 16 * 6
    assert paper_param_count("c", cin, cout) == (kk + 24) * 16 + kk * 22 + 36
    assert paper_param_count("d", cin, cout) == paper_param_count("c", cin, cout)


def test_measured_multiply_adds_by_hand():
    cin, cout, kk, hw = 256, 256, 9, 28 * 28
    standard = cell_complexity("convlstm")
    assert standard.mult_adds == kk * (cin + cout) * 4 * cout * hw  # every weight at every pixel
    gated = cell_complexity("gated")
    separable = kk * (cin + cout) * hw + (cin + cout) * cout * hw
    pooled_gates = 3 * cout * (cin + cout)  # once per step, not per position
    assert gated.mult_adds == separable + pooled_gates
    assert standard.mult_adds / gated.mult_adds > 30
    assert gated.params == TABLE1_PARAMS["gated"] + cout + 3 * cout  # b_c and the gate biases


def test_complexity_command_prints_table1(capsys):
    assert main(["complexity"]) == 0
    out = capsys.readouterr().out
    for cell, params in zip(
        cell_names(), ["4.719M", "0.529M", "0.667M", "0.601M", "0.601M"], strict=True
    ):
        row = next(line for line in out.splitlines() if line.startswith(f"| {cell} |"))
        assert f"| {params} |" in row
    for mult_adds in ["3699.4M", "414.7M", "522.8M", "471.5M"]:
        assert mult_adds in out


def test_complexity_command_json_for_other_sizes(capsys):
    assert (
        main(
            [
                "complexity",
                "--input-size",
                "32",
                "--hidden-size",
                "16",
                "--kernel-size",
                "5",
                "--height",
                "8",
                "--width",
                "10",
                "--json",
            ]
        )
        == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert [r["cell"] for r in rows] == cell_names()
    assert rows[0]["paper_params"] == 25 * 48 * 16 * 4
    assert rows[0]["mult_adds"] == rows[0]["paper_params"] * 80


def test_complexity_command_rejects_bad_sizes(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["complexity", "--height", "0"])
    assert exc.value.code == 2
    assert "expected a positive integer, got 0" in capsys.readouterr().err


def test_model_complexity_per_stage(capsys):
    from aclstm.analysis.complexity import model_complexity
    from aclstm.models import create

    with torch.device("meta"):  # shapes only; a CPU model gives the same counts (below)
        model = create("paper", cell="gated")
        tiny_meta = create("tiny", cell="input_attention")
    tiny_cpu = create("tiny", cell="input_attention")
    assert model_complexity(tiny_meta, 8, 64) == model_complexity(tiny_cpu, 8, 64)
    rows = {r.stage: r for r in model_complexity(model, frames=16, size=112)}
    assert list(rows) == ["res3d", "convlstm", "mobilenet", "head", "total"]
    assert sum(rows[s].params for s in ("res3d", "convlstm", "mobilenet", "head")) == (
        rows["total"].params
    )
    assert sum(rows[s].mult_adds for s in ("res3d", "convlstm", "mobilenet", "head")) == (
        rows["total"].mult_adds
    )
    # Two gated layers over T/2 = 8 steps of 28x28: 16 cell steps as the cell table counts
    # them, less each layer's recurrent terms at its first step (zero state: skipped).
    full_step = cell_complexity("gated").mult_adds
    cell = create_cell("gated", 256, 256)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        cell.step(cell.precompute(torch.zeros(1, 256, 28, 28)), None)
    zero_state_step = counter.get_total_flops() // 2
    assert 0 < zero_state_step < full_step
    assert rows["convlstm"].mult_adds == 14 * full_step + 2 * zero_state_step
    assert rows["head"].mult_adds == 1024 * 27
    assert rows["res3d"].mult_adds > 0.9 * rows["total"].mult_adds  # DESIGN.md: Res3D > 90 %

    assert main(["complexity", "--model", "tiny", "--cell", "b", "--json"]) == 0
    tiny = json.loads(capsys.readouterr().out)
    assert [r["stage"] for r in tiny][-1] == "total"
    assert main(["complexity", "--model", "paper", "--cell", "convlstm"]) == 0
    out = capsys.readouterr().out
    assert "convlstm + convlstm" in out and "16x112x112" in out and "| 20.662M" in out
