"""The predictor's greedy replies: `evaluate` on the exam test split (predictions.parquet, metrics.json)
and `label` of a difficulty-only dataset's training split (predicted_score, predicted_value,
label_stats.json) (rlev.predictor)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from rlev import InputError, nan_to_null
from rlev.predictor.prompt import PREDICTED_SCORE, parse_score, prediction_metrics, system_prompt
from rlev.values import PREDICTED_COLUMN

log = logging.getLogger(__name__)


def predict_scores(
    model_dir,
    questions: list[str],
    totals: list[float],
    max_new_tokens: int,
    batch_size: int,
    threads: int,
    device: str = "auto",
    dtype: str = "float32",
) -> list[str]:
    """Greedy replies of the predictor for each (question, total); questions are read without stated points."""
    import torch

    from rlev.data.arithmetic import without_points
    from rlev.evaluate.generate import greedy_generate

    torch.set_num_threads(threads)
    replies, _, _ = greedy_generate(model_dir, [without_points(q) for q in questions],
                                    [system_prompt(t) for t in totals], max_new_tokens=max_new_tokens,
                                    batch_size=batch_size, device=device, dtype=dtype)  # fmt: skip
    return replies


def evaluate_predictor(model_dir, test_path, out_dir: Path, spec: dict) -> dict:
    """Exact match and Pearson r on the exam test split; writes predictions.parquet and metrics.json."""
    test = pd.read_parquet(test_path)
    replies = predict_scores(
        model_dir,
        test["question"].tolist(),
        test["total"].astype(float).tolist(),
        spec["max_new_tokens"],
        spec["eval_batch"],
        spec["threads"],
        spec["device"],
        spec["dtype"],
    )
    predicted = [parse_score(r) for r in replies]
    metrics = {
        "model": str(model_dir),
        "test": str(test_path),
        **prediction_metrics(test["score"].astype(float), predicted),
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = test[["id", "exam_id", "question", "score", "total"]].copy()
    table["reply"] = replies
    table[PREDICTED_SCORE] = predicted
    table.to_parquet(out_dir / "predictions.parquet", index=False)
    (out_dir / "metrics.json").write_text(json.dumps(nan_to_null(metrics), indent=2) + "\n")
    log.info(
        "score predictor on %s: exact match %.1f%%, Pearson r %.3f, %d of %d replies parsed",
        test_path,
        metrics["exact_match"],
        metrics["pearson_r"],
        metrics["parsed"],
        metrics["n"],
    )
    return metrics


class PredictorError(InputError):
    """The predictor gave nothing usable; the message says which settings to change."""


def predicted_values(replies: list[str], total: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(parsed scores with NaN, predicted values in (0, 1], imputed mask) for one labelling total.

    A reply that is unparsed, <= 0 or above `total` gets the median of the valid replies.

    >>> scores, values, imputed = predicted_values(["4", "x", "200", "8"], 100)
    >>> values.tolist(), imputed.tolist()
    ([0.04, 0.06, 0.06, 0.08], [False, True, True, False])
    """
    scores = np.array([np.nan if (p := parse_score(r)) is None else p for r in replies], dtype=np.float64)
    valid = np.isfinite(scores) & (scores > 0) & (scores <= total)
    if not valid.any():
        raise PredictorError(
            f"none of the {len(replies)} predictor replies is a score in (0, {total:g}]; first replies: "
            f"{replies[:5]!r}. The score predictor, learnt from the exam dataset (predictor.dataset, default "
            "`dataset`), did not learn to score these prompts: give it more exam rows or more training "
            "(predictor.local.epochs, predictor.verl.epochs), or leave the predicted runs out (drop `predicted` "
            "from experiments.noisy.rewards, or switch Table 3 off with `experiments: {noisy: null}`)"
        )
    filled = np.where(valid, scores, np.median(scores[valid]))
    return scores, filled / total, ~valid


def label_dataset(model_dir, train_path, out_path: Path, spec: dict, total: float = 100.0) -> dict:
    """Write a copy of `train_path` with predicted_score and predicted_value; returns label stats."""
    rows = pd.read_parquet(train_path)
    replies = predict_scores(
        model_dir,
        rows["question"].tolist(),
        [total] * len(rows),
        spec["max_new_tokens"],
        spec["eval_batch"],
        spec["threads"],
        spec["device"],
        spec["dtype"],
    )
    scores, values, imputed = predicted_values(replies, total)
    labelled = rows.copy()
    labelled[PREDICTED_SCORE] = scores
    labelled[PREDICTED_COLUMN] = values
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    labelled.to_parquet(out_path, index=False)
    predicted = [None if m else s for s, m in zip(scores, imputed)]
    stats = {
        "model": str(model_dir),
        "data": str(train_path),
        "total": total,
        "rows": int(len(rows)),
        "imputed": int(imputed.sum()),
        "mean_predicted_value": float(values.mean()),
        # Against the dataset's own points (the synthetic stand-in: the TRUE difficulty's points; WebInstruct:
        # its category's points, the only value it has, so there this is the weak label too).
        "versus_true_points": prediction_metrics(rows["score"].astype(float), predicted),
        "by_difficulty": {str(k): float(v) for k, v in labelled.groupby("difficulty")[PREDICTED_COLUMN].mean().items()},
    }
    weak_points = spec.get("weak_points")
    if weak_points and rows["difficulty"].notna().all():
        unknown = sorted(set(rows["difficulty"]) - set(weak_points))
        if unknown:
            raise ValueError(
                f"{train_path}: difficulty {unknown[0]!r} has no points in reward.weak_points ({sorted(weak_points)})"
            )
        weak = rows["difficulty"].map(weak_points).astype(float) * total / 100
        # Against the weak value the `weak` runs train with (the difficulty LABEL's points), and how often
        # the weak label itself is right: the two noisy value sources Table 3 compares.
        stats["versus_weak_label"] = prediction_metrics(weak, predicted)
        stats["weak_label_versus_true_points"] = prediction_metrics(rows["score"].astype(float), weak.tolist())
    out_path.with_name("label_stats.json").write_text(json.dumps(nan_to_null(stats), indent=2) + "\n")
    log.info(
        "labelled %d rows of %s (%d imputed); mean predicted value %.4f",
        len(rows),
        train_path,
        stats["imputed"],
        stats["mean_predicted_value"],
    )
    return stats
