"""Checkpoints that survive a crash mid-write and never run code when loaded.

A checkpoint is a folder::

    model.safetensors   the weights (safetensors: tensors only, nothing to execute)
    meta.json           what ``predict`` needs: classes, model config, sampling, input size
    state.pt            optional: optimiser, step, epoch, RNG states for ``--resume``,
                        read with ``torch.load(weights_only=True)`` (no arbitrary objects)

The folder is replaced as a whole, so its weights, meta and state always belong together:

1. every file is written into a fresh sibling ``.<name>.partial-XXXX`` and fsynced;
2. that folder is renamed ``.<name>.new`` (complete from here on);
3. the old ``<name>`` is renamed ``.<name>.old``, ``.<name>.new`` renamed ``<name>``;
4. ``.<name>.old`` is deleted.

A kill anywhere leaves either the old checkpoint or the new one complete: the loaders read
``.<name>.new`` when a kill left it there (it is the newest complete one), and the next save
(or ``--resume``) finishes the swap and deletes unfinished ``.partial-`` folders.
"""

from __future__ import annotations

import errno
import io
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from aclstm.files import atomic_write

__all__ = [
    "CheckpointError",
    "CheckpointWriteError",
    "atomic_write",
    "checkpoint_files",
    "load_meta",
    "load_training_state",
    "load_weights",
    "readable_folder",
    "recover_checkpoint",
    "save_checkpoint",
]

WEIGHTS = "model.safetensors"
META = "meta.json"
STATE = "state.pt"
# Network fields that shape no weight: a difference there cannot explain a mismatch.
_SHAPELESS_FIELDS = ("frames", "size", "bn_momentum", "gate_activation")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: says which file and why."""


class CheckpointWriteError(OSError):
    """A checkpoint that could not be written (a full disk, say); the previous one is intact."""


def _sibling(folder: Path, tag: str) -> Path:
    """``.<name>.<tag>`` beside ``folder``: where a save keeps its new and old copies."""
    return folder.parent / f".{folder.name}.{tag}"


def _partials(folder: Path) -> list[Path]:
    """Unfinished ``.<name>.partial-XXXX`` folders a killed save left beside ``folder``."""
    prefix = f".{folder.name}.partial-"
    if not folder.parent.is_dir():
        return []
    return [p for p in folder.parent.iterdir() if p.name.startswith(prefix)]


def _fsync_dir(folder: Path) -> None:
    """Make the names in ``folder`` (new files, renames) durable; POSIX only."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file and fsync it: every byte of a checkpoint goes through
    here, so a full disk surfaces as ``OSError(ENOSPC)``."""
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _rename(source: Path, target: Path) -> None:
    """One step of the swap: rename, then make it durable."""
    os.rename(source, target)
    _fsync_dir(target.parent)


def checkpoint_files(
    model: torch.nn.Module, meta: dict[str, Any], training_state: dict[str, Any] | None
) -> dict[str, bytes]:
    """The bytes of each file of a checkpoint, serialised in memory before any is written."""
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    files = {
        WEIGHTS: safetensors_bytes(weights),
        META: (json.dumps(meta, indent=2) + "\n").encode(),
    }
    if training_state is not None:
        buffer = io.BytesIO()
        torch.save(training_state, buffer)
        files[STATE] = buffer.getvalue()
    return files


def _write_error(folder: Path, err: OSError) -> CheckpointWriteError:
    """A clear message for a failed write: which checkpoint, why, and what is kept."""
    reason = err.strerror or str(err)
    if err.errno == errno.ENOSPC:
        reason = f"the disk is full ({reason})"
    error = CheckpointWriteError(
        f"{folder}: checkpoint write failed: {reason}; the previous checkpoint there is intact"
    )
    error.errno = err.errno
    return error


def save_checkpoint(
    folder: str | Path,
    model: torch.nn.Module,
    meta: dict[str, Any],
    training_state: dict[str, Any] | None = None,
) -> Path:
    """Write weights, metadata and (optionally) the training state as the folder ``folder``,
    replacing the previous one as a whole (see the module docstring). A failed write raises
    :class:`CheckpointWriteError` and leaves the previous checkpoint as it was."""
    folder = Path(folder)
    files = checkpoint_files(model, meta, training_state)
    folder.parent.mkdir(parents=True, exist_ok=True)
    recover_checkpoint(folder)
    partial = folder.parent / f".{folder.name}.partial-{secrets.token_hex(4)}"
    partial.mkdir()  # not mkdtemp: its 0700 would make the checkpoint private to its writer
    try:
        for name, data in files.items():
            _write_bytes(partial / name, data)
        _fsync_dir(partial)
    except OSError as err:
        shutil.rmtree(partial, ignore_errors=True)
        raise _write_error(folder, err) from err
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    _swap_in(partial, folder)
    return folder


def _swap_in(complete: Path, folder: Path) -> None:
    """Replace ``folder`` by the complete folder ``complete`` in renames a kill can interrupt
    anywhere (:func:`recover_checkpoint` finishes the job)."""
    new, old = _sibling(folder, "new"), _sibling(folder, "old")
    _rename(complete, new)
    if folder.exists():
        _rename(folder, old)
    _rename(new, folder)
    shutil.rmtree(old, ignore_errors=True)


def recover_checkpoint(folder: str | Path) -> None:
    """Finish a swap a kill interrupted and delete unfinished ``.partial-`` folders, so that
    ``folder`` holds the newest complete checkpoint. Safe to run at any time."""
    folder = Path(folder)
    for partial in _partials(folder):
        shutil.rmtree(partial, ignore_errors=True)
    new, old = _sibling(folder, "new"), _sibling(folder, "old")
    if new.is_dir():
        if folder.exists():
            shutil.rmtree(old, ignore_errors=True)
            _rename(folder, old)
        _rename(new, folder)
    elif old.is_dir() and not folder.exists():
        _rename(old, folder)
    shutil.rmtree(old, ignore_errors=True)


def readable_folder(folder: str | Path) -> Path:
    """The newest complete copy of checkpoint ``folder``, without changing anything on disk:
    ``.<name>.new`` when a kill left it mid-swap, else the folder (else ``.<name>.old``)."""
    folder = Path(folder)
    new, old = _sibling(folder, "new"), _sibling(folder, "old")
    if new.is_dir():
        return new
    if not folder.exists() and old.is_dir():
        return old
    return folder


def load_meta(folder: str | Path) -> dict[str, Any]:
    """``meta.json`` of the newest complete copy of ``folder``."""
    path = readable_folder(folder) / META
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: not found (is {folder} a checkpoint folder?)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: not valid JSON ({err})") from None


def load_weights(folder: str | Path, model: torch.nn.Module) -> None:
    """Load ``model.safetensors`` into ``model``; missing or extra keys and shape mismatches
    are named in the error, with the network fields in which the checkpoint's meta.json
    differs from the model (another cell or preset)."""
    folder = readable_folder(folder)
    path = folder / WEIGHTS
    try:
        weights = load_file(str(path))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: not found") from None
    except Exception as err:  # safetensors raises its own error types for bad files
        raise CheckpointError(f"{path}: not a safetensors file ({err})") from None
    problems = _fit_problems(weights, model.state_dict())
    if problems:
        raise CheckpointError(
            f"{path}: does not fit the model: " + "; ".join(problems) + _network_hint(folder, model)
        )
    model.load_state_dict(weights)


def _fit_problems(weights: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> list[str]:
    """Missing keys, unexpected keys and shape mismatches, a few of each named."""
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
    return problems


def _network_hint(folder: Path, model: torch.nn.Module) -> str:
    """`` (the checkpoint's network differs in cell: 'convlstm', the model's 'gated')``, from
    the checkpoint's meta.json and the model's config; empty when either is unknown."""
    config = getattr(model, "config", None)
    try:
        stored = json.loads((folder / META).read_text()).get("network")
    except (OSError, ValueError, AttributeError):
        return ""
    if not isinstance(stored, dict) or not hasattr(config, "as_dict"):
        return ""
    ours = json.loads(json.dumps(config.as_dict()))  # tuples as lists, as stored
    fields = [k for k in ours if k not in _SHAPELESS_FIELDS and stored.get(k) != ours[k]]
    if not fields:
        return ""
    shown = ", ".join(f"{k}: {stored.get(k)!r}, the model's {ours[k]!r}" for k in fields[:3])
    return f" (the checkpoint's network differs in {shown}{' ...' if len(fields) > 3 else ''})"


def load_training_state(folder: str | Path) -> dict[str, Any]:
    """The training state, read without unpickling arbitrary objects."""
    path = readable_folder(folder) / STATE
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: not found (was the run saved with its state?)") from None
    except Exception as err:  # pickle.UnpicklingError for objects outside the allow-list
        raise CheckpointError(f"{path}: refused: {_refusal(err)}") from None


def _refusal(err: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in one line: torch's own message
    runs to a page and suggests ``weights_only=False``, which would run the file's code."""
    text = str(err)
    marker = "WeightsUnpickler error: "
    if marker in text:
        reason = text.split(marker, 1)[1].split(". ")[0].strip()
        return f"it holds pickled objects that could run code when loaded ({reason}); not loaded"
    return f"not a readable training state ({text.splitlines()[0] if text else type(err).__name__})"
