"""The crop + bilinear resize + mean of the default preprocessing: the compiled kernel (both its
AVX2 and its generic code) against torch's float bilinear resize, the torch path against the
same reference, and which path a clip takes."""

from __future__ import annotations

import shutil
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import aclstm.data.resize as resize_module
from aclstm.data.resize import KERNEL, crop_resize
from aclstm.data.transforms import prepare_clip

kernel = resize_module._cropresize
needs_kernel = pytest.mark.skipif(
    kernel is None, reason="the compiled kernel is not built (no C compiler at install)"
)
MEAN4 = (114.0, 109.0, 104.0, 50.0)
# The kernel computes coordinates and weights in float32, as torch does, and blends in float32;
# the reference in float64: apart by a few thousandths of a grey level (rounding: up to 0.5).
ATOL = 1e-2


def reference(frames, top, left, side, size, mean):
    """torch's float bilinear resize of the float crop, minus the mean: (T, size, size * C)."""
    t, _, _, c = frames.shape
    crop = frames[:, top : top + side, left : left + side].permute(0, 3, 1, 2).double()
    out = F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False)
    out = out.permute(0, 2, 3, 1) - torch.tensor(mean, dtype=torch.float64)
    return out.reshape(t, size, size * c).float()


def random_frames(t, h, w, c, seed=0):
    return torch.randint(0, 256, (t, h, w, c), generator=torch.Generator().manual_seed(seed),
                         dtype=torch.uint8)  # fmt: skip


def run_kernel(frames, top, left, side, size, mean, generic):
    t, h, w, c = frames.shape
    out = torch.empty((t, size, size * c), dtype=torch.float32)
    kernel.crop_resize(frames.numpy(), (t, h, w, c), (top, left, side, size),
                       np.asarray(mean, np.float32), out.numpy(), generic=generic)  # fmt: skip
    return out


# (frame height, width, crop top, left, side, output size): Jester's frames for the paper's
# 112 (and a crop at the far right), a square scaled up by a non-integer factor, one kept at
# its size, one scaled up more than twice, and crops scaled down (the plain-loop path).
GEOMETRIES = [
    (100, 176, 0, 38, 100, 112),
    (100, 176, 0, 76, 100, 112),
    (61, 70, 3, 5, 57, 64),
    (112, 150, 0, 19, 112, 112),
    (40, 40, 0, 0, 40, 97),
    (120, 160, 0, 20, 120, 112),
    (240, 320, 0, 40, 240, 112),
]


@needs_kernel
@pytest.mark.parametrize("generic", [False, True], ids=["dispatched", "generic"])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: "x".join(map(str, g)))
def test_kernel_equals_the_float_bilinear_reference(geometry, channels, generic):
    h, w, top, left, side, size = geometry
    frames = random_frames(3, h, w, channels, seed=size + channels)
    mean = MEAN4[:channels]
    got = run_kernel(frames, top, left, side, size, mean, generic)
    torch.testing.assert_close(got, reference(frames, top, left, side, size, mean),
                               atol=ATOL, rtol=0)  # fmt: skip


@needs_kernel
def test_kernel_reads_each_frame_and_the_crop_it_is_given():
    """Frames differ and the crop is off-centre on both axes: a kernel reading the first
    frame for all, or swapping top and left, is tens of grey levels off."""
    frames = random_frames(4, 90, 130, 3, seed=7)
    got = run_kernel(frames, 7, 23, 80, 112, (0.0, 0.0, 0.0), generic=False)
    torch.testing.assert_close(got, reference(frames, 7, 23, 80, 112, (0, 0, 0)), atol=ATOL,
                               rtol=0)  # fmt: skip
    assert (got - reference(frames, 23, 7, 80, 112, (0, 0, 0))).abs().mean() > 10


@needs_kernel
def test_kernel_fills_an_output_at_any_alignment():
    """Rows aligned to 32 bytes are stored past the caches, others plainly: the same values."""
    frames = random_frames(2, 100, 176, 3, seed=3)
    aligned = run_kernel(frames, 0, 38, 100, 112, MEAN4[:3], generic=False)
    buffer = np.empty(2 * 112 * 336 + 1, np.float32)
    shifted = buffer[1:].reshape(2, 112, 336)  # 4 bytes past the allocation's alignment
    kernel.crop_resize(frames.numpy(), (2, 100, 176, 3), (0, 38, 100, 112),
                       np.asarray(MEAN4[:3], np.float32), shifted)  # fmt: skip
    assert np.array_equal(shifted, aligned.numpy())


@needs_kernel
def test_kernel_refuses_what_it_cannot_read_or_fill():
    frames = random_frames(2, 10, 12, 3)
    out = np.empty((2, 8, 8 * 3), np.float32)
    mean = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="outside the frames"):
        kernel.crop_resize(frames.numpy(), (2, 10, 12, 3), (0, 3, 10, 8), mean, out)
    with pytest.raises(ValueError, match="not as the shape says"):
        kernel.crop_resize(frames.numpy(), (2, 10, 13, 3), (0, 0, 10, 8), mean, out)
    with pytest.raises(ValueError, match="out must hold"):
        kernel.crop_resize(frames.numpy(), (2, 10, 12, 3), (0, 0, 10, 9), mean, out)
    with pytest.raises(ValueError, match="one float32 a channel"):
        kernel.crop_resize(frames.numpy(), (2, 10, 12, 3), (0, 0, 10, 8), mean[:2], out)
    with pytest.raises(ValueError, match="not C-contiguous"):  # a strided view
        kernel.crop_resize(frames.numpy()[:, :, ::2], (2, 10, 6, 3), (0, 0, 6, 8), mean, out)


@pytest.mark.parametrize("use_kernel", [True, False], ids=["kernel", "torch"])
@pytest.mark.parametrize("geometry", GEOMETRIES[:2] + GEOMETRIES[5:], ids=lambda g: f"{g[4]}")
def test_crop_resize_is_bilinear_to_within_a_grey_level(geometry, use_kernel, monkeypatch):
    """Either path: the kernel's values are the exact ones; torch's uint8 resize rounds to
    whole grey levels (clips it scales down go to torch in both cases)."""
    if use_kernel and kernel is None:
        pytest.skip("the compiled kernel is not built (no C compiler at install)")
    if not use_kernel:
        monkeypatch.setattr(resize_module, "_cropresize", None)
    h, w, top, left, side, size = geometry
    frames = random_frames(2, h, w, 3, seed=1)
    mean = MEAN4[:3]
    got = crop_resize(frames, top, left, side, size, mean)
    expected = reference(frames, top, left, side, size, mean)
    exact = use_kernel and side <= size
    tolerance = ATOL if exact else 1.0 + 1e-3
    assert (got - expected).abs().max() <= tolerance
    if not exact and side != size:
        assert (got - expected).abs().max() > 0.1  # torch's values are rounded


@needs_kernel
def test_prepare_clip_scales_up_with_the_kernel_and_down_with_torch(monkeypatch):
    """Jester's 100-pixel frames for 112 go through the kernel (exact values, also through a
    horizontal flip's copy and a depth clip's channel slice); frames scaled down, and the
    released preprocessing, through torch."""
    frames = random_frames(3, 100, 176, 3, seed=2)
    clip = prepare_clip(frames.flip(2), 112, MEAN4[:3], training=False)
    rows = clip.permute(1, 2, 3, 0).reshape(3, 112, -1)
    torch.testing.assert_close(rows, reference(frames.flip(2), 0, 38, 100, 112, MEAN4[:3]),
                               atol=ATOL, rtol=0)  # fmt: skip
    depth = prepare_clip(frames[..., :1], 112, (127.0,), training=False)
    torch.testing.assert_close(depth[0], reference(frames[..., :1], 0, 38, 100, 112, (127.0,))
                               .view(3, 112, 112), atol=ATOL, rtol=0)  # fmt: skip

    calls = []
    monkeypatch.setattr(resize_module, "_kernel_crop_resize",
                        lambda *a: calls.append(a) or torch.zeros(1))  # fmt: skip
    big = random_frames(2, 240, 320, 3)
    prepare_clip(big, 112, MEAN4[:3], training=False)
    prepare_clip(frames, 112, MEAN4[:3], training=False, preprocessing="released")
    crop_resize(frames.float(), 0, 38, 100, 112)  # not uint8: torch reads it as it is
    assert calls == []


def test_the_kernel_is_built_where_a_c_compiler_is():
    """The extension is optional at install (no compiler or no Python headers: torch does the
    work); where both are present, a missing kernel means its build broke."""
    if not any(shutil.which(cc) for cc in ("cc", "gcc", "clang")):
        pytest.skip("no C compiler on PATH: the kernel is not expected")
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").exists():
        pytest.skip("no Python headers (Python.h): the kernel is not expected")
    assert KERNEL in ("AVX2", "generic"), "the compiled kernel failed to build or import"
