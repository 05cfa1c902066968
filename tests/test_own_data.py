"""A researcher's own exam data, as the README's "your own exam data" block adds it.

The dataset has no companions (no difficulty-only `noisy` set, no OOD `benchmarks`): it must
run on its own, the experiments that need a companion skipped with one line saying why.
"""

from __future__ import annotations

import copy

import pytest
import yaml

from conftest import REPO, readme_bullet, yaml_block
from rlev.config import ConfigError, plan_runs, validate
from rlev.data.synthetic import generate

# The README's block itself: a CSV in the user's own column names.
MINE = yaml_block(readme_bullet("your own exam data"))["datasets"]["mine"]


def write_own_csv(path, exams: int = 12, questions: int = 5, seed: int = 3) -> None:
    """Exams in a spreadsheet's layout (UTF-8 with BOM, CRLF: what spreadsheet tools export)."""
    import pandas as pd

    records, _ = generate(exams, 0, questions, seed=seed)
    columns = MINE["columns"]  # the user's name of each canonical field
    frame = pd.DataFrame(records).rename(columns=columns)[list(columns.values())]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xef\xbb\xbf" + frame.to_csv(index=False, lineterminator="\r\n").encode("utf-8"))


@pytest.fixture
def raw(tmp_path, monkeypatch):
    """config.yaml with `mine` added and selected, run from a folder holding data/mine.csv."""
    monkeypatch.chdir(tmp_path)
    write_own_csv(tmp_path / "data" / "mine.csv")
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["datasets"]["mine"] = copy.deepcopy(MINE)
    config["dataset"] = "mine"
    return config


def test_own_dataset_runs_on_its_own_and_says_what_it_skips(raw, capsys):
    config = validate(raw)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2
    noisy, ood = lines
    assert noisy.startswith("rlev: skipping experiments.noisy (Table 3): datasets.mine names no difficulty-only")
    assert ood.startswith("rlev: skipping experiments.ood (Table 2): datasets.mine names no OOD benchmarks")
    assert "`experiments: {noisy: null}`" in noisy
    assert sorted(config["experiments"]) == ["ablation", "alpha", "form", "main", "mechanism"]
    runs = plan_runs(config)
    assert runs and {r.dataset for r in runs} == {"mine"}


def test_a_configfile_switches_an_experiment_off_with_null(raw, capsys):
    raw["experiments"]["noisy"] = None  # what `experiments: {noisy: null}` in a --configfile gives
    raw["experiments"]["alpha"] = None
    raw["datasets"]["mine"]["benchmarks"] = ["synthetic_mc"]
    config = validate(raw)
    assert capsys.readouterr().err == ""  # switched off on purpose: nothing to explain
    assert sorted(config["experiments"]) == ["ablation", "form", "main", "mechanism", "ood"]
    assert config["experiments"]["ood"]["benchmarks"] == ["synthetic_mc"]


def test_main_cannot_be_switched_off(raw):
    raw["experiments"]["main"] = None
    with pytest.raises(ConfigError, match="experiments.main: None is not of type 'object'"):
        validate(raw)


def test_a_missing_data_file_is_caught_when_planning_naming_key_and_path(raw, tmp_path):
    (tmp_path / "data" / "mine.csv").unlink()
    with pytest.raises(ConfigError) as err:
        validate(raw)
    message = str(err.value)
    assert message.startswith("datasets.mine.path: data/mine.csv does not exist")
    assert str(tmp_path) in message and "\n" not in message


def test_weak_values_need_a_difficulty_column(raw):
    raw["experiments"]["noisy"]["dataset"] = "mine"
    with pytest.raises(ConfigError, match="maps no `difficulty`; map one, or drop `weak`"):
        validate(raw)
    raw["datasets"]["mine"]["columns"]["difficulty"] = "level"
    raw["experiments"]["noisy"]["dataset"] = "mine"
    validate(raw)


@pytest.fixture
def own_workdir(tmp_path):
    """A fresh folder with config.yaml as shipped, the README's mine.yaml and the user's CSV."""
    (tmp_path / "config.yaml").write_text((REPO / "config.yaml").read_text())
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump({"datasets": {"mine": MINE}}))
    write_own_csv(tmp_path / "data" / "mine.csv")
    return tmp_path


def test_dry_run_of_own_dataset_plans_the_remaining_tables(snakemake_cmd, own_workdir):
    from test_workflow import planned_jobs, planned_tables

    proc = snakemake_cmd("-n", "--cores", "1", "--configfile", "mine.yaml", "--config", "dataset=mine", cwd=own_workdir)
    jobs, tables = planned_jobs(proc.stdout), planned_tables(proc.stdout)
    assert jobs["prepare"] == 1 and {"table1", "table4", "table5"} <= set(tables)
    assert "table2" not in tables and "table3" not in tables and "predictor_train" not in jobs
    assert "rlev: skipping experiments.noisy (Table 3)" in proc.stderr
    assert "rlev: skipping experiments.ood (Table 2)" in proc.stderr


def test_dry_run_names_a_missing_data_file(snakemake_cmd, own_workdir):
    (own_workdir / "data" / "mine.csv").unlink()
    proc = snakemake_cmd(
        "-n", "--cores", "1", "--configfile", "mine.yaml", "--config", "dataset=mine", cwd=own_workdir, check=False
    )
    assert proc.returncode != 0
    assert "datasets.mine.path: data/mine.csv does not exist" in proc.stdout + proc.stderr


def test_cli_prints_an_input_error_as_one_line_without_traceback(tmp_path):
    """The prepare job's log is what a user reads when a run stops: one line, file named."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    empty = tmp_path / "mine.csv"
    empty.write_bytes(b"")
    spec = {
        "source": dict(MINE, path=str(empty)),
        "data": {"test_share": 0.1, "split_seed": 0, "max_reject_share": 0.01},
    }
    rlev = Path(sys.executable).parent / "rlev"
    proc = subprocess.run(
        [str(rlev), "prepare", "--spec", json.dumps(spec), "--dataset", "mine", "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert errors == [
        f"rlev prepare: error: {empty}: the file is empty (0 bytes); expected a header row, then one row per question"
    ]


def test_a_predictor_that_cannot_score_says_what_to_change():
    from rlev import InputError
    from rlev.predictor.predict import predicted_values

    with pytest.raises(InputError) as err:
        predicted_values(["x", "-3", "500"], total=100)
    message = str(err.value)
    assert message.startswith("none of the 3 predictor replies is a score in (0, 100]")
    assert "predictor.local.epochs" in message and "drop `predicted` from experiments.noisy.rewards" in message
    assert "`experiments: {noisy: null}`" in message
