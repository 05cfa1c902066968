"""rlev.jobserver: a command forked from the loaded server computes what a fresh process does,
writes into the caller's files, exits with its status, stops on the caller's Ctrl-C or death,
and is run in-process when the server holds other code."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

from conftest import REPO
from test_train_local import ESTIMATORS, make_run, read_metrics, weights, without_timing

RLEV = str(shutil.which("rlev", path=os.path.dirname(sys.executable)))


def test_every_preloaded_module_exists():
    import importlib.util

    from rlev.jobserver import PRELOAD

    assert [m for m in PRELOAD if importlib.util.find_spec(m) is None] == []


def start_server(tmp_path, preload="rlev.cli,rlev.train.local", pythonpath=None):
    sock = tmp_path / "server.sock"
    log = open(tmp_path / "server.log", "w")
    env = {**os.environ, **({"PYTHONPATH": pythonpath} if pythonpath else {})}
    env.pop("RLEV_JOBSERVER", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rlev.jobserver",
            "--socket",
            str(sock),
            "--parent",
            str(os.getpid()),
            "--preload",
            preload,
        ],
        stdout=log,
        stderr=log,
        env=env,
        cwd=tmp_path,
    )
    deadline = time.time() + 120
    while not sock.exists():
        assert proc.poll() is None, (tmp_path / "server.log").read_text()
        assert time.time() < deadline, "the job server did not start"
        time.sleep(0.1)
    return proc, str(sock)


@pytest.fixture
def server(tmp_path):
    proc, sock = start_server(tmp_path)
    yield sock
    proc.terminate()
    proc.wait(10)


def rlev(*args, sock=None, cwd=REPO, **kw):
    env = {k: v for k, v in os.environ.items() if k != "RLEV_JOBSERVER"}
    if sock:
        env["RLEV_JOBSERVER"] = sock
    return subprocess.run([RLEV, *args], cwd=cwd, env=env, capture_output=True, text=True, **kw)


def served_pids(tmp_path):
    return [
        int(line.split("pid ")[1].split(":")[0])
        for line in (tmp_path / "server.log").read_text().splitlines()
        if ": pid " in line
    ]


def write_run(toy, tmp_path, name, **scale):
    run = make_run(toy, tmp_path / name, ESTIMATORS["rloo"], **scale)
    run["dataset"]["test"] = str(toy["train"])  # evaluated after training, like a workflow run
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(yaml.safe_dump(run))
    return spec


def test_a_run_trained_by_the_server_equals_one_trained_by_a_fresh_process(toy, tmp_path, server):
    fresh = rlev("train", "--spec", str(write_run(toy, tmp_path, "spec")), "--out", str(tmp_path / "fresh"))
    assert fresh.returncode == 0, fresh.stderr
    assert served_pids(tmp_path) == []
    forked = rlev("train", "--spec", str(tmp_path / "spec.yaml"), "--out", str(tmp_path / "forked"), sock=server)
    assert forked.returncode == 0, forked.stderr
    assert len(served_pids(tmp_path)) == 1  # it did go through the server
    assert "rlev train: start-up" in forked.stderr  # the child's log reaches the caller's stderr
    a, b = read_metrics(tmp_path / "fresh"), read_metrics(tmp_path / "forked")
    assert without_timing(a) == without_timing(b) and len(a) == 2
    wa, wb, w0 = weights(tmp_path / "fresh" / "model"), weights(tmp_path / "forked" / "model"), weights(toy["sft"])
    assert all((wa[k] == wb[k]).all() for k in wa)
    assert any(not (wa[k] == w0[k]).all() for k in wa)  # training changed the policy
    ma, mb = (json.loads((tmp_path / d / "eval" / "metrics.json").read_text()) for d in ("fresh", "forked"))
    assert {**ma, "model": None} == {**mb, "model": None}
    for f in ("eval/samples.parquet", "eval/eos.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "fresh" / f), pd.read_parquet(tmp_path / "forked" / f))


def test_a_failing_command_exits_with_its_status_and_message(tmp_path, server):
    direct = rlev("plan", "--base", "nope.yaml", cwd=tmp_path)
    forked = rlev("plan", "--base", "nope.yaml", cwd=tmp_path, sock=server)
    assert direct.returncode == forked.returncode == 1
    assert "No such file or directory: 'nope.yaml'" in forked.stderr
    assert len(served_pids(tmp_path)) == 1
    ok = rlev("plan", cwd=REPO, sock=server)
    assert ok.returncode == 0 and ok.stdout == rlev("plan", cwd=REPO).stdout


def wait_for_steps(run_dir, proc, steps=1, timeout=120):
    deadline = time.time() + timeout
    metrics = run_dir / "train" / "metrics.jsonl"
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= steps):
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline
        time.sleep(0.05)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie waiting for the server to reap it is gone as far as the run is concerned
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("how", ["ctrl-c", "kill -9"])
def test_stopping_the_caller_stops_the_command(toy, tmp_path, server, how):
    spec = write_run(toy, tmp_path, "long", rl_steps=10_000)
    env = {**os.environ, "RLEV_JOBSERVER": server}
    client = subprocess.Popen(
        [RLEV, "train", "--spec", str(spec), "--out", str(tmp_path / "run")],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_steps(tmp_path / "run", client)
    (child,) = served_pids(tmp_path)
    client.send_signal(signal.SIGINT if how == "ctrl-c" else signal.SIGKILL)
    client.wait(30)
    assert client.returncode != 0
    deadline = time.time() + 30
    while alive(child):
        assert time.time() < deadline, f"pid {child} still runs"
        time.sleep(0.05)
    if how == "ctrl-c":
        assert client.returncode == 128 + signal.SIGINT  # as a shell reports a command stopped by Ctrl-C


def test_a_server_holding_other_code_is_not_used(tmp_path):
    copy = tmp_path / "old"
    shutil.copytree(REPO / "rlev", copy / "rlev", copy_function=shutil.copy)  # other modification times
    proc, sock = start_server(tmp_path, preload="rlev.cli", pythonpath=str(copy))
    try:
        out = rlev("plan", cwd=REPO, sock=sock)
        assert out.returncode == 0 and "seed0" in out.stdout
        assert served_pids(tmp_path) == []  # refused: the command ran in its own process
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_server_stops_when_the_process_that_started_it_is_gone(tmp_path):
    sock = tmp_path / "s.sock"
    # a shell stands in for Snakemake: it starts the server as its child, then exits
    starter = subprocess.Popen(
        [
            "sh",
            "-c",
            f"{sys.executable} -m rlev.jobserver --socket {sock} --parent $$ "
            f"--preload rlev.cli > {tmp_path / 'server.log'} 2>&1 & "
            f"while [ ! -S {sock} ]; do sleep 0.05; done",
        ]
    )
    starter.wait(120)
    deadline = time.time() + 10
    while sock.exists():
        assert time.time() < deadline, "the server outlived its parent"
        time.sleep(0.05)
    assert "stopped after 0 commands" in (tmp_path / "server.log").read_text()
