"""The score predictor: an LM fine-tuned to emit a question's points, for "predicted values" (Table 3).

The paper fine-tunes Qwen2.5-7B (SFT, 2 epochs) on the exam data: the system turn
is SYSTEM_PROMPT with the exam's total, the user turn the question, the target the question's
points. On the exam test set it reaches exact match 79.5% and Pearson r = 0.91. It then labels
WebInstruct-verified, whose prompts only have difficulty categories, with total = 100; the
`predicted` value variant uses predicted score / 100.

Stages (`rlev predictor ...`, rules in workflow/rules/predictor.smk):

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

import json
import logging
import math
import re
import shlex
from pathlib import Path

import numpy as np
import pandas as pd

from rlev import InputError

log = logging.getLogger(__name__)

# The paper's system prompt, verbatim; {total_score} is the exam's total (100 for WebInstruct).
SYSTEM_PROMPT = (
    "You are a scoring assistant. Given a question and its answer, output a numeric score greater than 0 and "
    "up to {total_score} inclusive (decimals allowed, e.g. 0.5) that reflects how much this problem would "
    "contribute in a {total_score}-point exam. Respond with only the score, no other text."
)
PREDICTED_SCORE = "predicted_score"
PREDICTED_VALUE = "predicted_value"  # the column rlev.values' `predicted` variant reads


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


# --- settings and training ----------------------------------------------------------------------


def predictor_spec(config: dict, scale: str) -> dict:
    """The predictor's resolved settings at `scale`: its `local` or `verl` block by the scale's back end.

    On the local back end the model is the scale's (`tiny`: built for the predictor, with the
    scale's tiny shape updated by `predictor.local.tiny`), as are device and dtype.
    """
    s, p = config["scales"][scale], config["predictor"]
    if s["backend"] == "local":
        spec = {**p["local"], "model": s["model"], "device": s["device"], "dtype": s["dtype"],
                "tiny": {**s["tiny"], **p["local"]["tiny"]}}
    else:
        spec = dict(p["verl"])
    # label_stats.json compares the predictions with the weak (difficulty-label) points too
    return {**spec, "backend": s["backend"], "label_total": p["label_total"],
            "weak_points": dict(config["reward"]["weak_points"])}


def train(spec: dict, train_rows: pd.DataFrame, out_dir: Path, name: str) -> Path:
    """Train the predictor with the back end of `spec`; returns the model directory."""
    if spec["backend"] == "local":
        return train_local(spec, train_rows, out_dir)
    return train_verl(spec, train_rows, out_dir, name)


# --- training, local back end ---------------------------------------------------------------


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
    log.info("score predictor: %d examples, %g epochs = %d steps of %d", len(examples), spec["epochs"], steps,
             spec["batch"])
    fit_sft(Path(init), out_dir / "model", examples, steps, spec["batch"], spec["lr"], spec["threads"], spec["seed"],
            spec["device"], spec["dtype"], metrics_path=out_dir / "train_metrics.jsonl")
    return out_dir / "model"


# --- training, verl back end ----------------------------------------------------------------


def write_sft_parquet(rows: pd.DataFrame, path: Path) -> None:
    """verl's multi-turn SFT layout: a `messages` column of system / user / assistant turns."""
    messages = [
        [{"role": "system", "content": s}, {"role": "user", "content": q}, {"role": "assistant", "content": r[0]}]
        for q, s, r in predictor_examples(rows)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"messages": messages}).to_parquet(path, index=False)


def verl_sft_overrides(spec: dict, train_file: Path, out_dir: Path, name: str) -> list[str]:
    """Hydra overrides of verl's `sft_trainer_engine` config for the predictor's SFT."""
    ranks = spec["gpus_per_node"] * spec["nodes"]
    if spec["batch"] % ranks or (spec["batch"] // ranks) % spec["micro_batch_per_gpu"]:
        raise ValueError(
            f"predictor.verl: batch {spec['batch']} must split into {ranks} GPUs x whole micro batches of "
            f"micro_batch_per_gpu={spec['micro_batch_per_gpu']} (verl asserts it mid-launch)"
        )
    return [
        f"data.train_files={Path(train_file).resolve()}",
        "data.val_files=null",
        "data.messages_key=messages",
        f"data.max_length={spec['max_length']}",
        "data.truncation=error",
        f"data.train_batch_size={spec['batch']}",
        # fixed micro batches: with verl's default dynamic batch size the micro batch is ignored
        "data.use_dynamic_bsz=false",
        f"data.micro_batch_size_per_gpu={spec['micro_batch_per_gpu']}",
        f"model.path={spec['model']}",
        f"optim.lr={spec['lr']}",
        f"trainer.total_epochs={spec['epochs']}",
        "trainer.save_freq=-1",  # the last step is always saved
        "checkpoint.save_contents=[model,optimizer,extra,hf_model]",
        f"trainer.default_local_dir={(Path(out_dir) / 'checkpoints').resolve()}",
        "trainer.project_name=rlev",
        f"trainer.experiment_name={name}",
        "trainer.logger=[console]",
        f"trainer.n_gpus_per_node={spec['gpus_per_node']}",
        f"trainer.nnodes={spec['nodes']}",
    ]


def compose_sft_config(overrides: list[str]):
    """verl's SFT config composed offline with `overrides`: unknown keys fail here, not on the cluster."""
    from hydra import compose, initialize_config_dir

    from rlev.train.verl import verl_config_dir

    with initialize_config_dir(config_dir=str(verl_config_dir()), version_base=None):
        return compose(config_name="sft_trainer_engine", overrides=list(overrides))


def sft_script(spec: dict, overrides: list[str], name: str) -> str:
    """The launch script: one torchrun call of verl.trainer.sft_trainer with the overrides."""
    lines = [
        "#!/usr/bin/env bash",
        f"# rlev score predictor {name}: SFT of {spec['model']} for {spec['epochs']} epoch(s) (paper: 2 epochs,",
        "# Qwen2.5-7B; exact match 79.5%, Pearson r 0.91 on the exam test set).",
        "# Written by rlev.predictor.write_sft_launch; verl_sft_config.yaml beside it is the composed config.",
        "# Usage: bash verl_sft.sh [extra Hydra overrides]",
        "set -euo pipefail",
        "",
        f"torchrun --nnodes={spec['nodes']} --nproc_per_node={spec['gpus_per_node']} -m verl.trainer.sft_trainer \\",
        *[f"    {shlex.quote(o)} \\" for o in overrides],
        '    "$@"',
    ]
    return "\n".join(lines) + "\n"


SFT_REJECTS = "sft_rejects.csv"  # rows verl's SFT would refuse, beside the launch files


def drop_overlong(sft_file: Path, rows: pd.DataFrame, tokenizer, max_length: int, report: Path) -> int:
    """Remove from `sft_file` the examples longer than `max_length` tokens, listing them in `report`.

    verl's SFT dataset (MultiTurnSFTDataset with truncation=error) raises inside
    __getitem__, mid-training, on such a row; so each example is built here with verl's own
    dataset class and tokenizer, and a row it refuses goes to the report (id, exam_id,
    tokens, max_length, reason) instead of the training file. Returns the rows dropped;
    an error when none would be left.
    """
    from omegaconf import OmegaConf
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    config = OmegaConf.create({"max_length": max_length, "truncation": "error", "messages_key": "messages"})
    dataset = MultiTurnSFTDataset(str(sft_file), tokenizer, config)
    too_long = {}
    for i in range(len(dataset)):
        try:
            dataset[i]
        except ValueError as err:
            m = re.search(r"sequence_length=(\d+) is larger than", str(err))
            if not m:
                raise
            too_long[i] = int(m.group(1))
    ids = rows["id"].astype(str).tolist() if "id" in rows.columns else [str(i) for i in range(len(rows))]
    exams = rows["exam_id"].astype(str).tolist() if "exam_id" in rows.columns else [""] * len(rows)
    pd.DataFrame([{"id": ids[i], "exam_id": exams[i], "tokens": n, "max_length": max_length,
                   "reason": f"system + question + score is {n} tokens, over predictor.verl.max_length {max_length}"}
                  for i, n in too_long.items()],
                 columns=["id", "exam_id", "tokens", "max_length", "reason"]).to_csv(report, index=False)
    if len(too_long) == len(rows):
        raise ValueError(f"score predictor SFT: all {len(rows)} examples are over predictor.verl.max_length "
                         f"{max_length} tokens (listed in {report}); raise max_length")
    if too_long:
        kept = pd.read_parquet(sft_file).drop(index=list(too_long)).reset_index(drop=True)
        kept.to_parquet(sft_file, index=False)
        log.warning("score predictor SFT: %d of %d examples are over %d tokens and are left out (listed in %s)",
                    len(too_long), len(rows), max_length, report)
    return len(too_long)


def write_sft_launch(spec: dict, train_rows: pd.DataFrame, out_dir: Path, name: str, tokenizer=None) -> Path:
    """SFT data, composed config and launch script for the verl back end; returns the script.

    With the model's `tokenizer`, examples over `max_length` tokens are left out of the data
    and listed in sft_rejects.csv (drop_overlong), so verl's SFT cannot stop on them mid-run.
    """
    from omegaconf import OmegaConf

    out_dir = Path(out_dir)
    train_file = out_dir / "sft_train.parquet"
    write_sft_parquet(train_rows, train_file)
    if tokenizer is not None:
        drop_overlong(train_file, train_rows.reset_index(drop=True), tokenizer, spec["max_length"],
                      out_dir / SFT_REJECTS)
    overrides = verl_sft_overrides(spec, train_file, out_dir, name)
    cfg = compose_sft_config(overrides)
    (out_dir / "verl_sft_config.yaml").write_text(OmegaConf.to_yaml(cfg))
    script = out_dir / "verl_sft.sh"
    script.write_text(sft_script(spec, overrides, name))
    script.chmod(0o755)
    return script


def last_hf_model(checkpoints: Path) -> Path:
    """The Hugging Face export (a `huggingface` folder) of the newest global_step_N checkpoint."""
    found = sorted(
        ((int(m.group(1)), p) for p in Path(checkpoints).glob("global_step_*/**/huggingface")
         if (m := re.search(r"global_step_(\d+)", str(p)))),
    )  # fmt: skip
    if not found:
        raise FileNotFoundError(f"no global_step_N/.../huggingface model under {checkpoints}")
    return found[-1][1]


def train_verl(spec: dict, train_rows: pd.DataFrame, out_dir: Path, name: str) -> Path:
    """Write the checked launch files, then run them where GPUs exist; the model goes to out_dir/model."""
    import shutil
    import subprocess

    import torch
    from transformers import AutoTokenizer

    # the model's own tokenizer measures each example as verl's SFT will (over-long rows are reported, not fatal)
    tokenizer = AutoTokenizer.from_pretrained(spec["model"])
    script = write_sft_launch(spec, train_rows, out_dir, name, tokenizer)
    if not torch.cuda.is_available():
        raise RuntimeError(
            f"score predictor {name}: the verl back end needs CUDA GPUs and none is visible here. "
            f"The checked launch script is {script}; run it on a GPU node (or with --profile profiles/slurm)."
        )
    with open(Path(out_dir) / "verl_sft.log", "a") as log_file:
        subprocess.run(["bash", str(script)], stdout=log_file, stderr=subprocess.STDOUT, check=True)
    shutil.copytree(last_hf_model(Path(out_dir) / "checkpoints"), Path(out_dir) / "model")
    return Path(out_dir) / "model"


# --- prediction, evaluation, labelling ---------------------------------------------------------


def _json(obj) -> str:
    """JSON with NaN written as null (an undefined Pearson r), which strict readers accept."""
    def clean(x):
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        return None if isinstance(x, float) and math.isnan(x) else x

    return json.dumps(clean(obj), indent=2) + "\n"


def predict_scores(model_dir, questions: list[str], totals: list[float], max_new_tokens: int, batch_size: int,
                   threads: int, device: str = "auto", dtype: str = "float32") -> list[str]:
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
    replies = predict_scores(model_dir, test["question"].tolist(), test["total"].astype(float).tolist(),
                             spec["max_new_tokens"], spec["eval_batch"], spec["threads"], spec["device"],
                             spec["dtype"])
    predicted = [parse_score(r) for r in replies]
    metrics = {"model": str(model_dir), "test": str(test_path),
               **prediction_metrics(test["score"].astype(float), predicted)}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = test[["id", "exam_id", "question", "score", "total"]].copy()
    table["reply"] = replies
    table[PREDICTED_SCORE] = predicted
    table.to_parquet(out_dir / "predictions.parquet", index=False)
    (out_dir / "metrics.json").write_text(_json(metrics))
    log.info("score predictor on %s: exact match %.1f%%, Pearson r %.3f, %d of %d replies parsed", test_path,
             metrics["exact_match"], metrics["pearson_r"], metrics["parsed"], metrics["n"])
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
    replies = predict_scores(model_dir, rows["question"].tolist(), [total] * len(rows), spec["max_new_tokens"],
                             spec["eval_batch"], spec["threads"], spec["device"], spec["dtype"])
    scores, values, imputed = predicted_values(replies, total)
    labelled = rows.copy()
    labelled[PREDICTED_SCORE] = scores
    labelled[PREDICTED_VALUE] = values
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
        "by_difficulty": {
            str(k): float(v) for k, v in labelled.groupby("difficulty")[PREDICTED_VALUE].mean().items()
        },
    }
    weak_points = spec.get("weak_points")
    if weak_points and rows["difficulty"].notna().all():
        unknown = sorted(set(rows["difficulty"]) - set(weak_points))
        if unknown:
            raise ValueError(f"{train_path}: difficulty {unknown[0]!r} has no points in reward.weak_points "
                             f"({sorted(weak_points)})")
        weak = rows["difficulty"].map(weak_points).astype(float) * total / 100
        # Against the weak value the `weak` runs train with (the difficulty LABEL's points), and how often
        # the weak label itself is right: the two noisy value sources Table 3 compares.
        stats["versus_weak_label"] = prediction_metrics(weak, predicted)
        stats["weak_label_versus_true_points"] = prediction_metrics(rows["score"].astype(float), weak.tolist())
    out_path.with_name("label_stats.json").write_text(_json(stats))
    log.info("labelled %d rows of %s (%d imputed); mean predicted value %.4f", len(rows), train_path,
             stats["imputed"], stats["mean_predicted_value"])
    return stats
