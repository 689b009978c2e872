"""Running an exported gesture model: ONNX Runtime for ``.onnx``, ``torch.export.load`` for
``.pt2``, with the meta written beside it. Nothing here builds or loads the training network:
a deployment needs the runtime, this file and the preprocessing (:mod:`aclstm.data`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "EXPORTED_SUFFIXES",
    "ExportedClipModel",
    "ExportedStreamer",
    "ExportedStreamingModel",
    "Runner",
    "is_exported",
    "load_exported",
    "meta_path",
]

EXPORTED_SUFFIXES = (".onnx", ".pt2")


def meta_path(path: str | Path) -> Path:
    """Where an export's meta lies: ``model.onnx`` -> ``model.onnx.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def is_exported(path: str | Path) -> bool:
    """Whether ``path`` names an exported model (a ``.onnx`` or ``.pt2`` file)."""
    path = Path(path)
    return path.suffix.lower() in EXPORTED_SUFFIXES and not path.is_dir()


class Runner:
    """An exported graph as a function of tensors: ``runner(*inputs) -> list of outputs``.

    ONNX Runtime runs ``.onnx`` with ``threads`` intra-op threads that sleep rather than
    spin when idle (spinning threads steal a busy machine's cores); ``.pt2`` runs in PyTorch.
    """

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such exported model")
        if self.path.suffix.lower() == ".pt2":  # runs on PyTorch's threads
            self._module = torch.export.load(self.path).module()
            self._session = None
            return
        try:
            import onnxruntime as ort
        except ImportError:
            raise ImportError(
                f"{self.path}: running an ONNX model needs onnxruntime: "
                "pip install 'aclstm[export]'"
            ) from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            str(self.path), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = [i.name for i in self._session.get_inputs()]

    def __call__(self, *inputs: Tensor) -> list[Tensor]:
        if self._session is None:
            with torch.inference_mode():
                out = self._module(*inputs)
            return list(out) if isinstance(out, (tuple, list)) else [out]
        feed = {
            name: np.ascontiguousarray(t.detach().cpu().float().numpy())
            for name, t in zip(self._inputs, inputs, strict=True)
        }
        return [torch.from_numpy(a) for a in self._session.run(None, feed)]


class ExportedClipModel:
    """A clip model export: ``model(clips (B, C, T, H, W)) -> logits (B, classes)``, T the
    checkpoint's clip length."""

    def __init__(self, runner: Runner, meta: dict[str, Any]) -> None:
        self.runner, self.meta = runner, meta

    def __call__(self, clips: Tensor) -> Tensor:
        return self.runner(clips)[0]


class ExportedStreamer:
    """:class:`aclstm.models.streaming.Streamer`'s interface over an exported streaming step:
    ``push(frames (B, C, n, H, W))`` returns the logits (B, steps, classes) of the steps the
    frames complete (one per two frames); an odd frame waits for its partner."""

    def __init__(self, runner: Runner, meta: dict[str, Any]) -> None:
        self.runner = runner
        spec = meta["export"]
        self.frames_per_step = spec["frames_per_step"]
        self.num_classes = len(meta["classes"])
        # h, c and the buffers, in the step's input order, "batch" where the batch goes
        self._state_shapes = [shape for name, shape in spec["inputs"].items() if name != "frames"]
        self.reset()

    def reset(self) -> None:
        """Forget the stream: the next push starts a new one."""
        self._state: list[Tensor] | None = None
        self._waiting: Tensor | None = None
        self.frames_seen = 0
        self.steps_done = 0

    def _zeros(self, batch: int) -> list[Tensor]:
        """The state a stream of ``batch`` starts from: zeros everywhere."""
        return [torch.zeros([batch if d == "batch" else d for d in s]) for s in self._state_shapes]

    def push(self, frames: Tensor) -> Tensor:
        """The logits (B, steps, classes) of the steps that ``frames`` complete."""
        self.frames_seen += frames.shape[2]
        if self._waiting is not None:
            frames = torch.cat([self._waiting, frames], dim=2)
            self._waiting = None
        if self._state is None:
            self._state = self._zeros(frames.shape[0])
        n = self.frames_per_step
        logits = []
        for start in range(0, frames.shape[2] - n + 1, n):
            out = self.runner(frames[:, :, start : start + n].float(), *self._state)
            logits.append(out[0])
            self._state = out[1:]
        left = frames.shape[2] % n
        if left:
            self._waiting = frames[:, :, frames.shape[2] - left :]
        self.steps_done += len(logits)
        if not logits:
            return frames.new_zeros((frames.shape[0], 0, self.num_classes))
        return torch.cat(logits, dim=1)

    def state_bytes(self) -> int:
        """Bytes of everything carried from one push to the next."""
        tensors = list(self._state or ()) + ([self._waiting] if self._waiting is not None else [])
        return sum(t.numel() * t.element_size() for t in tensors)


class ExportedStreamingModel:
    """A streaming-step export, as :class:`aclstm.live.GestureStream` takes a model:
    ``streamer()`` gives a fresh :class:`ExportedStreamer`."""

    def __init__(self, runner: Runner, meta: dict[str, Any]) -> None:
        self.runner, self.meta = runner, meta

    def streamer(self) -> ExportedStreamer:
        return ExportedStreamer(self.runner, self.meta)


def load_exported(path: str | Path, kind: str | None = None, threads: int | None = None):
    """``(model, meta)`` of an exported file and the meta beside it: an
    :class:`ExportedClipModel` or an :class:`ExportedStreamingModel` as the export was made.
    ``kind`` ("clip" or "streaming") refuses the other kind with the command that makes it."""
    path = Path(path)
    meta_file = meta_path(path)
    try:
        meta = json.loads(meta_file.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{meta_file}: not found; an exported model needs the meta aclstm export writes "
            "beside it (classes, clip length, size, mean)"
        ) from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{meta_file}: not valid JSON ({err})") from None
    made = meta.get("export", {}).get("kind")
    if made not in ("clip", "streaming"):
        raise ValueError(f"{meta_file}: no export entry: not written by aclstm export")
    if kind is not None and made != kind:
        flag = "--streaming " if kind == "streaming" else ""
        raise ValueError(
            f"{path} is a {made} export; this needs a {kind} export "
            f"(aclstm export CHECKPOINT OUT {flag}...)"
        )
    runner = Runner(path, threads)
    model_type = ExportedClipModel if made == "clip" else ExportedStreamingModel
    return model_type(runner, meta), meta
