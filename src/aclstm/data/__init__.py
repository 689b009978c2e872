"""Data: frame sampling and preprocessing (loaders and the synthetic gesture set to come)."""

from .sampling import sample_indices
from .transforms import MEANS, crop_box, prepare_clip

__all__ = ["MEANS", "crop_box", "prepare_clip", "sample_indices"]
