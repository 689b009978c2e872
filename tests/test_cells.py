"""The fast path of every cell and of ConvLSTM against the plain equations in reference.py."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode

from aclstm.nn import CELLS, ConvLSTM, cell_names, create_cell, resolve_cell_name
from aclstm.nn.ops import global_avg_pool, lstm_update, tanh

from helpers import randomize_
from reference import reference_convlstm, reference_step

ALL_CELLS = cell_names()
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}


# (B, T, C_in, C_out, H, W, kernel, layers, bidirectional, with_state)
CASES = [
    pytest.param(2, 1, 3, 4, 5, 6, 3, 1, False, False, id="T1"),
    pytest.param(1, 2, 3, 4, 5, 5, 3, 1, False, True, id="T2-state"),
    pytest.param(2, 3, 2, 3, 6, 4, 1, 1, False, False, id="T3-k1"),
    pytest.param(1, 4, 3, 2, 4, 5, 2, 2, False, False, id="T4-k2-2layers"),
    pytest.param(2, 5, 2, 3, 5, 4, (3, 2), 1, False, True, id="T5-k3x2-state"),
    pytest.param(1, 3, 3, 3, 4, 4, 5, 3, False, True, id="T3-k5-3layers-state"),
    pytest.param(2, 3, 2, 3, 4, 5, 3, 2, True, False, id="T3-2layers-bidir"),
    pytest.param(1, 4, 3, 2, 5, 4, 4, 2, True, True, id="T4-k4-bidir-state"),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize(
    ("b", "t", "cin", "cout", "height", "width", "k", "layers", "bidir", "with_state"), CASES
)
@pytest.mark.parametrize("cell", ALL_CELLS)
def test_fast_path_equals_reference(
    cell, b, t, cin, cout, height, width, k, layers, bidir, with_state, dtype
):
    module = ConvLSTM(cin, cout, k, num_layers=layers, cell=cell, bidirectional=bidir)
    module = randomize_(module.to(dtype))
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(b, t, cin, height, width, generator=gen, dtype=dtype)
    state = None
    if with_state:
        shape = (layers * module.num_directions, b, cout, height, width)
        state = (
            torch.randn(shape, generator=gen, dtype=dtype),
            torch.randn(shape, generator=gen, dtype=dtype),
        )
    out, (h_n, c_n), maps = module(x, state, return_attention=True)
    ref_out, (ref_h, ref_c), ref_maps = reference_convlstm(module, x, state, True)
    tol = TOLERANCE[dtype]
    assert out.shape == (b, t, cout * module.num_directions, height, width)
    assert out.dtype == dtype
    torch.testing.assert_close(out, ref_out, rtol=tol, atol=tol)
    torch.testing.assert_close(h_n, ref_h, rtol=tol, atol=tol)
    torch.testing.assert_close(c_n, ref_c, rtol=tol, atol=tol)
    # The attention maps too, per layer and direction, in input time order (a backward
    # direction's maps reversed in time, or maps of the wrong step, fail here).
    assert len(maps) == len(ref_maps) == layers * module.num_directions
    for got, expected in zip(maps, ref_maps, strict=True):
        assert (got is None) == (expected is None)
        if got is not None:
            torch.testing.assert_close(got, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("cell", ALL_CELLS)
def test_without_bias_equals_reference(cell):
    """``bias=False`` builds cells with no bias at all, which still compute the equations."""
    module = randomize_(ConvLSTM(3, 4, 3, num_layers=2, cell=cell, bias=False).double())
    assert not [n for n, _ in module.named_parameters() if n.endswith("bias")]
    x = torch.randn(2, 3, 3, 5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    out, (h_n, c_n) = module(x)
    ref_out, (ref_h, ref_c) = reference_convlstm(module, x)
    torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(h_n, ref_h, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(c_n, ref_c, rtol=1e-10, atol=1e-10)


def test_dropout_acts_between_layers_in_training_only():
    """As nn.LSTM: off in eval mode; in training each layer's output but the last is dropped
    (dropout=1 gives the second layer zero input: its output is that of a zero input)."""
    torch.manual_seed(0)
    plain = randomize_(ConvLSTM(3, 4, 3, num_layers=2, cell="gated").double())
    dropped = ConvLSTM(3, 4, 3, num_layers=2, cell="gated", dropout=1.0).double()
    dropped.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 3, 5, 4, dtype=torch.float64)
    torch.testing.assert_close(dropped.eval()(x)[0], plain.eval()(x)[0])
    second = ConvLSTM(4, 4, 3, cell="gated").double()
    second.cells[0].load_state_dict(plain.cells[1].state_dict())
    expected = second(torch.zeros(2, 3, 4, 5, 4, dtype=torch.float64))[0]
    torch.testing.assert_close(dropped.train()(x)[0], expected)
    one_layer = ConvLSTM(3, 4, 3, cell="gated", dropout=1.0).double().train()
    one_layer.cells[0].load_state_dict(plain.cells[0].state_dict())
    assert one_layer(x)[0].abs().sum() > 0  # the last layer's output is never dropped


@pytest.mark.parametrize("cell", ALL_CELLS)
def test_hard_sigmoid_and_time_first(cell):
    module = randomize_(
        ConvLSTM(
            3, 4, 3, num_layers=2, cell=cell, batch_first=False, gate_activation="hard_sigmoid"
        ).double()
    )
    x = torch.randn(3, 2, 3, 5, 5, dtype=torch.float64)  # (T, B, C, H, W)
    out, (h_n, _) = module(x)
    ref_out, (ref_h, _) = reference_convlstm(module, x)
    assert out.shape == (3, 2, 4, 5, 5)
    torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(h_n, ref_h, rtol=1e-10, atol=1e-10)
    # The last time step of the output is the final hidden state.
    torch.testing.assert_close(out[-1], h_n[-1])


def test_peephole_matches_reference_and_changes_output():
    module = randomize_(ConvLSTM(3, 4, 3, num_layers=2, peephole=True).double())
    x = torch.randn(2, 4, 3, 5, 6, dtype=torch.float64)
    out, _ = module(x)
    ref_out, _ = reference_convlstm(module, x)
    torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-10)
    with torch.no_grad():
        for cell in module.cells:
            cell.peephole_weight.zero_()
    assert not torch.allclose(module(x)[0], out)


@pytest.mark.parametrize("cell", ALL_CELLS)
def test_single_cell_call_is_one_step(cell):
    module = randomize_(create_cell(cell, 3, 4, kernel_size=3).double())
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    h0, c0 = torch.randn(2, 2, 4, 5, 5, dtype=torch.float64)
    h, c = module(x, (h0, c0))
    ref_h, ref_c, _ = reference_step(module, x, h0, c0)
    torch.testing.assert_close(h, ref_h, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(c, ref_c, rtol=1e-10, atol=1e-10)
    # No state means a zero state.
    zero = torch.zeros_like(h0)
    torch.testing.assert_close(module(x)[0], reference_step(module, x, zero, zero)[0])


@pytest.mark.parametrize("cell", ALL_CELLS)
def gradcheck_module(module: ConvLSTM, x: torch.Tensor, *state: torch.Tensor) -> bool:
    """gradcheck of ``module`` w.r.t. ``x``, the given initial ``(h_0, c_0)`` (if any) and
    every parameter, in fp64. Fast mode, as PyTorch's own operator tests: it compares the
    Jacobian along random directions instead of element by element (12x faster here) and still
    fails on a gradient off by 0.1 % in lstm_update's backward (tried)."""
    names = [name for name, _ in module.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in module.parameters())

    def fn(x, *tensors):
        given, weights = tensors[: len(state)], tensors[len(state) :]
        args = (x, tuple(given)) if given else (x,)
        out, (h_n, c_n) = functional_call(module, dict(zip(names, weights, strict=True)), args)
        return out, h_n, c_n

    return torch.autograd.gradcheck(fn, (x, *state, *params), eps=1e-6, atol=1e-6, fast_mode=True)


@pytest.mark.parametrize("cell", ALL_CELLS)
def test_gradcheck(cell):
    """Gradients w.r.t. input, initial state and every parameter, in fp64."""
    torch.manual_seed(0)
    module = randomize_(ConvLSTM(2, 3, 3, num_layers=2, cell=cell).double(), scale=0.5)
    x = torch.randn(1, 3, 2, 4, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 1, 3, 4, 3, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(2, 1, 3, 4, 3, dtype=torch.float64, requires_grad=True)
    assert gradcheck_module(module, x, h0, c0)


@pytest.mark.parametrize("cell", ALL_CELLS)
def test_gradcheck_from_the_zero_state(cell):
    """Without a state the first step skips its recurrent terms: its gradients, in fp64."""
    torch.manual_seed(1)
    module = randomize_(ConvLSTM(2, 3, 3, cell=cell, bidirectional=True).double(), scale=0.5)
    x = torch.randn(1, 3, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    assert gradcheck_module(module, x)


@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("cell", ALL_CELLS)
def test_every_parameter_gets_a_gradient(cell, steps):
    """Also for a single step from the zero state, where the recurrent weights act on zeros:
    DistributedDataParallel needs a gradient for every parameter."""
    module = ConvLSTM(3, 4, 3, num_layers=2, cell=cell, bidirectional=True)
    out, _ = module(torch.randn(2, steps, 3, 6, 6))
    out.square().mean().backward()
    for name, p in module.named_parameters():
        assert p.grad is not None, name
        if steps > 1:
            assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("cell", ALL_CELLS)
def test_zero_state_skips_the_first_recurrence(cell):
    """T steps from no state cost one recurrence less than T steps from explicit zeros, and
    give the same result; a single step keeps it (see above)."""
    torch.manual_seed(0)
    module = randomize_(ConvLSTM(3, 4, 3, cell=cell))
    for steps, fewer in ((3, True), (1, False)):
        x = torch.randn(2, steps, 3, 6, 5)
        zeros = torch.zeros(1, 2, 4, 6, 5)
        with torch.no_grad(), FlopCounterMode(display=False) as implicit:
            out, _ = module(x)
        with torch.no_grad(), FlopCounterMode(display=False) as explicit:
            out_zeros, _ = module(x, (zeros, zeros))
        torch.testing.assert_close(out, out_zeros)
        skipped = explicit.get_total_flops() - implicit.get_total_flops()
        assert (skipped > 0) == fewer, (steps, skipped)


def test_registry_and_aliases():
    assert ALL_CELLS == [
        "convlstm",
        "gated",
        "input_attention",
        "input_gate_attention",
        "output_gate_attention",
    ]
    assert {resolve_cell_name(k) for k in "abcd"} == set(ALL_CELLS[1:])
    assert resolve_cell_name("A") == "gated"
    module = ConvLSTM(3, 4, num_layers=2, cell=["c", "gated"])
    assert module.cell_names == ["input_gate_attention", "gated"]
    assert type(module.cells[0]) is CELLS["input_gate_attention"]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown cell 'e'"):
        ConvLSTM(3, 4, cell="e")
    with pytest.raises(ValueError, match="3 cell names for 2 layers"):
        ConvLSTM(3, 4, num_layers=2, cell=["a", "b", "c"])
    with pytest.raises(ValueError, match="peephole"):
        ConvLSTM(3, 4, cell="gated", peephole=True)
    with pytest.raises(ValueError, match="gate_activation"):
        ConvLSTM(3, 4, gate_activation="relu")
    module = ConvLSTM(3, 4)
    with pytest.raises(ValueError, match="expects 3 input channels, got 5"):
        module(torch.randn(1, 2, 5, 4, 4))
    with pytest.raises(ValueError, match="5-D input"):
        module(torch.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"h_0 of shape \(1, 1, 4, 4, 4\)"):
        module(torch.randn(1, 2, 3, 4, 4), (torch.zeros(1, 1, 4, 3, 3), torch.zeros(1, 1, 4, 3, 3)))


@pytest.mark.parametrize("cell", ALL_CELLS)
def test_zero_state_follows_input_dtype(cell):
    module = ConvLSTM(3, 4, cell=cell).double()
    out, (h_n, c_n) = module(torch.randn(1, 2, 3, 4, 4, dtype=torch.float64))
    assert out.dtype == h_n.dtype == c_n.dtype == torch.float64


@pytest.mark.parametrize("cell", ALL_CELLS)
def test_channels_last_gives_the_same_result(cell):
    module = randomize_(ConvLSTM(4, 6, 3, num_layers=2, cell=cell))
    x = torch.randn(2, 3, 4, 6, 6)
    expected, _ = module(x)
    fast = module.to(memory_format=torch.channels_last)
    x_cl = x.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)  # C innermost
    got, _ = fast(x_cl)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cell", ALL_CELLS)
def test_cpu_autocast_bf16(cell):
    module = randomize_(ConvLSTM(4, 6, 3, num_layers=2, cell=cell), scale=0.2)
    x = torch.randn(2, 3, 4, 6, 6)
    expected, _ = module(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, _ = module(x)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got.float(), expected, rtol=0.05, atol=0.05)
    got.float().sum().backward()
    assert all(p.grad is not None for p in module.parameters())


@pytest.mark.parametrize(("dtype", "atol"), [(torch.float32, 3e-7), (torch.float64, 1e-15)])
def test_cpu_tanh_equals_torch_tanh(dtype, atol):
    """ops.tanh (2σ(2x) − 1 on the CPU) against torch.tanh, far into saturation and near 0."""
    x = torch.cat([torch.randn(100_000) * 3, torch.linspace(-100, 100, 20_001)]).to(dtype)
    x = torch.cat([x, torch.tensor([0.0, 1e-30, -1e-30, 88.0, -88.0, 1e4, -1e4], dtype=dtype)])
    y = tanh(x)
    torch.testing.assert_close(y, torch.tanh(x), rtol=0, atol=atol)
    assert y.abs().max() <= 1
    assert y[-2] == 1 and y[-1] == -1 and y[-7] == 0


def test_cpu_tanh_gradients():
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(tanh, (x,))
    assert torch.autograd.gradgradcheck(tanh, (x,))
    # Reduced precision keeps torch.tanh: 2σ(2x) − 1 would round small values to 0 in bf16.
    small = torch.full((4,), 1e-3, dtype=torch.bfloat16)
    assert torch.equal(tanh(small), torch.tanh(small)) and tanh(small).min() > 0


def test_global_avg_pool_keeps_the_gradient_channels_last():
    """The variants compute channels-last; x.mean(dim=(-2, -1)) hands back an NCHW gradient,
    which then makes the sum with the other paths' gradients NCHW too."""
    x = torch.randn(3, 5, 4, 6).contiguous(memory_format=torch.channels_last).requires_grad_()
    conv = torch.nn.Conv2d(5, 5, 3, padding=1).to(memory_format=torch.channels_last)
    upstream = torch.randn(5, 3).t()  # a transposed gradient, as a matrix product may give
    for pool in (global_avg_pool, lambda t: t.mean(dim=(-2, -1))):
        convolved = conv(x)
        pooled = pool(x)  # made last, so its gradient reaches x first, as in the cells
        torch.testing.assert_close(pooled, x.mean(dim=(-2, -1)))
        (grad,) = torch.autograd.grad((pooled, convolved), x, (upstream, torch.ones(3, 5, 4, 6)))
        if pool is global_avg_pool:
            expected = grad
            assert grad.is_contiguous(memory_format=torch.channels_last)
            assert not grad.is_contiguous()
        else:  # the plain mean: same values, the layout this test guards against
            torch.testing.assert_close(grad, expected)
            assert not grad.is_contiguous(memory_format=torch.channels_last)
    plain = torch.randn(3, 5, 4, 6, requires_grad=True)
    torch.testing.assert_close(global_avg_pool(plain), plain.mean(dim=(-2, -1)))


@pytest.mark.parametrize("with_c_prev", [True, False], ids=["c_prev", "zero-c_prev"])
@pytest.mark.parametrize("full_gate", [None, "i", "o"], ids=["pooled", "full-i", "full-o"])
def test_lstm_update_against_plain_ops(full_gate, with_c_prev):
    """The hand-written node against Eqs. 4-6 in plain ops, values and gradients (fp64),
    with pooled (B, C, 1, 1) gates, one full-size attended gate, and a zero C_{t-1}."""
    torch.manual_seed(0)

    def leaf(*shape):
        return torch.randn(*shape, dtype=torch.float64, requires_grad=True)

    pooled, full = (2, 3, 1, 1), (2, 3, 4, 5)
    pre = leaf(*full)
    i, f, o = (torch.sigmoid(leaf(*(full if name == full_gate else pooled))) for name in "ifo")
    c_prev = leaf(*full) if with_c_prev else None

    def plain(pre, i, f, o, c_prev):
        c = i * torch.tanh(pre) + (0 if c_prev is None else f * c_prev)
        return o * torch.tanh(c), c

    h, c = lstm_update(pre, i, f, o, c_prev)
    h_ref, c_ref = plain(pre, i, f, o, c_prev)
    torch.testing.assert_close((h, c), (h_ref, c_ref), rtol=0, atol=1e-14)
    inputs = [t for t in (pre, i, f, o, c_prev) if t is not None]
    for used in ((0, 1), (0,), (1,)):  # an unused output brings no gradient
        outputs, refs = ([(h, c)[k] for k in used], [(h_ref, c_ref)[k] for k in used])
        upstream = [torch.randn_like(t) for t in outputs]
        got = torch.autograd.grad(outputs, inputs, upstream, retain_graph=True, allow_unused=True)
        want = torch.autograd.grad(refs, inputs, upstream, retain_graph=True, allow_unused=True)
        for g, w, x in zip(got, want, inputs, strict=True):
            g, w = (torch.zeros_like(x) if t is None else t for t in (g, w))
            torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-14)

    def node(pre, i, f, o, *c):
        return lstm_update(pre, i, f, o, c[0] if c else None)

    args = [t.detach().requires_grad_() for t in inputs]
    assert torch.autograd.gradcheck(node, args)
    assert torch.autograd.gradgradcheck(node, args)


@pytest.mark.parametrize("cell", ["convlstm", "gated", "output_gate_attention"])
def test_torch_func_grad_equals_autograd(cell):
    """torch.func transforms see the hand-written autograd nodes through their setup_context."""
    from torch.func import grad

    torch.manual_seed(0)
    module = randomize_(ConvLSTM(2, 3, 3, cell=cell).double(), scale=0.5)
    params = {name: p.detach() for name, p in module.named_parameters()}
    x = torch.randn(1, 3, 2, 4, 4, dtype=torch.float64)

    def loss(params):
        return functional_call(module, params, (x,))[0].square().sum()

    got = grad(loss)(params)
    leaves = {name: p.clone().requires_grad_() for name, p in params.items()}
    want = torch.autograd.grad(loss(leaves), list(leaves.values()))
    for name, expected in zip(leaves, want, strict=True):
        torch.testing.assert_close(got[name], expected, msg=name)
