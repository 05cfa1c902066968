"""The Snakemake workflow itself: the default plan, and a smoke-sized run through every rule."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO


def planned_jobs(stdout: str) -> dict[str, int]:
    """Job counts from the 'Job stats' table of a dry run."""
    counts, in_table = {}, False
    for line in stdout.splitlines():
        if line.startswith("job "):
            in_table = True
            continue
        if in_table:
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                counts[parts[0]] = int(parts[1])
            elif counts:
                break
    return counts


def test_default_config_plans_the_main_table(snakemake_cmd, tmp_path):
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    proc = snakemake_cmd("-n", "--cores", "2", cwd=tmp_path)
    jobs = planned_jobs(proc.stdout)
    from rlev.config import experiment_runs, load_config, plan_runs

    config = load_config(tmp_path / "config.yaml")
    runs = plan_runs(config)  # every experiment's runs, each once
    assert jobs["train_local"] == len(runs) and jobs["evaluate_run"] == len(runs)
    datasets = {r.dataset for r in runs}  # the exam data and the noisy-value data (Table 3)
    assert jobs["sft"] == len(datasets) and jobs["prepare"] == len(datasets) and jobs["table1"] == 1
    assert jobs["table2"] == 1 and jobs["ood_run"] == len(experiment_runs(config, "ood"))
    assert jobs["table3"] == 1 and jobs["predictor_train"] == jobs["predictor_label"] == 1


def test_a_bad_config_stops_the_workflow_naming_the_key(snakemake_cmd, tmp_path):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["scales"]["tiny"]["rl_steps"] = -1
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake_cmd("-n", "--cores", "1", cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert "scales.tiny.rl_steps" in proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The smoke config run once through every rule of the default sweep (2-3 minutes)."""
    import os
    import subprocess
    import sys

    workdir = tmp_path_factory.mktemp("smoke")
    shutil.copy(REPO / "tests" / "config_smoke" / "config.yaml", workdir / "config.yaml")
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}

    def run(*args):
        cmd = [str(Path(bindir) / "snakemake"), "--snakefile", str(REPO / "Snakefile"), *args]
        proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        return proc

    run("--cores", "2")
    return workdir, run


@pytest.mark.slow
def test_smoke_run_writes_every_table_from_run_directories(smoke):
    workdir, _ = smoke
    tables = workdir / "results" / "tables"
    table1 = pd.read_csv(tables / "table1.csv")
    assert len(table1) == 4  # smoke: RLOO and mean-centred GRPO x {correctness, human}
    assert set(table1["reward"]) == {"correctness", "human-aligned"}
    assert table1["estimator"].str.contains("GRPO \\(mean-centred\\)").any()
    for name in ("table2", "table3", "table4", "table5", "table6", "table8", "bootstrap", "value_stats"):
        assert (tables / f"{name}.csv").exists() and (tables / f"{name}.html").exists(), name
    for name in ("figure2", "figure3", "figure4"):
        assert (workdir / "results" / "figures" / f"{name}.png").exists(), name
    # every cell is traceable to run directories that hold the run's config, metrics and model
    for run_dirs in table1["runs"]:
        for run_dir in run_dirs.split(";"):
            run = workdir / run_dir
            config = yaml.safe_load((run / "config.yaml").read_text())
            assert config["out_dir"] == run_dir and config["seed"] == 0
            steps = [json.loads(line) for line in (run / "train" / "metrics.jsonl").read_text().splitlines()]
            assert [s["step"] for s in steps] == [0, 1]
            assert (run / "model" / "config.json").exists()
            samples = pd.read_parquet(run / "eval" / "samples.parquet")
            assert len(samples) == 15  # 3 test exams x 5 questions
    assert (workdir / "results" / "data" / "synthetic" / "rejects.csv").exists()


@pytest.mark.slow
def test_a_second_run_has_nothing_to_do(smoke):
    _, run = smoke
    proc = run("-n", "--cores", "2")
    assert "Nothing to be done" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_html_report_holds_every_table_and_figure(smoke):
    workdir, run = smoke
    run("--report", "results/report.html")
    report = (workdir / "results" / "report.html").read_text()
    for name in ("table1", "table2", "table3", "table4", "table5", "table6", "table8", "bootstrap"):
        assert f"{name}.html" in report, f"{name}.html is not in the report"
    for name in ("figure2", "figure3", "figure4"):
        assert f"{name}.png" in report, f"{name}.png is not in the report"
    assert "Table 8 of the paper" in report  # a caption, rendered
