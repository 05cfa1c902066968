"""The predictor's prompt and replies: the paper's system prompt, the SFT examples built from exam rows,
reading a reply as a score (parse_score) and the exact-match / Pearson-r metrics (rlev.predictor)."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

# The paper's system prompt, verbatim; {total_score} is the exam's total (100 for WebInstruct).
SYSTEM_PROMPT = (
    "You are a scoring assistant. Given a question and its answer, output a numeric score greater than 0 and "
    "up to {total_score} inclusive (decimals allowed, e.g. 0.5) that reflects how much this problem would "
    "contribute in a {total_score}-point exam. Respond with only the score, no other text."
)
PREDICTED_SCORE = "predicted_score"


def system_prompt(total) -> str:
    """SYSTEM_PROMPT for an exam of `total` points (written without a trailing .0).

    >>> system_prompt(100.0)[-75:]
    'contribute in a 100-point exam. Respond with only the score, no other text.'
    """
    return SYSTEM_PROMPT.format(total_score=f"{float(total):g}")


def score_text(score) -> str:
    """The SFT target for a score: '4', '0.5', '12.25'."""
    return f"{float(score):g}"


_SCORE = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*(?:points?|pts?\.?|分)?\s*\.?\s*$", re.IGNORECASE)


def parse_score(text) -> float | None:
    """The number a predictor reply consists of, or None.

    >>> [parse_score(t) for t in ["4", " 0.5\\n", "12.", "3 points", "-2", "6分"]]
    [4.0, 0.5, 12.0, 3.0, -2.0, 6.0]
    >>> [parse_score(t) for t in ["", "four", "4 or 5", "4/10", "score: 4", None]]
    [None, None, None, None, None, None]
    """
    if not isinstance(text, str):
        return None
    m = _SCORE.match(text)
    return float(m.group(1)) if m else None


def prediction_metrics(gold, predicted) -> dict:
    """Exact match (%) over all rows, Pearson r over parsed rows, and the parse counts.

    `predicted` holds floats or None (unparsed). Pearson r is NaN when fewer than two replies
    parsed or either side is constant.

    >>> m = prediction_metrics([1, 2, 4, 8], [1.0, 2.0, 5.0, None])
    >>> m["exact_match"], m["parsed"], m["unparsed"], round(m["pearson_r"], 3)
    (50.0, 3, 1, 0.996)
    """
    gold = np.asarray(gold, dtype=np.float64)
    pred = np.asarray([np.nan if p is None else float(p) for p in predicted], dtype=np.float64)
    if len(gold) != len(pred) or len(gold) == 0:
        raise ValueError(f"need as many predictions as gold scores (> 0), got {len(pred)} and {len(gold)}")
    parsed = ~np.isnan(pred)
    exact = parsed & np.isclose(pred, gold, rtol=0, atol=1e-9)
    r = math.nan
    if parsed.sum() >= 2 and np.std(pred[parsed]) > 0 and np.std(gold[parsed]) > 0:
        r = float(np.corrcoef(gold[parsed], pred[parsed])[0, 1])
    return {
        "exact_match": 100 * float(exact.mean()),
        "pearson_r": r,
        "mae": float(np.abs(pred[parsed] - gold[parsed]).mean()) if parsed.any() else math.nan,
        "n": int(len(gold)),
        "parsed": int(parsed.sum()),
        "unparsed": int((~parsed).sum()),
    }


def predictor_examples(rows: pd.DataFrame) -> list[tuple[str, str, list[str]]]:
    """SFT examples (question, system prompt with the exam's total, [score]) from canonical rows.

    A question's own statement of its points (the synthetic exams' "(6 points) ...") is
    removed: the prompts the predictor labels state none, and copying it would be no prediction.
    """
    from rlev.data.arithmetic import without_points

    return [
        (without_points(q), system_prompt(t), [score_text(s)])
        for q, t, s in zip(rows["question"], rows["total"], rows["score"])
    ]
