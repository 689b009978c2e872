"""Run the ``aclstm`` command and SIGKILL it at a chosen point: the fault tests' crash.

    python tests/fault_injection.py KIND:NAME:N ARGUMENTS...

``KIND`` says where the N-th event kills the process:

- ``step``: inside the N-th optimiser step (after the backward pass, before the update);
- ``validate``: at the N-th forward pass of validation;
- ``write``: halfway through writing the N-th checkpoint file called NAME;
- ``rename``: before the N-th checkpoint rename onto a folder called NAME;
- ``signal``: the signal NAME (``INT``, ``TERM``) sent to this process inside the N-th
  optimiser step, which goes on: what the run does with it is the test;
- ``none``: no fault (``none::0``).

The library is patched from outside, so it carries no test hook. Deterministic algorithms are
on, so a killed and resumed run can be compared with an uninterrupted one bit for bit.
"""

from __future__ import annotations

import os
import signal
import sys

import torch

from aclstm import cli
from aclstm.train import checkpoint, loop


class Killed(BaseException):
    """The in-process stand-in for SIGKILL: nothing of the library catches a BaseException
    that is not one of its own, so the run stops where it is, as a killed process would."""


class Countdown:
    """Kills this process (or, with ``in_process``, raises :class:`Killed`) at the N-th call
    of :meth:`tick`."""

    def __init__(self, n: int, in_process: bool = False) -> None:
        self.left = n
        self.in_process = in_process

    def tick(self, last_words=None) -> None:
        self.left -= 1
        if self.left == 0:
            if last_words is not None:
                last_words()
            if self.in_process:
                raise Killed
            os.kill(os.getpid(), signal.SIGKILL)


def inject(kind: str, name: str, countdown: Countdown, patch=setattr) -> None:
    """Patch the place ``kind`` names so that ``countdown`` ticks there; ``patch`` does the
    patching (a test passes pytest's ``monkeypatch.setattr``, which undoes it afterwards)."""
    if kind == "signal":
        real_step = torch.optim.AdamW.step
        signum = getattr(signal, f"SIG{name}")

        def signalled_step(self, *args, **kwargs):
            countdown.left -= 1
            if countdown.left == 0:
                os.kill(os.getpid(), signum)
            return real_step(self, *args, **kwargs)

        patch(torch.optim.AdamW, "step", signalled_step)
    elif kind == "step":
        real_step = torch.optim.AdamW.step

        def step(self, *args, **kwargs):
            countdown.tick()
            return real_step(self, *args, **kwargs)

        patch(torch.optim.AdamW, "step", step)
    elif kind == "validate":
        real_evaluate = loop.evaluate

        def evaluate(model, *args, **kwargs):
            hook = model.register_forward_pre_hook(lambda *_: countdown.tick())
            try:
                return real_evaluate(model, *args, **kwargs)
            finally:
                hook.remove()

        patch(loop, "evaluate", evaluate)
    elif kind == "write":
        real_write = checkpoint._write_bytes

        def write(path, data):
            if path.name == name:
                countdown.tick(lambda: real_write(path, data[: len(data) // 2]))
            real_write(path, data)

        patch(checkpoint, "_write_bytes", write)
    elif kind == "rename":
        real_rename = checkpoint._rename

        def rename(source, target):
            if target.name == name:
                countdown.tick()
            real_rename(source, target)

        patch(checkpoint, "_rename", rename)
    elif kind != "none":
        raise SystemExit(f"unknown fault kind {kind!r}")


def main() -> int:
    kind, name, n = sys.argv[1].split(":")
    inject(kind, name, Countdown(int(n)))
    torch.use_deterministic_algorithms(True)
    return cli.main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
