"""Paper-numbered result tables, built only from run directories the pipeline wrote.

Every cell is read from `<run>/eval/metrics.json`; the run's own `config.yaml` says which
estimator, reward and seed it was. Cells aggregate over seeds: the mean, and a 95%
t-interval when there are several (columns `<metric>_lo`, `<metric>_hi`), with the
number of seeds in `seeds` and the run directories in `runs`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import yaml

from rlev.metrics import mean_and_interval

REWARD_NAMES = {"correctness": "correctness", "human": "human-aligned"}
ESTIMATOR_NAMES = {"reinforce_plus_plus": "REINFORCE++", "reinforce_plus_plus_baseline": "REINFORCE++-baseline",
                   "rloo": "RLOO", "grpo": "GRPO"}


def load_run(run_dir: str | Path) -> dict:
    run_dir = Path(run_dir)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    est = config["estimator"]
    grpo = ""
    if est["adv_estimator"] == "grpo":  # say which GRPO: std-normalised GRPO cancels RLEV's scale
        grpo = " (std-norm)" if est.get("norm_adv_by_std_in_grpo", True) else " (mean-centred)"
    return {
        "estimator": ESTIMATOR_NAMES.get(est["name"], est["name"]) + grpo,
        "scale": config["scale"]["name"],
        "reward": REWARD_NAMES.get(config["reward"]["variant"], config["reward"]["variant"]),
        "alpha": config["reward"]["alpha"],
        "form": config["reward"]["form"],
        "seed": config["seed"],
        "run": str(run_dir),
        **metrics,
    }


def aggregate(rows: pd.DataFrame, keys: list[str], metrics: list[str]) -> pd.DataFrame:
    """One row per `keys` group: mean (and 95% interval) of each metric over seeds."""
    out = []
    for key, group in rows.groupby(keys, sort=False):
        record = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        for m in metrics:
            mean, lo, hi = mean_and_interval(group[m])
            record[m], record[f"{m}_lo"], record[f"{m}_hi"] = mean, lo, hi
        record["seeds"] = len(group)
        record["runs"] = ";".join(group["run"])
        out.append(record)
    return pd.DataFrame(out)


def to_markdown(table: pd.DataFrame, keys: list[str], metrics: list[str], digits: dict[str, int]) -> str:
    """A Markdown table; a cell reads `mean [lo, hi]` when there are several seeds."""

    def cell(row, m):
        d = digits.get(m, 1)
        if math.isnan(row[f"{m}_lo"]):
            return f"{row[m]:.{d}f}"
        return f"{row[m]:.{d}f} [{row[f'{m}_lo']:.{d}f}, {row[f'{m}_hi']:.{d}f}]"

    header = keys + metrics + ["seeds"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join([str(row[k]) for k in keys] + [cell(row, m) for m in metrics]
                                       + [str(row["seeds"])]) + " |")
    return "\n".join(lines) + "\n"


TABLE1_METRICS = ["acc", "h_acc", "length", "density"]
DIGITS = {"acc": 1, "h_acc": 1, "length": 1, "density": 2}


def table1(run_dirs: list[str], init_metrics: list[str], out: Path) -> pd.DataFrame:
    """Table 1: Acc / H-Acc / length / value density per estimator x reward (in-domain test)."""
    rows = pd.DataFrame([load_run(d) for d in run_dirs])
    table = aggregate(rows, ["estimator", "scale", "reward"], TABLE1_METRICS)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out.with_suffix(".csv"), index=False)
    md = ["# Table 1: in-domain test set (Acc and H-Acc in %, length in tokens, density = H-Acc / length)", ""]
    md.append(to_markdown(table, ["estimator", "scale", "reward"], TABLE1_METRICS, DIGITS))
    for path in init_metrics:  # the common starting point of every run, for before/after
        m = json.loads(Path(path).read_text())
        md.append(f"Starting policy ({m['model']}): acc {m['acc']:.1f}, h_acc {m['h_acc']:.1f}, "
                  f"length {m['length']:.1f}, density {m['density']:.2f}.\n")
    md.append(f"Runs: {len(rows)} ({rows['seed'].nunique()} seed(s) each); cells are means, "
              "with a 95% t-interval in brackets when there are several seeds.\n")
    out.with_suffix(".md").write_text("\n".join(md))
    return table
