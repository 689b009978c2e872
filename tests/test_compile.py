"""``torch.compile`` and ``torch.export`` of the sequence module give what eager mode gives,
on the CPU."""

from __future__ import annotations

import os

import pytest
import torch

from aclstm.nn import ConvLSTM, cell_names

from helpers import randomize_

# Inductor's code generation takes 10-30 s a module on 2 cores: the paper's variant (a) is
# compiled with it; the other cells with "aot_eager", which traces the same graphs (Dynamo and
# AOTAutograd: graph breaks, functionalisation, the backward) and runs them without codegen.
# Emulating an older CPU on a newer one (ATEN_CPU_CAPABILITY=avx2 on an AVX-512 machine) makes
# torch 2.13's inductor-compiled code return NaN, for aclstm's code before and after any of its
# changes; real AVX2 machines compile correctly. So the inductor case steps aside there, saying so.
EMULATED = os.environ.get("ATEN_CPU_CAPABILITY") is not None
INDUCTOR = pytest.mark.skipif(EMULATED, reason="inductor returns NaN under ATEN_CPU_CAPABILITY")
CELLS = [pytest.param(c, marks=INDUCTOR) if c == "gated" else c for c in cell_names()]


def backend(cell: str) -> str:
    return "inductor" if cell == "gated" else "aot_eager"


@pytest.mark.parametrize("cell", CELLS)
def test_compiled_module_equals_eager(cell):
    torch.manual_seed(0)
    module = randomize_(ConvLSTM(3, 4, 3, num_layers=2, cell=cell), scale=0.3)
    x = torch.randn(2, 3, 3, 6, 5)
    state = tuple(torch.randn(2, 2, 4, 6, 5) for _ in range(2))

    out, (h_n, c_n) = module(x, state)
    out.square().sum().backward()
    eager_grads = [p.grad.clone() for p in module.parameters()]
    module.zero_grad()

    compiled = torch.compile(module, backend=backend(cell))
    got, (got_h, got_c) = compiled(x, state)
    got.square().sum().backward()
    torch.testing.assert_close(got, out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_h, h_n, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_c, c_n, rtol=1e-5, atol=1e-5)
    for p, expected in zip(module.parameters(), eager_grads, strict=True):
        torch.testing.assert_close(p.grad, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("cell", CELLS)
def test_compiled_module_from_the_zero_state(cell):
    """No state: the first step skips its recurrent terms, compiled as in eager mode."""
    torch.manual_seed(1)
    module = randomize_(ConvLSTM(3, 4, 3, cell=cell), scale=0.3)
    x = torch.randn(2, 3, 3, 6, 5)
    compiled = torch.compile(module, backend=backend(cell))
    torch.testing.assert_close(compiled(x)[0], module(x)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cell", ["gated", "convlstm"])
def test_exported_module_equals_eager(cell):
    """torch.export traces the plain ops (torch.tanh, no autograd Functions of ours): the
    CPU-only hand-written paths step aside while tracing."""
    torch.manual_seed(0)
    module = randomize_(ConvLSTM(3, 4, 3, num_layers=2, cell=cell), scale=0.3).eval()
    x = torch.randn(2, 3, 3, 6, 5)
    exported = torch.export.export(module, (x,))
    targets = {str(node.target) for node in exported.graph.nodes if node.op == "call_function"}
    assert any("tanh" in t for t in targets)
    assert not any("Function" in t or "apply" in t for t in targets), targets
    torch.testing.assert_close(exported.module()(x)[0], module(x)[0])
