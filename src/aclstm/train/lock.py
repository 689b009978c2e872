"""One training run per work dir: an exclusive lock on ``WORK_DIR/.run.lock`` held for the run's
life. The operating system lets go of it when the process ends, however it ends, so a run that
was killed leaves nothing that blocks the next one; the file itself only says who held it last.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from types import TracebackType

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks; runs are not guarded
    fcntl = None

__all__ = ["LOCK_NAME", "WorkDirBusy", "WorkDirLock"]

LOCK_NAME = ".run.lock"


class WorkDirBusy(OSError):
    """Another run holds the work dir."""


class WorkDirLock:
    """``with WorkDirLock(work_dir):`` the run's section; raises :class:`WorkDirBusy` naming
    the process (PID and host) that holds it. ``enabled=False`` (the other processes of a
    torchrun job, whose rank 0 holds it) does nothing."""

    def __init__(self, work_dir: str | Path, enabled: bool = True) -> None:
        self.path = Path(work_dir) / LOCK_NAME
        self.enabled = enabled and fcntl is not None
        self._file = None

    def __enter__(self) -> WorkDirLock:
        if not self.enabled:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise WorkDirBusy(
                f"{self.path.parent} is in use by another training run ({holder}); wait for "
                "it to end or choose another --work-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        self._file = handle
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
