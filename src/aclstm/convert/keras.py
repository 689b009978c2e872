"""The authors' released Keras weights -> an aclstm checkpoint folder.

The released models (``isogr_{rgb,depth,flow}_gatedclstm_weights.zip.001/.002`` in
GuangmingZhu/AttentionConvLSTM) are HDF5 files written by TF 1.2 Keras ``save_weights``, split
into zip volumes: one group per layer, listed in the root's ``layer_names``, each naming its
arrays in ``weight_names`` as ``<layer>/<weight>:0``. The network is the released
``res3d_clstm_mobilenet``: Res3D (``Conv3D_1`` ... ``BatchNorm_4b_b``), two ``GatedConvLSTM2D``
layers (``gatedclstm2d_1``, ``gatedclstm2d_2``), the MobileNet top (``SeparableConv2D_1a`` ...
``BatchNorm_Conv2d_3b``) and the head ``Classes``. Keras keeps kernels channels-last
((K..., C_in, C_out), depthwise (K, K, C, 1)); each is transposed into PyTorch's layout.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aclstm.config import DataConfig, ModelConfig, RunConfig
from aclstm.data.lists import isogd_classes
from aclstm.models import GestureNet, preset_config
from aclstm.models.mobilenet import PAPER_MOBILENET

__all__ = [
    "ConversionError",
    "KerasWeights",
    "convert_released_weights",
    "load_released_model",
    "model_from_keras_weights",
    "read_keras_weights",
    "released_network",
    "state_from_keras",
]

KerasWeights = dict[str, dict[str, np.ndarray]]  # layer -> weight name (no ":0") -> array

_UNITS = ("a", "b")
_MOBILENET_LAYERS = ("1a", "1b", "2a", "2b", "2c", "2d", "2e", "3a", "3b")
_LSTM_LAYERS = ("gatedclstm2d_1", "gatedclstm2d_2")
_ATTENTION_LAYERS = ("axclstm2d_1", "aiclstm2d_1", "aoclstm2d_1")


class ConversionError(ValueError):
    """A weights file that cannot be converted; the message names the file and the layer."""


# --- reading the file -----------------------------------------------------------------------


def _volumes(path: Path) -> list[Path]:
    """``x.zip.001`` -> [x.zip.001, x.zip.002, ...]: the volumes of a split archive, in order."""
    match = re.fullmatch(r"(.*)\.(\d{3})", path.name)
    if match is None:
        return [path]
    stem, first = match.group(1), int(match.group(2))
    if first != 1:
        raise ConversionError(f"{path}: give the first volume ({stem}.001) of a split archive")
    volumes, number = [], 1
    while (part := path.with_name(f"{stem}.{number:03d}")).is_file():
        volumes.append(part)
        number += 1
    return volumes


def _hdf5_bytes(path: Path) -> bytes:
    """The HDF5 file's bytes: the file itself, or the one ``.h5`` inside a (split) zip."""
    if not path.is_file():
        raise ConversionError(f"{path}: not found")
    volumes = _volumes(path)
    data = b"".join(p.read_bytes() for p in volumes)
    if not zipfile.is_zipfile(io.BytesIO(data)):
        if ".zip" in path.suffixes:
            names = ", ".join(p.name for p in volumes)
            raise ConversionError(f"{path}: {names} do not form a zip archive (a volume missing?)")
        return data
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = [m for m in archive.namelist() if m.lower().endswith((".h5", ".hdf5"))]
        if len(members) != 1:
            raise ConversionError(
                f"{path}: expected one .h5 file in the archive, found {len(members)} "
                f"({', '.join(archive.namelist()) or 'nothing'})"
            )
        return archive.read(members[0])


def read_keras_weights(path: str | Path) -> KerasWeights:
    """Every layer's arrays from a Keras 2 ``save_weights`` HDF5 file (or a zip of one, or the
    first volume of a split zip), by layer name and short weight name (``kernel``, ``gamma``)."""
    import h5py

    path = Path(path)
    data = _hdf5_bytes(path)
    if not data.startswith(b"\x89HDF\r\n\x1a\n"):
        raise ConversionError(f"{path}: not an HDF5 file (expected Keras save_weights output)")
    with h5py.File(io.BytesIO(data), "r") as file:
        root = file.get("model_weights", file)  # a whole saved model keeps them there
        if "layer_names" not in root.attrs:
            raise ConversionError(f"{path}: no 'layer_names': not a Keras weights file")
        layers: KerasWeights = {}
        for layer in map(_text, root.attrs["layer_names"]):
            if layer not in root:
                raise ConversionError(f"{path}: layer {layer!r} is listed but has no weights group")
            group = root[layer]
            arrays = {}
            for name in map(_text, group.attrs.get("weight_names", [])):
                short = name.rsplit("/", 1)[-1].split(":", 1)[0]
                arrays[short] = np.asarray(group[name])
            layers[layer] = arrays
    return layers


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# --- the network the file describes -----------------------------------------------------------


def _res3d_layers() -> list[tuple[str, str, str, str]]:
    """(Keras conv, Keras BatchNorm, aclstm conv path, aclstm BatchNorm path) of Res3D."""
    layers = [("Conv3D_1", "BatchNorm_1_0", "res3d.stem.0", "res3d.stem.1")]
    for block in (2, 3, 4):
        for u, unit in enumerate(_UNITS):
            prefix = f"res3d.block{block}.{u}"
            for k, conv in enumerate(("a", "b"), 1):
                keras = f"{block}{unit}_{conv}"
                layers.append(
                    (
                        f"Conv3D_{keras}",
                        f"BatchNorm_{keras}",
                        f"{prefix}.conv{k}",
                        f"{prefix}.bn{k}",
                    )
                )
        shortcut = f"res3d.block{block}.0.shortcut"
        layers.append(
            (f"Conv3D_{block}a_1", f"BatchNorm_{block}a_1", f"{shortcut}.0", f"{shortcut}.1")
        )
    return layers


def _layer(weights: KerasWeights, path: Path, name: str, *arrays: str) -> list[np.ndarray]:
    if name not in weights:
        raise ConversionError(f"{path}: layer {name!r} is missing")
    found = weights[name]
    missing = [a for a in arrays if a not in found]
    if missing:
        raise ConversionError(
            f"{path}: layer {name!r} has no {', '.join(missing)} "
            f"(it has {', '.join(found) or 'no weights'})"
        )
    return [found[a] for a in arrays]


def released_network(weights: KerasWeights, path: Path, frames: int, size: int):
    """The ``released`` preset's config with the widths, input channels and classes the file's
    kernels have (the published models: the paper's widths, 3 channels, 249 classes)."""

    def out_channels(layer: str, array: str) -> int:
        return int(_layer(weights, path, layer, array)[0].shape[-1])

    (stem,) = _layer(weights, path, "Conv3D_1", "kernel")
    if stem.ndim != 5:
        raise ConversionError(f"{path}: layer 'Conv3D_1' kernel has shape {stem.shape}, not 5-D")
    widths = tuple(out_channels(f"Conv3D_{b}", "kernel") for b in ("1", "2a_a", "3a_a", "4a_a"))
    mobilenet = tuple(
        (out_channels(f"SeparableConv2D_{name}", "pointwise_kernel"), stride)
        for name, (_, stride) in zip(_MOBILENET_LAYERS, PAPER_MOBILENET, strict=True)
    )
    return preset_config(
        "released",
        in_channels=int(stem.shape[3]),
        num_classes=out_channels("Classes", "kernel"),
        res3d_widths=widths,
        lstm_hidden=out_channels(_LSTM_LAYERS[0], "pointwise_kernel"),
        mobilenet=mobilenet,
        frames=frames,
        size=size,
    )


# --- the mapping --------------------------------------------------------------------------------


def _conv(kernel: np.ndarray) -> np.ndarray:
    """(K..., C_in, C_out) -> (C_out, C_in, K...)."""
    return np.moveaxis(kernel, (-1, -2), (0, 1))


def _depthwise(kernel: np.ndarray) -> np.ndarray:
    """(K, K, C, 1) -> (C, 1, K, K)."""
    return np.moveaxis(kernel, (2, 3), (0, 1))


def _dense(kernel: np.ndarray) -> np.ndarray:
    """(C_in, C_out), or a 1x1 conv's (1, 1, C_in, C_out) -> (C_out, C_in)."""
    return kernel.reshape(kernel.shape[-2:]).T


# The weights of each kind of released layer: Keras name -> (aclstm suffix, layout change).
_KEEP = np.asarray
_BATCH_NORM = {
    "gamma": ("weight", _KEEP),
    "beta": ("bias", _KEEP),
    "moving_mean": ("running_mean", _KEEP),
    "moving_variance": ("running_var", _KEEP),
}
_GATED_CONVLSTM = {  # GatedConvLSTM2D; the gates are i, f, o in Keras' order and aclstm's
    "depthwise_kernel": ("conv_x.depthwise.weight", _depthwise),
    "pointwise_kernel": ("conv_x.pointwise.weight", _conv),
    "bias": ("conv_x.pointwise.bias", _KEEP),
    "recurrent_depthwise_kernel": ("conv_h.depthwise.weight", _depthwise),
    "recurrent_pointwise_kernel": ("conv_h.pointwise.weight", _conv),
    "gate_kernel": ("gates_x.weight", _dense),
    "recurrent_gate_kernel": ("gates_h.weight", _dense),
    "gate_bias": ("gates_x.bias", _KEEP),
}
_SEPARABLE = {
    "depthwise_kernel": ("0.weight", _depthwise),
    "pointwise_kernel": ("1.weight", _conv),
    "bias": ("1.bias", _KEEP),
}


def _released_layers() -> list[tuple[str, str, dict]]:
    """(Keras layer, aclstm module path, its weights' mapping) of every released layer."""
    layers = []
    for conv, bn, conv_path, bn_path in _res3d_layers():
        layers += [(conv, conv_path, {"kernel": ("weight", _conv)}), (bn, bn_path, _BATCH_NORM)]
    for index, name in enumerate(_LSTM_LAYERS):
        layers.append((name, f"convlstm.cells.{index}", _GATED_CONVLSTM))
    for index, name in enumerate(_MOBILENET_LAYERS):
        layers.append((f"SeparableConv2D_{name}", f"mobilenet.{index}", _SEPARABLE))
        layers.append((f"BatchNorm_Conv2d_{name}", f"mobilenet.{index}.2", _BATCH_NORM))
    layers.append(
        ("Classes", "classifier", {"kernel": ("weight", _dense), "bias": ("bias", _KEEP)})
    )
    return layers


def state_from_keras(weights: KerasWeights, path: Path) -> dict[str, tuple[str, np.ndarray]]:
    """aclstm state-dict entries of every released layer: name -> (the Keras weight it came
    from with its shape, e.g. ``Conv3D_1/kernel of shape (3, 7, 7, 3, 64)``, and its array in
    PyTorch's layout)."""
    state = {}
    for layer, prefix, mapping in _released_layers():
        arrays = _layer(weights, path, layer, *mapping)
        for (keras_name, (suffix, to_torch)), array in zip(mapping.items(), arrays, strict=True):
            label = f"{layer}/{keras_name} of shape {tuple(array.shape)}"
            state[f"{prefix}.{suffix}"] = (label, to_torch(array))
    return state


def load_released_model(path: str | Path, frames: int = 32, size: int = 112) -> GestureNet:
    """A :class:`GestureNet` (preset ``released``) holding the weights of a released Keras
    weights file; ``frames`` and ``size`` are the clips it is meant for (IsoGD: 32 x 112)."""
    return model_from_keras_weights(read_keras_weights(path), frames, size, Path(path))


def model_from_keras_weights(
    weights: KerasWeights, frames: int, size: int, path: Path = Path("<weights>")
) -> GestureNet:
    """As :func:`load_released_model`, from weights already read; ``path`` names them in
    errors."""
    for name in _ATTENTION_LAYERS:
        if name in weights:
            raise ConversionError(
                f"{path}: layer {name!r} is an attention ConvLSTM; only the released gated "
                "networks (gatedclstm2d_1, gatedclstm2d_2: the published models) convert"
            )
    known = {layer for layer, _, _ in _released_layers()}
    unknown = sorted(name for name, arrays in weights.items() if arrays and name not in known)
    if unknown:
        raise ConversionError(
            f"{path}: layer(s) {', '.join(unknown)} are not in the released gated network"
        )
    model = GestureNet(released_network(weights, path, frames, size))
    expected = model.state_dict()
    tensors = {}
    for name, (keras_name, array) in state_from_keras(weights, path).items():
        if array.shape != tuple(expected[name].shape):
            raise ConversionError(
                f"{path}: {keras_name} is {tuple(array.shape)} in PyTorch's layout; the network "
                f"that the file's other layers describe needs {tuple(expected[name].shape)} "
                f"for {name}"
            )
        tensors[name] = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    untouched = {k for k in expected if k not in tensors and not k.endswith("num_batches_tracked")}
    if untouched:  # the mapping must cover the whole network
        raise AssertionError(f"no released weight for {sorted(untouched)}")
    model.load_state_dict(tensors, strict=False)  # num_batches_tracked keeps its start
    return model.eval()


def converted_meta(
    model: GestureNet, modality: str, data_root: str = "", source: str = ""
) -> dict[str, Any]:
    """A checkpoint's ``meta.json`` for a converted model: IsoGD's classes (labels 1..249),
    the released preprocessing, and a run config whose data table names IsoGD as the
    released code reads it (``isogd`` videos for rgb and depth; the ``isogd_frames`` lists
    for flow, which IsoGD does not ship)."""
    from aclstm.train.runner import checkpoint_meta

    config = model.config
    classes = isogd_classes()
    if config.num_classes != len(classes):
        classes = [str(k) for k in range(config.num_classes)]
    data = DataConfig(
        dataset="isogd_frames" if modality == "flow" else "isogd",
        root=data_root,
        modality=modality,
        preprocessing="released",
    )
    released = preset_config("released").as_dict()
    overrides = {  # what the file's network has that the preset has not (e.g. frames = 32)
        field: value
        for field, value in config.as_dict().items()
        if field not in ("num_classes", "in_channels", "cell") and value != released[field]
    }
    run = RunConfig(
        model=ModelConfig(preset="released", cell="gated", overrides=overrides),
        data=data,
        source=source,
    )
    return {**checkpoint_meta(run, model, classes), "converted_from": source}


def convert_released_weights(
    source: str | Path,
    out: str | Path,
    modality: str = "rgb",
    frames: int = 32,
    size: int = 112,
    data_root: str = "",
) -> Path:
    """Convert a released Keras weights file into the checkpoint folder ``out``."""
    from aclstm.train.checkpoint import save_checkpoint

    if modality not in ("rgb", "depth", "flow"):
        raise ValueError(f"modality must be rgb, depth or flow, got {modality!r}")
    model = load_released_model(source, frames, size)
    if model.config.in_channels != 3:
        raise ConversionError(
            f"{source}: Conv3D_1 takes {model.config.in_channels} channels; the released "
            "networks read every modality as 3-channel frames"
        )
    meta = converted_meta(model, modality, data_root, Path(source).name)
    return save_checkpoint(out, model, meta)
