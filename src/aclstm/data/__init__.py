"""Data: Jester, IsoGD, ConGD, raw-frame lists and clip folders, with the released
preprocessing."""

from .clips import ClipDataset, ClipRecord
from .collate import Batch, collate_skipping
from .congd import (
    ConGDDataset,
    Segment,
    frame_labels,
    read_congd_list,
    read_congd_segments,
    write_congd_list,
)
from .folder import ClipFolderDataset, scan_clip_folder
from .io import DataError, read_jpeg, read_jpegs, read_text_lines
from .jester import JesterDataset, read_jester_classes, read_jester_split
from .lists import IsoGDDataset, RawFrameListDataset, read_isogd_list, read_rawframe_list
from .sampling import sample_indices
from .transforms import MEANS, crop_box, prepare_clip
from .video import read_video

__all__ = [
    "MEANS",
    "Batch",
    "ClipDataset",
    "ClipFolderDataset",
    "ClipRecord",
    "ConGDDataset",
    "DataError",
    "IsoGDDataset",
    "JesterDataset",
    "RawFrameListDataset",
    "Segment",
    "collate_skipping",
    "crop_box",
    "frame_labels",
    "prepare_clip",
    "read_congd_list",
    "read_congd_segments",
    "read_isogd_list",
    "read_jester_classes",
    "read_jester_split",
    "read_jpeg",
    "read_jpegs",
    "read_rawframe_list",
    "read_text_lines",
    "read_video",
    "sample_indices",
    "scan_clip_folder",
    "write_congd_list",
]
