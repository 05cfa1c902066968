"""Reading run directories: what a run was, its metrics, and seed means with t-intervals.

Every cell is read from `<run>/eval/metrics.json`; the run's own `config.yaml` says what
the run was. Only seeds are averaged: runs are grouped by every parameter of their
config.yaml except the seed (`run_parameters`), and a parameter that differs between runs
of one table row (e.g. two alphas under `experiments.main.alphas`) becomes a column of its
own. A cell is the mean over the group's seeds with a 95% t-interval (columns
`<metric>_lo`, `<metric>_hi`), the number of seeds in `seeds` and the run directories in
`runs`. Every table starts with the starting policy (the model every run of the table
starts from, evaluated the same way), so a reader sees what RL did. The analyses
(rlev.analysis) name runs the same way, so figures and tables agree.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from rlev.metrics import mean_and_interval

REWARD_NAMES = {
    "correctness": "correctness",
    "human": "human-aligned",
    "uniform": "uniform scaling",
    "shuffled": "random weights (shuffled)",
    "weak": "weak (difficulty)",
    "predicted": "predicted",
}
ESTIMATOR_NAMES = {
    "reinforce_plus_plus": "REINFORCE++",
    "reinforce_plus_plus_baseline": "REINFORCE++-baseline",
    "rloo": "RLOO",
    "grpo": "GRPO",
}
STARTING_POLICY = "starting policy (no RL)"
# Columns for parameters that differ inside a table row's group (everything else keeps its dotted config key).
PARAMETER_COLUMNS = {"reward.alpha": "alpha", "reward.form": "form"}


def kl_label(est: dict) -> str:
    """Where a run's KL to the initial policy went (none, in the reward, or in the loss), as tables print it."""
    parts = []
    if est.get("use_kl_in_reward"):
        parts.append(f"in reward {est.get('kl_coef', 0.001):g} ({est.get('kl_penalty', 'kl')})")
    if est.get("use_kl_loss"):
        parts.append(f"loss {est.get('kl_loss_coef', 0.001):g} ({est.get('kl_loss_type', 'low_var_kl')})")
    return ", ".join(parts) or "none"


def _flatten(obj, prefix: str = "") -> dict:
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: obj}


def run_parameters(config: dict) -> dict:
    """A run's settings as flat `a.b` keys, minus what differs between seeds of one setting.

    Dropped: the seed and the run's id and directory. A correctness run's alpha and form are
    dropped too: its reward does not read them.

    >>> run_parameters({"seed": 1, "out_dir": "r/seed1", "dataset": {"name": "d"},
    ...                 "reward": {"variant": "correctness", "alpha": 10, "form": "additive_clipped"}})
    {'dataset.name': 'd', 'reward.variant': 'correctness'}
    """
    params = {k: v for k, v in _flatten(config).items() if k not in ("seed", "run_id", "out_dir")}
    if config.get("reward", {}).get("variant") == "correctness":
        params.pop("reward.alpha", None)
        params.pop("reward.form", None)
    return params


def run_identity(run_dir: str | Path) -> dict:
    """What a run is, from its config.yaml alone: the row keys of the tables, its seed and parameters."""
    run_dir = Path(run_dir)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    est = config["estimator"]
    grpo = ""
    if est["adv_estimator"] == "grpo":  # say which GRPO: std-normalised GRPO cancels RLEV's scale
        grpo = " (std-norm)" if est.get("norm_adv_by_std_in_grpo", True) else " (mean-centred)"
    correctness = config["reward"]["variant"] == "correctness"  # alpha and form do not enter its reward
    return {
        "estimator": ESTIMATOR_NAMES.get(est["name"], est["name"]) + grpo,
        "scale": config["scale"]["name"],
        "reward": REWARD_NAMES.get(config["reward"]["variant"], config["reward"]["variant"]),
        "alpha": "-" if correctness else f"{float(config['reward']['alpha']):g}",
        "form": "-" if correctness else config["reward"]["form"],
        "seed": config["seed"],
        "run": str(run_dir),
        "kl": kl_label(est),
        "params": run_parameters(config),
    }


def load_run(run_dir: str | Path) -> dict:
    """run_identity plus the run's evaluation metrics (eval/metrics.json)."""
    metrics = json.loads((Path(run_dir) / "eval" / "metrics.json").read_text())
    # what scored the evaluation (rlev.evaluate)
    return {**run_identity(run_dir), **metrics, "verifier": metrics.get("verifier", "rule")}


def starting_policy_row(
    eval_dir: str | Path, scale: str, extra: dict | None = None, metrics: dict | None = None
) -> dict:
    """A table row for the starting policy, shaped like load_run's: its evaluation folder's numbers
    (`metrics`, by default the folder's metrics.json) and `extra`."""
    if metrics is None:
        metrics = json.loads((Path(eval_dir) / "metrics.json").read_text())
    return {
        "estimator": STARTING_POLICY,
        "scale": scale,
        "reward": "-",
        "alpha": "-",
        "form": "-",
        "seed": None,
        "run": str(eval_dir),
        "params": {},
        **metrics,
        **(extra or {}),
    }


def _setting_columns(rows: pd.DataFrame, keys: list[str]) -> list[str]:
    """Config keys that differ between runs agreeing on `keys`: settings, not seeds, so they split rows."""
    if "params" not in rows.columns:
        return []
    names = sorted(set().union(*rows["params"]))
    covered = {n for n, label in PARAMETER_COLUMNS.items() if label in keys}
    split = []
    for name in names:
        if name in covered:
            continue
        values = rows["params"].map(lambda p: json.dumps(p.get(name), sort_keys=True, default=str))
        if any(group.nunique() > 1 for _, group in values.groupby([rows[k].astype(str) for k in keys])):
            split.append(name)
    return split


def aggregate(rows: pd.DataFrame, keys: list[str], metrics: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """One row per setting: the mean (and 95% t-interval) of each metric over seeds.

    A setting is `keys` plus every other config parameter that differs between the runs
    (see `_setting_columns`). Returns the table and its key columns (`keys` plus those
    parameters). Two runs of one setting with the same seed are an error: they are not
    seeds of one experiment.
    """
    rows = rows.copy()
    extra = _setting_columns(rows, keys)
    columns = list(keys)
    for name in extra:
        label = PARAMETER_COLUMNS.get(name, name)
        if label not in columns:
            rows[label] = rows["params"].map(lambda p: "-" if p.get(name) is None else str(p.get(name)))
            columns.append(label)
    out = []
    for key, group in rows.groupby(columns, sort=False):
        record = dict(zip(columns, key if isinstance(key, tuple) else (key,)))
        seeds = group["seed"].dropna()
        if seeds.duplicated().any():
            seed = seeds[seeds.duplicated()].iloc[0]
            raise ValueError(
                f"runs {list(group['run'])} have the same setting and seed {seed}: "
                "they are not seeds of one experiment; remove the copy"
            )
        for m in metrics:
            mean, lo, hi = mean_and_interval(group[m])
            record[m], record[f"{m}_lo"], record[f"{m}_hi"] = mean, lo, hi
        record["seeds"] = int(len(seeds))  # 0 for the starting policy (one model, no seeds)
        record["runs"] = ";".join(group["run"])
        out.append(record)
    return pd.DataFrame(out), columns


def starting_rows(init_dirs: list[str], scale: str, extra=None) -> list[dict]:
    return [starting_policy_row(d, scale, extra(Path(d)) if extra else None) for d in init_dirs]


def runs_and_start(run_dirs: list[str], init_dirs: list[str], extra=None) -> pd.DataFrame:
    """The runs' rows, the starting policy's first; `extra(dir)` adds cells read from an eval folder."""
    rows = [{**load_run(d), **(extra(Path(d) / "eval") if extra else {})} for d in run_dirs]
    scale = rows[0]["scale"] if rows else ""
    return pd.DataFrame(starting_rows(init_dirs, scale, extra) + rows)


def check_plan(plan_path: str | None, run_dirs: list[str]) -> None:
    """Refuse run directories whose saved config is not the plan's (rlev.config.check_run_dirs)."""
    if plan_path:
        from rlev.config import check_run_dirs

        check_run_dirs(json.loads(Path(plan_path).read_text()), run_dirs)
