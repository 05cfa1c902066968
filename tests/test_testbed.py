"""The default testbed's matrix: seeds by default, and a scale's trims of the experiment
matrix (scales.<scale>.experiments) that leave the paper's scales untouched."""

from __future__ import annotations

import copy

import pytest
import yaml

from rlev.config import REPO_ROOT, ConfigError, experiment_runs, load_config, plan_runs, run_config, validate


def raw_config() -> dict:
    return yaml.safe_load((REPO_ROOT / "config.yaml").read_text())


def test_every_comparison_has_three_seeds_by_default():
    config = load_config()
    assert len(config["seeds"]) >= 3
    for name in config["experiments"]:
        runs = experiment_runs(config, name)
        per_setting = {}
        for run in runs:
            per_setting.setdefault((run.estimator, run.reward), set()).add(run.seed)
        assert all(len(seeds) >= 3 for seeds in per_setting.values()), name


def test_the_tiny_trims_do_not_reach_the_paper_scales():
    tiny, paper = load_config(), load_config(overrides={"scale": "7B", "dataset": "rlev"})
    raw = raw_config()
    for name, keys in raw["scales"]["tiny"].get("experiments", {}).items():
        for key, value in (keys or {}).items():
            assert tiny["experiments"][name][key] == value
            assert paper["experiments"][name][key] == raw["experiments"][name][key]
    assert "experiments" not in tiny["scales"]["tiny"]  # no job's settings carry the trims


def test_a_trim_replaces_keys_or_switches_an_experiment_off():
    config = raw_config()
    config["scales"]["tiny"]["experiments"] = {"alpha": {"alphas": [2, 10]}, "form": None}
    validate(config)
    assert "form" not in config["experiments"]
    assert sorted({run.reward for run in experiment_runs(config, "alpha")}) == [
        "human-a10-additive_clipped",
        "human-a2-additive_clipped",
    ]


def test_trims_change_no_runs_configuration():
    """Trimming the matrix must not retrain the runs that stay in it."""
    a, b = raw_config(), raw_config()
    a["scales"]["tiny"]["experiments"] = {"alpha": {"alphas": [1, 10]}}
    b["scales"]["tiny"].pop("experiments", None)
    validate(a), validate(b)
    shared = set(plan_runs(a)) & set(plan_runs(b))
    assert shared and all(run_config(a, r) == run_config(b, r) for r in shared)


def test_bad_trims_are_named():
    config = raw_config()
    config["scales"]["tiny"]["experiments"] = {"tabel9": {"alphas": [1]}}
    with pytest.raises(ConfigError, match="scales.tiny.experiments.tabel9"):
        validate(copy.deepcopy(config))
    config["scales"]["tiny"]["experiments"] = {"alpha": {"alphas": "many"}}
    with pytest.raises(ConfigError, match="alphas"):
        validate(config)
