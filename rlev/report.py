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

REWARD_NAMES = {"correctness": "correctness", "human": "human-aligned", "uniform": "uniform scaling",
                "shuffled": "random weights (shuffled)", "weak": "weak (difficulty)", "predicted": "predicted"}
ESTIMATOR_NAMES = {"reinforce_plus_plus": "REINFORCE++", "reinforce_plus_plus_baseline": "REINFORCE++-baseline",
                   "rloo": "RLOO", "grpo": "GRPO"}


def kl_label(est: dict) -> str:
    """Where a run's KL to the initial policy went (none, in the reward, or in the loss), as tables print it."""
    parts = []
    if est.get("use_kl_in_reward"):
        parts.append(f"in reward {est.get('kl_coef', 0.001):g} ({est.get('kl_penalty', 'kl')})")
    if est.get("use_kl_loss"):
        parts.append(f"loss {est.get('kl_loss_coef', 0.001):g} ({est.get('kl_loss_type', 'low_var_kl')})")
    return ", ".join(parts) or "none"


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
        "kl": kl_label(est),
        **metrics,
        "verifier": metrics.get("verifier", "rule"),  # what scored the evaluation (rlev.evaluate)
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
    md.append(f"Scored by: {', '.join(sorted(set(rows['verifier'])))}; KL to the initial policy: "
              f"{', '.join(sorted(set(rows['kl'])))}.\n")
    out.with_suffix(".md").write_text("\n".join(md))
    return table


TABLE8_METRICS = ["acc", "acc_top20", "acc_bottom20"]


def table8(run_dirs: list[str], out: Path) -> pd.DataFrame:
    """Table 8: Acc on all, the 20% highest- and the 20% lowest-valued test prompts (in %)."""
    rows = pd.DataFrame([load_run(d) for d in run_dirs])
    keys = ["estimator", "scale", "reward"]
    table = aggregate(rows, keys, TABLE8_METRICS)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out.with_suffix(".csv"), index=False)
    md = ["# Table 8: accuracy (%) on all test prompts, the 20% highest-valued (acc_top20) and the 20% "
          "lowest-valued (acc_bottom20)", ""]
    md.append(to_markdown(table, keys, TABLE8_METRICS, {m: 1 for m in TABLE8_METRICS}))
    md.append(f"Runs: {len(rows)} ({rows['seed'].nunique()} seed(s) each); cells are means, "
              "with a 95% t-interval in brackets when there are several seeds. "
              "Run directories are in the `runs` column of table8.csv.\n")
    out.with_suffix(".md").write_text("\n".join(md))
    return table


def bootstrap_table(run_dirs: list[str], out: Path, resamples: int | None = None, seed: int | None = None
                    ) -> pd.DataFrame:
    """Paired bootstrap over test prompts of RLEV (human) minus correctness, per estimator.

    Runs are paired by estimator, scale, alpha, form and seed; see `rlev.stats` for how
    several seeds are combined. Metrics: H-Acc (the paper's target) and Acc.
    """
    from rlev.stats import RESAMPLES, SEED, paired_bootstrap, paired_samples

    resamples = RESAMPLES if resamples is None else resamples
    seed = SEED if seed is None else seed
    rows = pd.DataFrame([load_run(d) for d in run_dirs])
    treatment, baseline = REWARD_NAMES["human"], REWARD_NAMES["correctness"]
    records = []
    for (estimator, scale), group in rows.groupby(["estimator", "scale"], sort=False):
        runs_t = group[group["reward"] == treatment]
        runs_b = group[group["reward"] == baseline]
        if runs_t.empty or runs_b.empty:
            raise ValueError(f"bootstrap: {estimator} at {scale} needs both a {treatment!r} and a {baseline!r} "
                             f"run; got {sorted(group['reward'])} from {list(group['run'])}")
        pairs, pair_runs = [], []
        for (alpha, form, s), t in runs_t.groupby(["alpha", "form", "seed"]):
            b = runs_b[runs_b["seed"] == s]
            if len(t) != 1 or len(b) != 1:
                raise ValueError(f"bootstrap: {estimator} at {scale}, seed {s}: expected one {treatment!r} and "
                                 f"one {baseline!r} run, got {list(t['run'])} and {list(b['run'])}")
            t_dir, b_dir = t["run"].iloc[0], b["run"].iloc[0]
            pairs.append(paired_samples(pd.read_parquet(Path(t_dir) / "eval" / "samples.parquet"),
                                        pd.read_parquet(Path(b_dir) / "eval" / "samples.parquet"),
                                        what=f"{t_dir} vs {b_dir}"))
            pair_runs.append(f"{t_dir} - {b_dir}")
        for metric in ("h_acc", "acc"):
            r = paired_bootstrap(pairs, metric, resamples, seed)
            records.append({"estimator": estimator, "scale": scale, "metric": metric,
                            "difference": f"{treatment} - {baseline}", "diff": r.diff, "lo": r.lo, "hi": r.hi,
                            "share_positive": r.share_positive, "prompts": r.n_prompts,
                            "seed_pairs": r.seed_pairs, "resamples": r.resamples, "rng_seed": r.seed,
                            "runs": ";".join(pair_runs)})
    table = pd.DataFrame(records)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out.with_suffix(".csv"), index=False)
    md = [f"# Paired bootstrap over test prompts: {treatment} minus {baseline} (percentage points)", "",
          "| estimator | scale | metric | diff | 95% interval | share > 0 | prompts | seed pairs |",
          "|---|---|---|---|---|---|---|---|"]
    for _, r in table.iterrows():
        md.append(f"| {r['estimator']} | {r['scale']} | {r['metric']} | {r['diff']:+.2f} | "
                  f"[{r['lo']:+.2f}, {r['hi']:+.2f}] | {r['share_positive']:.3f} | {r['prompts']} | "
                  f"{r['seed_pairs']} |")
    md += ["", f"Prompts resampled with replacement, {resamples} resamples, numpy seed {seed}; the interval is the "
           "2.5-97.5 percentile of the resampled differences. Seed k of one reward is paired with seed k of the "
           "other and every seed pair is scored on the same resample (the difference is averaged over seed "
           "pairs), so the interval reflects which test prompts were drawn, not seed-to-seed variation "
           "(that is the t-interval of Tables 1 and 8). Run pairs are in the `runs` column of bootstrap.csv.", ""]
    out.with_suffix(".md").write_text("\n".join(md))
    return table


def markdown_to_html(md: str) -> str:
    """A standalone HTML page from the Markdown the table builders write.

    The builders write only `# ` titles, pipe tables and plain paragraphs, so that is all
    this renders (the HTML report embeds HTML, not Markdown). Backticks become <code>.
    """
    import html
    import re

    def inline(text: str) -> str:
        return re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(text.strip()))

    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip().strip("|").split("|")]

    title, body, lines, i = "", [], md.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("# "):
            title = title or line[2:].strip()
            body.append(f"<h1>{inline(line[2:])}</h1>")
            i += 1
        elif line.startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append(lines[i])
                i += 1
            rows = [r for r in block if not re.fullmatch(r"\|?(\s*:?-+:?\s*\|)+\s*", r.strip())]
            body.append("<table>")
            body.append("<tr>" + "".join(f"<th>{inline(c)}</th>" for c in cells(rows[0])) + "</tr>")
            for r in rows[1:]:
                body.append("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in cells(r)) + "</tr>")
            body.append("</table>")
        elif line.strip():
            para = []
            while i < len(lines) and lines[i].strip() and not lines[i].startswith(("# ", "|")):
                para.append(lines[i])
                i += 1
            body.append(f"<p>{inline(' '.join(para))}</p>")
        else:
            i += 1
    style = ("body{font-family:sans-serif;font-size:14px}table{border-collapse:collapse}"
             "td,th{border:1px solid #bbb;padding:3px 8px;text-align:left}th{background:#eee}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n")


def table_html(md_path: Path, out: Path, csv_path: Path | None = None) -> None:
    """Render a table's Markdown file (as written by a table builder) to HTML for the report.

    When the table's CSV has a `runs` column (run directories joined by ';'), the page ends
    with the list of run directories behind it, so the report says which runs made it.
    """
    md = Path(md_path).read_text()
    if csv_path is not None:
        table = pd.read_csv(csv_path)
        if "runs" in table.columns:
            runs = dict.fromkeys(r for cell in table["runs"].dropna() for r in str(cell).split(";"))
            md += "\n\nRun directories: " + ", ".join(f"`{r}`" for r in runs) + "\n"
    out.write_text(markdown_to_html(md))


# --- Tables 4-6: the reward ablations (RLOO in the paper) ------------------------------


def _ablation_table(run_dirs: list[str], keys: list[str], out: Path, title: str, notes: list[str]) -> pd.DataFrame:
    """Acc / H-Acc / length / density per `keys` group, as CSV and Markdown (like Table 1)."""
    rows = pd.DataFrame([load_run(d) for d in run_dirs])
    table = aggregate(rows, keys, TABLE1_METRICS)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out.with_suffix(".csv"), index=False)
    md = [f"# {title}", "", to_markdown(table, keys, TABLE1_METRICS, DIGITS), *notes]
    md.append(f"Runs: {len(rows)} ({rows['seed'].nunique()} seed(s) each); cells are means, with a 95% t-interval "
              "in brackets when there are several seeds. Acc and H-Acc in %, length in tokens, density = H-Acc / "
              f"length. Run directories are in the `runs` column of {out.with_suffix('.csv').name}.\n")
    out.with_suffix(".md").write_text("\n".join(md))
    return table


def _uniform_scale_note(run_dirs: list[str]) -> list[str]:
    """The s_bar each uniform run gave every correct answer, read from its values.parquet."""
    notes = []
    for d in run_dirs:
        config = yaml.safe_load((Path(d) / "config.yaml").read_text())
        values = Path(d) / "values.parquet"
        if config["reward"]["variant"] == "uniform" and values.is_file():
            s_bar = float(pd.read_parquet(values, columns=["scale"])["scale"].iloc[0])
            notes.append(f"Uniform scaling ({d}): every correct answer earns s_bar = {s_bar:.3f}, the mean s(x) over "
                         "the training prompts (the paper's is about 1.2).\n")
    return notes


def table4(run_dirs: list[str], out: Path) -> pd.DataFrame:
    """Table 4: the reward-scaling ablation (correctness, uniform s_bar, shuffled values, human values)."""
    notes = _uniform_scale_note(run_dirs)
    notes.append("Random weights: v permuted across the training set (same values, no alignment with the "
                 "questions), permutation seed numpy.random.default_rng([reward.shuffle_seed, seed]) as recorded "
                 "in each run's config.yaml.\n")
    return _ablation_table(run_dirs, ["estimator", "scale", "reward"], out,
                           "Table 4: reward scaling ablation on the in-domain test set", notes)


def table5(run_dirs: list[str], out: Path) -> pd.DataFrame:
    """Table 5: sensitivity to alpha in s(x) = 1 + min(alpha * v, 1)."""
    return _ablation_table(run_dirs, ["estimator", "scale", "reward", "form", "alpha"], out,
                           "Table 5: sensitivity to alpha, s(x) = 1 + min(alpha v, 1)", [])


def table6(run_dirs: list[str], out: Path) -> pd.DataFrame:
    """Table 6: the reward form, additive and clipped (RLEV) vs purely multiplicative (1 + alpha v)."""
    notes = ["additive_clipped: r = (1 + min(alpha v, 1)) 1[correct] (RLEV); multiplicative: "
             "r = (1 + alpha v) 1[correct].\n"]
    return _ablation_table(run_dirs, ["estimator", "scale", "reward", "alpha", "form"], out,
                           "Table 6: reward form", notes)



# --- Table 2: out-of-distribution multiple choice; Table 3: noisy values ----------------


def _base_row(run: str, scale: str, **cells) -> dict:
    """A table row for the starting policy (no RL), shaped like load_run's rows."""
    return {"estimator": "base (starting policy)", "scale": scale, "reward": "-", "seed": 0, "run": run, **cells}


def table2(run_dirs: list[str], base_dir: str | None, benchmarks: list[str], out: Path) -> pd.DataFrame:
    """Table 2: accuracy (%) on each OOD benchmark, for the starting policy and each run.

    A run's cell is `<run>/ood/<benchmark>/metrics.json`; the starting policy's is
    `<base_dir>/<benchmark>/metrics.json` (rlev.data.ood.evaluate_ood).
    """
    def ood(path: Path) -> dict:
        return json.loads(path.read_text())

    rows = []
    for d in run_dirs:
        run = load_run(d)
        keys = {k: run[k] for k in ("estimator", "scale", "reward", "seed", "run")}
        rows.append({**keys, **{b: ood(Path(d) / "ood" / b / "metrics.json")["acc"] for b in benchmarks}})
    scale = rows[0]["scale"] if rows else ""
    base = {}
    if base_dir:
        base = {b: ood(Path(base_dir) / b / "metrics.json") for b in benchmarks}
        rows.insert(0, _base_row(str(base_dir), scale, **{b: m["acc"] for b, m in base.items()}))
    keys = ["estimator", "scale", "reward"]
    table = aggregate(pd.DataFrame(rows), keys, benchmarks)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out.with_suffix(".csv"), index=False)
    md = ["# Table 2: accuracy (%) on out-of-distribution multiple-choice benchmarks", "",
          to_markdown(table, keys, benchmarks, {b: 1 for b in benchmarks})]
    for b, m in base.items():  # what a guess scores, so near-chance numbers read as such
        md.append(f"{b}: {m['n']} questions, chance {m['chance']:.1f}%; starting policy ({m['model']}) left "
                  f"{m['unanswered']:.1f}% unanswered.\n")
    md.append("One prompt and one answer-extraction ladder for every benchmark (rlev.data.ood); greedy decoding. "
              f"Runs: {len(run_dirs)}; cells are means over seeds, with a 95% t-interval in brackets when there "
              f"are several. Run directories are in the `runs` column of {out.with_suffix('.csv').name}.\n")
    out.with_suffix(".md").write_text("\n".join(md))
    return table


DIFFICULTIES = ("primary", "junior", "senior", "university", "phd")
TABLE3_METRICS = ["acc", "h_acc", *(f"acc_{d}" for d in DIFFICULTIES)]


def accuracy_by_difficulty(samples: pd.DataFrame) -> dict:
    """acc_<category> (%) from per-sample records (difficulty, correct); NaN for a category with no rows.

    >>> accuracy_by_difficulty(pd.DataFrame({"difficulty": ["phd", "phd", "primary"], "correct": [1, 0, 1]}))["acc_phd"]
    50.0
    """
    out = {}
    for d in DIFFICULTIES:
        part = samples.loc[samples["difficulty"] == d, "correct"].astype(float)
        out[f"acc_{d}"] = 100 * float(part.mean()) if len(part) else math.nan
    return out


def table3(run_dirs: list[str], init_eval_dirs: list[str], out: Path) -> pd.DataFrame:
    """Table 3: Acc, H-Acc and accuracy per difficulty on the noisy-value dataset's test split."""
    rows = []
    for d in run_dirs:
        samples = pd.read_parquet(Path(d) / "eval" / "samples.parquet", columns=["difficulty", "correct"])
        rows.append({**load_run(d), **accuracy_by_difficulty(samples)})
    scale = rows[0]["scale"] if rows else ""
    for d in init_eval_dirs:  # the starting policy of every run (the paper's "base" row)
        metrics = json.loads((Path(d) / "metrics.json").read_text())
        samples = pd.read_parquet(Path(d) / "samples.parquet", columns=["difficulty", "correct"])
        rows.insert(0, _base_row(str(d), scale, **metrics, **accuracy_by_difficulty(samples)))
    keys = ["estimator", "scale", "reward"]
    table = aggregate(pd.DataFrame(rows), keys, TABLE3_METRICS)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out.with_suffix(".csv"), index=False)
    counts = pd.read_parquet(Path(run_dirs[0]) / "eval" / "samples.parquet", columns=["difficulty"])
    md = ["# Table 3: noisy values (Acc, H-Acc and Acc per difficulty, in %)", "",
          to_markdown(table, keys, TABLE3_METRICS, {m: 1 for m in TABLE3_METRICS}),
          "Values: weak = the difficulty category's points / 100; predicted = the score predictor's score / 100 "
          "(results/predictor/.../labels/*/label_stats.json says how far it is from the category points). "
          "H-Acc weighs test prompts by the dataset's `value` (WebInstruct: the category's points / 100, the only "
          "value it has; the synthetic stand-in: the true difficulty's points / 100, of which the difficulty labels "
          "and so the weak values are a noisy copy; the difficulty columns group by label). "
          f"Test prompts per difficulty: {counts['difficulty'].value_counts().reindex(DIFFICULTIES).fillna(0).astype(int).to_dict()}.\n",
          f"Runs: {len(run_dirs)}; cells are means over seeds, with a 95% t-interval in brackets when there are "
          f"several. Run directories are in the `runs` column of {out.with_suffix('.csv').name}.\n"]
    out.with_suffix(".md").write_text("\n".join(md))
    return table
