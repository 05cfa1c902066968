"""The SLURM profile plans the paper's matrix with GPUs on the GPU rules (dry run: no sbatch)."""

import re
import shutil

import pytest

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
