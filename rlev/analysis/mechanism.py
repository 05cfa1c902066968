"""The mechanism experiment (beyond the paper): does the value change WHICH answer a policy gives?

Theory. RLEV's reward is s(x) * 1[correct], and s(x) is constant within a prompt, so it
scales every answer to that prompt alike: it cannot change a prompt's best answer. It can
only matter once the reward has a term s(x) does not scale, such as a value-independent
cost of length (`reward.cost`). Then a prompt worth more pays relatively less for a long,
careful (worked) answer, so under RLEV, within one difficulty level, thoroughness should
rise with a question's points; under correctness it should be flat.

Measures, per run, on its greedy test answers (`<run>/eval/samples.parquet`, the points
from the dataset's test split):
- worked: the answer shows steps ('=' before the answer mark '#### ', the synthetic
  worked form '3+5=8 8+2=10 #### 10'), and length in tokens;
- the within-difficulty slope of each against points: OLS of the outcome on points with
  difficulty fixed effects (both demeaned within difficulty level), one prompt per row.
Across seeds: mean and 95% t-interval (rlev.metrics.mean_and_interval). Beside it, a
permutation test of the within-difficulty points effect: the points are permuted among
the prompts of each difficulty level (one permutation applied to every seed, since the
seeds answer the same prompts) and the statistic is the seed-mean slope, so the p-value
pools the seeds. Contrasts (RLEV minus each control, same cost) are paired by seed.

A mean shift of thoroughness is a different effect: under a cost, every value variant
scales correct answers by about s_bar on average, which acts like a smaller cost for every
prompt. Uniform scaling (s_bar for every prompt) and shuffled values (the same values,
not the question's) have that shift without the alignment, so the table compares RLEV
with them under the same cost.

`length_by_value` draws mean response length by value decile of the test set, one line
per reward, one panel per estimator and cost (the paper's central claim, drawn).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from rlev.metrics import mean_and_interval
from rlev.report.render import write_table
from rlev.stats import align_by_id

log = logging.getLogger(__name__)

ANSWER_MARK = "#### "
PERMUTATIONS = 10000
CHUNK = 1000
SEED = 0
DECILES = 10
NO_COST = "none"


def is_worked(responses: pd.Series) -> pd.Series:
    """True where the text before the answer mark holds a step ('='): the worked form."""
    return responses.fillna("").str.split(ANSWER_MARK, n=1, regex=False).str[0].str.contains("=", regex=False)


def cost_label(reward: dict) -> str:
    """A run's value-independent cost in words (`none` without one), from its config's reward block
    (rlev.config._run_reward writes `cost` only when its kind is not none)."""
    cost = reward.get("cost") or {"kind": "none"}
    if cost["kind"] == "length":
        return f"length {cost['per_token']:g}/token"
    if cost["kind"] == "overlong":
        return f"overlong {cost['overlong_buffer']:g}x{cost['overlong_penalty']:g}"
    return NO_COST


def load_run_samples(run_dir: str | Path, test: pd.DataFrame) -> tuple[dict, pd.DataFrame]:
    """(run description, samples with points, difficulty, worked) of one run directory.

    `test` is the dataset's test split (columns id, score, and difficulty when it has one).
    """
    from rlev.report.runs import ESTIMATOR_NAMES, REWARD_NAMES

    run_dir = Path(run_dir)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    path = run_dir / "eval" / "samples.parquet"
    samples = pd.read_parquet(path)
    run = {
        "estimator": ESTIMATOR_NAMES.get(config["estimator"]["name"], config["estimator"]["name"]),
        "scale": config["scale"]["name"],
        "reward": REWARD_NAMES.get(config["reward"]["variant"], config["reward"]["variant"]),
        "cost": cost_label(config["reward"]),
        "seed": int(config["seed"]),
        "run": str(run_dir),
    }
    return run, attach_points(samples, test, str(path))


def attach_points(samples: pd.DataFrame, test: pd.DataFrame, what: str) -> pd.DataFrame:
    """Samples joined with the test split's points (`score`) and difficulty, plus `worked`."""
    for column in ("id", "response", "length", "value"):
        if column not in samples:
            raise ValueError(f"{what}: no column {column!r} (an evaluation's samples.parquet has it; rerun evaluate)")
    if "score" not in test:
        raise ValueError("test split: no column 'score' (the question's points); the mechanism needs points")
    keep = ["id", "score"] + (["difficulty"] if "difficulty" in test else [])
    merged = samples.drop(columns=[c for c in ("score", "difficulty") if c in samples]).merge(
        test[keep], on="id", how="left", indicator=True
    )
    missing = merged["_merge"] != "both"
    if missing.any():
        raise ValueError(
            f"{what}: {int(missing.sum())} prompt(s) not in the test split, e.g. id "
            f"{merged.loc[missing, 'id'].iloc[0]!r} (samples from another dataset?)"
        )
    out = merged.drop(columns="_merge").rename(columns={"score": "points"})
    if "difficulty" not in out or out["difficulty"].isna().all():
        out["difficulty"] = "all"  # no levels: the slope is then the plain one, and the table says so
    elif out["difficulty"].isna().any():
        raise ValueError(
            f"{what}: prompt {out.loc[out['difficulty'].isna(), 'id'].iloc[0]!r} has no difficulty "
            "while others have one"
        )
    out["worked"] = is_worked(out["response"]).astype(float)
    out["length"] = out["length"].astype(float)
    out["points"] = out["points"].astype(float)
    return out


def _demean(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    means = pd.Series(values).groupby(groups).transform("mean").to_numpy()
    return values - means


def within_slope(outcome, points, groups) -> float:
    """OLS slope of `outcome` on `points` with fixed effects for `groups` (change per point)."""
    y, x, g = np.asarray(outcome, float), np.asarray(points, float), np.asarray(groups)
    xd = _demean(x, g)
    sxx = float(xd @ xd)
    if sxx == 0:
        raise ValueError(
            "points do not vary within any difficulty level: the within-difficulty effect of points "
            "cannot be measured on this test set"
        )
    return float(xd @ _demean(y, g)) / sxx


def permutation_test(
    frames: list[pd.DataFrame], outcome: str, permutations: int = PERMUTATIONS, seed: int = SEED
) -> tuple[float, float]:
    """(seed-mean within-difficulty slope, two-sided permutation p) of `outcome` on points.

    `frames` are one run per seed over the same prompts (columns id, points, difficulty,
    `outcome`). Points are permuted among the prompts of each difficulty level; the same
    permutation is applied to every seed. p = (1 + #{|perm| >= |observed|}) / (1 + B).
    """
    aligned = align_by_id(frames, "run")
    first = aligned[0]
    groups = first["difficulty"].to_numpy()
    xd = _demean(first["points"].to_numpy(float), groups)
    sxx = float(xd @ xd)
    if sxx == 0:
        within_slope(first["points"], first["points"], groups)  # raises the error that names the problem
    yd = np.mean([_demean(a[outcome].to_numpy(float), groups) for a in aligned], axis=0)
    observed = float(xd @ yd) / sxx
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(groups == level) for level in pd.unique(groups)]
    extreme = 0
    for start in range(0, permutations, CHUNK):  # chunks bound the memory at large test sets
        size = min(CHUNK, permutations - start)
        # permute the demeaned points within each level: the level means (and sxx) do not change
        index = np.tile(np.arange(len(first)), (size, 1))
        for m in members:
            index[:, m] = rng.permuted(np.tile(m, (size, 1)), axis=1)
        null = (xd[index] @ yd) / sxx
        extreme += int(np.sum(np.abs(null) >= abs(observed) - 1e-12))
    return observed, (1 + extreme) / (1 + permutations)


# --- the table ---------------------------------------------------------------------------

MEASURES = {  # column -> (outcome, statistic, scale for display)
    "worked_share": ("worked", "mean", 100.0),
    "length": ("length", "mean", 1.0),
    "worked_slope": ("worked", "slope", 100.0),
    "length_slope": ("length", "slope", 1.0),
    "acc": ("correct", "mean", 100.0),
}
KEYS = ["estimator", "scale", "reward", "cost"]


def run_measures(samples: pd.DataFrame) -> dict:
    """Per-run measures (worked share and slope in percentage points, lengths in tokens)."""
    out = {}
    for name, (outcome, stat, unit) in MEASURES.items():
        y = samples[outcome].astype(float)
        value = y.mean() if stat == "mean" else within_slope(y, samples["points"], samples["difficulty"])
        out[name] = unit * float(value)
    return out


def _cell(mean: float, lo: float, hi: float, n: int, digits: int, signed: bool = False) -> str:
    fmt = f"{{:{'+' if signed else ''}.{digits}f}}"
    if math.isnan(lo):
        return f"{fmt.format(mean)} (n={n})"
    return f"{fmt.format(mean)} [{fmt.format(lo)}, {fmt.format(hi)}] (n={n})"


def mechanism(
    runs: list[str],
    test: str,
    out: Path,
    init: list[str] | None = None,
    permutations: int = PERMUTATIONS,
    seed: int = SEED,
) -> pd.DataFrame:
    """mechanism.{csv,md,html}: per estimator x reward x cost, thoroughness and its within-difficulty slope on points.

    Rows: one per reward x cost cell (mean over seeds, 95% t-interval, n seeds, permutation
    p of both slopes), then RLEV minus each control under the same cost (paired by seed),
    and the starting policy when `init` (its evaluation folder, with samples.parquet) is given.
    """
    test = pd.read_parquet(test)
    starts = [
        attach_points(pd.read_parquet(Path(d) / "samples.parquet"), test, str(Path(d) / "samples.parquet"))
        for d in init or []
    ]
    runs = [load_run_samples(d, test) for d in runs]
    records = []
    table = pd.DataFrame([{**run, **run_measures(s)} for run, s in runs])
    samples_of = {run["run"]: s for run, s in runs}
    for key, group in table.groupby(KEYS, sort=False):
        record = dict(zip(KEYS, key), kind="cell")
        for m in MEASURES:
            record[m], record[f"{m}_lo"], record[f"{m}_hi"] = mean_and_interval(group[m])
        frames = [samples_of[r] for r in group["run"]]
        for m, outcome in (("worked_slope", "worked"), ("length_slope", "length")):
            _, record[f"{m}_p"] = permutation_test(frames, outcome, permutations, seed)
        record["seeds"] = len(group)
        record["runs"] = ";".join(group["run"])
        records.append(record)
    records += _contrasts(table)
    for folder, s in zip(init or [], starts):
        record = {"estimator": "starting policy", "scale": "-", "reward": "-", "cost": "-", "kind": "start"}
        for m, value in run_measures(s).items():
            record[m], record[f"{m}_lo"], record[f"{m}_hi"] = value, math.nan, math.nan
        for m, outcome in (("worked_slope", "worked"), ("length_slope", "length")):
            _, record[f"{m}_p"] = permutation_test([s], outcome, permutations, seed)
        record["seeds"], record["runs"] = 1, str(Path(folder))
        records.append(record)
    result = pd.DataFrame(records)
    title, shown, notes = _shown(result, test, permutations, seed, out)
    write_table(out, result, title, shown, notes, runs_in_md=False)  # the notes point at the CSV's runs
    return result


CONTROLS = ("correctness", "uniform scaling", "random weights (shuffled)")


def _contrasts(table: pd.DataFrame) -> list[dict]:
    """RLEV minus each control under the same estimator, scale and cost, paired by seed."""
    from rlev.report.runs import REWARD_NAMES

    rlev_name = REWARD_NAMES["human"]
    records = []
    for (estimator, scale, cost), group in table.groupby(["estimator", "scale", "cost"], sort=False):
        treated = group[group["reward"] == rlev_name].set_index("seed")
        for control in CONTROLS:
            base = group[group["reward"] == control].set_index("seed")
            seeds = sorted(set(treated.index) & set(base.index))
            if treated.empty or not seeds:
                continue
            record = {
                "estimator": estimator,
                "scale": scale,
                "reward": f"{rlev_name} - {control}",
                "cost": cost,
                "kind": "contrast",
            }
            for m in MEASURES:
                diffs = treated.loc[seeds, m] - base.loc[seeds, m]
                record[m], record[f"{m}_lo"], record[f"{m}_hi"] = mean_and_interval(diffs)
            record["worked_slope_p"] = record["length_slope_p"] = math.nan
            record["seeds"] = len(seeds)
            record["runs"] = ";".join(f"{treated.loc[s, 'run']} - {base.loc[s, 'run']}" for s in seeds)
            records.append(record)
    return records


def _shown(result: pd.DataFrame, test: pd.DataFrame, permutations: int, seed: int, out: Path):
    """(title, the table as shown, notes) of the mechanism table."""
    levels = test["difficulty"].nunique() if "difficulty" in test and test["difficulty"].notna().any() else 1
    header = [
        "estimator",
        "scale",
        "reward",
        "cost",
        "worked share (%)",
        "worked slope (pp/point)",
        "p",
        "length (tokens)",
        "length slope (tokens/point)",
        "p",
        "Acc (%)",
    ]

    def p_cell(p):
        return "-" if math.isnan(p) else f"{p:.4f}"

    rows = []
    for _, r in result.iterrows():
        n = int(r["seeds"])
        signed = r["kind"] == "contrast"
        cells = [str(r[k]) for k in KEYS]
        cells += [
            _cell(r["worked_share"], r["worked_share_lo"], r["worked_share_hi"], n, 1, signed),
            _cell(r["worked_slope"], r["worked_slope_lo"], r["worked_slope_hi"], n, 2, True),
            p_cell(r["worked_slope_p"]),
            _cell(r["length"], r["length_lo"], r["length_hi"], n, 1, signed),
            _cell(r["length_slope"], r["length_slope_lo"], r["length_slope_hi"], n, 3, True),
            p_cell(r["length_slope_p"]),
            _cell(r["acc"], r["acc_lo"], r["acc_hi"], n, 1, signed),
        ]
        rows.append(cells)
    notes = [
        f"Slopes: OLS of the per-prompt outcome (worked = 1 when the answer shows '=' steps before the "
        f"answer mark; length in tokens) on the question's points with fixed effects for its difficulty level "
        f"({levels} level(s)), one greedy answer per test prompt ({len(test)} prompts). Cells: mean over seeds "
        "with a 95% t-interval across seeds in brackets; n = seeds (no interval at n=1). p: two-sided "
        f"permutation test of the seed-mean slope, points permuted within difficulty level ({permutations} "
        f"permutations, numpy seed {seed}, one permutation shared by every seed). Rows 'A - B' are RLEV minus "
        "a control under the same cost, paired by seed. Run directories are in the `runs` column of "
        f"{out.with_suffix('.csv').name}.\n"
    ]
    cells = result[result["kind"] != "contrast"]
    one_form = cells[(cells["worked_share"] <= 0) | (cells["worked_share"] >= 100)]
    if len(one_form):
        notes.append(
            f"No power in {len(one_form)} of {len(cells)} rows: every answer there has the same form "
            "(worked share 0% or 100%), so the worked slope is 0 by construction and says nothing about the "
            "value.\n"
        )
    title = "Mechanism: thoroughness against a question's points within a difficulty level"
    return title, pd.DataFrame(rows, columns=header), notes


# --- the figure ---------------------------------------------------------------------------


def value_deciles(samples: pd.DataFrame, deciles: int = DECILES) -> pd.Series:
    """Decile (1 = lowest v) of each test prompt, by rank of (value, id): equal-sized groups, ties split by id."""
    order = samples.sort_values(["value", "id"], kind="stable").index
    ranks = pd.Series(np.arange(len(order)), index=order).reindex(samples.index)
    return (ranks * deciles // len(samples) + 1).astype(int)


def length_by_value(run_dirs: list[str], out: Path, deciles: int = DECILES) -> pd.DataFrame:
    """length_by_value.{png,svg,csv}: mean response length per value decile of the test set.

    One line per reward (mean over seeds, a 95% t-interval band across seeds when there are
    several), one panel per estimator and cost.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rlev.report.runs import ESTIMATOR_NAMES, REWARD_NAMES

    per_run, reference = [], None
    for d in run_dirs:
        config = yaml.safe_load((Path(d) / "config.yaml").read_text())
        samples = pd.read_parquet(Path(d) / "eval" / "samples.parquet")
        prompts = samples[["id", "value"]].sort_values("id").reset_index(drop=True)
        if reference is None:
            reference = prompts
        elif not prompts.equals(reference):
            raise ValueError(
                f"{d}/eval/samples.parquet: other test prompts or values than {run_dirs[0]} "
                "(runs of one figure must share the test split)"
            )
        samples = samples.assign(decile=value_deciles(samples, deciles))
        by = samples.groupby("decile").agg(
            length=("length", "mean"),
            v_mean=("value", "mean"),
            v_min=("value", "min"),
            v_max=("value", "max"),
            prompts=("id", "size"),
        )
        per_run.append(
            by.reset_index().assign(
                estimator=ESTIMATOR_NAMES.get(config["estimator"]["name"], config["estimator"]["name"]),
                scale=config["scale"]["name"],
                reward=REWARD_NAMES.get(config["reward"]["variant"], config["reward"]["variant"]),
                cost=cost_label(config["reward"]),
                seed=int(config["seed"]),
                run=str(d),
            )
        )
    runs = pd.concat(per_run, ignore_index=True)
    records = []
    keys = ["estimator", "scale", "cost", "reward", "decile"]
    for key, group in runs.groupby(keys, sort=False):
        mean, lo, hi = mean_and_interval(group["length"])
        records.append(
            {
                **dict(zip(keys, key)),
                "length": mean,
                "length_lo": lo,
                "length_hi": hi,
                "v_mean": group["v_mean"].iloc[0],
                "v_min": group["v_min"].iloc[0],
                "v_max": group["v_max"].iloc[0],
                "prompts": int(group["prompts"].iloc[0]),
                "seeds": len(group),
                "runs": ";".join(group["run"]),
            }
        )
    data = pd.DataFrame(records)
    out.parent.mkdir(parents=True, exist_ok=True)
    data.to_csv(out.with_suffix(".csv"), index=False)

    panels = list(dict.fromkeys(zip(data["estimator"], data["scale"], data["cost"])))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False, sharey=True)
    colours = {
        REWARD_NAMES["correctness"]: "tab:blue",
        REWARD_NAMES["human"]: "tab:red",
        REWARD_NAMES["uniform"]: "tab:green",
        REWARD_NAMES["shuffled"]: "tab:grey",
    }
    # identical curves (e.g. uniform scaling equal to correctness) must stay visible: wider lines
    # first, each reward its own dash and marker, and markers shifted a little along x
    widths = [3.5, 2.5, 1.8, 1.2]
    dashes = ["-", "--", ":", "-."]
    markers = ["o", "s", "^", "x"]
    for ax, (estimator, scale, cost) in zip(axes[0], panels):
        panel = data[(data["estimator"] == estimator) & (data["scale"] == scale) & (data["cost"] == cost)]
        for k, (reward, line) in enumerate(panel.groupby("reward", sort=False)):
            n = int(line["seeds"].min())
            ax.plot(
                line["decile"] + 0.08 * (k - 1.5),
                line["length"],
                dashes[k % 4],
                marker=markers[k % 4],
                linewidth=widths[k % 4],
                markersize=4,
                color=colours.get(reward),
                label=f"{reward} (n={n})",
            )
            if n > 1:
                ax.fill_between(
                    line["decile"],
                    line["length_lo"],
                    line["length_hi"],
                    color=colours.get(reward),
                    alpha=0.2,
                    linewidth=0,
                )
        ax.set_title(f"{estimator} ({scale}), cost: {cost}", fontsize=9)
        ax.set_xlabel(f"value decile of the test prompts (1 = lowest v, {deciles})")
        ax.set_xticks(range(1, deciles + 1))
    axes[0][0].set_ylabel("mean response length (tokens)")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(
        "Response length by value decile, correctness vs RLEV (bands: 95% t-interval across seeds)", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=120)
    fig.savefig(out.with_suffix(".svg"))
    plt.close(fig)
    return data
