"""A local job server: `rlev` commands forked from one process that has loaded torch once.

A local sweep runs a hundred or more `rlev` processes, and each that touches a model pays
about 5 CPU-seconds to import torch, transformers and verl before it computes anything:
at the default sweep, a third of the work. Like Mercurial's command server (chg) or
Android's zygote, this module keeps one process with those modules loaded and forks a
child for each command; the child is a copy of a fresh interpreter that has imported
them, so it computes exactly what a new process would (same code, same seeds; the tests
compare a run trained both ways), and starts in milliseconds.

Lifecycle (workflow/rules/common.smk): the Snakefile's `onstart` starts the server when the
jobs run on this machine from this environment (not on a cluster, not under `--sdm conda`),
and sets RLEV_JOBSERVER to its socket; `onsuccess`/`onerror` stop it, and it stops by itself
when the Snakemake process that started it is gone. RLEV_NO_JOBSERVER=1 turns it off.

A command (`rlev.cli.main`) with RLEV_JOBSERVER set sends the server its arguments, working
directory, environment and its stdin/stdout/stderr (passed as file descriptors, so the
child writes straight into the job's log), then waits for the child's exit status and
exits with it. Ctrl-C or a kill of the job reaches the child (the client forwards SIGINT,
SIGTERM and SIGHUP; a client that dies is noticed and its child terminated). The command
runs in-process instead, as without a server, whenever the server cannot be reached, was
started from another Python environment, or has loaded an older copy of the rlev code.

The server is single-threaded (a fork copies only the calling thread, so no other
thread may hold a lock at that moment) and never initialises CUDA or runs a torch op
(a child may then use its own GPU and thread settings).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import selectors
import signal
import socket
import sys
import time
import traceback
from pathlib import Path

from rlev.jobclient import ENV, OFF_ENV, code_fingerprint

__all__ = ["ENV", "OFF_ENV", "PRELOAD", "serve", "start", "stop"]

log = logging.getLogger(__name__)

# What the commands that load a model import; everything else (pandas, yaml, matplotlib) too,
# so table and figure jobs start in milliseconds as well.
PRELOAD = (
    "rlev.cli",
    "rlev.train.local",
    "rlev.evaluate.in_domain",
    "rlev.evaluate.ood",
    "rlev.evaluate.eos",
    "rlev.sft",
    "rlev.predictor.local",
    "rlev.predictor.predict",
    "rlev.data.ood",
    "rlev.data.prepare",
    "rlev.values",
    "rlev.report.builders",
    "rlev.report.landing",
    "rlev.analysis.curves",
    "rlev.analysis.figure2",
    "rlev.analysis.mechanism",
    "transformers.models.qwen2.modeling_qwen2",
    "matplotlib.pyplot",
)
_MAX_REQUEST = 1 << 22


# --- server -----------------------------------------------------------------------------------


def _recv_request(conn: socket.socket) -> tuple[dict, list[int]]:
    data, fds, _flags, _addr = socket.recv_fds(conn, 1 << 16, 3)
    chunks = [data]
    while not chunks[-1].endswith(b"\n"):
        more = conn.recv(1 << 16)
        if not more or sum(map(len, chunks)) > _MAX_REQUEST:
            for fd in fds:
                os.close(fd)
            raise ValueError("incomplete request")
        chunks.append(more)
    return json.loads(b"".join(chunks)), fds


def _run_child(request: dict, fds: list[int]) -> None:
    """In the forked child: become the command's process, run it, exit with its status."""
    code = 1
    try:
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = list(request["argv"])
        for handler in list(logging.root.handlers):  # the server's log is not the command's
            logging.root.removeHandler(handler)
        from rlev import cli, timing

        timing.inherit_startup(*request["startup"])
        cli.main(sys.argv[1:], as_process=True)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, int) and e.code is not None:
            print(e.code, file=sys.stderr)
    except KeyboardInterrupt:
        code = 128 + signal.SIGINT
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve(path: str, parent: int, preload: tuple[str, ...] = PRELOAD) -> None:
    """Load `preload`, listen on `path`, fork a child per request until `parent` is gone or SIGTERM."""
    import gc
    import importlib

    from rlev.timing import command_timer

    with command_timer("jobserver"):  # its one-off start-up, for benchmarks/bench_sweep.py
        for name in preload:
            try:
                importlib.import_module(name)
            except ImportError as e:  # a job that needs it imports it itself, as without a server
                log.warning("not preloaded: %s (%s)", name, e)
    fingerprint = code_fingerprint()
    gc.collect()
    gc.freeze()  # children share the loaded modules' pages instead of copying them on a collection
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    tmp = f"{path}.tmp"
    listener.bind(tmp)
    listener.listen(64)
    os.replace(tmp, path)  # clients connect only once everything is loaded
    listener.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    # A child's exit wakes the loop at once (the signal's byte on a socket), so its client
    # hears the status without waiting for the select timeout.
    wake_r, wake_w = socket.socketpair()
    wake_r.setblocking(False)
    wake_w.setblocking(False)
    signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
    sel.register(wake_r, selectors.EVENT_READ)
    children: dict[int, socket.socket] = {}
    stopping = False

    def stop(_signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the jobs (their clients forward it)
    log.info("serving on %s for pid %d", path, parent)
    served = 0
    while not stopping:
        for key, _ in sel.select(timeout=0.5):
            if key.fileobj is wake_r:
                try:
                    while wake_r.recv(4096):
                        pass
                except BlockingIOError:
                    pass
            elif key.fileobj is listener:
                try:
                    conn, _ = listener.accept()
                except BlockingIOError:
                    continue
                conn.setblocking(True)
                try:
                    request, fds = _recv_request(conn)
                except (OSError, ValueError) as e:
                    log.warning("bad request: %s", e)
                    conn.close()
                    continue
                if request.get("fingerprint") != fingerprint:
                    for fd in fds:
                        os.close(fd)
                    conn.sendall(json.dumps({"refused": "another environment or rlev code"}).encode() + b"\n")
                    conn.close()
                    continue
                sys.stdout.flush()  # nothing of the server's may reach the child's files
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    signal.set_wakeup_fd(-1)
                    wake_r.close()
                    wake_w.close()
                    listener.close()
                    sel.close()
                    for other in children.values():
                        other.close()
                    conn.close()
                    _run_child(request, fds)
                for fd in fds:
                    os.close(fd)
                children[pid] = conn
                served += 1
                log.info("pid %d: %s", pid, " ".join(request["argv"][1:3]))
                try:
                    conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
                    sel.register(conn, selectors.EVENT_READ, pid)
                except OSError:
                    pass  # the client went already: the reaping below ends the child
            else:  # a client closed its end: it was killed, so its command must stop too
                if not key.fileobj.recv(1):
                    sel.unregister(key.fileobj)
                    try:
                        os.kill(key.data, signal.SIGTERM)
                    except ProcessLookupError:
                        pass
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            conn = children.pop(pid, None)
            if conn is not None:
                try:
                    sel.unregister(conn)
                except (KeyError, ValueError):
                    pass
                try:
                    conn.sendall(json.dumps({"exit": os.waitstatus_to_exitcode(status)}).encode() + b"\n")
                except OSError:
                    pass
                conn.close()
        if os.getppid() != parent:  # Snakemake is gone without stopping us
            stopping = True
    for pid in children:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    listener.close()
    Path(path).unlink(missing_ok=True)
    log.info("stopped after %d commands", served)


# --- started and stopped by the Snakefile ---------------------------------------------------


def start(log_path: Path, preload: tuple[str, ...] = PRELOAD) -> tuple[object, str]:
    """Start a server for this process's jobs: (the process, its socket path); sets RLEV_JOBSERVER.

    Returns immediately; commands run in-process until the server has loaded its modules.
    """
    import subprocess
    import tempfile

    sock_dir = tempfile.mkdtemp(prefix="rlev-jobs-")  # a short path: sockets allow ~100 bytes
    path = os.path.join(sock_dir, "server.sock")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != ENV}
    cmd = [
        sys.executable,
        "-m",
        "rlev.jobserver",
        "--socket",
        path,
        "--parent",
        str(os.getpid()),
        "--preload",
        ",".join(preload),
    ]
    with open(log_path, "a") as log_file:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, env=env, start_new_session=True
        )  # outside the console's process group: Ctrl-C goes to jobs
    os.environ[ENV] = path
    return proc, path


def stop(proc, path: str, timeout: float = 10.0) -> None:
    """Stop a server started by `start` (its running commands are terminated) and unset RLEV_JOBSERVER."""
    os.environ.pop(ENV, None)
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except Exception:
            proc.kill()
    Path(path).unlink(missing_ok=True)
    try:
        os.rmdir(os.path.dirname(path))
    except OSError:
        pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rlev.jobserver", description=__doc__.split("\n")[0])
    parser.add_argument("--socket", required=True)
    parser.add_argument("--parent", type=int, required=True, help="stop when this process is gone")
    parser.add_argument("--preload", default=",".join(PRELOAD), help="modules to load, comma-separated")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    start_time = time.perf_counter()
    serve(args.socket, args.parent, tuple(m for m in args.preload.split(",") if m))
    log.info("ran %.0f s", time.perf_counter() - start_time)


if __name__ == "__main__":
    main()
