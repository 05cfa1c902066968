"""The HTML report's first page (results/report/landing.rst): what ran and the headline result.

Snakemake's report takes its first page as reStructuredText, so this writes RST, not a
table: what ran from the run directories, the headline from Table 1 and the bootstrap.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from rlev.report.runs import STARTING_POLICY, run_identity


def _rst_title(text: str) -> list[str]:
    return [text, "-" * len(text), ""]


def landing(run_dirs: list[str], table1_csv: Path, bootstrap_csv: Path | None, out: Path) -> str:
    """reStructuredText for the HTML report's first page: what ran and the headline result.

    What ran is read from the run directories (each run's config.yaml, its logged step
    times); the headline from Table 1 (seed means with t-intervals) and the bootstrap
    of RLEV minus correctness. Numbers only: the reader draws the conclusion.
    """
    rows = pd.DataFrame([run_identity(d) for d in run_dirs])  # what ran: configs, not evaluations
    seconds = 0.0
    for d in run_dirs:
        path = Path(d) / "train" / "metrics.jsonl"
        if path.is_file():
            for line in path.read_text().splitlines():
                if line.strip():
                    step = json.loads(line)
                    seconds += sum(
                        float(step.get(k) or 0) for k in ("time_generate", "time_reward", "time_logprob", "time_update")
                    )
    scales = ", ".join(sorted(rows["scale"].unique()))
    datasets = sorted({p.get("dataset.name", "?") for p in rows["params"]})
    lines = [
        "rlev: Reinforcement Learning with Explicit Human Values",
        "=" * 55,
        "",
        f"Scale **{scales}**, datasets {', '.join(datasets)}. {len(rows)} training runs, seeds "
        f"{sorted(int(s) for s in rows['seed'].unique())}"
        + (f"; {seconds / 60:.1f} minutes of logged RL step time in all." if seconds else "."),
        "",
        *_rst_title("What ran (estimator: reward variants, with the seeds of each)"),
    ]
    for estimator, group in rows.groupby("estimator", sort=False):
        arms = []
        group = group.assign(dataset=group["params"].map(lambda p: p.get("dataset.name", "?")))
        for (reward, alpha, form, dataset), g in group.groupby(["reward", "alpha", "form", "dataset"], sort=False):
            arm = reward if alpha == "-" else f"{reward} (alpha {alpha}, {form})"
            arms.append(f"{arm} on {dataset}: seeds {sorted(int(s) for s in g['seed'])}")
        lines.append(f"- **{estimator}**: " + "; ".join(arms))
    lines += ["", *_rst_title("Headline: Table 1 (H-Acc in %, seed mean [95% t-interval])")]
    t1 = pd.read_csv(table1_csv, keep_default_na=False)
    start = t1[t1["estimator"] == STARTING_POLICY]
    if len(start):
        lines.append(
            f"- starting policy (no RL): H-Acc {float(start['h_acc'].iloc[0]):.1f}, "
            f"Acc {float(start['acc'].iloc[0]):.1f}"
        )
    for _, r in t1[t1["estimator"] != STARTING_POLICY].iterrows():
        lo, hi = r["h_acc_lo"], r["h_acc_hi"]
        interval = f" [{float(lo):.1f}, {float(hi):.1f}]" if str(lo) not in ("", "nan") else " (n=1)"
        arm = r["reward"] if r.get("alpha", "-") in ("-", "") else f"{r['reward']}, alpha {r['alpha']}"
        lines.append(
            f"- {r['estimator']}, {arm}: H-Acc {float(r['h_acc']):.1f}{interval}, "
            f"length {float(r['length']):.1f}, seeds {r['seeds']}"
        )
    if bootstrap_csv is not None and Path(bootstrap_csv).is_file():
        b = pd.read_csv(bootstrap_csv)
        b = b[b["metric"] == "h_acc"]
        over = "whole exams" if (b["cluster"] == "exam").all() else "test prompts"
        lines += ["", *_rst_title(f"RLEV minus correctness, H-Acc (percentage points, paired bootstrap over {over})")]
        for _, r in b.iterrows():
            lines.append(
                f"- {r['estimator']} (alpha {r['alpha']}): {r['diff']:+.2f} [{r['lo']:+.2f}, {r['hi']:+.2f}], "
                f"{r['seed_pairs']} seed pair(s)"
            )
    lines += [
        "",
        "The categories below hold each paper table with its figures and training curves; every "
        "table lists the run directories it was built from.",
        "",
    ]
    text = "\n".join(lines) + "\n"
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return text
