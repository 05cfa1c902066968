"""Statistics beyond the paper: a paired bootstrap over test prompts or whole exams.

The paper reports one run per cell and no intervals. Across seeds, `rlev.report.aggregate`
gives a 95% t-interval per cell (`rlev.metrics.mean_and_interval`). This module answers
the other question: given the trained models, how much of an RLEV-minus-correctness
difference could come from which test prompts happened to be drawn?

Paired bootstrap. Both models answered the same test prompts, so the samples are paired
by prompt id. One resample draws n prompts with replacement (one multinomial count vector
w over the n prompts) and recomputes the metric difference on it; for H-Acc

    diff(w) = 100 * sum_i w_i v_i (c_rlev_i - c_base_i) / sum_i w_i v_i

(Acc is the same with v = 1). We report the observed difference, the 2.5 / 97.5
percentiles of diff over `resamples` resamples, and the share of resamples with diff > 0.

Cluster bootstrap (`cluster="exam"`, what the bootstrap table uses). The paper splits train and test by
exam, so the test set is a sample of exams, and prompts of one exam are not independent
(same paper, same subject, same value scale: v = points / the exam's total). A resample
then draws the exams with replacement, each drawn exam bringing all its prompts: w_i is
the number of times prompt i's exam was drawn. `cluster="prompt"` draws prompts (each
prompt its own cluster), which understates the spread when exams differ.

Several seeds. Seed k of RLEV is paired with seed k of the baseline, and every seed pair
is evaluated on the *same* prompt resample; the statistic of a resample is the mean over
seed pairs of their differences. So the point estimate is the mean paired difference over
seeds, and the interval covers test-prompt sampling only (seed-to-seed variation is what
the t-interval of the tables shows). Drawing the same prompts for every seed pair keeps
the prompt-level correlation between seeds, which pooling prompts across seeds as if they
were independent would ignore.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

RESAMPLES = 2000
SEED = 0


@dataclass(frozen=True)
class BootstrapResult:
    diff: float  # observed difference (treatment - baseline), in percentage points
    lo: float  # 2.5th percentile of the resampled differences
    hi: float  # 97.5th percentile
    share_positive: float  # share of resamples with difference > 0
    n_prompts: int
    seed_pairs: int
    resamples: int
    seed: int
    cluster: str = "prompt"  # what one resample draws with replacement: "exam" or "prompt"
    n_clusters: int = 0  # exams (or prompts) drawn from


def align_by_id(frames: list[pd.DataFrame], what: str) -> list[pd.DataFrame]:
    """Each frame indexed by prompt id in one order (frame 0's ids, sorted), so row i is the same
    prompt in all of them; refuses frames that cover other prompts than frame 0 (`what` names a
    frame in the message, e.g. "seed pair")."""
    ids = frames[0]["id"].sort_values().to_numpy()
    aligned = []
    for k, frame in enumerate(frames):
        f = frame.set_index("id")
        if len(f) != len(ids) or not f.index.isin(ids).all():
            raise ValueError(f"{what} {k} covers other prompts than {what} 0 (the same test split?)")
        aligned.append(f.loc[ids])
    return aligned


def paired_samples(treatment: pd.DataFrame, baseline: pd.DataFrame, what: str = "") -> pd.DataFrame:
    """One row per test prompt: id, value, correct_t, correct_b (and exam_id), matched on `id`.

    Both frames are evaluation samples (columns id, value, correct, and exam_id when the
    cluster bootstrap needs it). The two must hold the same prompts with the same values,
    or the pairing means nothing: say which differ.
    """
    for name, frame in (("treatment", treatment), ("baseline", baseline)):
        if frame["id"].duplicated().any():
            dup = frame.loc[frame["id"].duplicated(), "id"].iloc[0]
            raise ValueError(f"{what} {name}: prompt id {dup!r} appears more than once")
    merged = treatment[["id", "value", "correct"]].merge(
        baseline[["id", "value", "correct"]], on="id", how="outer", suffixes=("_t", "_b"), indicator=True
    )
    unpaired = merged[merged["_merge"] != "both"]
    if len(unpaired):
        side = "treatment" if unpaired["_merge"].iloc[0] == "left_only" else "baseline"
        raise ValueError(
            f"{what}: {len(unpaired)} prompt(s) answered by one model only, "
            f"e.g. id {unpaired['id'].iloc[0]!r} only in the {side}"
        )
    mismatch = ~np.isclose(merged["value_t"], merged["value_b"])
    if mismatch.any():
        raise ValueError(
            f"{what}: prompt id {merged.loc[mismatch, 'id'].iloc[0]!r} has different values "
            "in the two runs (different test sets?)"
        )
    out = pd.DataFrame(
        {
            "id": merged["id"],
            "value": merged["value_t"].astype(float),
            "correct_t": merged["correct_t"].astype(float),
            "correct_b": merged["correct_b"].astype(float),
        }
    )
    if "exam_id" in treatment.columns:
        out["exam_id"] = out["id"].map(dict(zip(treatment["id"], treatment["exam_id"])))
    return out


def paired_bootstrap(
    pairs: list[pd.DataFrame],
    metric: str = "h_acc",
    resamples: int = RESAMPLES,
    seed: int = SEED,
    cluster: str = "prompt",
) -> BootstrapResult:
    """Bootstrap of treatment-minus-baseline `metric` ("h_acc" or "acc") over prompts or exams.

    `pairs` holds one `paired_samples` frame per seed pair, all over the same prompts;
    `cluster="exam"` resamples whole exams (the frames need `exam_id`).
    """
    if metric not in ("h_acc", "acc"):
        raise ValueError(f"metric must be 'h_acc' or 'acc', not {metric!r}")
    if cluster not in ("exam", "prompt"):
        raise ValueError(f"cluster must be 'exam' or 'prompt', not {cluster!r}")
    if cluster == "exam" and "exam_id" not in pairs[0].columns:
        raise ValueError("cluster='exam' needs an exam_id column in the evaluation samples (or use cluster='prompt')")
    aligned = align_by_id(pairs, "seed pair")
    n = len(aligned[0])
    # (S, n) per seed pair: weight of each prompt in the metric, and the per-prompt difference.
    weight = np.stack([a["value"].to_numpy() if metric == "h_acc" else np.ones(n) for a in aligned])
    delta = np.stack([(a["correct_t"] - a["correct_b"]).to_numpy() for a in aligned])

    def statistic(counts: np.ndarray) -> np.ndarray:
        # counts (B, n) -> (B,): mean over seed pairs of 100 * sum w v d / sum w v
        num = counts @ (weight * delta).T  # (B, S)
        den = counts @ weight.T  # (B, S)
        return 100 * (num / den).mean(axis=1)

    observed = float(statistic(np.ones((1, n)))[0])
    # prompt i belongs to cluster codes[i]; a resample draws the clusters, each with all its prompts
    codes = pd.factorize(aligned[0]["exam_id"])[0] if cluster == "exam" else np.arange(n)
    n_clusters = int(codes.max()) + 1
    rng = np.random.default_rng(seed)
    drawn = rng.multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters), size=resamples)  # (B, clusters)
    counts = drawn[:, codes].astype(float)  # (B, n): times each prompt is in the resample
    diffs = statistic(counts)
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return BootstrapResult(
        observed, float(lo), float(hi), float((diffs > 0).mean()), n, len(pairs), resamples, seed, cluster, n_clusters
    )
