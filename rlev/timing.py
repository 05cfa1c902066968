"""Start-up against work of one `rlev` command, written as one line at its end.

    rlev train: start-up 5.84 s (interpreter and CLI 0.31 s, imports 5.53 s), work 11.20 s;
      CPU: start-up 5.02 s, work 10.90 s      (one line in the log)

A pipeline job pays start-up before it computes anything: the interpreter, the CLI, and
every module the command imports (torch, transformers, verl, pandas, ...), whether at the
top of a module or inside a function. Start-up is measured as

- interpreter and CLI: the process's age when the command starts (from the kernel's
  record of the process start on Linux; unknown elsewhere), and
- imports: the wall time spent loading modules while the command runs (the outermost of
  nested loads; a module already loaded costs nothing),

and work is the rest of the command's wall time. The same split in CPU seconds (the
process's CPU time when the command starts, plus the main thread's CPU time in module
loading, against the rest) does not grow when other processes share the cores.
benchmarks/bench_sweep.py reads these lines from the job logs. Measuring costs two timer
pairs per module loaded.
"""

from __future__ import annotations

import contextlib
import importlib._bootstrap as _bootstrap
import logging
import os
import threading
import time

log = logging.getLogger("rlev.timing")

# Start-up paid by another process for this command: the `rlev` client of rlev.jobserver,
# whose forked child runs the command (wall seconds, CPU seconds); added to the child's own.
_inherited = (0.0, 0.0)


def inherit_startup(wall: float, cpu: float) -> None:
    """Count the client's start-up (wall, CPU seconds) as this command's (rlev.jobserver's child)."""
    global _inherited
    _inherited = (wall, cpu)


# What benchmarks/bench_sweep.py parses; keep the two in step.
LINE = (
    "rlev %s: start-up %.2f s (interpreter and CLI %.2f s, imports %.2f s), work %.2f s; "
    "CPU: start-up %.2f s, work %.2f s"
)


def process_age() -> float | None:
    """Seconds since this process started (Linux: /proc/self/stat against CLOCK_BOOTTIME); None if unknown."""
    try:
        with open("/proc/self/stat") as f:
            stat = f.read()
        # Field 22 (starttime, clock ticks since boot); fields after the command name, which may hold spaces.
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])
        return max(time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / os.sysconf("SC_CLK_TCK"), 0.0)
    except (OSError, ValueError, IndexError, AttributeError):
        return None


class _ImportClock:
    """Wall and CPU time spent inside importlib's module loading (outermost calls only)."""

    def __init__(self):
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self._depth = 0
        self._thread = threading.get_ident()  # loads in other threads overlap the main one's: not counted
        self._original = _bootstrap._find_and_load

    def _find_and_load(self, *args, **kwargs):
        if self._depth or threading.get_ident() != self._thread:
            return self._original(*args, **kwargs)
        self._depth += 1
        start, start_cpu = time.perf_counter(), time.thread_time()
        try:
            return self._original(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start
            self.cpu_seconds += time.thread_time() - start_cpu
            self._depth -= 1

    def __enter__(self):
        # Both the import statement and importlib.import_module load through this function.
        _bootstrap._find_and_load = self._find_and_load
        return self

    def __exit__(self, *exc):
        _bootstrap._find_and_load = self._original


@contextlib.contextmanager
def command_timer(command: str):
    """Time the body as `command`; log LINE when it ends (also when it fails)."""
    before, before_cpu = process_age(), time.process_time()
    if before is not None:
        before += _inherited[0]
    before_cpu += _inherited[1]
    start = time.perf_counter()
    with _ImportClock() as imports:
        try:
            yield
        finally:
            total, total_cpu = time.perf_counter() - start, time.process_time() - before_cpu
            cli = before if before is not None else float("nan")
            log.info(
                LINE,
                command,
                (before or 0.0) + imports.seconds,
                cli,
                imports.seconds,
                max(total - imports.seconds, 0.0),
                before_cpu + imports.cpu_seconds,
                max(total_cpu - imports.cpu_seconds, 0.0),
            )
