"""The paper's evaluation metrics, computed from per-sample records.

Metric names here are the only ones tables and figures read:

    acc            share of correct responses (in %)
    h_acc          human-aligned accuracy: sum(v over correct) / sum(v over all) (in %)
    length         mean number of generated tokens (eos excluded)
    density        value density: h_acc (in %) / length, e.g. 57.9 / 90.5 = 0.64
    acc_top20      acc on the 20% highest-valued prompts (in %)
    acc_bottom20   acc on the 20% lowest-valued prompts (in %)
    n              number of test prompts
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

METRICS = ("acc", "h_acc", "length", "density", "acc_top20", "acc_bottom20", "n")


def human_aligned_accuracy(value, correct) -> float:
    """sum(v * correct) / sum(v), as a fraction.

    >>> human_aligned_accuracy([0.1, 0.3], [1, 0])
    0.25
    """
    value, correct = np.asarray(value, float), np.asarray(correct, float)
    return float((value * correct).sum() / value.sum())


def value_density(h_acc_percent: float, mean_length: float) -> float:
    """H-Acc in percent per generated token. The paper's 7B RLEV average: 57.9 / 90.5 = 0.64.

    >>> round(value_density(57.9, 90.5), 2)
    0.64
    """
    return h_acc_percent / mean_length if mean_length > 0 else math.nan


def value_extremes(values: pd.Series, share: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks of the `share` highest- and lowest-valued prompts (ties broken by order)."""
    k = max(1, int(round(share * len(values))))
    order = np.argsort(values.to_numpy(), kind="stable")
    top, bottom = np.zeros(len(values), bool), np.zeros(len(values), bool)
    top[order[-k:]] = True
    bottom[order[:k]] = True
    return top, bottom


def evaluation_metrics(samples: pd.DataFrame) -> dict:
    """All METRICS from per-sample records with columns value, correct, length."""
    correct = samples["correct"].astype(float)
    h_acc = 100 * human_aligned_accuracy(samples["value"], correct)
    length = float(samples["length"].mean())
    top, bottom = value_extremes(samples["value"])
    return {
        "acc": 100 * float(correct.mean()),
        "h_acc": h_acc,
        "length": length,
        "density": value_density(h_acc, length),
        "acc_top20": 100 * float(correct[top].mean()),
        "acc_bottom20": 100 * float(correct[bottom].mean()),
        "n": int(len(samples)),
    }


def mean_and_interval(xs) -> tuple[float, float, float]:
    """Mean and a 95% t-interval over seeds; (mean, nan, nan) for a single seed."""
    xs = np.asarray(list(xs), float)
    m = float(xs.mean())
    if len(xs) < 2:
        return m, math.nan, math.nan
    from scipy import stats

    half = float(stats.t.ppf(0.975, len(xs) - 1) * xs.std(ddof=1) / math.sqrt(len(xs)))
    return m, m - half, m + half
