"""Properties the paper states for the gates and the attention maps, measured from outside."""

from __future__ import annotations

import pytest
import torch

from aclstm.nn import ConvLSTM, channel_attention, create_cell, spatial_softmax

from helpers import randomize_


def gate_ratios(cell_name: str):
    """Drive one step so that f, i and o can be read off the outputs as ratios of maps.

    With the candidate's weights at zero, G = 0 and C_t = f∘C_{t-1}; with C_{t-1} = 0 and G
    known, C_t = i∘G; and H_t = o∘tanh(C_t).
    """
    torch.manual_seed(3)
    cell = randomize_(create_cell(cell_name, 3, 4).double())
    x = torch.randn(2, 3, 6, 5, dtype=torch.float64)
    h = torch.randn(2, 4, 6, 5, dtype=torch.float64)
    c = torch.rand(2, 4, 6, 5, dtype=torch.float64) + 0.5
    h1, c1 = cell(x, (h, c))
    o = h1 / torch.tanh(c1)
    with torch.no_grad():  # G = 0: C_t = f * C_{t-1}
        if cell_name == "convlstm":  # rows 12-15 of the fused convs are the candidate's
            cell.conv_x.weight[12:].zero_()
            cell.conv_x.bias[12:].zero_()
            cell.conv_h.weight[12:].zero_()
        else:
            cell.conv_x.pointwise.weight.zero_()
            cell.conv_x.pointwise.bias.zero_()
            cell.conv_h.pointwise.weight.zero_()
    _, c2 = cell(x, (h, c))
    f = c2 / c
    return f, o


def spatially_constant(t: torch.Tensor) -> bool:
    return bool(torch.allclose(t, t[..., :1, :1].expand_as(t), atol=1e-12))


def test_gated_gates_are_constant_over_space():
    f, o = gate_ratios("gated")
    assert spatially_constant(f) and spatially_constant(o)
    assert ((f > 0) & (f < 1)).all()


def test_standard_cell_gates_vary_over_space():
    """The same measurement on the standard cell must see spatial variation."""
    f, o = gate_ratios("convlstm")
    assert not spatially_constant(f) and not spatially_constant(o)


def test_output_gate_attention_varies_and_forget_gate_does_not():
    f, o = gate_ratios("output_gate_attention")
    assert spatially_constant(f)
    assert not spatially_constant(o)
    assert o.amax(dim=(2, 3)).sub(1).abs().max() < 1e-9  # o is the attention: max 1 per channel


def test_input_attention_map_is_a_distribution_over_positions():
    module = randomize_(ConvLSTM(3, 4, 3, num_layers=2, cell="input_attention"))
    _, _, attention = module(torch.randn(2, 5, 3, 7, 6), return_attention=True)
    a = attention[0]
    assert a.shape == (2, 5, 1, 7, 6)
    assert (a > 0).all()
    torch.testing.assert_close(a.sum(dim=(-2, -1)), torch.ones(2, 5, 1))
    assert a.std() > 0  # a real map, not uniform
    assert attention[1] is not None


@pytest.mark.parametrize("cell", ["input_gate_attention", "output_gate_attention"])
def test_channel_attention_gate_range_and_maximum(cell):
    module = randomize_(ConvLSTM(3, 4, 3, cell=cell))
    _, _, (a,) = module(torch.randn(2, 4, 3, 6, 7), return_attention=True)
    assert a.shape == (2, 4, 4, 6, 7)
    assert (a > 0).all() and (a <= 1).all()
    assert (a.amax(dim=(-2, -1)) == 1).all()  # exactly 1: exp(0)
    assert (a < 1).any()


def test_attention_functions_do_not_overflow():
    z = torch.tensor([[[[1e4, -1e4], [3.0, 1e4 - 1]]]])
    a = channel_attention(z)
    assert torch.isfinite(a).all()
    expected = torch.tensor([[[[1.0, 0.0], [0.0, torch.exp(torch.tensor(-1.0))]]]])
    torch.testing.assert_close(a, expected)
    s = spatial_softmax(z)
    assert torch.isfinite(s).all() and abs(s.sum().item() - 1) < 1e-6


@pytest.mark.parametrize(
    "cell", ["input_attention", "input_gate_attention", "output_gate_attention"]
)
def test_attention_cells_stay_finite_with_huge_logits(cell):
    module = randomize_(ConvLSTM(3, 4, 3, cell=cell))
    att_z = module.cells[0].att_z
    with torch.no_grad():  # scores of order 1e4
        (att_z.weight if cell == "input_attention" else att_z.pointwise.weight).mul_(1e4)
    out, _, (a,) = module(torch.randn(1, 3, 3, 5, 5), return_attention=True)
    assert torch.isfinite(out).all() and torch.isfinite(a).all()
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in module.parameters())


def test_standard_cell_starts_with_keras_unit_forget_bias():
    """(The variants' released initialisers are tested in test_init.py.)"""
    standard = create_cell("convlstm", 8, 16)
    bias = standard.conv_x.bias.view(4, 16)
    assert (bias[1] == 1).all() and (bias[[0, 2, 3]] == 0).all()  # unit forget bias
