"""Writing a module as an ONNX graph or a ``torch.export`` program (``.pt2``), all or nothing.

Both go through ``torch.export`` (the ONNX exporter of torch >= 2.5 translates its program;
it needs the ``onnxscript`` package, installed with ``aclstm[export]``). The file is written
beside its destination under a temporary name and moved into place only once complete
(:func:`aclstm.files.atomic_write`), so an interrupted or failed export never leaves a partial
file where a runtime would load it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aclstm.files import atomic_write

__all__ = [
    "FORMATS",
    "MAX_DIFFERENCE",
    "check_against",
    "export_module",
    "format_of",
]

FORMATS = ("onnx", "pt2")

# The largest difference of outputs an export may show against PyTorch (fp32) on its check.
MAX_DIFFERENCE = 1e-3


def format_of(path: str | Path, format: str | None = None) -> str:
    """The format named, or the one the file name says (``.onnx`` or ``.pt2``); an error when
    neither says or they disagree."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if format is None:
        if suffix not in FORMATS:
            raise ValueError(f"{path}: name the format with a .onnx or .pt2 file name, or --format")
        return suffix
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}; got {format!r}")
    if suffix in FORMATS and suffix != format:
        raise ValueError(f"{path}: a .{suffix} file name for format {format!r}")
    return format


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporters' progress lines and notes (torchvision missing, deprecations) kept off
    the user's terminal; errors still raise."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._export")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def export_module(
    module: nn.Module,
    args: tuple[torch.Tensor, ...],
    path: str | Path,
    format: str,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_shapes: Sequence[dict[int, Any] | None],
) -> Path:
    """Export ``module`` called on ``args`` to ``path``: ``format`` "onnx" (inputs and outputs
    named) or "pt2"; ``dynamic_shapes`` gives each input's dynamic dims (``torch.export.Dim``)."""
    format, path = format_of(path, format), Path(path)
    shapes = tuple(dynamic_shapes)
    with torch.no_grad(), _quiet():
        if format == "pt2":
            program = torch.export.export(module, args, dynamic_shapes=shapes)
            atomic_write(path, lambda partial: torch.export.save(program, partial))
        else:
            try:
                import onnxscript  # noqa: F401  (the exporter needs it; say so plainly)
            except ImportError:
                raise ImportError(
                    "ONNX export needs the onnx and onnxscript packages: "
                    "pip install 'aclstm[export]'"
                ) from None
            program = torch.onnx.export(
                module, args, dynamo=True, dynamic_shapes=shapes, verbose=False,
                input_names=list(input_names), output_names=list(output_names),
            )  # fmt: skip
            atomic_write(path, program.save)
    return path


def check_against(
    path: str | Path, pairs: Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]]
) -> float:
    """The largest difference over the (PyTorch's, the file's) outputs that ``pairs()``
    yields. The file is removed, with an error, when that exceeds :data:`MAX_DIFFERENCE` or
    the comparison fails: an export that does not compute what its source does is not kept."""
    try:
        with torch.inference_mode():
            worst = max(float((ours - theirs).abs().max()) for ours, theirs in pairs())
        if not worst <= MAX_DIFFERENCE:
            raise RuntimeError(
                f"{path}: the export's outputs differ from PyTorch's by {worst:.3g} "
                f"(more than {MAX_DIFFERENCE}); removed"
            )
    except BaseException:
        Path(path).unlink(missing_ok=True)
        raise
    return worst
