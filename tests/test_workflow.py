"""The Snakemake workflow itself: the default plan, and a smoke-sized run through every rule."""

import json
import shutil

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


@pytest.mark.slow
def test_smoke_run_through_every_rule(snakemake_cmd, tmp_path):
    shutil.copy(REPO / "tests" / "config_smoke" / "config.yaml", tmp_path / "config.yaml")
    snakemake_cmd("--cores", "2", cwd=tmp_path)

    table = pd.read_csv(tmp_path / "results" / "tables" / "table1.csv")
    assert len(table) == 6
    assert set(table["reward"]) == {"correctness", "human-aligned"}
    assert table["estimator"].str.contains("GRPO \\(mean-centred\\)").any()
    for run_dirs in table["runs"]:
        for run_dir in run_dirs.split(";"):
            run = tmp_path / run_dir
            config = yaml.safe_load((run / "config.yaml").read_text())
            assert config["out_dir"] == run_dir and config["seed"] == 0
            steps = [json.loads(line) for line in (run / "train" / "metrics.jsonl").read_text().splitlines()]
            assert [s["step"] for s in steps] == [0, 1]
            assert (run / "model" / "config.json").exists()
            samples = pd.read_parquet(run / "eval" / "samples.parquet")
            assert len(samples) == 15  # 3 test exams x 5 questions
    assert (tmp_path / "results" / "data" / "synthetic" / "rejects.csv").exists()

    # A second invocation finds everything up to date.
    proc = snakemake_cmd("-n", "--cores", "2", cwd=tmp_path)
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_default_config_plans_the_reward_ablations_once_each(snakemake_cmd, tmp_path):
    """Tables 4-6 (RLOO): ablation, alpha sweep and reward form share runs with Table 1 and each other."""
    import re

    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    proc = snakemake_cmd("-n", "--cores", "2", cwd=tmp_path)
    jobs = planned_jobs(proc.stdout)
    trained = set(re.findall(r"results/runs/synthetic/tiny/([a-z_+]+/[^/\s]+)/seed0/train/metrics\.jsonl", proc.stdout))
    # 6 main + uniform + shuffled + alphas 1, 5, 15, 20 + multiplicative (RLOO / human / a10 is shared)
    assert len(trained) == 13
    assert {run for run in trained if run.startswith("rloo/")} == {
        "rloo/correctness", "rloo/uniform-a10-additive_clipped", "rloo/shuffled-a10-additive_clipped",
        *(f"rloo/human-a{a}-additive_clipped" for a in (1, 5, 10, 15, 20)), "rloo/human-a10-multiplicative",
    }  # fmt: skip
    assert jobs["table4"] == jobs["table5"] == jobs["table6"] == 1
    for table in ("table4", "table5", "table6"):
        assert f"results/tables/{table}.csv" in proc.stdout and f"results/tables/{table}.md" in proc.stdout
