"""Progress of a long step (SFT, RL, generation).

On a terminal this is tqdm's bar. In a log file (a Snakemake job's stderr) a bar redrawn
with carriage returns becomes one unreadable line, so there it is one plain line every
`every` seconds and one at the end:

    synthetic/tiny/rloo/correctness/seed0: 40/60 (67%), 12 s, eta 6 s, acc=0.91 len=30.5
"""

from __future__ import annotations

import sys
import time

from tqdm import tqdm


def progress(iterable, desc: str, total: int | None = None, initial: int = 0, every: float = 30.0, stream=None):
    """`iterable` with progress reports on `stream` (stderr); `total` counts `initial` steps already done."""
    stream = sys.stderr if stream is None else stream
    if stream.isatty():
        return tqdm(iterable, desc=desc, total=total, initial=initial, mininterval=5, file=stream)
    return LineProgress(iterable, desc, total, initial, every, stream)


class LineProgress:
    """tqdm's iteration and `set_postfix` as plain lines: at most one per `every` seconds, and the last."""

    def __init__(self, iterable, desc: str, total: int | None, initial: int, every: float, stream):
        self.iterable, self.desc, self.initial, self.every, self.stream = iterable, desc, initial, every, stream
        self.total = total if total is not None else initial + len(iterable)
        self.postfix: dict = {}

    def set_postfix(self, **values) -> None:
        self.postfix = values

    def __iter__(self):
        start = last = time.monotonic()
        done = self.initial
        for item in self.iterable:
            yield item
            done += 1
            now = time.monotonic()
            if now - last >= self.every or done >= self.total:
                self._write(done, now - start)
                last = now

    def _write(self, done: int, elapsed: float) -> None:
        rate = (done - self.initial) / elapsed if elapsed > 0 else 0.0
        eta = f"{(self.total - done) / rate:.0f} s" if rate > 0 else "?"
        share = f"{100 * done / self.total:.0f}%" if self.total else "-"
        extra = " ".join(f"{k}={v}" for k, v in self.postfix.items())
        line = f"{self.desc}: {done}/{self.total} ({share}), {elapsed:.0f} s, eta {eta}" + (
            f", {extra}" if extra else ""
        )
        print(line, file=self.stream, flush=True)
