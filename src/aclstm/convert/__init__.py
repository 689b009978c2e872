"""Weights from elsewhere into aclstm checkpoints: the authors' released Keras models."""

from .keras import (
    ConversionError,
    convert_released_weights,
    load_released_model,
    read_keras_weights,
)

__all__ = [
    "ConversionError",
    "convert_released_weights",
    "load_released_model",
    "read_keras_weights",
]
