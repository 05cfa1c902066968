"""The paper's tables (1-6 and 8) and the paired bootstrap, built only from run directories.

Each builder reads its runs (rlev.report.runs: what a run was, seed means with
t-intervals), shows every cell as `mean [lo, hi]` over seeds (`n=1` for one seed) and
writes the table's CSV, Markdown and HTML (rlev.report.render). The registry
(rlev.report.tables) says which runs and files each builder gets; the keyword names here
are `rlev report`'s flags (runs, init, out, ...).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import yaml

from rlev.report.render import write_table
from rlev.report.runs import REWARD_NAMES, aggregate, load_run, runs_and_start, starting_policy_row


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


def shown(table: pd.DataFrame, keys: list[str], metrics: list[str], digits: dict[str, int]) -> pd.DataFrame:
    """`aggregate`'s output as a reader sees it: the key columns, a `cell` per metric, the seeds."""
    rows = []
    for _, row in table.iterrows():
        seeds = str(row["seeds"]) if row["seeds"] else "- (one model)"
        rows.append([str(row[k]) for k in keys] + [cell(row, m, digits.get(m, 1)) for m in metrics] + [seeds])
    return pd.DataFrame(rows, columns=keys + metrics + ["seeds"])


def seeds_note(rows: pd.DataFrame) -> str:
    """What a cell is, and which seeds the runs have."""
    runs = rows[rows["seed"].notna()]
    seeds = sorted(int(s) for s in runs["seed"].unique())
    return (
        f"Runs: {len(runs)} (seeds {seeds}). Each cell is the mean over the seeds of one setting with a 95% "
        "t-interval in brackets; a cell marked n=1 comes from one seed and has no interval. Only seeds are "
        "averaged: runs that differ in any other parameter are separate rows. The starting-policy row is the "
        "one model every run starts from, evaluated the same way (no seeds). The run directories behind the "
        "rows are listed below.\n"
    )


def reward_note(rows: pd.DataFrame) -> str:
    """The alpha and form of the value runs, so a table names them (when they are not columns)."""
    runs = rows[(rows["seed"].notna()) & (rows["alpha"] != "-")]
    if runs.empty:
        return ""
    pairs = sorted(set(zip(runs["alpha"], runs["form"])))
    return (
        "Value-scaled runs use "
        + "; ".join(f"alpha = {a}, form {f}" for a, f in pairs)
        + " (s(x) = 1 + min(alpha v, 1) for additive_clipped, 1 + alpha v for multiplicative).\n"
    )


TABLE1_METRICS = ["acc", "h_acc", "length", "density"]
DIGITS = {"acc": 1, "h_acc": 1, "length": 1, "density": 2}
KEYS = ["estimator", "scale", "reward"]


def method_note(rows: pd.DataFrame) -> str:
    """Which verifier scored the runs and where their KL to the initial policy went."""
    runs = rows[rows["seed"].notna()]
    return (
        f"Scored by: {', '.join(sorted(set(runs['verifier'])))}; KL to the initial policy: "
        f"{', '.join(sorted(set(runs['kl'])))}.\n"
    )


def table1(runs: list[str], init: list[str], out: Path) -> pd.DataFrame:
    """Table 1: Acc / H-Acc / length / value density per estimator x reward (in-domain test)."""
    rows = runs_and_start(runs, init)
    table, keys = aggregate(rows, KEYS, TABLE1_METRICS)
    write_table(
        out,
        table,
        "Table 1: in-domain test set (Acc and H-Acc in %, length in tokens, density = H-Acc / length)",
        shown(table, keys, TABLE1_METRICS, DIGITS),
        [reward_note(rows), seeds_note(rows), method_note(rows)],
    )
    return table


TABLE8_METRICS = ["acc", "acc_top20", "acc_bottom20"]


def table8(runs: list[str], out: Path, init: list[str] = ()) -> pd.DataFrame:
    """Table 8: Acc on all, the 20% highest- and the 20% lowest-valued test prompts (in %)."""
    rows = runs_and_start(runs, list(init))
    table, keys = aggregate(rows, KEYS, TABLE8_METRICS)
    write_table(
        out,
        table,
        "Table 8: accuracy (%) on all test prompts, the 20% highest-valued (acc_top20) and the "
        "20% lowest-valued (acc_bottom20)",
        shown(table, keys, TABLE8_METRICS, {m: 1 for m in TABLE8_METRICS}),
        [reward_note(rows), seeds_note(rows)],
    )
    return table


def bootstrap(
    runs: list[str], out: Path, resamples: int | None = None, seed: int | None = None, cluster: str = "exam"
) -> pd.DataFrame:
    """Paired bootstrap of RLEV (human) minus correctness, per estimator and setting.

    Runs are paired by seed within one setting (estimator, scale, alpha, form and every other
    parameter, as the tables group them); see `rlev.stats` for how several seeds are combined
    and what `cluster` ("exam": whole exams, "prompt": single prompts) resamples.
    Metrics: H-Acc (the paper's target) and Acc.
    """
    from rlev.stats import RESAMPLES, SEED, paired_bootstrap, paired_samples

    resamples = RESAMPLES if resamples is None else resamples
    seed = SEED if seed is None else seed
    rows = pd.DataFrame([load_run(d) for d in runs])
    treatment, baseline = REWARD_NAMES["human"], REWARD_NAMES["correctness"]
    # The setting of a pair: every parameter but those of the value scale (variant, alpha, form, what the
    # variant reads, its labelled data); a value-independent reward.cost stays part of the setting.
    reward_keys = (
        "reward.variant",
        "reward.alpha",
        "reward.form",
        "reward.shuffle_seed",
        "reward.weak_points",
        "dataset.train",
    )
    rows["setting"] = rows["params"].map(
        lambda p: json.dumps({k: v for k, v in p.items() if not k.startswith(reward_keys)}, sort_keys=True, default=str)
    )
    records = []
    for (estimator, scale), group in rows.groupby(["estimator", "scale"], sort=False):
        runs_t = group[group["reward"] == treatment]
        runs_b = group[group["reward"] == baseline]
        if runs_t.empty or runs_b.empty:
            raise ValueError(
                f"bootstrap: {estimator} at {scale} needs both a {treatment!r} and a {baseline!r} "
                f"run; got {sorted(group['reward'])} from {list(group['run'])}"
            )
        for (alpha, form), arm in runs_t.groupby(["alpha", "form"], sort=False):
            pairs, pair_runs = [], []
            for _, t in arm.iterrows():
                b = runs_b[(runs_b["seed"] == t["seed"]) & (runs_b["setting"] == t["setting"])]
                if len(b) != 1:
                    raise ValueError(
                        f"bootstrap: {t['run']} needs exactly one {baseline!r} run of the same setting "
                        f"and seed {t['seed']}; found {list(b['run'])}"
                    )
                b_dir = b["run"].iloc[0]
                pairs.append(
                    paired_samples(
                        pd.read_parquet(Path(t["run"]) / "eval" / "samples.parquet"),
                        pd.read_parquet(Path(b_dir) / "eval" / "samples.parquet"),
                        what=f"{t['run']} vs {b_dir}",
                    )
                )
                pair_runs.append(f"{t['run']} - {b_dir}")
            for metric in ("h_acc", "acc"):
                r = paired_bootstrap(pairs, metric, resamples, seed, cluster)
                records.append(
                    {
                        "estimator": estimator,
                        "scale": scale,
                        "alpha": alpha,
                        "form": form,
                        "metric": metric,
                        "difference": f"{treatment} - {baseline}",
                        "diff": r.diff,
                        "lo": r.lo,
                        "hi": r.hi,
                        "share_positive": r.share_positive,
                        "prompts": r.n_prompts,
                        "cluster": r.cluster,
                        "clusters": r.n_clusters,
                        "seed_pairs": r.seed_pairs,
                        "resamples": r.resamples,
                        "rng_seed": r.seed,
                        "runs": ";".join(pair_runs),
                    }
                )
    table = pd.DataFrame(records)
    drawn = {
        "exam": "Whole exams resampled with replacement (cluster bootstrap: the test split is a sample of "
        "exams, and prompts of one exam are not independent)",
        "prompt": "Test prompts resampled with replacement (each prompt its own cluster)",
    }[cluster]
    unit = "exams" if cluster == "exam" else "prompts drawn"
    title = (
        f"Paired bootstrap: {treatment} minus {baseline} (percentage points), resampling "
        f"{'whole exams' if cluster == 'exam' else 'test prompts'}"
    )
    columns = [
        "estimator",
        "scale",
        "alpha",
        "form",
        "metric",
        "diff",
        "95% interval",
        "share > 0",
        "prompts",
        unit,
        "seed pairs",
    ]
    cells = [
        [
            r["estimator"],
            r["scale"],
            r["alpha"],
            r["form"],
            r["metric"],
            f"{r['diff']:+.2f}",
            f"[{r['lo']:+.2f}, {r['hi']:+.2f}]",
            f"{r['share_positive']:.3f}",
            r["prompts"],
            r["clusters"],
            r["seed_pairs"],
        ]
        for _, r in table.iterrows()
    ]
    note = (
        f"{drawn}, {resamples} resamples, numpy seed {seed}; the interval is the 2.5-97.5 percentile of the "
        "resampled differences. Seed k of one reward is paired with seed k of the other (same setting) and every "
        "seed pair is scored on the same resample (the difference is averaged over seed pairs), so the interval "
        "reflects which test items were drawn, not seed-to-seed variation (that is the t-interval of Tables 1 "
        "and 8). The run pairs are listed below.\n"
    )
    write_table(out, table, title, pd.DataFrame(cells, columns=columns), [note])
    return table


# --- Tables 4-6: the reward ablations (RLOO in the paper) ------------------------------


def _ablation_table(
    runs: list[str], init: list[str], keys: list[str], out: Path, title: str, notes: list[str]
) -> pd.DataFrame:
    """Acc / H-Acc / length / density per setting, as CSV, Markdown and HTML (like Table 1)."""
    rows = runs_and_start(runs, init)
    table, keys = aggregate(rows, keys, TABLE1_METRICS)
    write_table(
        out,
        table,
        title,
        shown(table, keys, TABLE1_METRICS, DIGITS),
        [*notes, "Acc and H-Acc in %, length in tokens, density = H-Acc / length.\n", seeds_note(rows)],
    )
    return table


def _uniform_notes(runs: list[str]) -> list[str]:
    """The s_bar each uniform run gave every correct answer (from its values.parquet), and, when the
    optimiser makes uniform scaling a no-op (rlev.config.value_scale_invariance), the one message saying so."""
    from rlev.config import scale_invariance_message, value_scale_invariance

    notes, flagged = [], {}
    for d in runs:
        config = yaml.safe_load((Path(d) / "config.yaml").read_text())
        if config["reward"]["variant"] != "uniform":
            continue
        values = Path(d) / "values.parquet"
        if values.is_file():
            s_bar = float(pd.read_parquet(values, columns=["scale"])["scale"].iloc[0])
            notes.append(
                f"Uniform scaling ({d}): every correct answer earns s_bar = {s_bar:.3f}, the mean s(x) over "
                "the training prompts (the paper's is about 1.2).\n"
            )
        reason = value_scale_invariance(config["estimator"], "uniform", config["reward"].get("cost"))
        if reason:
            name = config["estimator"]["name"]
            flagged[name] = scale_invariance_message("this table", name, config["estimator"], ["uniform"], reason)
    notes += [f"Note: {m}\n" for m in flagged.values()]
    return notes


def table4(runs: list[str], out: Path, init: list[str] = ()) -> pd.DataFrame:
    """Table 4: the reward-scaling ablation (correctness, uniform s_bar, shuffled values, human values)."""
    notes = _uniform_notes(runs)
    notes.append(
        "Random weights: v permuted across the training set (same values, no alignment with the "
        "questions), permutation seed numpy.random.default_rng([reward.shuffle_seed, seed]) as recorded "
        "in each run's config.yaml.\n"
    )
    notes.append(reward_note(pd.DataFrame([load_run(d) for d in runs])))
    return _ablation_table(
        runs, list(init), KEYS, out, "Table 4: reward scaling ablation on the in-domain test set", notes
    )


def table5(runs: list[str], out: Path, init: list[str] = ()) -> pd.DataFrame:
    """Table 5: sensitivity to alpha in s(x) = 1 + min(alpha * v, 1)."""
    return _ablation_table(
        runs, list(init), KEYS + ["form", "alpha"], out, "Table 5: sensitivity to alpha, s(x) = 1 + min(alpha v, 1)", []
    )


def table6(runs: list[str], out: Path, init: list[str] = ()) -> pd.DataFrame:
    """Table 6: the reward form, additive and clipped (RLEV) vs purely multiplicative (1 + alpha v)."""
    notes = [
        "additive_clipped: r = (1 + min(alpha v, 1)) 1[correct] (RLEV); multiplicative: r = (1 + alpha v) 1[correct].\n"
    ]
    return _ablation_table(runs, list(init), KEYS + ["alpha", "form"], out, "Table 6: reward form", notes)


# --- Table 2: out-of-distribution multiple choice; Table 3: noisy values ----------------


def table2(runs: list[str], base: str | None, benchmarks: list[str], out: Path) -> pd.DataFrame:
    """Table 2: accuracy (%) on each OOD benchmark, for the starting policy and each run.

    A run's cell is `<run>/ood/<benchmark>/metrics.json`; the starting policy's is
    `<base>/<benchmark>/metrics.json` (rlev.evaluate.ood.ood).
    """

    def ood(path: Path) -> dict:
        return json.loads(path.read_text())

    rows = []
    for d in runs:
        run = load_run(d)
        rows.append(
            {
                **{k: v for k, v in run.items() if k not in benchmarks},
                **{b: ood(Path(d) / "ood" / b / "metrics.json")["acc"] for b in benchmarks},
            }
        )
    scale = rows[0]["scale"] if rows else ""
    start = {}
    if base:
        start = {b: ood(Path(base) / b / "metrics.json") for b in benchmarks}
        rows.insert(0, starting_policy_row(base, scale, metrics={b: m["acc"] for b, m in start.items()}))
    frame = pd.DataFrame(rows)
    table, keys = aggregate(frame, KEYS, benchmarks)
    notes = []
    for b, m in start.items():  # what a guess scores, so near-chance numbers read as such
        chance = f"chance {m['chance']:.1f}%" if m.get("chance") is not None else "no chance level (a free-form answer)"
        notes.append(
            f"{b}: {m['n']} questions, {chance}; the starting policy ({m['model']}) scores {m['acc']:.1f}% "
            f"and leaves {m['unanswered']:.1f}% unanswered.\n"
        )
    notes += [
        "One prompt and one answer-extraction ladder per benchmark kind (rlev.evaluate.ood); greedy decoding.\n",
        reward_note(frame),
        seeds_note(frame),
    ]
    write_table(
        out,
        table,
        "Table 2: accuracy (%) on out-of-distribution benchmarks",
        shown(table, keys, benchmarks, {b: 1 for b in benchmarks}),
        notes,
    )
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
            parts.append(
                f"On the {m['rows']} labelled training prompts, against the true points: {fmt(m['versus_true_points'])}"
            )
            if "versus_weak_label" in m:
                parts[-1] += (
                    f"; against the weak label's points: {fmt(m['versus_weak_label'])}; the weak label "
                    f"itself against the true points: {fmt(m['weak_label_versus_true_points'])}"
                )
            parts[-1] += f"; {m['imputed']} unusable replies replaced by the median."
    return (" ".join(parts) + "\n") if parts else ""


def table3(
    runs: list[str], init: list[str], out: Path, truth: str | Path | None = None, predictor: list[str] = ()
) -> pd.DataFrame:
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

    rows = runs_and_start(runs, init, by_difficulty)
    table, keys = aggregate(rows, KEYS, TABLE3_METRICS)
    test = pd.read_parquet(Path(runs[0]) / "eval" / "samples.parquet", columns=["id", "difficulty"])
    grouping = "label"
    if truth_map:
        test["difficulty"] = test["id"].astype(str).map(truth_map)
        grouping = "true difficulty"
    counts = test["difficulty"].value_counts().reindex(DIFFICULTIES).fillna(0).astype(int).to_dict()
    notes = [
        "Values: weak = the difficulty label's points / 100; predicted = the score predictor's score / 100 "
        "(how far it is from the true and from the weak values is below). "
        "H-Acc weighs test prompts by the dataset's `value` (WebInstruct: the category's points / 100, the "
        "only value it has; the synthetic stand-in: the true difficulty's points / 100, of which the difficulty "
        "labels and so the weak values are a noisy copy). "
        f"The acc_<difficulty> columns group test prompts by {grouping}: {counts}.\n",
        predictor_note(list(predictor)),
        seeds_note(rows),
    ]
    write_table(
        out,
        table,
        "Table 3: noisy values (Acc, H-Acc and Acc per difficulty, in %)",
        shown(table, keys, TABLE3_METRICS, {m: 1 for m in TABLE3_METRICS}),
        notes,
    )
    return table
