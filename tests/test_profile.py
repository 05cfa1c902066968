"""The SLURM profile plans the paper's matrix with GPUs on the GPU rules (dry run: no sbatch)."""

import re
import shutil

import pytest
import yaml

from conftest import REPO
from rlev.config import load_config, plan_runs


def jobs_with_resources(stdout: str) -> list[tuple[str, dict]]:
    """(rule, resources) for every job a dry run prints."""
    jobs, rule = [], None
    for line in stdout.splitlines():
        if m := re.match(r"(?:local)?rule (\w+):", line):
            rule = m.group(1)
        elif rule and line.strip().startswith("resources:"):
            pairs = (item.split("=", 1) for item in line.split(":", 1)[1].split(", "))
            jobs.append((rule, {k.strip(): v for k, v in pairs}))
            rule = None
    return jobs


@pytest.mark.parametrize("scale", ["7B", "32B"])
def test_profile_plans_the_paper_matrix_on_gpus(snakemake_cmd, tmp_path, scale):
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    proc = snakemake_cmd("-n", "--profile", str(REPO / "profiles" / "slurm"), "--config", f"scale={scale}",
                         "dataset=rlev", cwd=tmp_path)
    jobs = jobs_with_resources(proc.stdout)
    config = load_config(REPO / "config.yaml", {"scale": scale, "dataset": "rlev"})
    expected_runs = len(plan_runs(config))

    train = [res for rule, res in jobs if rule == "train_verl"]
    assert len(train) == expected_runs
    for res in train:
        assert res["gpu"] == str(config["scales"][scale]["gpus_per_node"])
        assert res["cpus_per_gpu"] == "8" and "cpus_per_task" not in res
        assert res["slurm_partition"] == "CHANGE_ME_GPU_PARTITION"

    evaluate = [res for rule, res in jobs if rule == "evaluate_verl"]
    assert len(evaluate) == expected_runs
    assert all(res["gpu"] == str(config["scales"][scale]["tensor_parallel"]) for res in evaluate)

    # Every job that asks for a GPU lands on the GPU partition, never with cpus_per_task.
    gpu_jobs = [(rule, res) for rule, res in jobs if int(res.get("gpu", 0)) > 0]
    assert {rule for rule, _ in gpu_jobs} >= {"train_verl", "evaluate_verl", "eos_run", "ood_run", "predictor_train"}
    for rule, res in gpu_jobs:
        assert res["slurm_partition"] == "CHANGE_ME_GPU_PARTITION", rule
        assert "cpus_per_task" not in res and res["cpus_per_gpu"] == "8", rule
    # `dataset=rlev` switches the companions too: WebInstruct for Table 3, the paper's benchmarks for Table 2.
    assert any("results/data/webinstruct/" in line for line in proc.stdout.splitlines())
    assert any("results/ood/data/gpqa_diamond.parquet" in line for line in proc.stdout.splitlines())

    # CPU rules ask for no GPU and land on the CPU partition.
    prepare = [res for rule, res in jobs if rule == "prepare"]
    assert prepare and all("gpu" not in res and res["slurm_partition"] == "CHANGE_ME_CPU_PARTITION" for res in prepare)
    assert not [rule for rule, _ in jobs if rule in ("train_local", "sft", "init_model")]


def test_a_run_with_the_profiles_placeholders_stops_before_any_job(snakemake_cmd, tmp_path):
    shutil.copy(REPO / "tests" / "config_smoke" / "config.yaml", tmp_path / "config.yaml")
    # the local executor stands in for sbatch: the check runs before any job, whatever executes it
    proc = snakemake_cmd("--profile", str(REPO / "profiles" / "slurm"), "--executor", "local", "--cores", "1",
                         "data/synthetic/exams.jsonl", cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert "slurm_account=CHANGE_ME_ACCOUNT" in proc.stdout + proc.stderr
    assert "set your account and partitions there" in proc.stdout + proc.stderr
    assert not (tmp_path / "data").exists()  # no job ran


def test_the_default_workflow_profile_leaves_the_slurm_profiles_keys_alone():
    """profiles/default applies beside --profile profiles/slurm and wins key by key: it must set
    none of the SLURM profile's keys (resources, jobs, retries, ...)."""
    default = yaml.safe_load((REPO / "profiles" / "default" / "config.yaml").read_text())
    slurm = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    assert not set(default) & (set(slurm) - {"rerun-incomplete"}), set(default) & set(slurm)
    assert "default-resources" not in default and "set-resources" not in default
