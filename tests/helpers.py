"""Helpers shared by the tests."""

from __future__ import annotations

import torch


def randomize_(module: torch.nn.Module, scale: float = 0.4) -> torch.nn.Module:
    """Random values in every parameter: the default init (constant gate weights, zero biases)
    would make a mix-up of gate rows invisible."""
    gen = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * scale)
    return module


def write_frames(folder, count: int, size=(100, 176), names="{:05d}.jpg") -> None:
    """Solid JPEG frames whose grey level encodes the 1-based frame number (10, 20, ...)."""
    import numpy as np
    import simplejpeg

    folder.mkdir(parents=True, exist_ok=True)
    for k in range(1, count + 1):
        frame = np.full((*size, 3), 10 * k, dtype=np.uint8)
        (folder / names.format(k)).write_bytes(simplejpeg.encode_jpeg(frame, quality=95))


def write_video(path, count: int, size=(48, 64), fps: int = 10) -> None:
    """An MPEG-4 video of solid frames with grey levels 10, 20, ... (as write_frames)."""
    import av
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.height, stream.width = size
        stream.pix_fmt = "yuv420p"
        for k in range(1, count + 1):
            frame = np.full((*size, 3), 10 * k, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
