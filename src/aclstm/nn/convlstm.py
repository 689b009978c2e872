"""``ConvLSTM``: a multi-layer, optionally bidirectional sequence module shaped like nn.LSTM."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .cells import ConvLSTMCell, ConvLSTMCellBase, State, create_cell, resolve_cell_name
from .ops import pair

__all__ = ["ConvLSTM", "run_cell"]


def run_cell(
    cell: ConvLSTMCellBase,
    x: Tensor,
    state: State | None = None,
    reverse: bool = False,
) -> tuple[Tensor, State, Tensor | None]:
    """Run one cell over a whole time-first sequence ``x`` of shape (T, B, C_in, H, W).

    The input-only work runs once on all T*B frames; the loop does only the recurrent part.
    Without ``state`` the first step skips its recurrent terms (they are zero) when T > 1.
    Returns the hidden states (T, B, C_out, H, W) in input order, the last ``(h, c)`` and the
    attention maps stacked over time (or None). Time-first keeps every step's frames, and the
    stacked outputs that feed the next layer, one flat batch of frames without copies.
    """
    t, b = x.shape[:2]
    frames = cell.to_layout(x.flatten(0, 1))
    # unbind, not indexing: the backward of T indexing ops would fill T full-size zero tensors.
    terms = (p.unflatten(0, (t, b)).unbind(0) for p in cell.precompute(frames))
    per_step = list(zip(*terms, strict=True))
    if state is not None:
        state = tuple(map(cell.to_layout, state))
    elif t == 1:
        # A zero state made explicitly: one step would otherwise leave the recurrent weights
        # out of the graph, without gradients (DistributedDataParallel requires them).
        state = cell.initial_state(frames[:b])
    # else None: the first step skips its recurrent terms, which are zero (1/T of the work).
    outputs: list[Tensor] = []
    attentions: list[Tensor] = []
    for pre in reversed(per_step) if reverse else per_step:
        h, c, attention = cell.step(pre, state)
        state = (h, c)
        outputs.append(h)
        if attention is not None:
            attentions.append(attention)
    if reverse:
        outputs.reverse()
        attentions.reverse()
    stacked_attention = torch.stack(attentions) if attentions else None
    return torch.stack(outputs), (h, c), stacked_attention


class ConvLSTM(nn.Module):
    """Multi-layer ConvLSTM over sequences of feature maps, with the API of ``torch.nn.LSTM``.

    Args:
        input_size: channels of the input maps.
        hidden_size: channels of the hidden and cell states of every layer.
        kernel_size: KxK (int) or (KH, KW) kernel of the cells' convolutions; padding is
            "same", so H×W is kept for odd and even kernels.
        num_layers: number of stacked layers.
        cell: a cell name (``convlstm``, ``gated``, ``input_attention``,
            ``input_gate_attention``, ``output_gate_attention``, or the paper's letters
            ``a``-``d``) for every layer, or a sequence with one name per layer.
        bias: whether the cells have biases.
        batch_first: input and output are (B, T, C, H, W) if True, else (T, B, C, H, W).
        dropout: dropout on the outputs of every layer but the last, as in ``nn.LSTM``.
        bidirectional: run a second cell per layer backwards in time; outputs are
            concatenated on the channel axis (forward first).
        gate_activation: ``"sigmoid"`` (the paper) or ``"hard_sigmoid"`` (Keras 2's default,
            used by the authors' released code) for the σ-gates.
        peephole: peephole connections in ``convlstm`` layers (Shi et al. 2015).

    Inputs: ``x``, ``state``
        * ``x``: (B, T, C_in, H, W) (or time-first, see ``batch_first``).
        * ``state``: optional ``(h_0, c_0)``, each (num_layers * num_directions, B, hidden_size,
          H, W); zeros on ``x``'s device and dtype if omitted.

    Outputs: ``output``, ``(h_n, c_n)``
        * ``output``: (B, T, num_directions * hidden_size, H, W), the last layer's hidden states.
        * ``h_n``, ``c_n``: the final states of every layer and direction, stacked as ``state``.

    With ``return_attention=True`` a third output lists, per layer and direction in the order
    of ``h_n``, the cell's attention maps stacked over time (B, T, ·, H, W) (time-first if
    ``batch_first`` is False), or None.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        kernel_size: int | tuple[int, int] = 3,
        num_layers: int = 1,
        cell: str | Sequence[str] = "convlstm",
        bias: bool = True,
        batch_first: bool = True,
        dropout: float = 0.0,
        bidirectional: bool = False,
        gate_activation: str = "sigmoid",
        peephole: bool = False,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"dropout must be in [0, 1], got {dropout}")
        names = [cell] * num_layers if isinstance(cell, str) else list(cell)
        if len(names) != num_layers:
            raise ValueError(f"got {len(names)} cell names for {num_layers} layers")
        self.cell_names = [resolve_cell_name(name) for name in names]
        if peephole and any(name != ConvLSTMCell.name for name in self.cell_names):
            raise ValueError("peephole connections exist only for 'convlstm' layers")

        self.input_size = input_size
        self.hidden_size = hidden_size
        self.kernel_size = pair(kernel_size)
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.num_directions = 2 if bidirectional else 1
        self.gate_activation = gate_activation

        extra = {"peephole": True} if peephole else {}
        self.cells = nn.ModuleList()  # index = layer * num_directions + direction, as h_n
        for layer, name in enumerate(self.cell_names):
            layer_input = input_size if layer == 0 else hidden_size * self.num_directions
            for _ in range(self.num_directions):
                self.cells.append(
                    create_cell(
                        name,
                        layer_input,
                        hidden_size,
                        kernel_size=self.kernel_size,
                        bias=bias,
                        gate_activation=gate_activation,
                        **extra,
                    )
                )

    def reset_parameters(self) -> None:
        """Every cell back to its initial weights (as ``nn.LSTM.reset_parameters``)."""
        for cell in self.cells:
            cell.reset_parameters()

    def _check_input(self, x: Tensor, state: State | None) -> None:
        if x.dim() != 5:
            layout = "(B, T, C, H, W)" if self.batch_first else "(T, B, C, H, W)"
            raise ValueError(f"ConvLSTM expects a 5-D input {layout}, got {tuple(x.shape)}")
        b = x.shape[0] if self.batch_first else x.shape[1]
        channels, height, width = x.shape[2:]
        if channels != self.input_size:
            raise ValueError(
                f"ConvLSTM expects {self.input_size} input channels, got {channels} "
                f"(input shape {tuple(x.shape)})"
            )
        if state is not None:
            expected = (self.num_layers * self.num_directions, b, self.hidden_size, height, width)
            for label, tensor in zip(("h_0", "c_0"), state, strict=True):
                if tuple(tensor.shape) != expected:
                    raise ValueError(
                        f"ConvLSTM expects {label} of shape {expected}, got {tuple(tensor.shape)}"
                    )

    def forward(
        self,
        x: Tensor,
        state: State | None = None,
        *,
        return_attention: bool = False,
    ):
        self._check_input(x, state)
        if self.batch_first:  # computed time-first, like nn.LSTM
            x = x.transpose(0, 1)
        h_n: list[Tensor] = []
        c_n: list[Tensor] = []
        attention: list[Tensor | None] = []
        layer_input = x
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                initial = None if state is None else (state[0][index], state[1][index])
                out, (h, c), att = run_cell(
                    self.cells[index], layer_input, initial, reverse=direction == 1
                )
                outputs.append(out)
                h_n.append(h)
                c_n.append(c)
                attention.append(att)
            layer_input = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=2)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, training=True)
        output = layer_input.transpose(0, 1) if self.batch_first else layer_input
        result = (output, (torch.stack(h_n), torch.stack(c_n)))
        if not return_attention:
            return result
        if self.batch_first:
            attention = [None if a is None else a.transpose(0, 1) for a in attention]
        return (*result, attention)

    def extra_repr(self) -> str:
        names = self.cell_names[0] if len(set(self.cell_names)) == 1 else self.cell_names
        s = (
            f"{self.input_size}, {self.hidden_size}, kernel_size={self.kernel_size}, "
            f"num_layers={self.num_layers}, cell={names!r}"
        )
        if not self.bias:
            s += ", bias=False"
        if not self.batch_first:
            s += ", batch_first=False"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        if self.gate_activation != "sigmoid":
            s += f", gate_activation={self.gate_activation!r}"
        return s
