"""The README's "Changing one thing" section, executed as written, at the smoke scale.

The YAML and the commands are read from README.md itself, so the README cannot drift from
what works. The working folder's config.yaml is the smoke config (tiny model, 2 RL steps)
laid out like the shipped one: the noisy-value and OOD experiments take their data from
the main dataset's companions.
"""

from __future__ import annotations

import re
import shlex

import pandas as pd
import pytest
import yaml

from conftest import REPO, readme_bullet, readme_section, run_snakemake, yaml_block
from rlev.report.runs import STARTING_POLICY
from test_own_data import write_own_csv
from test_workflow import planned_jobs, planned_tables


def commands(bullet: str) -> list[list[str]]:
    """The snakemake commands a bullet gives (in backticks), as argument lists."""
    return [shlex.split(c) for c in re.findall(r"`(snakemake [^`]+)`", bullet.replace("\n  ", " "))]


def smoke_config() -> dict:
    """The smoke config, with the shipped config's companions and a small matrix."""
    config = yaml.safe_load((REPO / "tests" / "config_smoke" / "config.yaml").read_text())
    shipped = yaml.safe_load((REPO / "config.yaml").read_text())
    for name in ("noisy", "benchmarks"):
        config["datasets"]["synthetic"][name] = shipped["datasets"]["synthetic"][name]
    del config["experiments"]["noisy"]["dataset"], config["experiments"]["ood"]["benchmarks"]
    config["experiments"]["main"]["estimators"] = ["rloo"]
    for name in ("ablation", "alpha"):
        del config["experiments"][name]
    return config


@pytest.fixture(scope="module")
def own_data_run(tmp_path_factory):
    """The own-data bullet, from an empty folder to the tables."""
    workdir = tmp_path_factory.mktemp("readme")
    (workdir / "config.yaml").write_text(yaml.safe_dump(smoke_config(), sort_keys=False))
    bullet = readme_bullet("your own exam data")
    mine = yaml_block(bullet)
    (workdir / "mine.yaml").write_text(yaml.safe_dump(mine))
    (name,) = mine["datasets"]
    write_own_csv(workdir / mine["datasets"][name]["path"])
    (command, *_) = commands(bullet)
    proc = run_snakemake(*command[1:], cwd=workdir)
    return workdir, name, command, proc


@pytest.mark.slow
def test_own_csv_from_scratch_to_tables(own_data_run):
    workdir, name, _, proc = own_data_run
    assert "rlev: skipping experiments.noisy (Table 3)" in proc.stderr
    assert "rlev: skipping experiments.ood (Table 2)" in proc.stderr
    stats = yaml.safe_load((workdir / "results" / "data" / name / "stats.json").read_text())
    assert stats["input_rows"] == 60 and stats["rejected_rows"] == 0
    table1 = pd.read_csv(workdir / "results" / "tables" / "table1.csv")
    table1 = table1[table1["estimator"] != STARTING_POLICY]
    assert table1["runs"].str.contains(f"results/runs/{name}/tiny/rloo/").all()
    for table in ("table1", "table6", "table8", "bootstrap", "value_stats"):
        assert (workdir / "results" / "tables" / f"{table}.md").is_file(), table
    assert not (workdir / "results" / "tables" / "table2.md").exists()
    assert not (workdir / "results" / "tables" / "table3.md").exists()
    metrics = (
        (workdir / "results" / "runs" / name / "tiny" / "rloo" / "correctness" / "seed0" / "train" / "metrics.jsonl")
        .read_text()
        .splitlines()
    )
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    assert len(metrics) == config["scales"]["tiny"]["rl_steps"]  # every RL step of the smoke scale ran


@pytest.mark.slow
def test_another_alpha_from_its_own_file(own_data_run):
    """`mine.yaml` holding `reward: {alpha: 5}`: only the runs that use alpha are planned again."""
    workdir, name, own_command, _ = own_data_run
    bullet = readme_bullet("another alpha")
    holding = re.search(r"`mine\.yaml` holding `([^`]+)`", bullet)
    assert holding, "the alpha bullet names what mine.yaml holds"
    change = yaml.safe_load(holding.group(1))
    mine = yaml.safe_load((workdir / "mine.yaml").read_text())
    (workdir / "alpha.yaml").write_text(yaml.safe_dump({**mine, **change}))  # the user's file keeps their dataset
    (command, *_) = commands(bullet)
    assert command[-2:] == ["--configfile", "mine.yaml"]
    # the README's command on the user's own file, their dataset selected as its bullet says
    proc = run_snakemake("-n", *command[1:-1], "alpha.yaml", *own_command[own_command.index("--config") :], cwd=workdir)
    jobs = planned_jobs(proc.stdout)
    alpha = change["reward"]["alpha"]
    # human and the multiplicative form at the new alpha; the correctness run does not read alpha
    assert jobs.get("train_local") == 2, jobs
    assert f"{name}/tiny/rloo/human-a{alpha:g}-additive_clipped/seed0" in proc.stdout
    assert f"{name}/tiny/rloo/human-a{alpha:g}-multiplicative/seed0" in proc.stdout
    assert "table1" in planned_tables(proc.stdout)


@pytest.mark.slow
def test_more_seeds_on_the_command_line(own_data_run):
    """The seeds bullet's command with the longest seed list the section gives (`--config 'seeds=[0,1,2]'`):
    every run once per seed, the seed-0 runs kept."""
    workdir, name, own_command, _ = own_data_run
    (command, *_) = commands(readme_bullet("seeds:"))
    lists = re.findall(r"--config 'seeds=(\[[0-9, ]*\])'", readme_section("Changing one thing"))
    seeds = max((yaml.safe_load(x) for x in lists), key=len)
    assert len(seeds) == 3
    command = [f"seeds={seeds}".replace(" ", "") if a.startswith("seeds=") else a for a in command]
    # on the user's own data: their file and dataset as the own-data bullet gives them
    own = own_command[own_command.index("--configfile") : own_command.index("--config")]
    proc = run_snakemake("-n", *command[1:], *own_command[own_command.index("--config") + 1 :], *own, cwd=workdir)
    runs = 3  # rloo correctness, human, and the multiplicative form
    assert planned_jobs(proc.stdout).get("train_local") == runs * (len(seeds) - 1)
    for seed in seeds[1:]:
        assert f"{name}/tiny/rloo/correctness/seed{seed}" in proc.stdout


@pytest.mark.slow
def test_another_estimator_whose_name_has_a_digit(own_data_run):
    """Added under `estimators:` in config.yaml and listed in an experiment: trained and in Table 1."""
    workdir, name, own_command, _ = own_data_run
    bullet = readme_bullet("another estimator")
    estimator = re.search(r"`adv_estimator: (\w+)`", bullet).group(1)
    new = re.search(r"\(e\.g\. `(\w*\d\w*)`", bullet).group(1)  # the README's example name with a digit
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["estimators"][new] = {"adv_estimator": estimator}
    config["experiments"]["main"]["estimators"].append(new)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    try:
        run_snakemake(*own_command[1:], cwd=workdir)
        table1 = pd.read_csv(workdir / "results" / "tables" / "table1.csv")
        assert table1["runs"].str.contains(f"results/runs/{name}/tiny/{new}/").sum() == 2
        for reward in ("correctness", "human-a10-additive_clipped"):
            steps = (
                (workdir / "results" / "runs" / name / "tiny" / new / reward / "seed0" / "train" / "metrics.jsonl")
                .read_text()
                .splitlines()
            )
            assert len(steps) == config["scales"]["tiny"]["rl_steps"]
    finally:
        config["estimators"].pop(new)
        config["experiments"]["main"]["estimators"].remove(new)
        (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
