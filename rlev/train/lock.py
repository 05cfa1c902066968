"""One trainer per run directory: an exclusive lock held for the whole training job.

Two trainers writing one run directory would interleave their metrics lines and
checkpoints (and the second would resume from the first's half-written state). The lock
is `flock` on `<run dir>/train/trainer.lock`, so the kernel releases it when the holder
dies, even by SIGKILL: a killed run never leaves a stale lock behind, and rerunning it
needs no clean-up. The file holds the holder's pid and host while it is held, for the
message the second trainer gets. (The `filelock` package truncates the file on every
attempt to take it, so it cannot carry the holder's pid; hence plain fcntl.) The file
stays after release: deleting it could let two trainers lock two different files.
"""

from __future__ import annotations

import fcntl
import os
import socket
from contextlib import contextmanager
from pathlib import Path


class RunLockedError(RuntimeError):
    """Another trainer holds the run directory's lock."""


@contextmanager
def run_lock(out_dir: str | os.PathLike):
    """Hold the run directory's lock for the block; raise RunLockedError at once if it is taken."""
    path = Path(out_dir) / "train" / "trainer.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # no O_TRUNC: the holder's pid must survive
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            raise RunLockedError(
                f"{out_dir} is being trained by another process ({holder}; lock file {path}); wait for it to "
                f"finish or stop it, then rerun"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
