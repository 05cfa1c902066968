"""The client side of rlev.jobserver: an `rlev` command that runs in a child of the server.

Kept apart from the server, which imports the CLI to run commands, so that the CLI can
import this without an import cycle.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from pathlib import Path

ENV = "RLEV_JOBSERVER"  # the socket path; set by the Snakefile's onstart for its jobs
OFF_ENV = "RLEV_NO_JOBSERVER"  # 1: never start or use one


def code_fingerprint() -> str:
    """The rlev source files' paths, sizes and modification times, and the Python environment:
    a server whose fingerprint differs from its client's would run other code."""
    root = Path(__file__).resolve().parent
    parts = [sys.prefix]
    for path in sorted(root.rglob("*.py")):
        st = path.stat()
        parts.append(f"{path.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}")
    return "\n".join(parts)


def run_via_server(argv: list[str], startup: tuple[float, float]) -> int | None:
    """Run `argv` (sys.argv) in a child of the server named by RLEV_JOBSERVER; its exit status.

    startup: this process's wall and CPU seconds so far, counted as the command's start-up.
    None when there is no usable server: the caller runs the command itself.
    """
    path = os.environ.get(ENV)
    if not path or os.environ.get(OFF_ENV) == "1":
        return None
    request = {
        "argv": argv,
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "fingerprint": code_fingerprint(),
        "startup": startup,
    }
    try:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(path)
        socket.send_fds(conn, [json.dumps(request).encode() + b"\n"], [0, 1, 2])
        reader = conn.makefile("rb")
        reply = json.loads(reader.readline() or b"{}")
    except (OSError, ValueError):
        return None  # no server (yet), or it went away: run here
    if "pid" not in reply:
        return None  # refused (another environment or older code): run here
    child = reply["pid"]

    def forward(signum, _frame):
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            pass

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, forward)
    line = reader.readline()  # a forwarded signal does not interrupt the read (PEP 475 retries it)
    if not line:
        print(
            f"rlev: the job server at {path} stopped while running this command (pid {child}); "
            "run it again (RLEV_NO_JOBSERVER=1 runs commands without it)",
            file=sys.stderr,
        )
        return 1
    return int(json.loads(line)["exit"])
