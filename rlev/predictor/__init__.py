"""The score predictor: an LM fine-tuned to emit a question's points, for "predicted values" (Table 3).

The paper fine-tunes Qwen2.5-7B (SFT, 2 epochs) on the exam data: the system turn
is SYSTEM_PROMPT with the exam's total, the user turn the question, the target the question's
points. On the exam test set it reaches exact match 79.5% and Pearson r = 0.91. It then labels
WebInstruct-verified, whose prompts only have difficulty categories, with total = 100; the
`predicted` value variant uses predicted score / 100.

Stages (`rlev predictor ...`, rules in workflow/rules/predictor.smk), one module each beside
the prompt they share:

    prompt.py   the system prompt, the SFT examples, reading a reply (parse_score), the metrics
    local.py    train, local back end
    verl.py     train, verl back end (the launcher shared with the RL runs: rlev.train.verl_launch)
    predict.py  greedy prediction: evaluate and label

    train     local back end: a tiny Qwen2 built for the predictor's own text (or the scale's
              model) and `rlev.sft.fit_sft`; verl back end: writes the SFT data and a checked
              `verl.trainer.sft_trainer` launch script (torchrun), runs it where GPUs exist.
    evaluate  greedy scores for the exam test split -> predictions.parquet, metrics.json
              (exact_match, pearson_r, parsed share; see prediction_metrics).
    label     greedy scores for a difficulty-only dataset's training split with total 100 ->
              a labelled copy of its train.parquet with `predicted_score` and
              `predicted_value` (= predicted score / total, in (0, 1]), plus label_stats.json.

Reading the predictor's output (parse_score): the reply must be one number (an integer or a
decimal, optionally signed, optionally followed by "points"/"分"); anything else is None and
counted as unparsed. Exact match compares numbers (4 == 4.0); an unparsed reply is a miss;
Pearson r is computed over the parsed replies (and reported with their count).
Labelling needs a value for every row: a reply that is unparsed, <= 0 or above the total is
replaced by the median of the valid replies on that dataset, and counted (label_stats.json:
`imputed`), so no row silently gets a made-up value.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def predictor_spec(config: dict, scale: str) -> dict:
    """The predictor's resolved settings at `scale`: its `local` or `verl` block by the scale's back end.

    On the local back end the model is the scale's (`tiny`: built for the predictor, with the
    scale's tiny shape updated by `predictor.local.tiny`), as are device and dtype.
    """
    s, p = config["scales"][scale], config["predictor"]
    if s["backend"] == "local":
        spec = {
            **p["local"],
            "model": s["model"],
            "device": s["device"],
            "dtype": s["dtype"],
            "tiny": {**s["tiny"], **p["local"]["tiny"]},
        }
    else:
        spec = dict(p["verl"])
    # label_stats.json compares the predictions with the weak (difficulty-label) points too
    return {
        **spec,
        "backend": s["backend"],
        "label_total": p["label_total"],
        "weak_points": dict(config["reward"]["weak_points"]),
    }


def train(spec: dict, train_rows: pd.DataFrame, out_dir: Path, name: str) -> Path:
    """Train the predictor with the back end of `spec`; returns the model directory."""
    if spec["backend"] == "local":
        from rlev.predictor.local import train_local

        return train_local(spec, train_rows, out_dir)
    from rlev.predictor.verl import train_verl

    return train_verl(spec, train_rows, out_dir, name)
