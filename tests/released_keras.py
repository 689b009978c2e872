"""The authors' released network, written again with Keras 3 layers (torch backend): the
independent forward the ``released`` preset and the converter are checked against.

It follows GuangmingZhu/AttentionConvLSTM (networks/res3d_clstm_mobilenet.py and the patched
GatedConvLSTM2D) with its layer and weight names, at any widths: Keras' Conv3D,
BatchNormalization, SeparableConv2D and Dense compute TensorFlow's "same" padding themselves;
GatedConvLSTM2D is a small Keras layer here, written from the released step function (Keras
2's hard_sigmoid, 0.2x + 0.5 clipped, which Keras 3 no longer has). Nothing in it comes from
aclstm.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import h5py
import keras
import numpy as np
from keras import ops

MOBILENET_NAMES = ("1a", "1b", "2a", "2b", "2c", "2d", "2e", "3a", "3b")
MOBILENET_STRIDES = (1, 2, 1, 1, 1, 1, 1, 2, 2)


def hard_sigmoid(x):
    return ops.clip(0.2 * x + 0.5, 0.0, 1.0)


class GatedConvLSTM2D(keras.layers.Layer):
    """The released GatedConvLSTM2D: pooled FC gates, separable-conv candidate, sequences out."""

    def __init__(self, filters: int, kernel: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel = filters, kernel

    def build(self, input_shape):
        c, f, k = input_shape[-1], self.filters, self.kernel
        shapes = {  # the order of the released add_weight calls
            "depthwise_kernel": (k, k, c, 1),
            "pointwise_kernel": (1, 1, c, f),
            "recurrent_depthwise_kernel": (k, k, f, 1),
            "recurrent_pointwise_kernel": (1, 1, f, f),
            "bias": (f,),
            "gate_kernel": (1, 1, c, 3 * f),
            "recurrent_gate_kernel": (1, 1, f, 3 * f),
            "gate_bias": (3 * f,),
        }
        for name, shape in shapes.items():
            setattr(self, name, self.add_weight(shape=shape, name=name, initializer="zeros"))

    def call(self, x):
        steps = x.shape[1]
        h = c = ops.zeros((x.shape[0], x.shape[2], x.shape[3], self.filters))
        outputs = []
        for t in range(steps):
            xt = x[:, t]
            gates = (
                ops.matmul(ops.mean(xt, axis=(1, 2)), self.gate_kernel[0, 0])
                + ops.matmul(ops.mean(h, axis=(1, 2)), self.recurrent_gate_kernel[0, 0])
                + self.gate_bias
            )
            i, f, o = (hard_sigmoid(g)[:, None, None, :] for g in ops.split(gates, 3, axis=-1))
            x_c = ops.separable_conv(
                xt, self.depthwise_kernel, self.pointwise_kernel, padding="same"
            )
            h_c = ops.separable_conv(
                h, self.recurrent_depthwise_kernel, self.recurrent_pointwise_kernel, padding="same"
            )
            c = f * c + i * ops.tanh(x_c + self.bias + h_c)
            h = o * ops.tanh(c)
            outputs.append(h)
        return ops.stack(outputs, axis=1)


class ReleasedNetwork:
    """The released res3d_clstm_mobilenet + Classes head; ``layers`` in the released order,
    including those without weights (as ``save_weights`` lists them)."""

    def __init__(self, widths, hidden, mobilenet_widths, classes):
        L = keras.layers
        self.layers: dict[str, keras.layers.Layer | None] = {}

        def conv(name, width, kernel, stride=1):
            self.layers[name] = L.Conv3D(
                width, kernel, strides=stride, padding="same", use_bias=False, name=name
            )

        def bn(name):
            self.layers[name] = L.BatchNormalization(epsilon=1e-3, name=name)

        conv("Conv3D_1", widths[0], (3, 7, 7), (1, 2, 2))
        bn("BatchNorm_1_0")
        self.layers["ReLU_1"] = None
        for block, width, stride in ((2, widths[1], 1), (3, widths[2], 2), (4, widths[3], 1)):
            conv(f"Conv3D_{block}a_1", width, 1, stride)
            bn(f"BatchNorm_{block}a_1")
            for unit in ("a", "b"):
                conv(f"Conv3D_{block}{unit}_a", width, 3, stride if unit == "a" else 1)
                bn(f"BatchNorm_{block}{unit}_a")
                conv(f"Conv3D_{block}{unit}_b", width, 3)
                bn(f"BatchNorm_{block}{unit}_b")
                self.layers[f"Add_{block}{unit}"] = None
        self.layers["gatedclstm2d_1"] = GatedConvLSTM2D(hidden, name="gatedclstm2d_1")
        self.layers["gatedclstm2d_2"] = GatedConvLSTM2D(hidden, name="gatedclstm2d_2")
        self.layers["clstm_reshape"] = None
        for name, width, stride in zip(
            MOBILENET_NAMES, mobilenet_widths, MOBILENET_STRIDES, strict=True
        ):
            self.layers[f"SeparableConv2D_{name}"] = L.SeparableConv2D(
                width, 3, strides=stride, padding="same", name=f"SeparableConv2D_{name}"
            )
            bn(f"BatchNorm_Conv2d_{name}")
        self.layers["Average_Pooling"] = None
        self.layers["Flatten"] = None
        self.layers["Classes"] = L.Dense(classes, name="Classes")

    def res3d(self, x):
        lay = self.layers
        x = ops.relu(lay["BatchNorm_1_0"](lay["Conv3D_1"](x), training=False))
        for block in (2, 3, 4):
            for unit in ("a", "b"):
                y = ops.relu(lay[f"BatchNorm_{block}{unit}_a"](lay[f"Conv3D_{block}{unit}_a"](x)))
                y = lay[f"BatchNorm_{block}{unit}_b"](lay[f"Conv3D_{block}{unit}_b"](y))
                if unit == "a":
                    x = lay[f"BatchNorm_{block}a_1"](lay[f"Conv3D_{block}a_1"](x))
                x = ops.relu(x + y)
        return x

    def mobilenet(self, x):
        for name in MOBILENET_NAMES:
            x = self.layers[f"SeparableConv2D_{name}"](x)
            x = ops.relu6(self.layers[f"BatchNorm_Conv2d_{name}"](x, training=False))
        return x

    def __call__(self, clips: np.ndarray, stage: str = "logits"):
        """Clips (B, T, H, W, C) -> the output of ``stage``: res3d, convlstm or logits."""
        x = self.res3d(ops.convert_to_tensor(clips))
        if stage == "res3d":
            return ops.convert_to_numpy(x)
        x = self.layers["gatedclstm2d_2"](self.layers["gatedclstm2d_1"](x))
        if stage == "convlstm":
            return ops.convert_to_numpy(x)
        b, t = x.shape[:2]
        x = self.mobilenet(ops.reshape(x, (b * t, *x.shape[2:])))
        x = ops.mean(ops.reshape(x, (b, t, *x.shape[1:])), axis=(1, 2, 3))
        return ops.convert_to_numpy(self.layers["Classes"](x))

    def randomize(self, seed: int = 0) -> None:
        """Random weights everywhere, scaled to keep activations of order one, and BatchNorm
        statistics away from (0, 1) so that a mix-up of them shows."""
        rng = np.random.default_rng(seed)
        for layer in self.layers.values():
            if layer is None:
                continue
            values = []
            for w in layer.weights:
                name, shape = w.name, tuple(w.shape)
                if name in ("gamma", "moving_variance"):
                    values.append(rng.uniform(0.5, 1.5, shape))
                elif name in ("beta", "moving_mean") or "bias" in name:
                    values.append(rng.normal(0, 0.1, shape))
                else:
                    fan_in = np.prod(shape[:-1]) if "depthwise" not in name else np.prod(shape[:2])
                    values.append(rng.normal(0, np.sqrt(2.0 / fan_in), shape))
            layer.set_weights([v.astype(np.float32) for v in values])

    def weights(self) -> dict[str, dict[str, np.ndarray]]:
        """layer -> weight name -> array, as Keras holds them."""
        return {
            name: {w.name: ops.convert_to_numpy(w.value) for w in layer.weights}
            for name, layer in self.layers.items()
            if layer is not None
        }

    def write_hdf5(self, path) -> None:
        """The released ``save_weights`` layout (Keras 2): ``layer_names`` in the root, one
        group per layer with its ``weight_names`` (``<layer>/<weight>:0``) and arrays."""
        with h5py.File(path, "w") as f:
            f.attrs["layer_names"] = [name.encode() for name in self.layers]
            f.attrs["backend"] = b"tensorflow"
            f.attrs["keras_version"] = b"2.0.4-tf"
            weights = self.weights()
            for name in self.layers:
                group = f.create_group(name)
                arrays = weights.get(name, {})
                group.attrs["weight_names"] = [f"{name}/{w}:0".encode() for w in arrays]
                for w, array in arrays.items():
                    group.create_dataset(f"{name}/{w}:0", data=array)


def build_released(widths, hidden, mobilenet_widths, classes, frames, size, seed=0):
    """A built and randomised :class:`ReleasedNetwork` for clips of ``frames`` x ``size``."""
    net = ReleasedNetwork(widths, hidden, mobilenet_widths, classes)
    net(np.zeros((1, frames, size, size, 3), dtype=np.float32))  # builds every layer
    net.randomize(seed)
    return net
