"""The paper's gesture network, Res3D + ConvLSTM + MobileNet (Fig. 1), and its presets."""

from .gesture_net import (
    FRAMES_PER_STEP,
    MODALITY_CHANNELS,
    GestureNet,
    GestureNetConfig,
    count_parameters,
    example_clip,
    lookahead_of,
    released_layer_cells,
)
from .layers import weight_decay_param_groups
from .mobilenet import MobileNetTop
from .presets import create, list_presets, preset_config, register_preset
from .res3d import Res3D

__all__ = [
    "FRAMES_PER_STEP",
    "MODALITY_CHANNELS",
    "GestureNet",
    "GestureNetConfig",
    "MobileNetTop",
    "Res3D",
    "count_parameters",
    "create",
    "example_clip",
    "list_presets",
    "lookahead_of",
    "preset_config",
    "register_preset",
    "released_layer_cells",
    "weight_decay_param_groups",
]
