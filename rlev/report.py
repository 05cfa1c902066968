"""Paper-numbered result tables, built only from run directories the pipeline wrote.

Every cell is read from `<run>/eval/metrics.json`; the run's own `config.yaml` says what
the run was. Only seeds are averaged: runs are grouped by every parameter of their
config.yaml except the seed (`run_parameters`), and a parameter that differs between runs
of one table row (e.g. two alphas under `experiments.main.alphas`) becomes a column of its
own. A cell is the mean over the group's seeds with a 95% t-interval (columns
`<metric>_lo`, `<metric>_hi`), the number of seeds in `seeds` and the run directories in
`runs`; a one-seed cell says "n=1". Every table starts with the starting policy (the model
every run of the table starts from, evaluated the same way), so a reader sees what RL did.
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

    Dropped: the seed, the run's id and directory, and any path inside the run directory.
    A correctness run's alpha and form are dropped too: its reward does not read them.

    >>> run_parameters({"seed": 1, "out_dir": "r/seed1", "dataset": {"verl_train": "r/seed1/x.parquet", "name": "d"},
    ...                 "reward": {"variant": "correctness", "alpha": 10, "form": "additive_clipped"}})
    {'dataset.name': 'd', 'reward.variant': 'correctness'}
    """
    out_dir = config.get("out_dir")
    params = {k: v for k, v in _flatten(config).items()
              if k not in ("seed", "run_id", "out_dir") and not (out_dir and isinstance(v, str) and out_dir in v)}
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


def starting_policy_row(eval_dir: str | Path, scale: str, extra: dict | None = None) -> dict:
    """A table row for the starting policy from its evaluation folder (metrics.json), shaped like load_run's."""
    metrics = json.loads((Path(eval_dir) / "metrics.json").read_text())
    return {"estimator": STARTING_POLICY, "scale": scale, "reward": "-", "alpha": "-", "form": "-", "seed": None,
            "run": str(eval_dir), "params": {}, **metrics, **(extra or {})}


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
            raise ValueError(f"runs {list(group['run'])} have the same setting and seed {seed}: "
                             "they are not seeds of one experiment; remove the copy")
        for m in metrics:
            mean, lo, hi = mean_and_interval(group[m])
            record[m], record[f"{m}_lo"], record[f"{m}_hi"] = mean, lo, hi
        record["seeds"] = int(len(seeds))  # 0 for the starting policy (one model, no seeds)
        record["runs"] = ";".join(group["run"])
        out.append(record)
    return pd.DataFrame(out), columns


def cell(row, metric: str, digits: int = 1) -> str:
    """`mean [lo, hi]` over several seeds; `mean (n=1)` for one seed; the bare value for the starting policy.

    >>> cell({"acc": 60.0, "acc_lo": 50.0, "acc_hi": 70.0, "seeds": 3}, "acc")
    '60.0 [50.0, 70.0]'
    >>> cell({"acc": 40.0, "acc_lo": float("nan"), "acc_hi": float("nan"), "seeds": 1}, "acc")
    '40.0 (n=1)'
    """
    value = row[metric]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if row["seeds"] > 1:
        return f"{value:.{digits}f} [{row[f'{metric}_lo']:.{digits}f}, {row[f'{metric}_hi']:.{digits}f}]"
    return f"{value:.{digits}f} (n=1)" if row["seeds"] == 1 else f"{value:.{digits}f}"


def to_markdown(table: pd.DataFrame, keys: list[str], metrics: list[str], digits: dict[str, int]) -> str:
    """A Markdown table of `aggregate`'s output; see `cell` for how a cell reads."""
    header = keys + metrics + ["seeds"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in table.iterrows():
        seeds = str(row["seeds"]) if row["seeds"] else "- (one model)"
        lines.append("| " + " | ".join([str(row[k]) for k in keys] + [cell(row, m, digits.get(m, 1)) for m in metrics]
                                       + [seeds]) + " |")
    return "\n".join(lines) + "\n"


def seeds_note(rows: pd.DataFrame) -> str:
    """What a cell is, and which seeds the runs have."""
    runs = rows[rows["seed"].notna()]
    seeds = sorted(int(s) for s in runs["seed"].unique())
    return (f"Runs: {len(runs)} (seeds {seeds}). Each cell is the mean over the seeds of one setting with a 95% "
            "t-interval in brackets; a cell marked n=1 comes from one seed and has no interval. Only seeds are "
            "averaged: runs that differ in any other parameter are separate rows. The starting-policy row is the "
            "one model every run starts from, evaluated the same way (no seeds). The run directories behind the "
            "rows are listed below.\n")


def reward_note(rows: pd.DataFrame) -> str:
    """The alpha and form of the value runs, so a table names them (when they are not columns)."""
    runs = rows[(rows["seed"].notna()) & (rows["alpha"] != "-")]
    if runs.empty:
        return ""
    pairs = sorted(set(zip(runs["alpha"], runs["form"])))
    return ("Value-scaled runs use " + "; ".join(f"alpha = {a}, form {f}" for a, f in pairs)
            + " (s(x) = 1 + min(alpha v, 1) for additive_clipped, 1 + alpha v for multiplicative).\n")


def starting_rows(init_dirs: list[str], scale: str, extra=None) -> list[dict]:
    return [starting_policy_row(d, scale, extra(Path(d)) if extra else None) for d in init_dirs]


TABLE1_METRICS = ["acc", "h_acc", "length", "density"]
DIGITS = {"acc": 1, "h_acc": 1, "length": 1, "density": 2}
KEYS = ["estimator", "scale", "reward"]


def _write(table: pd.DataFrame, out: Path, md: list[str]) -> None:
    """The table as CSV, and as Markdown ending with the run directories behind it (from its `runs` column)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out.with_suffix(".csv"), index=False)
    text = "\n".join(md)
    if "runs" in table.columns:
        runs = dict.fromkeys(r for cell in table["runs"].dropna() for r in str(cell).split(";"))
        text += "\n\nRun directories: " + ", ".join(f"`{r}`" for r in runs) + "\n"
    out.with_suffix(".md").write_text(text)


def method_note(rows: pd.DataFrame) -> str:
    """Which verifier scored the runs and where their KL to the initial policy went."""
    runs = rows[rows["seed"].notna()]
    return (f"Scored by: {', '.join(sorted(set(runs['verifier'])))}; KL to the initial policy: "
            f"{', '.join(sorted(set(runs['kl'])))}.\n")


def _runs_and_start(run_dirs: list[str], init_dirs: list[str], extra=None) -> pd.DataFrame:
    """The runs' rows, the starting policy's first; `extra(dir)` adds cells read from an eval folder."""
    rows = [{**load_run(d), **(extra(Path(d) / "eval") if extra else {})} for d in run_dirs]
    scale = rows[0]["scale"] if rows else ""
    return pd.DataFrame(starting_rows(init_dirs, scale, extra) + rows)


def table1(run_dirs: list[str], init_dirs: list[str], out: Path) -> pd.DataFrame:
    """Table 1: Acc / H-Acc / length / value density per estimator x reward (in-domain test)."""
    rows = _runs_and_start(run_dirs, init_dirs)
    table, keys = aggregate(rows, KEYS, TABLE1_METRICS)
    md = ["# Table 1: in-domain test set (Acc and H-Acc in %, length in tokens, density = H-Acc / length)", "",
          to_markdown(table, keys, TABLE1_METRICS, DIGITS), reward_note(rows), seeds_note(rows), method_note(rows)]
    _write(table, out, md)
    return table


TABLE8_METRICS = ["acc", "acc_top20", "acc_bottom20"]


def table8(run_dirs: list[str], out: Path, init_dirs: list[str] = ()) -> pd.DataFrame:
    """Table 8: Acc on all, the 20% highest- and the 20% lowest-valued test prompts (in %)."""
    rows = _runs_and_start(run_dirs, list(init_dirs))
    table, keys = aggregate(rows, KEYS, TABLE8_METRICS)
    md = ["# Table 8: accuracy (%) on all test prompts, the 20% highest-valued (acc_top20) and the 20% "
          "lowest-valued (acc_bottom20)", "",
          to_markdown(table, keys, TABLE8_METRICS, {m: 1 for m in TABLE8_METRICS}), reward_note(rows),
          seeds_note(rows)]
    _write(table, out, md)
    return table


def bootstrap_table(run_dirs: list[str], out: Path, resamples: int | None = None, seed: int | None = None,
                    cluster: str = "exam") -> pd.DataFrame:
    """Paired bootstrap of RLEV (human) minus correctness, per estimator and setting.

    Runs are paired by seed within one setting (estimator, scale, alpha, form and every other
    parameter, as the tables group them); see `rlev.stats` for how several seeds are combined
    and what `cluster` ("exam": whole exams, "prompt": single prompts) resamples.
    Metrics: H-Acc (the paper's target) and Acc.
    """
    from rlev.stats import RESAMPLES, SEED, paired_bootstrap, paired_samples

    resamples = RESAMPLES if resamples is None else resamples
    seed = SEED if seed is None else seed
    rows = pd.DataFrame([load_run(d) for d in run_dirs])
    treatment, baseline = REWARD_NAMES["human"], REWARD_NAMES["correctness"]
    # The setting of a pair: every parameter but those of the value scale (variant, alpha, form, what the
    # variant reads, its labelled data); a value-independent reward.cost stays part of the setting.
    reward_keys = ("reward.variant", "reward.alpha", "reward.form", "reward.shuffle_seed", "reward.weak_points",
                   "dataset.train")
    rows["setting"] = rows["params"].map(lambda p: json.dumps(
        {k: v for k, v in p.items() if not k.startswith(reward_keys)}, sort_keys=True, default=str))
    records = []
    for (estimator, scale), group in rows.groupby(["estimator", "scale"], sort=False):
        runs_t = group[group["reward"] == treatment]
        runs_b = group[group["reward"] == baseline]
        if runs_t.empty or runs_b.empty:
            raise ValueError(f"bootstrap: {estimator} at {scale} needs both a {treatment!r} and a {baseline!r} "
                             f"run; got {sorted(group['reward'])} from {list(group['run'])}")
        for (alpha, form), arm in runs_t.groupby(["alpha", "form"], sort=False):
            pairs, pair_runs = [], []
            for _, t in arm.iterrows():
                b = runs_b[(runs_b["seed"] == t["seed"]) & (runs_b["setting"] == t["setting"])]
                if len(b) != 1:
                    raise ValueError(f"bootstrap: {t['run']} needs exactly one {baseline!r} run of the same setting "
                                     f"and seed {t['seed']}; found {list(b['run'])}")
                b_dir = b["run"].iloc[0]
                pairs.append(paired_samples(pd.read_parquet(Path(t["run"]) / "eval" / "samples.parquet"),
                                            pd.read_parquet(Path(b_dir) / "eval" / "samples.parquet"),
                                            what=f"{t['run']} vs {b_dir}"))
                pair_runs.append(f"{t['run']} - {b_dir}")
            for metric in ("h_acc", "acc"):
                r = paired_bootstrap(pairs, metric, resamples, seed, cluster)
                records.append({"estimator": estimator, "scale": scale, "alpha": alpha, "form": form,
                                "metric": metric, "difference": f"{treatment} - {baseline}", "diff": r.diff,
                                "lo": r.lo, "hi": r.hi, "share_positive": r.share_positive, "prompts": r.n_prompts,
                                "cluster": r.cluster, "clusters": r.n_clusters, "seed_pairs": r.seed_pairs,
                                "resamples": r.resamples, "rng_seed": r.seed, "runs": ";".join(pair_runs)})
    table = pd.DataFrame(records)
    drawn = {"exam": "Whole exams resampled with replacement (cluster bootstrap: the test split is a sample of "
                     "exams, and prompts of one exam are not independent)",
             "prompt": "Test prompts resampled with replacement (each prompt its own cluster)"}[cluster]
    unit = "exams" if cluster == "exam" else "prompts drawn"
    md = [f"# Paired bootstrap: {treatment} minus {baseline} (percentage points), resampling "
          f"{'whole exams' if cluster == 'exam' else 'test prompts'}", "",
          "| estimator | scale | alpha | form | metric | diff | 95% interval | share > 0 | prompts | "
          f"{unit} | seed pairs |",
          "|---|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in table.iterrows():
        md.append(f"| {r['estimator']} | {r['scale']} | {r['alpha']} | {r['form']} | {r['metric']} | "
                  f"{r['diff']:+.2f} | [{r['lo']:+.2f}, {r['hi']:+.2f}] | {r['share_positive']:.3f} | "
                  f"{r['prompts']} | {r['clusters']} | {r['seed_pairs']} |")
    md += ["", f"{drawn}, {resamples} resamples, numpy seed {seed}; the interval is the 2.5-97.5 percentile of the "
           "resampled differences. Seed k of one reward is paired with seed k of the other (same setting) and every "
           "seed pair is scored on the same resample (the difference is averaged over seed pairs), so the interval "
           "reflects which test items were drawn, not seed-to-seed variation (that is the t-interval of Tables 1 "
           "and 8). The run pairs are listed below.", ""]
    _write(table, out, md)
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
    if csv_path is not None and "Run directories: " not in md:  # the table builders write them already
        table = pd.read_csv(csv_path)
        if "runs" in table.columns:
            runs = dict.fromkeys(r for cell in table["runs"].dropna() for r in str(cell).split(";"))
            md += "\n\nRun directories: " + ", ".join(f"`{r}`" for r in runs) + "\n"
    out.write_text(markdown_to_html(md))


# --- Tables 4-6: the reward ablations (RLOO in the paper) ------------------------------


def _ablation_table(run_dirs: list[str], init_dirs: list[str], keys: list[str], out: Path, title: str,
                    notes: list[str]) -> pd.DataFrame:
    """Acc / H-Acc / length / density per setting, as CSV and Markdown (like Table 1)."""
    rows = _runs_and_start(run_dirs, init_dirs)
    table, keys = aggregate(rows, keys, TABLE1_METRICS)
    md = [f"# {title}", "", to_markdown(table, keys, TABLE1_METRICS, DIGITS), *notes,
          "Acc and H-Acc in %, length in tokens, density = H-Acc / length.\n", seeds_note(rows)]
    _write(table, out, md)
    return table


def _uniform_notes(run_dirs: list[str]) -> list[str]:
    """The s_bar each uniform run gave every correct answer (from its values.parquet), and, when the
    optimiser makes uniform scaling a no-op (rlev.config.value_scale_invariance), the one message saying so."""
    from rlev.config import scale_invariance_message, value_scale_invariance

    notes, flagged = [], {}
    for d in run_dirs:
        config = yaml.safe_load((Path(d) / "config.yaml").read_text())
        if config["reward"]["variant"] != "uniform":
            continue
        values = Path(d) / "values.parquet"
        if values.is_file():
            s_bar = float(pd.read_parquet(values, columns=["scale"])["scale"].iloc[0])
            notes.append(f"Uniform scaling ({d}): every correct answer earns s_bar = {s_bar:.3f}, the mean s(x) over "
                         "the training prompts (the paper's is about 1.2).\n")
        reason = value_scale_invariance(config["estimator"], "uniform", config["reward"].get("cost"))
        if reason:
            name = config["estimator"]["name"]
            flagged[name] = scale_invariance_message("this table", name, config["estimator"], ["uniform"], reason)
    notes += [f"Note: {m}\n" for m in flagged.values()]
    return notes


def table4(run_dirs: list[str], out: Path, init_dirs: list[str] = ()) -> pd.DataFrame:
    """Table 4: the reward-scaling ablation (correctness, uniform s_bar, shuffled values, human values)."""
    notes = _uniform_notes(run_dirs)
    notes.append("Random weights: v permuted across the training set (same values, no alignment with the "
                 "questions), permutation seed numpy.random.default_rng([reward.shuffle_seed, seed]) as recorded "
                 "in each run's config.yaml.\n")
    rows = pd.DataFrame([load_run(d) for d in run_dirs])
    notes.append(reward_note(rows))
    return _ablation_table(run_dirs, list(init_dirs), KEYS, out,
                           "Table 4: reward scaling ablation on the in-domain test set", notes)


def table5(run_dirs: list[str], out: Path, init_dirs: list[str] = ()) -> pd.DataFrame:
    """Table 5: sensitivity to alpha in s(x) = 1 + min(alpha * v, 1)."""
    return _ablation_table(run_dirs, list(init_dirs), KEYS + ["form", "alpha"], out,
                           "Table 5: sensitivity to alpha, s(x) = 1 + min(alpha v, 1)", [])


def table6(run_dirs: list[str], out: Path, init_dirs: list[str] = ()) -> pd.DataFrame:
    """Table 6: the reward form, additive and clipped (RLEV) vs purely multiplicative (1 + alpha v)."""
    notes = ["additive_clipped: r = (1 + min(alpha v, 1)) 1[correct] (RLEV); multiplicative: "
             "r = (1 + alpha v) 1[correct].\n"]
    return _ablation_table(run_dirs, list(init_dirs), KEYS + ["alpha", "form"], out, "Table 6: reward form", notes)


# --- Table 2: out-of-distribution multiple choice; Table 3: noisy values ----------------


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
        rows.append({**{k: v for k, v in run.items() if k not in benchmarks},
                     **{b: ood(Path(d) / "ood" / b / "metrics.json")["acc"] for b in benchmarks}})
    scale = rows[0]["scale"] if rows else ""
    base = {}
    if base_dir:
        base = {b: ood(Path(base_dir) / b / "metrics.json") for b in benchmarks}
        rows.insert(0, {"estimator": STARTING_POLICY, "scale": scale, "reward": "-", "alpha": "-", "form": "-",
                        "seed": None, "run": str(base_dir), "params": {}, **{b: m["acc"] for b, m in base.items()}})
    frame = pd.DataFrame(rows)
    table, keys = aggregate(frame, KEYS, benchmarks)
    md = ["# Table 2: accuracy (%) on out-of-distribution benchmarks", "",
          to_markdown(table, keys, benchmarks, {b: 1 for b in benchmarks})]
    for b, m in base.items():  # what a guess scores, so near-chance numbers read as such
        chance = (f"chance {m['chance']:.1f}%" if m.get("chance") is not None
                  else "no chance level (a free-form answer)")
        md.append(f"{b}: {m['n']} questions, {chance}; the starting policy ({m['model']}) scores {m['acc']:.1f}% "
                  f"and leaves {m['unanswered']:.1f}% unanswered.\n")
    md += ["One prompt and one answer-extraction ladder per benchmark kind (rlev.data.ood); greedy decoding.\n",
           reward_note(frame), seeds_note(frame)]
    _write(table, out, md)
    return table


DIFFICULTIES = ("primary", "junior", "senior", "university", "phd")
TABLE3_METRICS = ["acc", "h_acc", *(f"acc_{d}" for d in DIFFICULTIES)]


def accuracy_by_difficulty(samples: pd.DataFrame, column: str = "difficulty") -> dict:
    """acc_<category> (%) from per-sample records (`column`, correct); NaN for a category with no rows.

    >>> accuracy_by_difficulty(pd.DataFrame({"difficulty": ["phd", "phd", "primary"], "correct": [1, 0, 1]}))["acc_phd"]
    50.0
    """
    out = {}
    for d in DIFFICULTIES:
        part = samples.loc[samples[column] == d, "correct"].astype(float)
        out[f"acc_{d}"] = 100 * float(part.mean()) if len(part) else math.nan
    return out


def true_difficulties(path: str | Path | None) -> dict[str, str]:
    """id -> true difficulty from a generated dataset's records (`true_difficulty`), or {} where it has none."""
    if not path:
        return {}
    rows = pd.read_json(path, lines=True)
    if "true_difficulty" not in rows.columns:
        return {}
    return dict(zip(rows["id"].astype(str), rows["true_difficulty"]))


def predictor_note(files: list[str]) -> str:
    """The score predictor's agreement figures beside the paper's, from its metrics.json (exam test split)
    and label_stats.json (the labelled noisy-value training split)."""
    def fmt(m: dict) -> str:
        r = "undefined" if m.get("pearson_r") is None else f"{m['pearson_r']:.2f}"
        return f"exact match {m['exact_match']:.1f}%, Pearson r {r} ({m['parsed']} of {m['n']} replies parsed)"

    parts = []
    for f in files:
        m = json.loads(Path(f).read_text())
        if "exact_match" in m:
            parts.append(f"Score predictor on the exam test split: {fmt(m)}; the paper's: exact match 79.5%, r 0.91.")
        if "versus_true_points" in m:
            parts.append(f"On the {m['rows']} labelled training prompts, against the true points: "
                         f"{fmt(m['versus_true_points'])}")
            if "versus_weak_label" in m:
                parts[-1] += (f"; against the weak label's points: {fmt(m['versus_weak_label'])}; the weak label "
                              f"itself against the true points: {fmt(m['weak_label_versus_true_points'])}")
            parts[-1] += f"; {m['imputed']} unusable replies replaced by the median."
    return (" ".join(parts) + "\n") if parts else ""


def table3(run_dirs: list[str], init_eval_dirs: list[str], out: Path, truth: str | Path | None = None,
           predictor: list[str] = ()) -> pd.DataFrame:
    """Table 3: Acc, H-Acc and accuracy per difficulty on the noisy-value dataset's test split.

    The difficulty columns group by the TRUE difficulty when `truth` (the generated records)
    has it, else by the dataset's difficulty label (WebInstruct: the only difficulty it has).
    """
    truth_map = true_difficulties(truth)

    def by_difficulty(eval_dir: Path) -> dict:
        samples = pd.read_parquet(eval_dir / "samples.parquet", columns=["id", "difficulty", "correct"])
        if truth_map:
            missing = set(samples["id"].astype(str)) - set(truth_map)
            if missing:
                raise ValueError(f"{truth}: no true_difficulty for test prompt {sorted(missing)[0]!r} of {eval_dir}")
            samples["difficulty"] = samples["id"].astype(str).map(truth_map)
        return accuracy_by_difficulty(samples)

    rows = _runs_and_start(run_dirs, init_eval_dirs, by_difficulty)
    table, keys = aggregate(rows, KEYS, TABLE3_METRICS)
    test = pd.read_parquet(Path(run_dirs[0]) / "eval" / "samples.parquet", columns=["id", "difficulty"])
    grouping = "label"
    if truth_map:
        test["difficulty"] = test["id"].astype(str).map(truth_map)
        grouping = "true difficulty"
    counts = test["difficulty"].value_counts().reindex(DIFFICULTIES).fillna(0).astype(int).to_dict()
    md = ["# Table 3: noisy values (Acc, H-Acc and Acc per difficulty, in %)", "",
          to_markdown(table, keys, TABLE3_METRICS, {m: 1 for m in TABLE3_METRICS}),
          "Values: weak = the difficulty label's points / 100; predicted = the score predictor's score / 100 "
          "(how far it is from the true and from the weak values is below). "
          "H-Acc weighs test prompts by the dataset's `value` (WebInstruct: the category's points / 100, the only "
          "value it has; the synthetic stand-in: the true difficulty's points / 100, of which the difficulty labels "
          "and so the weak values are a noisy copy). "
          f"The acc_<difficulty> columns group test prompts by {grouping}: {counts}.\n",
          predictor_note(list(predictor)), seeds_note(rows)]
    _write(table, out, md)
    return table


# --- the report's landing page ------------------------------------------------------------


def _rst_title(text: str) -> list[str]:
    return [text, "-" * len(text), ""]


def landing_page(run_dirs: list[str], table1_csv: Path, bootstrap_csv: Path | None, out: Path) -> str:
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
                    seconds += sum(float(step.get(k) or 0) for k in ("time_generate", "time_reward", "time_logprob",
                                                                     "time_update"))
    scales = ", ".join(sorted(rows["scale"].unique()))
    datasets = sorted({p.get("dataset.name", "?") for p in rows["params"]})
    lines = ["rlev: Reinforcement Learning with Explicit Human Values", "=" * 55, "",
             f"Scale **{scales}**, datasets {', '.join(datasets)}. {len(rows)} training runs, seeds "
             f"{sorted(int(s) for s in rows['seed'].unique())}"
             + (f"; {seconds / 60:.1f} minutes of logged RL step time in all." if seconds else "."), "",
             *_rst_title("What ran (estimator: reward variants, with the seeds of each)")]
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
        lines.append(f"- starting policy (no RL): H-Acc {float(start['h_acc'].iloc[0]):.1f}, "
                     f"Acc {float(start['acc'].iloc[0]):.1f}")
    for _, r in t1[t1["estimator"] != STARTING_POLICY].iterrows():
        lo, hi = r["h_acc_lo"], r["h_acc_hi"]
        interval = f" [{float(lo):.1f}, {float(hi):.1f}]" if str(lo) not in ("", "nan") else " (n=1)"
        arm = r["reward"] if r.get("alpha", "-") in ("-", "") else f"{r['reward']}, alpha {r['alpha']}"
        lines.append(f"- {r['estimator']}, {arm}: H-Acc {float(r['h_acc']):.1f}{interval}, "
                     f"length {float(r['length']):.1f}, seeds {r['seeds']}")
    if bootstrap_csv is not None and Path(bootstrap_csv).is_file():
        b = pd.read_csv(bootstrap_csv)
        b = b[b["metric"] == "h_acc"]
        over = "whole exams" if (b["cluster"] == "exam").all() else "test prompts"
        lines += ["", *_rst_title(f"RLEV minus correctness, H-Acc (percentage points, paired bootstrap over {over})")]
        for _, r in b.iterrows():
            lines.append(f"- {r['estimator']} (alpha {r['alpha']}): {r['diff']:+.2f} [{r['lo']:+.2f}, {r['hi']:+.2f}], "
                         f"{r['seed_pairs']} seed pair(s)")
    lines += ["", "The categories below hold each paper table with its figures and training curves; every "
              "table lists the run directories it was built from.", ""]
    text = "\n".join(lines) + "\n"
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return text
