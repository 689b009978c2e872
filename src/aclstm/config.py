"""Run configurations: a TOML file with ``[model]``, ``[data]`` and ``[train]`` tables (and
``[segment]``: how continuous recognition cuts gestures out of per-step probabilities), plus
``--cfg-options section.key=value`` overrides as MMAction2 users know them.

Unknown keys and values of the wrong type are errors that name the file and the key, before
anything is built.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aclstm.analysis.segmentation import SegmenterSettings
from aclstm.models.gesture_net import GestureNetConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "RunConfig",
    "TrainConfig",
    "apply_overrides",
    "config_from_dict",
    "load_config",
    "read_config_file",
]


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the file and the key."""


@dataclass
class ModelConfig:
    """The network: a preset, its cell, and any ``GestureNetConfig`` field to override
    (``frames``, ``size``, ``lstm_hidden``, ``bn_momentum``, ...)."""

    preset: str = "paper"
    cell: str = "gated"
    width_multiplier: float = 1.0
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class SynthConfig:
    """How ``dataset = "synth"`` generates its set when ``root`` holds none yet."""

    clips_per_class: int = 40
    val_fraction: float = 0.2
    test_fraction: float = 0.0
    seed: int = 0
    classes: list[int] | None = None  # a subset of the 27 classes, by index
    frames: list[int] = field(default_factory=lambda: [24, 48])  # shortest, longest clip


@dataclass
class DataConfig:
    """Where the clips lie and how they are read.

    ``dataset``: ``jester`` (ROOT in Jester's layout), ``synth`` (the synthetic set in Jester's
    layout at ROOT, generated first if absent), ``isogd`` (ROOT with the list files and
    videos), ``isogd_frames`` (IsoGD's frames as the released code reads them, named by its
    lists ``ROOT/<split>_<modality>_list.txt`` or ``train_list`` / ``val_list``), ``rawframes``
    (``train_list`` / ``val_list`` of ``<dir> <frames> <label>`` lines),
    ``folder`` (``ROOT/train/<class>/<clip>`` and ``ROOT/val/<class>/<clip>``), ``congd``
    (ROOT in ConGD's layout: continuous videos, a label per frame, class 0 the background;
    windows of the clip length) or ``synth_congd`` (the synthetic continuous set at ROOT,
    generated first if absent).
    """

    dataset: str = "jester"
    root: str = ""
    preprocessing: str = "default"  # or "released": as the authors' code (full-res PIL resize)
    modality: str = "rgb"  # isogd: rgb or depth; isogd_frames: rgb, depth or flow
    train_split: str | None = None  # default: train
    val_split: str | None = None  # default: validation (jester, synth), valid (isogd), val
    train_list: str | None = None  # rawframes
    val_list: str | None = None  # rawframes
    classes: str | None = None  # rawframes: a file with one class name per line
    path_prefix: list[str] | None = None  # rawframes: [old, new] prefix of the listed dirs
    template: str = "{:05d}.jpg"  # rawframes: frame file names (IsoGD frames: "{:06d}.jpg")
    mean: list[float] | None = None  # default: the dataset's and modality's mean
    center: str = "dataset"  # subtract that mean (released), or "frame": each frame's own
    random_crop: bool = True  # training crop anywhere along the long side (released); or centred
    horizontal_flip: bool = False  # mirror half the training clips, swapping Left/Right labels
    on_error: str = "raise"  # or "skip": drop unreadable clips and count them
    windows_per_video: int = 1  # congd, synth_congd: training windows drawn per video an epoch
    frame_stride: int = 1  # congd, synth_congd: the network sees every k-th frame of the videos
    cache_frames: bool = False  # congd, synth_congd: keep decoded videos in memory (small sets)
    num_workers: int = 2
    synth: SynthConfig = field(default_factory=SynthConfig)


@dataclass
class TrainConfig:
    """The recipe (DESIGN.md §4 by default) and how it runs."""

    epochs: int = 30
    batch_size: int = 16  # the global batch: split over processes under torchrun
    optimizer: str = "sgd"  # the paper's; or "adamw"
    lr: float = 1e-3
    end_lr: float = 1e-6
    power: float = 0.9
    momentum: float = 0.9
    weight_decay: float = 1e-4  # = Keras l2(5e-5) on kernels
    label_smoothing: float = 0.0  # the paper's: none
    accumulate: int = 1
    amp: str | None = None  # "bf16" (CPU, CUDA), "fp16" (CUDA), or "auto": bf16 where it is fast
    compile: bool = False
    channels_last: bool = False
    seed: int = 0
    device: str = "auto"  # auto: CUDA when there is one
    init_from: str | None = None  # a checkpoint to start from (a new head if classes differ)
    skip_nonfinite: bool = False  # a non-finite loss skips its batch (counted) instead of stopping
    nonfinite_limit: int = 10  # with skip_nonfinite: stop anyway after this many in a row
    checkpoint_every: int | str | None = None  # also inside epochs: N steps, or "10min", "30s"


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    segment: SegmenterSettings = field(default_factory=SegmenterSettings)  # continuous sets
    source: str = "<defaults>"  # the file it came from, for error messages

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.pop("source")
        model = out["model"]
        model.update(model.pop("overrides"))
        return out


_SECTIONS = {
    "model": ModelConfig,
    "data": DataConfig,
    "train": TrainConfig,
    "segment": SegmenterSettings,
}
_NETWORK_FIELDS = set(GestureNetConfig.__dataclass_fields__) - {"cell"}


def _type_ok(value: Any, annotation: Any) -> bool:
    """Is ``value`` (from TOML) acceptable for a field annotated ``annotation``?"""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, arm) for arm in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is Any:
        return True
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (list, tuple):
        (item,) = typing.get_args(annotation)[:1]
        return isinstance(value, (list, tuple)) and all(_type_ok(v, item) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    return isinstance(value, annotation)


def _type_name(annotation: Any) -> str:
    text = str(annotation).replace("typing.", "")
    return getattr(annotation, "__name__", text) if typing.get_origin(annotation) is None else text


def _build(cls: type, values: dict[str, Any], where: str, source: str):
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in hints or key == "overrides":
            known = ", ".join(k for k in hints if k != "overrides")
            raise ConfigError(f"{source}: [{where}] unknown key {key!r} (known: {known})")
        annotation = hints[key]
        if dataclasses.is_dataclass(annotation):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: [{where}.{key}] must be a table")
            kwargs[key] = _build(annotation, value, f"{where}.{key}", source)
            continue
        if not _type_ok(value, annotation):
            raise ConfigError(
                f"{source}: [{where}] {key} = {value!r}: expected {_type_name(annotation)}, "
                f"got {type(value).__name__}"
            )
        kwargs[key] = float(value) if annotation is float else value
    return cls(**kwargs)


def _model_section(values: dict[str, Any], source: str) -> ModelConfig:
    values = dict(values)
    own = [k for k in ModelConfig.__dataclass_fields__ if k != "overrides"]
    for key in values:
        if key not in own and key not in _NETWORK_FIELDS:
            known = ", ".join([*own, *sorted(_NETWORK_FIELDS)])
            raise ConfigError(f"{source}: [model] unknown key {key!r} (known: {known})")
    network = {k: values.pop(k) for k in list(values) if k in _NETWORK_FIELDS}
    hints = typing.get_type_hints(GestureNetConfig)
    for key, value in network.items():
        annotation = hints[key]
        if typing.get_origin(annotation) is tuple or "tuple" in str(annotation):
            ok = isinstance(value, (list, tuple))
        else:
            ok = _type_ok(value, annotation)
        if not ok:
            raise ConfigError(
                f"{source}: [model] {key} = {value!r}: expected {_type_name(annotation)}, "
                f"got {type(value).__name__}"
            )
    model = _build(ModelConfig, values, "model", source)
    model.overrides = {k: _as_tuples(v) for k, v in network.items()}
    return model


def _as_tuples(value: Any) -> Any:
    return tuple(_as_tuples(v) for v in value) if isinstance(value, list) else value


def config_from_dict(values: dict[str, Any], source: str = "<dict>") -> RunConfig:
    """Validate a nested dict (a parsed TOML file) into a :class:`RunConfig`."""
    unknown = set(values) - set(_SECTIONS)
    if unknown:
        raise ConfigError(
            f"{source}: unknown table(s) {', '.join(sorted(map(repr, unknown)))} "
            f"(known: {', '.join(_SECTIONS)})"
        )
    for name, value in values.items():
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {name!r} must be a table [{name}]")
    return RunConfig(
        model=_model_section(values.get("model", {}), source),
        data=_build(DataConfig, values.get("data", {}), "data", source),
        train=_build(TrainConfig, values.get("train", {}), "train", source),
        segment=_segment_section(values.get("segment", {}), source),
        source=source,
    )


def _segment_section(values: dict[str, Any], source: str) -> SegmenterSettings:
    try:
        return _build(SegmenterSettings, values, "segment", source)
    except ValueError as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"{source}: [segment] {err}") from None


def _parse_value(text: str) -> Any:
    """A TOML literal (``0.01``, ``true``, ``[1, 2]``, ``"x"``); ``null``: None, which unsets
    an optional value (TOML itself has no null); else the text itself."""
    if text == "null":
        return None
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(values: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``["train.lr=0.01", "model.cell=b"]`` applied to a nested dict (in place, returned)."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--cfg-options: expected key=value, got {item!r}")
        *tables, last = key.strip().split(".")
        if not tables:
            raise ConfigError(
                f"--cfg-options: {key!r} names no table; write e.g. train.{key}=... "
                f"(tables: {', '.join(_SECTIONS)})"
            )
        node = values
        for table in tables:
            node = node.setdefault(table, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--cfg-options: {key!r}: {table!r} is not a table")
        node[last] = _parse_value(text.strip())
    return values


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_config_file(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A TOML config as a dict, merged over its ``_base_`` (a file beside it) if it names one,
    as MMAction2's ``_base_`` does."""
    path = Path(path)
    if path.resolve() in _chain:
        raise ConfigError(f"{path}: _base_ chain loops back to itself")
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    base = values.pop("_base_", None)
    if base is None:
        return values
    if not isinstance(base, str):
        raise ConfigError(f"{path}: _base_ must be a file name, got {base!r}")
    parent = read_config_file(path.parent / base, (*_chain, path.resolve()))
    return _merge(parent, values)


def load_config(path: str | Path | None, overrides: list[str] = ()) -> RunConfig:
    """Read a TOML run configuration (None: the defaults) and apply ``overrides``."""
    values = {} if path is None else read_config_file(path)
    source = "<defaults>" if path is None else str(path)
    return config_from_dict(apply_overrides(values, list(overrides)), source)
