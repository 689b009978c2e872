"""Parameter sizes and multiply-adds of the cells: the paper's formulas and the real counts.

The paper (Table 1) counts weights without biases (Eqs. 7, 16, 20, 24) and reports "Mult-Adds"
as that count times the 28×28 positions, as if every weight acted at every position. That
over-counts the variants, whose gates act once on pooled vectors, so the real multiply-adds of
one step are counted here from the operations too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from aclstm.nn import cell_names, create_cell, resolve_cell_name
from aclstm.nn.ops import pair

__all__ = [
    "CellComplexity",
    "cell_complexity",
    "cell_complexity_table",
    "format_cell_table",
    "format_model_table",
    "measured_step_macs",
    "model_complexity",
    "paper_mult_adds",
    "paper_param_count",
]


def paper_param_count(
    cell: str, input_size: int, hidden_size: int, kernel_size: int | tuple[int, int] = 3
) -> int:
    """Weights of one layer by the paper's formulas (biases ignored)."""
    kh, kw = pair(kernel_size)
    kk, cin, cout = kh * kw, input_size, hidden_size
    gated = (kk + 4 * cout) * (cin + cout)  # Eq. 16
    formulas = {
        "convlstm": kk * (cin + cout) * cout * 4,  # Eq. 7
        "gated": gated,
        "input_attention": gated + kk * (cin + 2 * cout) + (cin + cout) * cout,  # Eq. 20
        "input_gate_attention": gated + kk * (cin + 2 * cout) + cout * cout,  # Eq. 24
        "output_gate_attention": gated + kk * (cin + 2 * cout) + cout * cout,  # as Eq. 24
    }
    return formulas[resolve_cell_name(cell)]


def paper_mult_adds(
    cell: str,
    input_size: int,
    hidden_size: int,
    kernel_size: int | tuple[int, int] = 3,
    height: int = 28,
    width: int = 28,
) -> int:
    """Table 1's "Mult-Adds": the paper's parameter count times the H×W positions."""
    return paper_param_count(cell, input_size, hidden_size, kernel_size) * height * width


def measured_step_macs(module: torch.nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of one forward step of a cell on frames ``x`` (B, C_in, H, W),
    counted from its convolutions and matrix products (element-wise work is not counted)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(x)
    return counter.get_total_flops() // 2


@dataclass(frozen=True)
class CellComplexity:
    """One row of Table 1's size columns for one cell."""

    cell: str
    channels: int
    paper_params: int  # formula, no biases
    params: int  # numel of the module, biases included
    paper_mult_adds: int  # formula: paper_params * H * W
    mult_adds: int  # measured multiply-accumulates of one step, batch 1

    def as_dict(self) -> dict[str, int | str]:
        return asdict(self)


def cell_complexity(
    cell: str,
    input_size: int = 256,
    hidden_size: int = 256,
    kernel_size: int | tuple[int, int] = 3,
    height: int = 28,
    width: int = 28,
) -> CellComplexity:
    """Paper-formula and real parameter size and multiply-adds of one layer of ``cell``."""
    name = resolve_cell_name(cell)
    module = create_cell(name, input_size, hidden_size, kernel_size=kernel_size)
    x = torch.zeros(1, input_size, height, width)
    return CellComplexity(
        cell=name,
        channels=hidden_size,
        paper_params=paper_param_count(name, input_size, hidden_size, kernel_size),
        params=sum(p.numel() for p in module.parameters()),
        paper_mult_adds=paper_mult_adds(name, input_size, hidden_size, kernel_size, height, width),
        mult_adds=measured_step_macs(module, x),
    )


def cell_complexity_table(**sizes) -> list[CellComplexity]:
    """``cell_complexity`` for the five cells, in the paper's order."""
    return [cell_complexity(name, **sizes) for name in cell_names()]


def _millions(value: int, digits: int) -> str:
    return f"{value / 1e6:.{digits}f}M"


def format_cell_table(rows: list[CellComplexity]) -> str:
    """A Markdown table of Table 1's size columns, paper formulas beside the real counts."""
    header = (
        "| cell | channels | params (paper formula) | params (real, with biases) "
        "| Mult-Adds (paper formula) | Mult-Adds (measured, one step) |"
    )
    lines = [header, "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r.cell} | {r.channels} | {_millions(r.paper_params, 3)} "
            f"| {_millions(r.params, 3)} ({r.params:,}) | {_millions(r.paper_mult_adds, 1)} "
            f"| {_millions(r.mult_adds, 1)} |"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class StageComplexity:
    """Parameters and forward multiply-adds of one stage of the gesture network, per clip."""

    stage: str
    params: int
    mult_adds: int

    def as_dict(self) -> dict[str, int | str]:
        return asdict(self)


def model_complexity(model, frames: int, size: int) -> list[StageComplexity]:
    """Per-stage parameters and forward multiply-adds of ``model`` (a ``GestureNet``) for one
    clip of ``frames`` x ``size`` x ``size``, plus a ``total`` row. A model on the ``meta``
    device is counted without computing anything (shapes only)."""
    from aclstm.models import count_parameters, example_clip

    device = next(model.parameters()).device
    x = example_clip(model.config, batch=1, frames=frames, size=size, device=device)
    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    model.train(was_training)
    per_module = counter.get_flop_counts()
    root = type(model).__name__
    rows = [
        StageComplexity(
            stage=label,
            params=count_parameters(getattr(model, attr)),
            mult_adds=sum(per_module.get(f"{root}.{attr}", {}).values()) // 2,
        )
        for label, attr in model.stage_attributes.items()
    ]
    rows.append(StageComplexity("total", count_parameters(model), counter.get_total_flops() // 2))
    return rows


def format_model_table(rows: list[StageComplexity], title: str) -> str:
    lines = [title, "", "| stage | params | Mult-Adds (forward, one clip) |", "|---|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r.stage} | {_millions(r.params, 3)} ({r.params:,}) "
            f"| {r.mult_adds / 1e9:.2f}G ({r.mult_adds:,}) |"
        )
    return "\n".join(lines)
