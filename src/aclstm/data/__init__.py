"""Data: frame sampling (more to come: loaders, transforms, the synthetic gesture set)."""

from .sampling import sample_indices

__all__ = ["sample_indices"]
