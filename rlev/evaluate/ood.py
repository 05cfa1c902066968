"""Out-of-distribution evaluation (`rlev ood`, rules ood and ood_base): Table 2's benchmarks.

    rlev ood --spec SCALE|RUN/config.yaml --model M --data results/ood/data/<benchmark>.parquet --out DIR

Greedy answers of one model to one benchmark's rows (rlev.data.ood, rule ood_data), on vLLM
at a verl scale (over the scale's tensor_parallel GPUs, as the in-domain evaluation) or
rlev's decoding loop (rlev.evaluate.generate). Writes samples.parquet (id, subject, gold
letter or answer, response, truncated, choice, correct) and metrics.json (acc, unanswered,
truncated and chance in %, n). Multiple-choice rows get ``mc_prompt`` and the letter
ladder; free-form rows (an ``answer`` column, no options) are asked as they are and scored
by the rule verifier. Correct, for both: ``rlev.evaluate.correct`` (the verdict is true and
the response is not truncated).

The prompt (``mc_prompt``): the question, a blank line, one ``X. option`` line per option,
a blank line, then "Answer with the letter of the correct option, as 'Answer: X'."

The answer-extraction ladder (``extract_choice``), first hit wins:

1. the final answer, as ``rlev.verify.extract_final_answer`` takes it (last ``\\boxed{}``,
   ``#### X``, "answer is X" / "Answer: X" / "答案是X" / "故选X", else the last line);
2. a letter of this row: the final answer is the letter alone or starts with it
   ("C", "(C)", "C.", "C) text", "option C", "选项C"; upper case, except a lone letter or
   after "option", so that "a ..." stays English); letters outside the row's count as
   no letter (``rlev.verify.rule`` handles letters A-G only, MMLU-Pro needs A-J, hence this
   step here);
3. option text: exactly one option is equal to the final answer under
   ``rlev.verify.verify`` (numbers, normalised text, maths), e.g. "#### 17" picks the
   option "17";
4. otherwise no answer: the sample counts as wrong and as ``unanswered``.

A truncated response (no stop token within the budget) is wrong even when a letter can be
read from it, as in the in-domain evaluation and in training.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rlev.evaluate import correct, scale_of
from rlev.evaluate.generate import greedy_generate
from rlev.verify import build_verifier, extract_final_answer, verify

log = logging.getLogger(__name__)

INSTRUCTION = "Answer with the letter of the correct option, as 'Answer: X'."


def mc_prompt(question: str, options: list[str], letters: list[str]) -> str:
    """The one multiple-choice prompt of every benchmark.

    >>> print(mc_prompt("2+2=?", ["3", "4"], ["A", "B"]))
    2+2=?
    <BLANKLINE>
    A. 3
    B. 4
    <BLANKLINE>
    Answer with the letter of the correct option, as 'Answer: X'.
    """
    lines = [f"{x}. {o}" for x, o in zip(letters, options)]
    return f"{question.strip()}\n\n" + "\n".join(lines) + f"\n\n{INSTRUCTION}"


_LETTER = re.compile(r"^(?:option|choice|选项|选)?\s*[(\[]?([A-P])(?:[)\].:：、\s]|$)", re.IGNORECASE)


def extract_choice(response: str, options: list[str], letters: list[str]) -> str | None:
    """The option letter a response commits to, by the ladder in the module docstring, or None.

    >>> opts, ls = ["15", "17", "12", "19"], list("ABCD")
    >>> [extract_choice(r, opts, ls) for r in ["Answer: B", "so (c) it is", "#### 17", "#### 18", "Answer: F"]]
    ['B', None, 'B', None, None]
    >>> extract_choice("The answer is D. Because ...", opts, ls)
    'D'
    """
    answer = extract_final_answer(response)
    if answer is None:
        return None
    m = _LETTER.match(answer.strip())
    if m and (
        len(answer.strip()) == 1 or m.group(1).isupper() or answer.strip().lower().startswith(("option", "choice"))
    ):
        letter = m.group(1).upper()
        return letter if letter in letters else None
    matches = [x for x, o in zip(letters, options) if o.strip() and verify(o, answer, math_timeout_s=1.0)]
    return matches[0] if len(matches) == 1 else None


def ood(spec: dict, model, data, out_dir: Path) -> dict:
    """`rlev ood`: greedy answers of one model on one benchmark's rows: samples.parquet and metrics.json
    (see the module docstring). `spec`: a scale block or a run's config (its `scale`)."""
    s = scale_of(spec)
    torch.set_num_threads(s["threads"])
    rows = pd.read_parquet(data)
    free_form = "options" not in rows.columns
    if free_form:
        questions = rows["question"].tolist()
    else:
        questions = [
            mc_prompt(q, list(o), list(x)) for q, o, x in zip(rows["question"], rows["options"], rows["letters"])
        ]
    texts, _, truncated = greedy_generate(
        model, questions, max_new_tokens=s["max_new_tokens"], batch_size=s["eval_batch"],
        engine="vllm" if s.get("backend") == "verl" else "transformers", device=s["device"], dtype=s["dtype"],
        tensor_parallel=int(s.get("tensor_parallel", 1)),
    )  # fmt: skip
    truncated = [bool(t) for t in truncated]
    if free_form:
        samples = rows[["id", "subject", "answer"]].copy()
        choices = [extract_final_answer(t) for t in texts]
        verdicts = build_verifier({"kind": "rule"})(rows["answer"].tolist(), texts, rows["question"].tolist())
        chance = None  # a free-form answer has no guessing rate
    else:
        samples = rows[["id", "subject", "gold_letter"]].copy()
        choices = [extract_choice(t, list(o), list(x)) for t, o, x in zip(texts, rows["options"], rows["letters"])]
        verdicts = [c == g for c, g in zip(choices, rows["gold_letter"])]
        # Expected accuracy of a uniform random guess, for reading the numbers honestly.
        chance = 100 * float(np.mean([1 / len(x) for x in rows["letters"]]))
    samples["response"] = texts
    samples["truncated"] = truncated
    samples["choice"] = choices
    samples["correct"] = correct(verdicts, truncated)
    metrics = {
        "model": str(model),
        "benchmark": str(rows["source"].iloc[0]) if len(rows) else "",
        "acc": 100 * float(samples["correct"].mean()),
        "unanswered": 100 * float(pd.isna(samples["choice"]).mean()),
        "truncated": 100 * float(np.mean(truncated)),
        "chance": chance,
        "n": int(len(rows)),
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    samples.to_parquet(out_dir / "samples.parquet", index=False)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    log.info(
        "%s on %s: acc %.1f%% (chance %s, unanswered %.1f%%, n %d)",
        model,
        metrics["benchmark"],
        metrics["acc"],
        "none" if chance is None else f"{chance:.1f}%",
        metrics["unanswered"],
        metrics["n"],
    )
    return metrics
