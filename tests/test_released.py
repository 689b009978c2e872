"""The ``released`` preset and ``aclstm convert-keras`` against the released network written
with Keras 3 layers (tests/released_keras.py): same weights, same outputs.

Small widths keep it fast; 6 frames of 48x48 give strided layers on even sizes (TensorFlow
pads the far side) and on an odd one (MobileNet's last block, 3 -> 2: both sides).
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from aclstm import models
from aclstm.cli import main
from aclstm.convert import ConversionError, load_released_model
from aclstm.convert.keras import model_from_keras_weights
from aclstm.train.runner import load_model

from released_keras import build_released

# Keras' torch backend converts tensors with np.array(x), which numpy 2 warns about.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

FRAMES, SIZE = 6, 48
WIDTHS, HIDDEN, TOP, CLASSES = (8, 8, 16, 16), 16, (16, 16, 24, 24, 24, 24, 24, 32, 32), 5


@pytest.fixture(scope="module")
def keras_net():
    return build_released(WIDTHS, HIDDEN, TOP, CLASSES, FRAMES, SIZE)


@pytest.fixture(scope="module")
def clips():
    """Two clips (B, T, H, W, C) at the scale of mean-subtracted pixels."""
    rng = np.random.default_rng(1)
    return (rng.normal(size=(2, FRAMES, SIZE, SIZE, 3)) * 50).astype(np.float32)


@pytest.fixture(scope="module")
def converted(keras_net):
    return model_from_keras_weights(keras_net.weights(), FRAMES, SIZE)


def to_torch(clips: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(clips).permute(0, 4, 1, 2, 3).contiguous()  # (B, C, T, H, W)


def assert_matches(got: np.ndarray, expected: np.ndarray, rel: float) -> None:
    """Equal to ``rel`` of the expected output's largest magnitude."""
    scale = np.abs(expected).max()
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= rel * scale, np.abs(got - expected).max() / scale


def test_released_preset_is_the_paper_network_as_released():
    config = models.preset_config("released")
    assert (config.padding, config.mobilenet_bias, config.gate_activation) == (
        "tf",
        True,
        "hard_sigmoid",
    )
    assert models.count_parameters(models.create("released")) == 12_282_203 + sum(
        w for w, _ in config.mobilenet
    )  # the paper preset's count plus the pointwise biases


def test_res3d_matches_keras_and_symmetric_padding_does_not(keras_net, converted, clips):
    expected = keras_net(clips, "res3d")
    with torch.no_grad():
        got = converted.res3d(to_torch(clips)).permute(0, 2, 3, 4, 1).numpy()
        symmetric = models.Res3D(3, WIDTHS)
        symmetric.load_state_dict(converted.res3d.state_dict())
        shifted = symmetric.eval()(to_torch(clips)).permute(0, 2, 3, 4, 1).numpy()
    assert_matches(got, expected, 1e-5)
    assert np.abs(shifted - expected).max() > 0.01 * np.abs(expected).max()


def test_convlstm_matches_keras(keras_net, converted):
    """The two GatedConvLSTM2D layers on the same random sequence (B, T', H', W', C)."""
    from keras import ops

    sequence = np.random.default_rng(3).normal(size=(2, 3, 12, 12, WIDTHS[3]))
    sequence = sequence.astype(np.float32)
    lstm1, lstm2 = keras_net.layers["gatedclstm2d_1"], keras_net.layers["gatedclstm2d_2"]
    expected = ops.convert_to_numpy(lstm2(lstm1(ops.convert_to_tensor(sequence))))
    with torch.no_grad():
        hidden, _ = converted.convlstm(torch.from_numpy(sequence).permute(1, 0, 4, 2, 3))
    assert_matches(hidden.permute(1, 0, 3, 4, 2).numpy(), expected, 1e-5)


def test_mobilenet_matches_keras(keras_net, converted):
    from keras import ops

    maps = np.random.default_rng(2).normal(size=(3, 12, 12, HIDDEN)).astype(np.float32)
    expected = ops.convert_to_numpy(keras_net.mobilenet(ops.convert_to_tensor(maps)))
    with torch.no_grad():
        got = converted.mobilenet(torch.from_numpy(maps).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    assert expected.shape == (3, 2, 2, TOP[-1])
    assert_matches(got.numpy(), expected, 1e-5)


def test_logits_match_keras(keras_net, converted, clips):
    expected = keras_net(clips)
    with torch.no_grad():
        got = converted(to_torch(clips)).numpy()
    assert np.abs(expected[0] - expected[1]).max() > 0.05  # the logits depend on the clip
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def write_split_zip(keras_net, folder, stem="isogr_rgb_gatedclstm_weights"):
    """The weights as the authors published them: an HDF5 file in a zip, cut in two volumes."""
    h5 = folder / f"{stem}.h5"
    keras_net.write_hdf5(h5)
    archive = folder / f"{stem}.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(h5, h5.name)
    data = archive.read_bytes()
    (folder / f"{stem}.zip.001").write_bytes(data[: len(data) // 2])
    (folder / f"{stem}.zip.002").write_bytes(data[len(data) // 2 :])
    return h5, folder / f"{stem}.zip.001"


def test_convert_keras_split_zip_gives_the_keras_logits(keras_net, clips, tmp_path, capsys):
    _, first_volume = write_split_zip(keras_net, tmp_path)
    out = tmp_path / "authors_rgb"
    argv = ["convert-keras", str(first_volume), str(out), "--frames", "6", "--size", "48"]
    assert main(argv) == 0
    assert "wrote" in capsys.readouterr().out
    model, meta = load_model(out)
    assert meta["preset"] == "released" and meta["preprocessing"] == "released"
    assert meta["clip_len"] == FRAMES and meta["size"] == SIZE and len(meta["classes"]) == CLASSES
    assert meta["config"]["data"]["dataset"] == "isogd"
    with torch.no_grad():
        got = model(to_torch(clips)).numpy()
    np.testing.assert_allclose(got, keras_net(clips), atol=1e-4, rtol=0)


def test_converted_checkpoint_predicts_a_frame_folder(keras_net, tmp_path, capsys):
    from helpers import write_frames

    h5, _ = write_split_zip(keras_net, tmp_path)
    out = tmp_path / "ckpt"
    assert main(["convert-keras", str(h5), str(out), "--frames", "6", "--size", "48"]) == 0
    write_frames(tmp_path / "clip", 9, size=(60, 80))
    capsys.readouterr()
    assert main(["predict", str(out), str(tmp_path / "clip"), "--topk", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[0].endswith("clip")


def test_isogd_sized_weights_get_isogd_classes_and_flow_its_frame_lists(tmp_path):
    net = build_released(WIDTHS, HIDDEN, TOP, 249, FRAMES, SIZE)
    h5, _ = write_split_zip(net, tmp_path)
    assert main(["convert-keras", str(h5), str(tmp_path / "flow"), "--modality", "flow"]) == 0
    _, meta = load_model(tmp_path / "flow")
    assert meta["classes"][0] == "1" and meta["classes"][-1] == "249"
    assert meta["mean"] == [128.0, 128.0, 128.0] and meta["clip_len"] == 32
    assert meta["config"]["data"]["dataset"] == "isogd_frames"


# --- bad files -----------------------------------------------------------------------------


def _convert(path):
    return load_released_model(path, FRAMES, SIZE)


def test_not_hdf5_is_refused(tmp_path):
    path = tmp_path / "weights.h5"
    path.write_bytes(b"this is not HDF5")
    with pytest.raises(ConversionError, match=r"weights\.h5: not an HDF5 file"):
        _convert(path)


def test_missing_volume_is_named(keras_net, tmp_path):
    _, first = write_split_zip(keras_net, tmp_path)
    (tmp_path / "isogr_rgb_gatedclstm_weights.zip.002").unlink()
    with pytest.raises(ConversionError, match=r"\.zip\.001 do not form a zip archive"):
        _convert(first)


def _edited(keras_net, tmp_path, edit):
    import h5py

    tmp_path.mkdir(exist_ok=True)
    h5, _ = write_split_zip(keras_net, tmp_path)
    with h5py.File(h5, "a") as f:
        edit(f)
    return h5


def test_missing_layer_is_named(keras_net, tmp_path):
    def drop(f):
        del f["BatchNorm_3a_b"]
        names = [str(n) for n in f.attrs["layer_names"] if str(n) != "BatchNorm_3a_b"]
        f.attrs["layer_names"] = [n.encode() for n in names]

    with pytest.raises(ConversionError, match="layer 'BatchNorm_3a_b' is missing"):
        _convert(_edited(keras_net, tmp_path, drop))

    def drop_group_only(f):
        del f["Classes"]

    listed = _edited(keras_net, tmp_path / "listed", drop_group_only)
    with pytest.raises(ConversionError, match="layer 'Classes' is listed but has no weights"):
        _convert(listed)


def test_wrong_shape_is_named(keras_net, tmp_path):
    def reshape(f):
        name = "SeparableConv2D_2c/depthwise_kernel:0"
        del f["SeparableConv2D_2c"][name]
        f["SeparableConv2D_2c"].create_dataset(name, data=np.zeros((5, 5, 24, 1), np.float32))

    expected = (
        "SeparableConv2D_2c/depthwise_kernel of shape (5, 5, 24, 1) is (24, 1, 5, 5) in "
        "PyTorch's layout; the network that the file's other layers describe needs "
        "(24, 1, 3, 3) for mobilenet.4.0.weight"
    )  # as docs/reliability.md quotes it
    with pytest.raises(ConversionError, match=re.escape(expected)):
        _convert(_edited(keras_net, tmp_path, reshape))


def test_unknown_and_attention_layers_are_named(keras_net, tmp_path):
    def add(name):
        def edit(f):
            group = f.create_group(name)
            group.attrs["weight_names"] = [f"{name}/kernel:0".encode()]
            group.create_dataset(f"{name}/kernel:0", data=np.zeros(3, np.float32))
            f.attrs["layer_names"] = [
                *(str(n).encode() for n in f.attrs["layer_names"]),
                name.encode(),
            ]

        return edit

    with pytest.raises(ConversionError, match="Extra_Dense are not in the released gated net"):
        _convert(_edited(keras_net, tmp_path / "a", add("Extra_Dense")))
    with pytest.raises(ConversionError, match="'axclstm2d_1' is an attention ConvLSTM"):
        _convert(_edited(keras_net, tmp_path / "b", add("axclstm2d_1")))


def test_converted_checkpoint_evaluates_on_isogd(tmp_path, capsys):
    """A new user's path: convert the authors' file, evaluate it on IsoGD as distributed
    (here the synthetic set in IsoGD's layout: lists of M_/K_ videos, labels 1..249)."""
    from aclstm.data.synth import SynthSpec, write_synthetic_set

    isogd = tmp_path / "IsoGD"
    spec = SynthSpec(clips_per_class=2, val_fraction=0.5, seed=3, classes=(0, 1, 2))
    write_synthetic_set(isogd, replace(spec, format="isogd"), workers=1)
    net = build_released(WIDTHS, HIDDEN, TOP, 249, FRAMES, SIZE)
    h5, _ = write_split_zip(net, tmp_path)
    out = tmp_path / "authors_rgb"
    argv = ["convert-keras", str(h5), str(out), "--frames", "6", "--size", "48"]
    assert main([*argv, "--data", str(isogd)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out), "--json", "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["clips"] == 3 and 0 <= report["top1"] <= report["top5"] <= 1
    assert len(report["classes"]) == 249
    # The confusion figure of 249 classes stays a readable size (it was 9,000 pixels a side,
    # 10 s to draw), labelling every 5th class.
    from PIL import Image

    with Image.open(Path(report["out"]) / "confusion.png") as figure:
        assert max(figure.size) <= 2500


def test_a_run_in_released_mode_trains_predicts_and_visualizes(tmp_path, capsys):
    """The switches together on the tiny network: TF padding, pointwise biases, hard_sigmoid
    gates and the released clips; the checkpoint remembers the preprocessing."""
    from aclstm.data.synth import SynthSpec, write_synthetic_set

    from helpers import tiny_run_options

    root = tmp_path / "synth"
    write_synthetic_set(root, SynthSpec(clips_per_class=2, val_fraction=0.5, seed=3), workers=1)
    extra = [
        'data.preprocessing="released"',
        'model.padding="tf"',
        "model.mobilenet_bias=true",
        'model.gate_activation="hard_sigmoid"',
    ]
    run = tmp_path / "run"
    options = tiny_run_options(root, epochs=1, extra=extra)
    assert main(["train", "synth_demo", "--work-dir", str(run), *options]) == 0
    model, meta = load_model(run / "last")
    assert meta["preprocessing"] == "released"
    assert (model.config.padding, model.config.mobilenet_bias) == ("tf", True)
    assert model.mobilenet[0][1].bias is not None
    capsys.readouterr()
    assert main(["predict", str(run / "last"), "val:0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["predictions"]
    assert main(["visualize", str(run / "last"), "val:0", "--out", str(tmp_path / "f.png")]) == 0
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
