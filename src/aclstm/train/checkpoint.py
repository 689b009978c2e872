"""Checkpoints that survive a crash mid-write and never run code when loaded.

A checkpoint is a folder::

    model.safetensors   the weights (safetensors: tensors only, nothing to execute)
    meta.json           what ``predict`` needs: classes, model config, sampling, input size
    state.pt            optional: optimiser, step, epoch, RNG states for ``--resume``,
                        read with ``torch.load(weights_only=True)`` (no arbitrary objects)

Every file is written to a temporary name in the same folder, flushed to disk and renamed over
the old one, so a reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

__all__ = [
    "CheckpointError",
    "atomic_write",
    "load_meta",
    "load_training_state",
    "load_weights",
    "save_checkpoint",
]

WEIGHTS = "model.safetensors"
META = "meta.json"
STATE = "state.pt"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: says which file and why."""


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` for a temporary file beside ``path``, fsync it, rename it over."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_checkpoint(
    folder: str | Path,
    model: torch.nn.Module,
    meta: dict[str, Any],
    training_state: dict[str, Any] | None = None,
) -> Path:
    """Write weights, metadata and (optionally) the training state into ``folder``."""
    folder = Path(folder)
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(folder / WEIGHTS, lambda p: save_file(weights, str(p)))
    atomic_write(folder / META, lambda p: p.write_text(json.dumps(meta, indent=2) + "\n"))
    if training_state is not None:
        atomic_write(folder / STATE, lambda p: torch.save(training_state, p))
    return folder


def load_meta(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / META
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: not found (is {folder} a checkpoint folder?)") from None
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: not valid JSON ({err})") from None


def load_weights(folder: str | Path, model: torch.nn.Module) -> None:
    """Load ``model.safetensors`` into ``model``; missing or extra keys and shape mismatches
    are named in the error."""
    path = Path(folder) / WEIGHTS
    try:
        weights = load_file(str(path))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: not found") from None
    except Exception as err:  # safetensors raises its own error types for bad files
        raise CheckpointError(f"{path}: not a safetensors file ({err})") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    wrong = sorted(k for k in set(expected) & set(weights) if expected[k].shape != weights[k].shape)
    problems = []
    if missing:
        problems.append(f"missing keys {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    if extra:
        problems.append(f"unexpected keys {extra[:5]}{' ...' if len(extra) > 5 else ''}")
    if wrong:
        k = wrong[0]
        problems.append(
            f"{len(wrong)} shape mismatches, e.g. {k}: checkpoint "
            f"{tuple(weights[k].shape)}, model {tuple(expected[k].shape)}"
        )
    if problems:
        raise CheckpointError(f"{path}: does not fit the model: " + "; ".join(problems))
    model.load_state_dict(weights)


def load_training_state(folder: str | Path) -> dict[str, Any]:
    """The training state, read without unpickling arbitrary objects."""
    path = Path(folder) / STATE
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: not found (was the run saved with its state?)") from None
    except Exception as err:  # pickle.UnpicklingError for objects outside the allow-list
        raise CheckpointError(f"{path}: refused: {err}") from None
