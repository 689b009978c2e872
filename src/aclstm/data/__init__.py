"""Data: Jester as distributed, frame sampling and preprocessing of the released code."""

from .collate import Batch, collate_skipping
from .io import DataError, read_jpeg, read_text_lines
from .jester import JesterDataset, read_jester_classes, read_jester_split
from .sampling import sample_indices
from .transforms import MEANS, crop_box, prepare_clip

__all__ = [
    "MEANS",
    "Batch",
    "DataError",
    "JesterDataset",
    "collate_skipping",
    "crop_box",
    "prepare_clip",
    "read_jester_classes",
    "read_jester_split",
    "read_jpeg",
    "read_text_lines",
    "sample_indices",
]
