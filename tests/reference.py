"""Plain per-step implementations of the paper's equations, to check the fast path against.

Nothing here is hoisted or fused: every gate is its own convolution or matrix product, written
as in the equation it implements, with the weights read from a cell's parameters. Depthwise
convolutions are one convolution per channel, "same" padding is explicit, GAP is a mean, and the
softmax and channel-wise attention are written from Eqs. 18 and 22.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from aclstm.nn import (
    ConvLSTM,
    ConvLSTMCell,
    GateAttentionConvLSTMCell,
    GatedConvLSTMCell,
    InputAttentionConvLSTMCell,
    SeparableConv2d,
)


def conv_same(x: Tensor, weight: Tensor) -> Tensor:
    """Stride-1 conv, zero padding split as TensorFlow's "same" (the extra pixel at the end)."""
    kh, kw = weight.shape[-2:]
    top, left = (kh - 1) // 2, (kw - 1) // 2
    x = F.pad(x, (left, kw - 1 - left, top, kh - 1 - top))
    return F.conv2d(x, weight)


def depthwise(x: Tensor, weight: Tensor) -> Tensor:
    """One KxK filter per channel, applied channel by channel."""
    return torch.cat([conv_same(x[:, k : k + 1], weight[k : k + 1]) for k in range(x.shape[1])], 1)


def separable(module: SeparableConv2d, x: Tensor) -> Tensor:
    """Depthwise KxK then pointwise 1x1 as an explicit channel mix (einsum), plus bias."""
    y = depthwise(x, module.depthwise.weight)
    y = torch.einsum("oi,bihw->bohw", module.pointwise.weight[:, :, 0, 0], y)
    if module.pointwise.bias is not None:
        y = y + module.pointwise.bias[None, :, None, None]
    return y


def gap(x: Tensor) -> Tensor:
    return x.mean(dim=(2, 3))


def act(cell, x: Tensor) -> Tensor:
    if cell.gate_activation == "sigmoid":
        return 1.0 / (1.0 + torch.exp(-x))
    return torch.clamp(0.2 * x + 0.5, 0.0, 1.0)


def fc(weight: Tensor, v: Tensor, rows: slice) -> Tensor:
    """``W[rows] @ v`` for a batch of vectors, as (B, C, 1, 1) to weight whole feature maps."""
    return (v @ weight[rows].T)[:, :, None, None]


def bias_of(param: Tensor | None, rows: slice, like: Tensor) -> Tensor:
    if param is None:
        return torch.zeros((), dtype=like.dtype)
    return param[rows][None, :, None, None]


def convlstm_step(cell: ConvLSTMCell, x: Tensor, h: Tensor, c: Tensor):
    """Eqs. 1-6 (with Shi et al.'s peephole terms when the cell has them)."""
    n = cell.hidden_size
    wx, wh, b = cell.conv_x.weight, cell.conv_h.weight, cell.conv_x.bias
    rows = {gate: slice(k * n, (k + 1) * n) for k, gate in enumerate("ifog")}

    def pre(gate: str) -> Tensor:
        r = rows[gate]
        return conv_same(x, wx[r]) + conv_same(h, wh[r]) + bias_of(b, r, x)

    peep = cell.peephole_weight
    if peep is None:
        i, f, o = act(cell, pre("i")), act(cell, pre("f")), act(cell, pre("o"))
        g = torch.tanh(pre("g"))
        c_new = f * c + i * g
    else:
        i = act(cell, pre("i") + peep[0][None, :, None, None] * c)
        f = act(cell, pre("f") + peep[1][None, :, None, None] * c)
        g = torch.tanh(pre("g"))
        c_new = f * c + i * g
        o = act(cell, pre("o") + peep[2][None, :, None, None] * c_new)
    return o * torch.tanh(c_new), c_new, None


def pooled_gates(cell, x: Tensor, h: Tensor, names: str) -> dict[str, Tensor]:
    """Eqs. 8-12: each named gate is σ(W_x·GAP(X) + W_h·GAP(H) + b), one value per channel."""
    n = cell.hidden_size
    out = {}
    for k, gate in enumerate(names):
        r = slice(k * n, (k + 1) * n)
        z = fc(cell.gates_x.weight, gap(x), r) + fc(cell.gates_h.weight, gap(h), r)
        out[gate] = act(cell, z + bias_of(cell.gates_x.bias, r, x))
    return out


def candidate(cell, x: Tensor, h: Tensor) -> Tensor:
    """Eq. 13 with depthwise-separable convolutions."""
    return torch.tanh(separable(cell.conv_x, x) + separable(cell.conv_h, h))


def gated_step(cell: GatedConvLSTMCell, x: Tensor, h: Tensor, c: Tensor):
    """Variant (a), Eqs. 8-15."""
    gates = pooled_gates(cell, x, h, "ifo")
    c_new = gates["f"] * c + gates["i"] * candidate(cell, x, h)
    return gates["o"] * torch.tanh(c_new), c_new, None


def input_attention_step(cell: InputAttentionConvLSTMCell, x: Tensor, h: Tensor, c: Tensor):
    """Variant (b): Eqs. 17-19, then variant (a) on the attended input."""
    z = conv_same(
        torch.tanh(separable(cell.att_x, x) + separable(cell.att_h, h)), cell.att_z.weight
    )
    e = torch.exp(z)
    a = e / e.sum(dim=(2, 3), keepdim=True)
    h_new, c_new, _ = gated_step(cell, a * x, h, c)
    return h_new, c_new, a


def gate_attention_step(cell: GateAttentionConvLSTMCell, x: Tensor, h: Tensor, c: Tensor):
    """Variants (c) and (d): Eqs. 21-23 for the input (c) or output (d) gate."""
    z = separable(cell.att_z, torch.tanh(separable(cell.att_x, x) + separable(cell.att_h, h)))
    e = torch.exp(z)
    a = e / e.amax(dim=(2, 3), keepdim=True)
    if cell.attended_gate == "input":
        gates = pooled_gates(cell, x, h, "fo")
        gates["i"] = a
    else:
        gates = pooled_gates(cell, x, h, "if")
        gates["o"] = a
    c_new = gates["f"] * c + gates["i"] * candidate(cell, x, h)
    return gates["o"] * torch.tanh(c_new), c_new, a


def reference_step(cell, x: Tensor, h: Tensor, c: Tensor):
    if isinstance(cell, ConvLSTMCell):
        return convlstm_step(cell, x, h, c)
    if isinstance(cell, InputAttentionConvLSTMCell):
        return input_attention_step(cell, x, h, c)
    if isinstance(cell, GateAttentionConvLSTMCell):
        return gate_attention_step(cell, x, h, c)
    if isinstance(cell, GatedConvLSTMCell):
        return gated_step(cell, x, h, c)
    raise TypeError(type(cell))


def reference_convlstm(module: ConvLSTM, x: Tensor, state=None, return_attention=False):
    """The sequence module, layer by layer and step by step, with no shared code path. With
    ``return_attention`` also each layer's and direction's attention maps, stacked in input
    time order (B, T, ·, H, W), or None for cells without attention."""
    if not module.batch_first:
        x = x.transpose(0, 1)
    b, t, _, height, width = x.shape
    directions = module.num_directions
    h_n, c_n, attention = [], [], []
    layer_input = [x[:, k] for k in range(t)]
    for layer in range(module.num_layers):
        per_direction = []
        for d in range(directions):
            index = layer * directions + d
            cell = module.cells[index]
            if state is None:
                h = x.new_zeros(b, module.hidden_size, height, width)
                c = x.new_zeros(b, module.hidden_size, height, width)
            else:
                h, c = state[0][index], state[1][index]
            outs, maps = [None] * t, [None] * t
            order = range(t) if d == 0 else reversed(range(t))
            for k in order:
                h, c, maps[k] = reference_step(cell, layer_input[k], h, c)
                outs[k] = h
            per_direction.append(outs)
            attention.append(None if maps[0] is None else torch.stack(maps, dim=1))
            h_n.append(h)
            c_n.append(c)
        layer_input = [torch.cat([p[k] for p in per_direction], dim=1) for k in range(t)]
    output = torch.stack(layer_input, dim=1)
    if not module.batch_first:
        output = output.transpose(0, 1)
        attention = [None if a is None else a.transpose(0, 1) for a in attention]
    result = output, (torch.stack(h_n), torch.stack(c_n))
    return (*result, attention) if return_attention else result
