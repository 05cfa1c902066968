"""Training the score predictor on the local back end: `rlev.sft.fit_sft` on a tiny Qwen2 built for the
predictor's own text, or on the scale's model (rlev.predictor)."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pandas as pd

from rlev.predictor.prompt import predictor_examples

log = logging.getLogger(__name__)


def sft_steps(n_rows: int, epochs: float, batch: int) -> int:
    """Optimizer steps for `epochs` passes over `n_rows` at `batch` examples per step.

    >>> sft_steps(4000, 2, 64)
    125
    """
    return max(1, math.ceil(epochs * n_rows / batch))


def train_local(spec: dict, train_rows: pd.DataFrame, out_dir: Path) -> Path:
    """Fine-tune the predictor on `train_rows`; returns the model directory (out_dir/model).

    spec: the predictor's local settings plus `model` and `tiny` (shape) from the scale. A
    `tiny` model is built from the predictor's own text, so its tokenizer knows the system
    prompt's words (see the predictor's `tiny` overrides in the config).
    """
    from rlev.model import build_tiny
    from rlev.sft import fit_sft

    out_dir = Path(out_dir)
    examples = predictor_examples(train_rows)
    init = spec["model"]
    if init == "tiny":
        init = out_dir / "init"
        texts = [t for q, s, responses in examples for t in (s + "\n" + q + "\n", *responses)]
        build_tiny(texts, spec["tiny"], init, seed=spec["seed"])
    steps = sft_steps(len(examples), spec["epochs"], spec["batch"])
    log.info(
        "score predictor: %d examples, %g epochs = %d steps of %d", len(examples), spec["epochs"], steps, spec["batch"]
    )
    fit_sft(
        Path(init),
        out_dir / "model",
        examples,
        steps,
        spec["batch"],
        spec["lr"],
        spec["threads"],
        spec["seed"],
        spec["device"],
        spec["dtype"],
        metrics_path=out_dir / "train_metrics.jsonl",
    )
    return out_dir / "model"
