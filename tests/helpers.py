"""Helpers shared by the tests."""

from __future__ import annotations

import json
import socket

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
    """A video of solid frames with grey levels 10, 20, ... (as write_frames)."""
    import numpy as np

    from aclstm.data.video import write_video as write_frames_as_video

    levels = 10 * np.arange(1, count + 1, dtype=np.uint8)
    frames = np.broadcast_to(levels[:, None, None, None], (count, *size, 3)).copy()
    write_frames_as_video(path, frames, fps=fps)


def tiny_run_options(root, epochs=2, batch_size=6, extra=()) -> list[str]:
    """``aclstm train`` options for a run of the tiny net on 4 frames of 32x32 that takes
    seconds: the synthetic set at ``root`` (generated there if absent), AdamW, fp32 (the demo
    config's ``amp = "auto"`` would pick bf16 on some CPUs only), no progress bar; ``extra``
    appends more ``--cfg-options`` entries."""
    return [
        "--no-progress",
        "--cfg-options",
        "model.preset=tiny",
        "model.frames=4",
        "model.size=32",
        "model.bn_momentum=0.1",
        "data.dataset=synth",
        f"data.root={json.dumps(str(root))}",
        "data.num_workers=0",
        f"train.epochs={epochs}",
        f"train.batch_size={batch_size}",
        "train.optimizer=adamw",
        "train.amp=null",
        *extra,
    ]


def free_port() -> int:
    """A TCP port free on this machine now, for torchrun's rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def textured(height: int, width: int, seed: int = 0):
    """A frame with fine texture (noise) over coarse shapes (gradients): a resize without
    antialiasing, or a shifted crop, shows on it by tens of grey levels."""
    import numpy as np

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    coarse = 127 + 60 * np.sin(x / 9.0)[..., None] * np.cos(y / 13.0)[..., None]
    noise = rng.normal(0, 40, (height, width, 3))
    return np.clip(coarse + noise, 0, 255).astype(np.uint8)


def released_reference(frame, size: int = 112):
    """The released code's evaluation clip of one frame: centre square at int(room/2), PIL's
    bilinear resize (what scipy.misc.imresize calls) to size x size."""
    import numpy as np
    from PIL import Image

    h, w, _ = frame.shape
    side = min(h, w)
    top, left = int((h - side) / 2), int((w - side) / 2)
    crop = Image.fromarray(frame[top : top + side, left : left + side])
    return np.asarray(crop.resize((size, size), Image.BILINEAR)).astype(np.int64)
