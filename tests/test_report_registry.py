"""The table registry (rlev.report.tables.TABLES) drives the workflow, the CLI and the report:
every entry is a target of the default DAG, written by the rule it names, a choice of
`rlev report` and has a caption, and nothing else is."""

import shutil
from pathlib import Path

import pytest

from conftest import REPO
from rlev.cli import REPORT_FLAGS
from rlev.report.tables import TABLES, caption_path, planned_tables, table_files
from test_workflow import SMOKE_CONFIG, planned_jobs


def rule_outputs(stdout: str) -> dict[str, str]:
    """output file -> the rule of the job that writes it, from a dry run's listing."""
    out, current = {}, None
    for line in stdout.splitlines():
        if line.startswith(("rule ", "localrule ")):
            current = line.split()[1].rstrip(":")
        elif current and line.strip().startswith("output:"):
            out.update({p.strip(): current for p in line.split(":", 1)[1].split(",")})
    return out


def default_targets(stdout: str) -> list[str]:
    """The input files of rule `all` (the default target) in a dry run's listing."""
    lines = stdout.splitlines()
    start = lines.index("rule all:")
    line = next(x for x in lines[start:] if x.strip().startswith("input:"))
    return [p.strip() for p in line.split(":", 1)[1].split(",")]


@pytest.fixture(scope="module")
def smoke_plan(tmp_path_factory):
    """A dry run (-n) of the smoke config, which declares every experiment."""
    import subprocess
    import sys

    work = tmp_path_factory.mktemp("registry")
    shutil.copy(SMOKE_CONFIG, work / "config.yaml")
    snakemake = Path(sys.executable).parent / "snakemake"
    proc = subprocess.run(
        [str(snakemake), "--snakefile", str(REPO / "Snakefile"), "-n", "--cores", "1"],
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_every_table_is_a_target_written_by_its_rule_and_nothing_else_is(smoke_plan):
    from rlev.config import load_config

    assert planned_tables(load_config(SMOKE_CONFIG)) == list(TABLES)  # the smoke config declares every experiment
    writers = rule_outputs(smoke_plan)
    for name, table in TABLES.items():
        for path in table_files(name):
            assert writers.get(path) == table.rule, (path, writers.get(path))
    tables = {p for p in writers if p.startswith("results/tables/")}
    assert tables == {p for name in TABLES for p in table_files(name)}
    targets = set(default_targets(smoke_plan))
    assert {p for p in targets if p.startswith("results/tables/")} == tables
    assert planned_jobs(smoke_plan)["table"] == sum(t.rule == "table" for t in TABLES.values())


def test_the_default_target_asks_for_every_planned_table():
    from rlev.config import load_config

    config = load_config(REPO / "config.yaml")
    planned = planned_tables(config)
    assert "table1" in planned and "value_stats" in planned
    # an experiment switched off drops its table, and only that
    config["experiments"].pop("ablation")
    assert "table4" not in planned_tables(config) and set(planned) - set(planned_tables(config)) == {"table4"}


def test_rlev_report_offers_exactly_the_registry(capsys):
    import re

    from rlev.cli import main

    with pytest.raises(SystemExit):
        main(["report", "no_such_table", "--out", "x"])
    choices = re.search(r"invalid choice: 'no_such_table' \(choose from (.*)\)", capsys.readouterr().err).group(1)
    assert [c.strip(" '") for c in choices.split(",")] == list(TABLES)


def test_every_table_has_its_caption_and_every_caption_its_table():
    for name in TABLES:
        assert (REPO / caption_path(name)).is_file(), f"{name} has no caption: write {caption_path(name)}"
    pages = {p.stem for p in (REPO / "workflow" / "report").glob("*.rst")}
    figures = {"curves", "figure2", "figure3", "figure4", "length_by_value", "table", "workflow"}
    assert pages - figures == set(TABLES)


def test_each_builder_takes_the_flags_its_entry_hands_it():
    import inspect

    from rlev.config import load_config

    config = load_config(SMOKE_CONFIG)
    for name, table in TABLES.items():
        takes = set(inspect.signature(table.builder()).parameters)
        given = set(table.inputs(config)) | set(table.options(config))
        assert given <= takes & set(REPORT_FLAGS), (name, given - takes)
        assert ("runs" in takes) == (table.experiment is not None), name


def test_rlev_report_refuses_a_flag_the_table_does_not_read(tmp_path):
    from rlev import InputError
    from rlev.report.tables import report

    with pytest.raises(InputError, match="table1 takes no --truth"):
        report("table1", tmp_path / "t", runs=["x"], truth="t.jsonl")
    with pytest.raises(InputError, match="give --runs"):
        report("table8", tmp_path / "t")


def test_the_workflow_names_no_table_outside_the_registry():
    text = "".join(p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk"))
    for name in ("table1", "table2", "table3", "table4", "table5", "table6", "table8"):
        assert f"rule {name}:" not in text and f"report {name}" not in text
    assert "ABLATION_TABLES" not in text and "REPORT_GROUPS" not in text
