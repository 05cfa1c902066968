"""The SLURM profile plans the paper's matrix with whole nodes of GPUs on every GPU job (dry run: no sbatch).

Each planned job's resources are also turned into the sbatch call by the SLURM executor
plugin's own functions, so the test checks the flags SLURM would get: `--nodes` and GPUs
per node (`--gres=gpu:N`), never a job-wide `--gpus` that SLURM may spread over nodes.
"""

import re
import shutil
from types import SimpleNamespace

import pytest
import yaml

from conftest import REPO
from rlev.config import load_config, plan_runs

GPU_RULES = {"train_verl", "evaluate_verl", "evaluate_base", "eos", "ood", "ood_base", "predictor_train",
             "predictor_evaluate", "predictor_label"}  # fmt: skip


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


class _Resources(dict):
    __getattr__ = dict.__getitem__


def sbatch_call(res: dict, threads: int = 8) -> str:
    """The sbatch command line the SLURM executor plugin writes for a job with these resources."""
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    typed = _Resources({k: int(v) if re.fullmatch(r"-?\d+", v) else v.strip("'\"") for k, v in res.items()})
    job = SimpleNamespace(resources=typed, threads=threads)
    params = {"run_uuid": "x", "slurm_logfile": "x.log", "comment_str": "x", "account": "-A acc",
              "partition": f"-p {typed['slurm_partition']}", "workdir": "."}  # fmt: skip
    return get_submit_command(job, params) + set_gres_string(job)


def dry_run(snakemake_cmd, tmp_path, scale, *extra):
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    proc = snakemake_cmd(
        "-n",
        "--profile",
        str(REPO / "profiles" / "slurm"),
        *extra,
        "--config",
        f"scale={scale}",
        "dataset=rlev",
        cwd=tmp_path,
    )
    return proc, jobs_with_resources(proc.stdout)


def check_gpu_jobs(jobs, scale_cfg, train_nodes, eval_gpus=None):
    """Every GPU job: whole nodes (nodes, gres gpu:N per node), the GPU partition, no job-wide gpu."""
    gpu_jobs = [(rule, res) for rule, res in jobs if "gpu" in res.get("gres", "")]
    assert {rule for rule, _ in gpu_jobs} >= {"train_verl", "evaluate_verl", "eos", "ood"}
    assert {rule for rule, _ in jobs if rule in GPU_RULES} == {rule for rule, _ in gpu_jobs}
    for rule, res in gpu_jobs:
        assert "gpu" not in res, f"{rule}: a job-wide GPU count may be spread over nodes"
        assert res["slurm_partition"] == "CHANGE_ME_GPU_PARTITION", rule
        assert "cpus_per_task" not in res and res["cpus_per_gpu"] == "8", rule
        call = sbatch_call(res)
        nodes = train_nodes if rule == "train_verl" else 1
        assert f"--nodes={nodes}" in call, (rule, call)
        assert "--gpus" not in call and "--cpus-per-gpu=8" in call, (rule, call)
        per_node = {"train_verl": scale_cfg["gpus_per_node"],
                    "evaluate_verl": eval_gpus or scale_cfg["tensor_parallel"],
                    "evaluate_base": eval_gpus or scale_cfg["tensor_parallel"],
                    "ood": scale_cfg["tensor_parallel"], "ood_base": scale_cfg["tensor_parallel"],
                    "predictor_train": 8}.get(rule, 1)  # fmt: skip
        assert f"--gres=gpu:{per_node}" in call, (rule, call)
    return gpu_jobs


@pytest.mark.parametrize("scale", ["7B", "32B"])
def test_profile_plans_the_paper_matrix_on_whole_gpu_nodes(snakemake_cmd, tmp_path, scale):
    proc, jobs = dry_run(snakemake_cmd, tmp_path, scale)
    config = load_config(REPO / "config.yaml", {"scale": scale, "dataset": "rlev"})
    expected_runs = len(plan_runs(config))
    scale_cfg = config["scales"][scale]

    train = [res for rule, res in jobs if rule == "train_verl"]
    assert len(train) == expected_runs
    assert all(res["mem_mb"] == str(scale_cfg["mem_mb"]) for res in train)
    assert len([rule for rule, _ in jobs if rule == "evaluate_verl"]) == expected_runs
    # the base model by its Hub id (Tables 1 and 3's base rows) is evaluated too
    assert any(rule == "evaluate_base" for rule, _ in jobs)
    assert any(f"results/models/rlev/{scale}/base_eval/metrics.json" in line for line in proc.stdout.splitlines())
    check_gpu_jobs(jobs, scale_cfg, train_nodes=1)
    assert any("results/ood/data/gpqa_diamond.parquet" in line for line in proc.stdout.splitlines())
    if scale == "7B":
        # `dataset=rlev` switches the companions too: WebInstruct for Table 3.
        assert any("results/data/webinstruct/" in line for line in proc.stdout.splitlines())
        assert any(rule == "predictor_train" for rule, _ in jobs)
    else:
        # The paper trains only the main table (and evaluates it on OOD) at 32B.
        assert expected_runs == 6 * len(config["seeds"]) and not any(rule == "predictor_train" for rule, _ in jobs)
        assert int(scale_cfg["mem_mb"]) >= 600000  # full offload: 16 bytes per parameter on the host

    # CPU rules ask for no GPU and land on the CPU partition.
    prepare = [res for rule, res in jobs if rule == "prepare"]
    assert prepare and all("gres" not in res or res["gres"] in ("", "''") for res in prepare)
    assert all(res["slurm_partition"] == "CHANGE_ME_CPU_PARTITION" for res in prepare)
    assert "--gres" not in sbatch_call(prepare[0]) and "--nodes" not in sbatch_call(prepare[0])
    assert not [rule for rule, _ in jobs if rule in ("train_local", "sft", "init_model")]


def test_a_run_with_the_profiles_placeholders_stops_before_any_job(snakemake_cmd, tmp_path):
    shutil.copy(REPO / "tests" / "config_smoke" / "config.yaml", tmp_path / "config.yaml")
    # the local executor stands in for sbatch: the check runs before any job, whatever executes it
    proc = snakemake_cmd(
        "--profile",
        str(REPO / "profiles" / "slurm"),
        "--executor",
        "local",
        "--cores",
        "1",
        "data/synthetic/exams.jsonl",
        cwd=tmp_path,
        check=False,
    )
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


def test_profile_gives_a_verl_served_judge_its_own_nodes(snakemake_cmd, tmp_path):
    """A judge that verl serves in a pool of its own: each training job spans the policy's
    nodes plus the judge's (rlev.train.verl.job_nodes), evaluation serves it beside the policy."""
    judge = tmp_path / "judge.yaml"
    judge.write_text(yaml.safe_dump({"reward": {"verifier": {"kind": "judge", "model": "Qwen/Qwen2.5-72B-Instruct"}}}))
    _, jobs = dry_run(snakemake_cmd, tmp_path, "7B", "--configfile", str(judge))
    config = load_config(REPO / "config.yaml", {"scale": "7B", "dataset": "rlev"})
    train = [res for rule, res in jobs if rule == "train_verl"]
    assert train and all(res["nodes"] == "2" for res in train)
    check_gpu_jobs(jobs, config["scales"]["7B"], train_nodes=2, eval_gpus=4)  # the judge's tensor_parallel
    assert {res["gres"].strip("'\"") for rule, res in jobs if rule == "evaluate_verl"} == {"gpu:4"}
