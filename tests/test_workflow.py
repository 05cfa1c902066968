"""The Snakemake workflow itself: the default plan, a smoke-sized sweep through every rule, and
what a user does to it (change one thing, interrupt it, bring own data, train by hand).

One smoke sweep (module fixture `smoke`) is shared by every test that needs finished runs;
tests that change a sweep work on a copy of it.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import BAD_CSV, BAD_CSV_COLUMNS, REPO
from rlev.report.runs import STARTING_POLICY

SMOKE_CONFIG = REPO / "tests" / "config_smoke" / "config.yaml"
BINDIR = Path(sys.executable).parent
ENV = {**os.environ, "PATH": str(BINDIR) + os.pathsep + os.environ.get("PATH", "")}
# What the README tells a user to type (`snakemake --cores all`), with the test machine's cores.
README_COMMAND = [str(BINDIR / "snakemake"), "--snakefile", str(REPO / "Snakefile"), "--cores", "2"]


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


def planned_outputs(stdout: str, rule: str) -> list[str]:
    """The output files of every job of `rule` in a dry run's listing."""
    outputs, current = [], None
    for line in stdout.splitlines():
        if line.startswith(("rule ", "localrule ")):
            current = line.split()[1].rstrip(":")
        elif current == rule and line.strip().startswith("output:"):
            outputs += [p.strip() for p in line.split(":", 1)[1].split(",")]
    return outputs


def planned_tables(stdout: str) -> list[str]:
    """The tables the dry run's `table` jobs write (rlev.report.tables.TABLES names)."""
    return sorted(Path(p).stem for p in planned_outputs(stdout, "table") if p.endswith(".csv"))


def snakemake(*args, cwd, check=True):
    proc = subprocess.run([*README_COMMAND, *args], cwd=cwd, env=ENV, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def rlev(*args, cwd, check=True):
    proc = subprocess.run([str(BINDIR / "rlev"), *args], cwd=cwd, env=ENV, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"rlev {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def smoke_dir(path: Path, **changes) -> Path:
    """A working directory holding the smoke config, with top-level `changes` merged in."""
    path.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load(SMOKE_CONFIG.read_text())
    config.update(changes)
    (path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def copy_sweep(src: Path, dst: Path) -> Path:
    """A copy of a finished sweep, time stamps and Snakemake's records included (still up to date)."""
    shutil.copytree(src, dst, symlinks=True, ignore=shutil.ignore_patterns("locks"))
    return dst


def tables(workdir: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((workdir / "results" / "tables").glob("*.csv"))}


# --- the plan (dry runs, seconds) -------------------------------------------------------


def test_default_config_plans_the_main_table(snakemake_cmd, tmp_path):
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    proc = snakemake_cmd("-n", "-p", "--cores", "2", cwd=tmp_path)
    jobs = planned_jobs(proc.stdout)
    from rlev.config import experiment_runs, load_config, plan_runs

    config = load_config(tmp_path / "config.yaml")
    runs = plan_runs(config)  # every experiment's runs, each once
    # one process per local run: it trains, evaluates and takes the EOS probabilities
    assert jobs["train_local"] == jobs["run_config"] == len(runs)
    assert "evaluate_run" not in jobs and "eos" not in jobs and "table_html" not in jobs
    datasets = {r.dataset for r in runs}  # the exam data and the noisy-value data (Table 3)
    tables = planned_tables(proc.stdout)
    assert jobs["sft"] == len(datasets) and jobs["prepare"] == len(datasets) and tables.count("table1") == 1
    assert "table2" in tables and jobs["ood"] == len(experiment_runs(config, "ood"))
    assert "table3" in tables and jobs["predictor_train"] == jobs["predictor_label"] == 1
    # the dry run names no run setting: rules hand `rlev` the path of the run's config.yaml
    assert '"estimator"' not in proc.stdout and "rlev train --spec results/runs/" in proc.stdout


def test_a_bad_config_stops_the_workflow_naming_the_key(snakemake_cmd, tmp_path):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["scales"]["tiny"]["rl_steps"] = -1
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake_cmd("-n", "--cores", "1", cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert "scales.tiny.rl_steps" in proc.stdout + proc.stderr


def test_seeds_given_on_the_command_line_plan_one_run_per_seed(tmp_path):
    smoke_dir(tmp_path)
    proc = snakemake("-n", "--config", "seeds=[0,1,2]", cwd=tmp_path)
    runs = planned_outputs(proc.stdout, "run_config")
    assert {Path(p).parent.name for p in runs} == {"seed0", "seed1", "seed2"}
    from rlev.config import load_config, plan_runs

    assert len(runs) == 3 * len(plan_runs(load_config(SMOKE_CONFIG)))


@pytest.mark.parametrize("name", ["grpo2", "DrGRPO", "dr-grpo"])
def test_an_estimator_name_with_digits_capitals_or_dashes_gets_its_runs(tmp_path, name):
    config = yaml.safe_load(SMOKE_CONFIG.read_text())
    config["estimators"][name] = {"adv_estimator": "grpo", "norm_adv_by_std_in_grpo": False}
    config["experiments"]["main"]["estimators"].append(name)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake("-n", cwd=tmp_path)
    trained = planned_outputs(proc.stdout, "train_local")
    assert any(f"/{name}/human-a10-additive_clipped/seed0/" in p for p in trained), proc.stdout[-2000:]


def test_an_estimator_name_that_cannot_be_a_directory_is_refused_naming_it(tmp_path):
    config = yaml.safe_load(SMOKE_CONFIG.read_text())
    config["estimators"]["my grpo"] = {"adv_estimator": "rloo"}
    config["experiments"]["main"]["estimators"].append("my grpo")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake("-n", cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "estimators: 'my grpo' cannot name a directory" in proc.stdout + proc.stderr


def test_the_default_profile_resumes_and_shows_failed_logs():
    profile = yaml.safe_load((REPO / "profiles" / "default" / "config.yaml").read_text())
    assert profile["rerun-incomplete"] is True and profile["show-failed-logs"] is True
    assert profile["cores"] == "all"


def test_noisy_data_is_not_tracked_by_git():
    proc = subprocess.run(["git", "check-ignore", "-q", "data/noisy/exams.jsonl"], cwd=REPO)
    assert proc.returncode == 0, "data/noisy/ (generated by the workflow) is not git-ignored"


# --- the user's own data --------------------------------------------------------------------


def own_data_config(workdir: Path, csv: Path) -> Path:
    """The README's own-dataset block, pointing at `csv`."""
    config = yaml.safe_load(SMOKE_CONFIG.read_text())
    config["datasets"]["mine"] = {"source": "table", "path": str(csv), "columns": dict(BAD_CSV_COLUMNS)}
    config["dataset"] = "mine"
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    return workdir


def test_editing_the_users_data_file_reruns_prepare(tmp_path):
    from rlev.config import load_config
    from rlev.data.synthetic import write

    exams = tmp_path / "data" / "mine.jsonl"
    write(load_config(SMOKE_CONFIG)["datasets"]["synthetic"], exams, tmp_path / "demos.jsonl")
    config = yaml.safe_load(SMOKE_CONFIG.read_text())
    config["datasets"]["mine"] = {"source": "table", "path": "data/mine.jsonl"}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    target = "results/data/mine/train.parquet"
    snakemake(target, cwd=tmp_path)
    assert "Nothing to be done" in (lambda p: p.stdout + p.stderr)(snakemake("-n", target, cwd=tmp_path))
    time.sleep(1.1)  # a later time stamp than the outputs'
    lines = exams.read_text().splitlines()
    exams.write_text("\n".join(lines[:-1]) + "\n")  # the user drops a row
    proc = snakemake("-n", target, cwd=tmp_path)
    assert planned_jobs(proc.stdout).get("prepare") == 1, proc.stdout[-2000:]


def test_a_missing_data_file_stops_the_dry_run_naming_it(tmp_path):
    own_data_config(tmp_path, Path("data/not_there.csv"))
    proc = snakemake("-n", cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "data/not_there.csv" in proc.stdout + proc.stderr


def test_rejects_survive_a_failed_prepare_and_the_error_names_them(tmp_path):
    own_data_config(tmp_path, BAD_CSV)
    proc = snakemake("results/data/mine/train.parquet", cwd=tmp_path, check=False)
    assert proc.returncode != 0
    rejects = tmp_path / "results" / "logs" / "prepare" / "mine.rejects.csv"
    assert rejects.exists() and len(pd.read_csv(rejects)) > 0
    assert str(rejects.relative_to(tmp_path)) in proc.stdout + proc.stderr  # the failed log, on the console
    assert not (tmp_path / "results" / "data" / "mine" / "rejects.csv").exists()  # removed with the failed job


# --- the smoke sweep -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The smoke config run once through every rule of the default sweep, by the README's command."""
    workdir = smoke_dir(tmp_path_factory.mktemp("smoke"))
    started = time.perf_counter()
    snakemake(cwd=workdir)
    print(f"smoke sweep: {time.perf_counter() - started:.0f} s")
    return workdir


def run_dirs(workdir: Path) -> list[Path]:
    return sorted(p.parent for p in (workdir / "results" / "runs").glob("*/*/*/*/seed*/config.yaml"))


@pytest.mark.slow
def test_smoke_run_writes_every_table_from_run_directories(smoke):
    tables_dir = smoke / "results" / "tables"
    table1 = pd.read_csv(tables_dir / "table1.csv")
    start = table1["estimator"] == STARTING_POLICY
    assert start.sum() == 1  # the first row: the policy RL starts from
    table1 = table1[~start]
    assert len(table1) == 4  # smoke: RLOO and mean-centred GRPO x {correctness, human}
    assert set(table1["reward"]) == {"correctness", "human-aligned"}
    assert table1["estimator"].str.contains("GRPO \\(mean-centred\\)").any()
    for name in ("table2", "table3", "table4", "table5", "table6", "table8", "bootstrap", "value_stats", "mechanism"):
        assert (tables_dir / f"{name}.csv").exists() and (tables_dir / f"{name}.html").exists(), name
    for name in ("figure2", "figure3", "figure4", "length_by_value_main", "length_by_value_mechanism"):
        assert (smoke / "results" / "figures" / f"{name}.png").exists(), name
    rl_steps = yaml.safe_load(SMOKE_CONFIG.read_text())["scales"]["tiny"]["rl_steps"]
    # every cell is traceable to run directories that hold the run's config, metrics, model and evaluation
    for cell in table1["runs"]:
        for run_dir in cell.split(";"):
            run = smoke / run_dir
            config = yaml.safe_load((run / "config.yaml").read_text())
            assert config["out_dir"] == run_dir and config["seed"] == 0
            steps = [json.loads(line) for line in (run / "train" / "metrics.jsonl").read_text().splitlines()]
            assert [s["step"] for s in steps] == list(range(rl_steps))
            assert (run / "model" / "config.json").exists()
            assert len(pd.read_parquet(run / "eval" / "samples.parquet")) == 15  # 3 test exams x 5 questions
            assert len(pd.read_parquet(run / "eval" / "eos.parquet")) > 0  # taken by the training process
    assert (smoke / "results" / "data" / "synthetic" / "rejects.csv").exists()
    assert (smoke / "results" / "logs" / "prepare" / "synthetic.rejects.csv").exists()


@pytest.mark.slow
def test_smoke_runs_actually_train(smoke):
    """The warm start earns reward, so RL updates happen: rewards and losses are non-zero and the
    weights move away from the starting policy in every run."""
    from safetensors.torch import load_file

    init = load_file(smoke / "results" / "models" / "synthetic" / "tiny" / "sft" / "model.safetensors")
    runs = [r for r in run_dirs(smoke) if r.parts[-5] == "synthetic"]
    assert len(runs) >= 8
    for run in runs:
        steps = [json.loads(line) for line in (run / "train" / "metrics.jsonl").read_text().splitlines()]
        assert any(s["reward"] > 0 for s in steps), f"{run}: no step earned reward"
        assert any(s["loss"] not in (0, None) for s in steps), f"{run}: every loss is zero"
        weights = load_file(run / "model" / "model.safetensors")
        moved = max((weights[k] - init[k]).abs().max().item() for k in init)
        assert moved > 0, f"{run}: weights identical to the starting policy"
    sft_eval = json.loads(
        (smoke / "results" / "models" / "synthetic" / "tiny" / "sft_eval" / "metrics.json").read_text()
    )
    assert sft_eval["acc"] > 0  # the starting policy answers some test questions


@pytest.mark.slow
def test_a_second_run_has_nothing_to_do(smoke):
    proc = snakemake("-n", cwd=smoke)
    assert "Nothing to be done" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_html_report_holds_every_table_and_figure(smoke):
    snakemake("--report", "results/report.html", cwd=smoke)
    report = (smoke / "results" / "report.html").read_text()
    for name in ("table1", "table2", "table3", "table4", "table5", "table6", "table8", "bootstrap", "mechanism"):
        assert f"{name}.html" in report, f"{name}.html is not in the report"
    for name in ("figure2", "figure3", "figure4", "length_by_value_main", "length_by_value_mechanism"):
        assert f"{name}.png" in report, f"{name}.png is not in the report"
    assert "Table 8 of the paper" in report  # a caption, rendered
    # the landing page says what ran and the headline; items are grouped by paper table
    assert "What ran" in report and "Headline: Table 1" in report
    assert "Table 1: main results" in report and "Tables 4-6: ablations" in report
    assert "curves_main.png" in report


@pytest.mark.slow
def test_a_changed_setting_reruns_only_the_runs_that_read_it(smoke):
    """shuffle_seed: only the shuffled run (and the tables); reward.alpha: no correctness run;
    rl_steps: every run, but not the tiny model, its SFT or its evaluation."""
    changed = smoke / "changed.yaml"
    changed.write_text(yaml.safe_dump({"reward": {"shuffle_seed": 987654}}))
    proc = snakemake("-n", "--configfile", str(changed), cwd=smoke)
    retrained = planned_outputs(proc.stdout, "train_local")
    assert retrained and all("/shuffled-" in p for p in retrained), retrained
    assert "table4" in planned_tables(proc.stdout)

    changed.write_text(yaml.safe_dump({"reward": {"alpha": 5}}))
    proc = snakemake("-n", "--configfile", str(changed), cwd=smoke)
    retrained = planned_outputs(proc.stdout, "train_local")
    assert retrained and not [p for p in retrained if "/correctness/" in p], retrained
    assert any("/human-a5-additive_clipped/" in p for p in retrained)

    changed.write_text(yaml.safe_dump({"scales": {"tiny": {"rl_steps": 3}}}))
    jobs = planned_jobs(snakemake("-n", "--configfile", str(changed), cwd=smoke).stdout)
    assert jobs["train_local"] == len(run_dirs(smoke))  # every run reads rl_steps ...
    assert not {"init_model", "sft", "evaluate_init"} & set(jobs), jobs  # ... the shared warm start does not


@pytest.mark.slow
def test_a_run_whose_training_failed_is_rebuilt_by_a_plain_rerun(smoke, tmp_path):
    """What Snakemake leaves after a killed training job: the run's model and metrics gone, its
    evaluation (and the tables) still there. The README's command must rebuild the run."""
    work = copy_sweep(smoke, tmp_path / "sweep")
    run = work / "results" / "runs" / "synthetic" / "tiny" / "rloo" / "correctness" / "seed0"
    shutil.rmtree(run / "model")
    (run / "train" / "metrics.jsonl").unlink()
    proc = snakemake("-n", cwd=work)
    assert [p for p in planned_outputs(proc.stdout, "train_local") if "/rloo/correctness/seed0/" in p], proc.stdout[
        -3000:
    ]


# --- run directories against the plan, and rlev by hand (no sweep needed) ---------------------


def planned_run_dir(workdir: Path, variant: str):
    """A run of the smoke plan with its config.yaml written as the workflow writes it."""
    from rlev.config import load_config, plan_runs, write_run_config

    config = load_config(SMOKE_CONFIG)
    run = next(r for r in plan_runs(config) if r.reward.startswith(variant))
    write_run_config(config, run, workdir / run.path / "config.yaml")
    return config, run


def test_a_run_directory_that_is_not_the_planned_run_is_refused_naming_the_keys(tmp_path):
    from rlev.config import ConfigError, check_run_dirs, write_plan

    config, run = planned_run_dir(tmp_path, "shuffled-")
    run_dir = tmp_path / run.path
    check_run_dirs(config, [str(run_dir)])  # the planned run: accepted
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    planned_seed = saved["reward"]["shuffle_seed"]
    saved["reward"]["shuffle_seed"] = planned_seed + 7  # e.g. an edited copy trained into it by hand
    (run_dir / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    with pytest.raises(ConfigError, match=f"reward.shuffle_seed: saved {planned_seed + 7}, planned {planned_seed}"):
        check_run_dirs(config, [str(run_dir)])
    # what a table job does: one line naming the directory and the key, no table written
    write_plan(config, tmp_path / "results" / "plan.json")
    proc = rlev(
        "report", "table4", "--plan", "results/plan.json", "--runs", run.path, "--out", "t4", cwd=tmp_path, check=False
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert f"{run.path}/config.yaml differs from the current plan at reward.shuffle_seed" in proc.stderr
    assert not (tmp_path / "t4.csv").exists()


def test_rlev_plan_merges_a_config_file_says_what_is_to_do_and_refuses_clearly(tmp_path):
    smoke_dir(tmp_path)
    assert all(line.rstrip().endswith("to do") for line in rlev("plan", cwd=tmp_path).stdout.splitlines())
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump({"reward": {"alpha": 5}}))
    plan = rlev("plan", "--config", "mine.yaml", cwd=tmp_path).stdout
    assert "grpo/human-a5-additive_clipped/seed0" in plan and "grpo/human-a10-" not in plan
    assert "rloo/correctness/seed0" in plan  # merged: config.yaml's experiments still hold
    proc = rlev("plan", "--set", "dataset=mine", cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "dataset: 'mine' is not defined under `datasets`" in proc.stderr


def test_rlev_train_keeps_hand_made_runs_out_of_the_workflows_run_directories(tmp_path):
    _, run = planned_run_dir(tmp_path, "correctness")
    edited = yaml.safe_load((tmp_path / run.path / "config.yaml").read_text())
    edited["scale"]["rl_steps"] = 1
    (tmp_path / "edited.yaml").write_text(yaml.safe_dump(edited))
    proc = rlev("train", "--spec", "edited.yaml", cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "--out DIR outside results/runs/" in proc.stderr
    proc = rlev("train", "--spec", "edited.yaml", "--out", "results/runs/mine", cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "holds the workflow's runs" in proc.stderr
    assert not (tmp_path / run.path / "train").exists()  # nothing was trained over the workflow's run


def line_written(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:  # removed by Snakemake in between
        return False


@pytest.mark.slow
def test_a_sweep_killed_mid_training_ends_with_the_same_tables_after_one_plain_rerun(smoke, tmp_path):
    """Ctrl-C during RL training, then the README's command once: the tables equal the uninterrupted sweep's.

    The sweep starts from the smoke sweep's data and warm start (its RL runs, tables and
    figures removed), so the test pays for the RL part only."""
    work = copy_sweep(smoke, tmp_path / "sweep")
    for done in ("runs", "tables", "figures", "plan.json"):
        shutil.rmtree(work / "results" / done) if (work / "results" / done).is_dir() else (
            work / "results" / done
        ).unlink()
    proc = subprocess.Popen(
        README_COMMAND, cwd=work, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        while proc.poll() is None:
            if any(line_written(m) for m in (work / "results" / "runs").glob("*/*/*/*/seed*/train/metrics.jsonl")):
                break  # a run is between its first and last step
            time.sleep(0.2)
        assert proc.poll() is None, "the sweep ended before any training started"
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole foreground process group
        proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert not (work / "results" / "tables" / "table1.csv").exists()
    snakemake(cwd=work)
    assert tables(work) == tables(smoke)
