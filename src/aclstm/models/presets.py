"""Named configurations of the gesture network, timm-style: ``create("paper", cell="gated")``."""

from __future__ import annotations

from dataclasses import replace

from .gesture_net import MODALITY_CHANNELS, GestureNet, GestureNetConfig

_PRESETS: dict[str, GestureNetConfig] = {}


def register_preset(name: str, config: GestureNetConfig) -> GestureNetConfig:
    if name in _PRESETS:
        raise ValueError(f"preset {name!r} is already registered")
    _PRESETS[name] = config
    return config


# The released architecture: 16 (Jester) or 32 (IsoGD) frames of 112x112.
register_preset("paper", GestureNetConfig())

# The released Keras network exactly (GuangmingZhu/AttentionConvLSTM): TensorFlow's "same"
# padding on the strided layers, a bias on MobileNet's pointwise convolutions, hard_sigmoid
# gates. Its checkpoints are what `aclstm convert-keras` writes.
register_preset(
    "released",
    GestureNetConfig(padding="tf", mobilenet_bias=True, gate_activation="hard_sigmoid"),
)

# A CPU-sized network for the demo and the tests: 8 frames of 64x64, every width cut down.
register_preset(
    "tiny",
    GestureNetConfig(
        res3d_widths=(16, 16, 32, 64),
        lstm_hidden=64,
        mobilenet=((64, 1), (128, 2), (128, 2)),
        frames=8,
        size=64,
    ),
)


def list_presets() -> list[str]:
    return sorted(_PRESETS)


def _scaled(width: int, multiplier: float) -> int:
    return max(1, round(width * multiplier))


def preset_config(
    name: str,
    *,
    modality: str | None = None,
    width_multiplier: float = 1.0,
    **overrides,
) -> GestureNetConfig:
    """A preset's config with overrides (any ``GestureNetConfig`` field), a modality (sets the
    input channels: rgb 3, depth 1, flow 2) and a multiplier for every width."""
    if name not in _PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(list_presets())}")
    config = _PRESETS[name]
    if modality is not None:
        if modality not in MODALITY_CHANNELS:
            raise ValueError(
                f"unknown modality {modality!r}; choose one of: {', '.join(MODALITY_CHANNELS)}"
            )
        overrides.setdefault("in_channels", MODALITY_CHANNELS[modality])
    if width_multiplier != 1.0:
        if width_multiplier <= 0:
            raise ValueError(f"width_multiplier must be positive, got {width_multiplier}")
        config = replace(
            config,
            res3d_widths=tuple(_scaled(w, width_multiplier) for w in config.res3d_widths),
            lstm_hidden=_scaled(config.lstm_hidden, width_multiplier),
            mobilenet=tuple((_scaled(w, width_multiplier), s) for w, s in config.mobilenet),
        )
    unknown = set(overrides) - set(GestureNetConfig.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown GestureNetConfig field(s): {', '.join(sorted(unknown))}")
    return replace(config, **overrides)


def create(name: str = "paper", **kwargs) -> GestureNet:
    """Build a network from a preset, e.g. ``create("paper", cell="gated", num_classes=27)``."""
    return GestureNet(preset_config(name, **kwargs))
