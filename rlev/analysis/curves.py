"""Training curves of one experiment: what RL did, step by step (beyond the paper's tables).

Every local run logs one line per RL step to `<run>/train/metrics.jsonl`
(`rlev.train.local.STEP_METRICS`). For one experiment this draws, over steps, the batch's
mean reward, accuracy and response length, and the length of the responses to the
highest- (q4) and lowest-valued (q1) quarter of the batch's prompts (the paper's claim is
about how length follows value). One row of panels per estimator; within a panel one
line per reward (correctness, RLEV, ...), each the mean over the setting's seeds, smoothed
by a centred rolling mean over `window` steps (the raw per-step means are in the CSV).

A run directory without train/metrics.jsonl (a verl run whose logger wrote elsewhere) or a
quantity a run did not log is left out of the panel, and the CSV says which runs are in it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

PANELS = [
    ("reward", "mean reward"),
    ("acc", "accuracy (batch)"),
    ("length", "response length (tokens)"),
    ("length_q4", "length, top-valued quarter"),
    ("length_q1", "length, bottom-valued quarter"),
]
WINDOW = 5


def read_metrics(run_dir: str | Path) -> pd.DataFrame:
    """A run's per-step metrics (one row per step; the last line of a step wins after a resume)."""
    path = Path(run_dir) / "train" / "metrics.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        raise ValueError(f"{path}: no steps logged")
    return pd.DataFrame(rows).drop_duplicates("step", keep="last").sort_values("step")


def curves(run_dirs: list[str], out: Path, title: str, window: int = WINDOW) -> pd.DataFrame:
    """<out>.png/.svg and <out>.csv (per setting and step: the seed mean of each quantity, and seeds).

    In the CSV, `variant` is the reward variant of the runs and `reward` their logged mean reward.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rlev.report.runs import run_identity

    parts = []
    for d in run_dirs:
        run = run_identity(d)  # the curves need no evaluation
        m = read_metrics(d)
        keep = ["step"] + [k for k, _ in PANELS if k in m.columns]
        # the reward variant goes to `variant`: `reward` is the logged mean reward
        parts.append(
            m[keep].assign(
                variant=run["reward"], **{k: run[k] for k in ("estimator", "scale", "alpha", "form", "seed", "run")}
            )
        )
    data = pd.concat(parts, ignore_index=True)
    setting = ["estimator", "scale", "variant", "alpha", "form"]
    quantities = [k for k, _ in PANELS if k in data.columns]
    table = (
        data.groupby(setting + ["step"], sort=False)
        .agg(
            **{k: (k, "mean") for k in quantities},
            seeds=("seed", "nunique"),
            runs=("run", lambda r: ";".join(dict.fromkeys(r))),
        )
        .reset_index()
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out.with_suffix(".csv"), index=False)

    estimators = list(dict.fromkeys(zip(table["estimator"], table["scale"])))
    panels = [(k, label) for k, label in PANELS if k in quantities]
    fig, axes = plt.subplots(
        len(estimators), len(panels), figsize=(3.4 * len(panels), 2.8 * len(estimators)), squeeze=False
    )
    styles = ["-", "--", "-.", ":"]
    for r, (estimator, scale) in enumerate(estimators):
        sel = table[(table["estimator"] == estimator) & (table["scale"] == scale)]
        arms = list(dict.fromkeys(zip(sel["variant"], sel["alpha"], sel["form"])))
        for c, (key, label) in enumerate(panels):
            ax = axes[r][c]
            for i, (reward, alpha, form) in enumerate(arms):
                line = sel[(sel["variant"] == reward) & (sel["alpha"] == alpha) & (sel["form"] == form)]
                smooth = line[key].rolling(window, center=True, min_periods=1).mean()
                name = (
                    reward
                    if alpha == "-"
                    else f"{reward}, alpha {alpha}" + ("" if form == "additive_clipped" else f", {form}")
                )
                ax.plot(line["step"], smooth, styles[i % len(styles)], label=f"{name} (n={line['seeds'].max()})")
            ax.set_title(f"{estimator} ({scale}): {label}", fontsize=8)
            ax.set_xlabel("RL step")
            if c == 0:
                ax.legend(fontsize=6)
    fig.suptitle(f"{title}: training curves (seed means, rolling mean over {window} steps)")
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=110)
    fig.savefig(out.with_suffix(".svg"))
    plt.close(fig)
    return table
