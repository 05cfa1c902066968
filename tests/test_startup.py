"""A job pays start-up only for what it uses: the light commands load no torch, transformers or
verl, `rlev --help` not even pandas; every command logs its start-up against its work."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from test_report_tables import VALUES, write_run

HEAVY = ("torch", "transformers", "verl", "ray", "aiohttp", "pandas", "numpy", "matplotlib")
# Runs the CLI as a job does and reports which heavy modules the command loaded.
PROBE = """
import sys
from rlev.cli import main
try:
    main(sys.argv[1:])
except SystemExit as e:
    if e.code:
        raise
print("LOADED=" + ",".join(m for m in %r if m in sys.modules))
""" % (HEAVY,)


def rlev_command(*args: str, cwd) -> tuple[set[str], str]:
    """(heavy modules loaded, stderr) of `rlev ARGS` in a fresh interpreter."""
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = proc.stdout.strip().splitlines()[-1].removeprefix("LOADED=")
    return set(filter(None, loaded.split(","))), proc.stderr


def test_help_loads_nothing_heavy(tmp_path):
    loaded, _ = rlev_command("--help", cwd=tmp_path)
    assert not loaded


def test_table_commands_load_no_torch(tmp_path):
    runs = [
        write_run(tmp_path, "rloo", reward, 0, np.arange(10) < k, VALUES)
        for reward, k in (("correctness", 4), ("human", 6))
    ]
    loaded, stderr = rlev_command("report", "table8", "--runs", *runs, "--out", str(tmp_path / "table8"), cwd=tmp_path)
    assert (tmp_path / "table8.md").exists() and (tmp_path / "table8.html").exists()  # the HTML by the same job
    assert not loaded & {"torch", "transformers", "verl", "ray"}, loaded
    assert "rlev report: start-up" in stderr


def test_values_command_loads_no_torch(tmp_path):
    rows = pd.DataFrame(
        {
            "id": ["q0", "q1", "q2"],
            "exam_id": ["e0"] * 3,
            "question": ["1+1=?", "2+1=?", "3+1=?"],
            "system": [""] * 3,
            "answer": ["2", "3", "4"],
            "score": [1.0, 2.0, 7.0],
            "total": [10.0] * 3,
            "value": [0.1, 0.2, 0.7],
            "difficulty": ["junior"] * 3,
            "split": ["train"] * 3,
        }
    )
    rows.to_parquet(tmp_path / "train.parquet")
    run = {
        "run_id": "test/human",
        "out_dir": str(tmp_path / "run"),
        "seed": 0,
        "dataset": {"name": "synthetic", "train": str(tmp_path / "train.parquet")},
        "reward": {"variant": "human", "alpha": 10, "form": "additive_clipped"},
    }
    loaded, _ = rlev_command("values", "--spec", json.dumps(run), cwd=tmp_path)
    assert len(pd.read_parquet(tmp_path / "run" / "values.parquet")) == 3
    assert not loaded & {"torch", "transformers", "verl", "ray"}, loaded


def test_rule_verifier_does_not_load_the_judge_client(tmp_path):
    code = (
        "import sys; from rlev.verify import build_verifier, run_verifier; build_verifier({'kind': 'rule'}); "
        "run_verifier({'kind': 'rule'}); print('aiohttp' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def timing_pattern():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from bench_sweep import TIMING
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    return TIMING


def test_the_sweep_benchmark_reads_the_timing_line():
    from rlev.timing import LINE

    m = timing_pattern().search(LINE % ("train", 5.5, 0.25, 5.25, 12.0, 4.5, 11.0))
    assert m and [float(g) for g in m.groups()[1:]] == [5.5, 0.25, 5.25, 12.0, 4.5, 11.0]


def test_timing_counts_module_loads_as_start_up_and_the_rest_as_work(tmp_path, monkeypatch, caplog):
    import logging
    import time

    from rlev.timing import command_timer

    (tmp_path / "slow_module_for_timing.py").write_text("import time\ntime.sleep(0.3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with caplog.at_level(logging.INFO, logger="rlev.timing"), command_timer("probe"):
        import slow_module_for_timing  # noqa: F401

        time.sleep(0.2)
        sum(range(3_000_000))  # CPU work
    (record,) = caplog.records
    _, startup, cli, imports, work, startup_cpu, work_cpu = timing_pattern().search(record.getMessage()).groups()
    assert float(imports) >= 0.3 and float(work) >= 0.2
    assert float(startup) == pytest.approx(float(cli) + float(imports), abs=0.011)
    assert 0.01 < float(work_cpu) < float(work)  # the sum counts, the sleep does not


def test_the_command_process_skips_collecting_garbage_at_exit(tmp_path):
    """Run as the program (no argv), rlev leaves its objects to the OS; called with argv (tests, scripts) it does not."""
    code = (
        "import gc, sys; from rlev.cli import main; sys.argv = ['rlev', 'plan', '--base', %r]; main(); "
        "print('FROZEN', gc.get_freeze_count() > 0); gc.unfreeze(); main(sys.argv[1:]); "
        "print('FROZEN', gc.get_freeze_count() > 0)" % str(REPO / "config.yaml")
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert [line for line in out.stdout.splitlines() if line.startswith("FROZEN")] == ["FROZEN True", "FROZEN False"]
