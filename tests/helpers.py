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
