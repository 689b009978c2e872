"""The standard ConvLSTM cell and the four variants of Zhang et al., NIPS 2018.

Every cell splits one time step into two parts so that a sequence runs fast:

* ``precompute(x)`` does all the work that depends on the input alone. The sequence module calls
  it once on all B*T frames before the time loop (one large batched convolution instead of T
  small ones).
* ``step(pre, state)`` does the work that needs ``H_{t-1}`` and returns ``(h, c, attention)``;
  ``attention`` is the cell's attention map, or ``None`` for cells without one. A ``state`` of
  ``None`` is the zero state: the step then skips its recurrent terms, which are all zero.

Called directly, a cell runs one step like :class:`torch.nn.LSTMCell`:
``h, c = cell(x_t, (h, c))`` with ``x_t`` of shape ``(B, C_in, H, W)``.

Weights follow the authors' released Keras code (see DESIGN.md §2): separable convolutions for
the variants, gate weights initialised to ``1/C``, ``he_normal`` conv kernels with Keras' fan-in
(:mod:`aclstm.nn.init`), zero biases. The standard cell, which the released code does not
have, starts as Keras' ``ConvLSTM2D`` (with its forget-gate bias of 1, ``unit_forget_bias``).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from .init import he_normal_
from .ops import (
    GATE_ACTIVATIONS,
    SeparableConv2d,
    channel_attention,
    global_avg_pool,
    lstm_update,
    pair,
    spatial_softmax,
    tanh,
)

__all__ = [
    "CELLS",
    "ConvLSTMCell",
    "ConvLSTMCellBase",
    "GateAttentionConvLSTMCell",
    "GatedConvLSTMCell",
    "InputAttentionConvLSTMCell",
    "cell_names",
    "create_cell",
    "resolve_cell_name",
]

State = tuple[Tensor, Tensor]
StepOutput = tuple[Tensor, Tensor, Tensor | None]


class ConvLSTMCellBase(nn.Module):
    """Interface shared by all cells: ``precompute`` (input only) and ``step`` (recurrence)."""

    name: ClassVar[str]
    # Layout the cell computes in. Depthwise and 1x1 convolutions run several times faster in
    # channels_last on the CPU, while the dense KxK convolutions of the standard cell do not
    # gain, so the standard cell keeps the caller's layout.
    memory_format: ClassVar[torch.memory_format] = torch.preserve_format

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        kernel_size: int | tuple[int, int] = 3,
        bias: bool = True,
        gate_activation: str = "sigmoid",
    ) -> None:
        super().__init__()
        if input_size <= 0 or hidden_size <= 0:
            raise ValueError(
                f"input_size and hidden_size must be positive, got {input_size} and {hidden_size}"
            )
        if gate_activation not in GATE_ACTIVATIONS:
            raise ValueError(
                f"gate_activation must be one of {sorted(GATE_ACTIVATIONS)}, "
                f"got {gate_activation!r}"
            )
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.kernel_size = pair(kernel_size)
        self.bias = bias
        self.gate_activation = gate_activation
        self._gate_fn = GATE_ACTIVATIONS[gate_activation]

    def precompute(self, x: Tensor) -> tuple[Tensor, ...]:
        """All input-only terms for a batch of frames ``x`` of shape ``(N, C_in, H, W)``."""
        raise NotImplementedError

    def step(self, pre: tuple[Tensor, ...], state: State | None) -> StepOutput:
        """One recurrence from ``precompute``'s terms of one step and ``(H_{t-1}, C_{t-1})``.

        ``state=None`` means ``H_{t-1} = C_{t-1} = 0``: the terms that would multiply them are
        skipped, not computed on zeros.
        """
        raise NotImplementedError

    def to_layout(self, x: Tensor) -> Tensor:
        """``x`` (N, C, H, W) in the memory layout this cell computes fastest in."""
        if self.memory_format is torch.preserve_format:
            return x
        return x.contiguous(memory_format=self.memory_format)

    def initial_state(self, x: Tensor) -> State:
        """Zero ``(h, c)`` for the frames ``x`` (B, C_in, H, W): same device, dtype and layout."""
        b, _, height, width = x.shape
        h = x.new_zeros(b, self.hidden_size, height, width)
        if (
            x.dim() == 4
            and not x.is_contiguous()
            and x.is_contiguous(memory_format=torch.channels_last)
        ):
            h = h.contiguous(memory_format=torch.channels_last)
        return h, torch.zeros_like(h)

    def forward(self, x: Tensor, state: State | None = None) -> State:
        """One time step: ``x`` (B, C_in, H, W), ``state`` ``(h, c)`` or None for zeros."""
        if x.dim() != 4 or x.shape[1] != self.input_size:
            raise ValueError(
                f"{type(self).__name__} expects input of shape (B, {self.input_size}, H, W), "
                f"got {tuple(x.shape)}"
            )
        x = self.to_layout(x)
        state = self.initial_state(x) if state is None else tuple(map(self.to_layout, state))
        h, c, _ = self.step(self.precompute(x), state)
        return h, c

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}, kernel_size={self.kernel_size}"
        if not self.bias:
            s += ", bias=False"
        if self.gate_activation != "sigmoid":
            s += f", gate_activation={self.gate_activation!r}"
        return s


class ConvLSTMCell(ConvLSTMCellBase):
    """The standard ConvLSTM of Shi et al. 2015 (paper Eqs. 1-6).

    ``i, f, o = σ(W_x* ∗ X_t + W_h* ∗ H_{t-1} + b)``,
    ``G = tanh(W_xc ∗ X_t + W_hc ∗ H_{t-1} + b_c)``, ``C_t = f∘C_{t-1} + i∘G``,
    ``H_t = o∘tanh(C_t)``, every ∗ a KxK convolution.

    All four input convolutions are one ``conv_x`` (C_in -> 4·C_out) and all four state
    convolutions one ``conv_h`` (C_out -> 4·C_out), output channels in gate order
    ``(i, f, o, g)``. Parameters without bias: ``K·K·(C_in + C_out)·C_out·4`` (Eq. 7).

    With ``peephole=True`` the gates also see the cell state, with one weight per channel
    (Shi et al. use a full H×W weight map, which would tie the layer to one resolution):
    ``i = σ(… + w_ci∘C_{t-1})``, ``f = σ(… + w_cf∘C_{t-1})``, ``o = σ(… + w_co∘C_t)``.
    """

    name = "convlstm"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        kernel_size: int | tuple[int, int] = 3,
        bias: bool = True,
        gate_activation: str = "sigmoid",
        peephole: bool = False,
    ) -> None:
        super().__init__(input_size, hidden_size, kernel_size, bias, gate_activation)
        self.peephole = peephole
        self.conv_x = nn.Conv2d(
            input_size, 4 * hidden_size, self.kernel_size, padding="same", bias=bias
        )
        self.conv_h = nn.Conv2d(
            hidden_size, 4 * hidden_size, self.kernel_size, padding="same", bias=False
        )
        # Peephole weights of the i, f and o gates, one per channel.
        self.peephole_weight = nn.Parameter(torch.empty(3, hidden_size)) if peephole else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Keras ConvLSTM2D defaults: Glorot-uniform input kernel, orthogonal recurrent kernel,
        zero biases except the forget gate's, which starts at 1."""
        nn.init.xavier_uniform_(self.conv_x.weight)
        nn.init.orthogonal_(self.conv_h.weight)
        if self.conv_x.bias is not None:
            nn.init.zeros_(self.conv_x.bias)
            with torch.no_grad():
                self.conv_x.bias[self.hidden_size : 2 * self.hidden_size].fill_(1.0)
        if self.peephole_weight is not None:
            nn.init.zeros_(self.peephole_weight)

    def precompute(self, x: Tensor) -> tuple[Tensor, ...]:
        return (self.conv_x(x),)

    def step(self, pre: tuple[Tensor, ...], state: State | None) -> StepOutput:
        h, c = (None, None) if state is None else state
        n = self.hidden_size
        # In place on the fresh conv output (its backward does not need it): one pass less.
        gates = pre[0] if h is None else self.conv_h(h).add_(pre[0])
        if self.peephole_weight is None:
            i, f, o = self._gate_fn(gates[:, : 3 * n]).chunk(3, dim=1)
            h, c = lstm_update(gates[:, 3 * n :], i, f, o, c)
            return h, c, None
        w = self.peephole_weight[:, :, None, None]
        g = tanh(gates[:, 3 * n :])
        if c is None:  # the peepholes of i and f see C_{t-1} = 0
            i, f = self._gate_fn(gates[:, : 2 * n]).chunk(2, dim=1)
            c = i * g
        else:
            i = self._gate_fn(torch.addcmul(gates[:, :n], w[0], c))
            f = self._gate_fn(torch.addcmul(gates[:, n : 2 * n], w[1], c))
            c = torch.addcmul(f * c, i, g)
        o = self._gate_fn(torch.addcmul(gates[:, 2 * n : 3 * n], w[2], c))
        return o * tanh(c), c, None

    def extra_repr(self) -> str:
        return super().extra_repr() + (", peephole=True" if self.peephole else "")


class _PooledGatesCell(ConvLSTMCellBase):
    """Shared parts of the variants: the separable-conv candidate and the pooled (FC) gates.

    ``G_t = tanh(W_xc ∗ X_t + W_hc ∗ H_{t-1} + b_c)`` with depthwise-separable ∗ (Eq. 13), and
    ``num_gates`` σ-gates ``σ(W_x·GAP(X_t) + W_h·GAP(H_{t-1}) + b)`` (Eqs. 8-12), all of them
    from one Linear per side.
    """

    num_gates: ClassVar[int] = 3
    memory_format = torch.channels_last

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        kernel_size: int | tuple[int, int] = 3,
        bias: bool = True,
        gate_activation: str = "sigmoid",
    ) -> None:
        super().__init__(input_size, hidden_size, kernel_size, bias, gate_activation)
        k = self.kernel_size
        self.conv_x = SeparableConv2d(input_size, hidden_size, k, bias=bias)  # W_xc, b_c
        self.conv_h = SeparableConv2d(hidden_size, hidden_size, k, bias=False)  # W_hc
        self.gates_x = nn.Linear(input_size, self.num_gates * hidden_size, bias=bias)
        self.gates_h = nn.Linear(hidden_size, self.num_gates * hidden_size, bias=False)
        self._build_attention()
        self.reset_parameters()

    def _build_attention(self) -> None:
        """Where the attention variants add their modules (W_x*, W_h*, W_z)."""

    def _attention_input_convs(self) -> None:
        """W_xa ∗ X_t + b_a and W_ha ∗ H_{t-1}: the separable convolutions of Eqs. 17 and 21."""
        k = self.kernel_size
        self.att_x = SeparableConv2d(self.input_size, self.hidden_size, k, bias=self.bias)
        self.att_h = SeparableConv2d(self.hidden_size, self.hidden_size, k, bias=False)

    def _attention_features(self, xa: Tensor, h: Tensor | None) -> Tensor:
        """``tanh(W_xa ∗ X_t + W_ha ∗ H_{t-1} + b_a)`` from the precomputed ``xa``."""
        return tanh(xa if h is None else self.att_h(h).add_(xa))

    # The constant start of the input-side gate weights, 1/C: C_in in the released attention
    # layers, C_out in its GatedConvLSTM2D (the recurrent side is 1/C_out in all of them).
    gate_init_width: ClassVar[str] = "input"

    def reset_parameters(self) -> None:
        """As the released code: ``he_normal`` conv kernels (Keras' fan-in, see
        :mod:`aclstm.nn.init`), constant gate weights 1/C, zero biases."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                he_normal_(module)
        width = self.input_size if self.gate_init_width == "input" else self.hidden_size
        for linear, c in ((self.gates_x, width), (self.gates_h, self.hidden_size)):
            nn.init.constant_(linear.weight, 1.0 / c)
            if linear.bias is not None:
                nn.init.zeros_(linear.bias)

    def _candidate_and_gates(
        self, xc: Tensor, xg: Tensor, h: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """``G_t``'s argument ``W_xc ∗ X_t + W_hc ∗ H_{t-1} + b_c`` (B, C, H, W) and the σ-gates
        (num_gates, B, C, 1, 1), from the input terms and ``H_{t-1}`` (None: zero)."""
        if h is None:
            candidate, gates = xc, self._gate_fn(xg)
        else:
            candidate = self.conv_h(h).add_(xc)  # in place on the fresh conv output
            gates = self._gate_fn(torch.addmm(xg, global_avg_pool(h), self.gates_h.weight.t()))
        gates = gates.unflatten(1, (self.num_gates, self.hidden_size)).movedim(1, 0)
        return candidate, gates[..., None, None]


class GatedConvLSTMCell(_PooledGatesCell):
    """Variant (a): convolutions only in the input-to-state transition (Eqs. 8-16).

    The gates are fully connected on globally pooled input and state, so each is one scalar per
    channel; the candidate keeps depthwise-separable KxK convolutions. Parameters without bias:
    ``(K·K + 4·C_out)·(C_in + C_out)`` (Eq. 16).
    """

    name = "gated"
    gate_init_width = "output"

    def precompute(self, x: Tensor) -> tuple[Tensor, ...]:
        return self.conv_x(x), self.gates_x(global_avg_pool(x))

    def step(self, pre: tuple[Tensor, ...], state: State | None) -> StepOutput:
        xc, xg = pre
        h, c = (None, None) if state is None else state
        candidate, (i, f, o) = self._candidate_and_gates(xc, xg, h)
        h, c = lstm_update(candidate, i, f, o, c)
        return h, c, None


class InputAttentionConvLSTMCell(_PooledGatesCell):
    """Variant (b): soft spatial attention on the input, then variant (a) (Eqs. 17-20).

    ``Z_t = W_z ∗ tanh(W_xa ∗ X_t + W_ha ∗ H_{t-1} + b_a)`` (one channel), ``A_t`` its softmax
    over the H×W positions, and variant (a) runs on ``X̃_t = A_t∘X_t``. W_xa and W_ha are
    separable; W_z is a KxK conv from C_out channels to one (the released code declares C_in,
    but applies it to a C_out-channel tensor). The attention map ``A_t`` (B, 1, H, W) is what
    ``step`` returns as its third output.
    """

    name = "input_attention"

    def _build_attention(self) -> None:
        self._attention_input_convs()
        self.att_z = nn.Conv2d(self.hidden_size, 1, self.kernel_size, padding="same", bias=False)

    def precompute(self, x: Tensor) -> tuple[Tensor, ...]:
        return x, self.att_x(x)

    def step(self, pre: tuple[Tensor, ...], state: State | None) -> StepOutput:
        x, xa = pre
        h, c = (None, None) if state is None else state
        attention = spatial_softmax(self.att_z(self._attention_features(xa, h)))
        x = attention * x
        candidate, (i, f, o) = self._candidate_and_gates(
            self.conv_x(x), self.gates_x(global_avg_pool(x)), h
        )
        h, c = lstm_update(candidate, i, f, o, c)
        return h, c, attention


class GateAttentionConvLSTMCell(_PooledGatesCell):
    """Variants (c) and (d): the input or the output gate becomes channel-wise attention.

    ``Z_t = W_z ∗ tanh(W_x ∗ X_t + W_h ∗ H_{t-1} + b)`` with three separable KxK convolutions
    (Eq. 21; the paper's text says a W×H kernel for W_z, its Eq. 24 and the released code use KxK),
    and the gate is ``exp(Z) / max_{y,x} exp(Z)`` per channel (Eq. 22), in (0, 1]. The other two
    gates are the pooled gates of variant (a). Parameters without bias:
    ``(a) + K·K·(C_in + 2·C_out) + C_out²`` (Eq. 24). The attended gate (B, C_out, H, W) is
    ``step``'s third output.
    """

    num_gates = 2
    attended_gate: ClassVar[str]

    def _build_attention(self) -> None:
        self._attention_input_convs()
        self.att_z = SeparableConv2d(
            self.hidden_size, self.hidden_size, self.kernel_size, bias=False
        )

    def precompute(self, x: Tensor) -> tuple[Tensor, ...]:
        return self.conv_x(x), self.gates_x(global_avg_pool(x)), self.att_x(x)

    def step(self, pre: tuple[Tensor, ...], state: State | None) -> StepOutput:
        xc, xg, xa = pre
        h, c = (None, None) if state is None else state
        candidate, (gate_a, gate_b) = self._candidate_and_gates(xc, xg, h)
        attention = channel_attention(self.att_z(self._attention_features(xa, h)))
        if self.attended_gate == "input":
            i, f, o = attention, gate_a, gate_b
        else:
            i, f, o = gate_a, gate_b, attention
        h, c = lstm_update(candidate, i, f, o, c)
        return h, c, attention


class InputGateAttentionConvLSTMCell(GateAttentionConvLSTMCell):
    """Variant (c): the input gate is channel-wise attention (Eqs. 21-24); f and o are pooled."""

    name = "input_gate_attention"
    attended_gate = "input"


class OutputGateAttentionConvLSTMCell(GateAttentionConvLSTMCell):
    """Variant (d): the output gate is channel-wise attention (as Eqs. 21-24); i and f pooled."""

    name = "output_gate_attention"
    attended_gate = "output"


CELLS: dict[str, type[ConvLSTMCellBase]] = {
    cls.name: cls
    for cls in (
        ConvLSTMCell,
        GatedConvLSTMCell,
        InputAttentionConvLSTMCell,
        InputGateAttentionConvLSTMCell,
        OutputGateAttentionConvLSTMCell,
    )
}

# The paper's letters for its variants.
ALIASES: dict[str, str] = {
    "a": "gated",
    "b": "input_attention",
    "c": "input_gate_attention",
    "d": "output_gate_attention",
}


def cell_names() -> list[str]:
    """The registry keys of the five cells, in the paper's order."""
    return list(CELLS)


def resolve_cell_name(name: str) -> str:
    """Map a cell name or a paper letter (``a``-``d``) to its registry key."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in CELLS:
        choices = ", ".join([*CELLS, *ALIASES])
        raise ValueError(f"unknown cell {name!r}; choose one of: {choices}")
    return key


def create_cell(name: str, input_size: int, hidden_size: int, **kwargs) -> ConvLSTMCellBase:
    """Build a cell by registry name or paper letter, e.g. ``create_cell("a", 256, 256)``."""
    return CELLS[resolve_cell_name(name)](input_size, hidden_size, **kwargs)
