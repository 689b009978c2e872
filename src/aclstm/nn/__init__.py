"""Recurrent modules: the standard ConvLSTM and the four variants of Zhang et al. (NIPS 2018)."""

from .cells import (
    ALIASES,
    CELLS,
    ConvLSTMCell,
    ConvLSTMCellBase,
    GateAttentionConvLSTMCell,
    GatedConvLSTMCell,
    InputAttentionConvLSTMCell,
    InputGateAttentionConvLSTMCell,
    OutputGateAttentionConvLSTMCell,
    cell_names,
    create_cell,
    resolve_cell_name,
)
from .convlstm import ConvLSTM, run_cell
from .ops import SeparableConv2d, channel_attention, hard_sigmoid, spatial_softmax

__all__ = [
    "ALIASES",
    "CELLS",
    "ConvLSTM",
    "ConvLSTMCell",
    "ConvLSTMCellBase",
    "GateAttentionConvLSTMCell",
    "GatedConvLSTMCell",
    "InputAttentionConvLSTMCell",
    "InputGateAttentionConvLSTMCell",
    "OutputGateAttentionConvLSTMCell",
    "SeparableConv2d",
    "cell_names",
    "channel_attention",
    "create_cell",
    "hard_sigmoid",
    "resolve_cell_name",
    "run_cell",
    "spatial_softmax",
]
