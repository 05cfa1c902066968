"""Synthetic difficulty-only prompts: the default scale's stand-in for WebInstruct-verified (Table 3).

WebInstruct-verified gives each question a difficulty category and nothing else about its
worth; the paper maps the category to points (primary 1, junior 2, senior 4, university 6,
phd 8) out of a total of 100 for every prompt, and trains on 2,000 rows per category. This
generator writes rows of the same shape, so the noisy-value experiment runs end to end on a
laptop:

- each prompt has a TRUE difficulty (`true_difficulty`, kept in the generated records for
  Table 3's per-difficulty columns; prepare does not carry it into the splits);
- `total` is 100 and `score` is the points of the TRUE difficulty (the paper's ladder,
  `rlev.data.difficulty`: 1 / 2 / 4 / 6 / 8), so `value` = points / 100 is the value H-Acc weighs by;
- the question is a sum of one-digit numbers with as many terms as a level of
  `rlev.data.arithmetic.TERMS` has (primary 2 ... phd 8), answered directly or worked
  step by step (demonstrations as for the synthetic exams). The text shows the true level
  only most of the time: with probability `surface_noise` it is written at a neighbouring
  level (one level up or down, at random), as a real question can look harder or easier
  than it is worth. So nothing that reads the question (the score predictor) can recover
  the true points exactly; before this, the term count gave them away on every row;
- `difficulty` is the category LABEL, as an annotator would give it: with probability
  `label_noise` it is one level off the true one (up or down, at random), independently of
  the surface. The `weak` variant reads the label, so its values are right only as often as
  the labels are;
- every prompt is its own 100-point "exam" (`exam_id` = `id`), and the split is given:
  `rows_per_category` training rows per true category, `test_rows` test rows with
  categories drawn uniformly.

The `predicted` variant's values come from the score predictor (rlev.predictor), trained on
the exams and asked for each of these questions with total 100: it reads the question
itself, not the label, so Table 3 compares noisy labels with a learnt predictor, the
paper's question.

Origin: generated here (seeded). Licence: same as the project. Row counts: 5 x
rows_per_category training rows, test_rows test rows.
"""

from __future__ import annotations

import numpy as np

from rlev.data.arithmetic import LEVELS, sum_question

TOTAL = 100  # the paper gives every WebInstruct prompt a 100-point total


def _neighbour(rng, names: list[str], name: str, noise: float) -> str:
    """`name`, or with probability `noise` the level one up or down (at random; clipped at the ends)."""
    if rng.random() >= noise:
        return name
    level = names.index(name) + int(rng.choice([-1, 1]))
    return names[min(max(level, 0), len(names) - 1)]


def generate_categories(
    rows_per_category: int, test_rows: int, seed: int, label_noise: float = 0.0, surface_noise: float = 0.0
) -> tuple[list[dict], list[dict]]:
    """(canonical records + `true_difficulty`, demonstrations) of the difficulty-only dataset.

    >>> records, demos = generate_categories(2, 3, seed=0)
    >>> len(records), len(demos), {r["total"] for r in records}
    (13, 13, {100})
    >>> sorted({(r["difficulty"], r["score"]) for r in records if r["split"] == "train"})
    [('junior', 2), ('phd', 8), ('primary', 1), ('senior', 4), ('university', 6)]
    """
    rng = np.random.default_rng(seed)
    names = list(LEVELS)
    plan = [("train", name) for name in names for _ in range(rows_per_category)]
    plan += [("test", names[i]) for i in rng.integers(0, len(names), size=test_rows)]
    records, demos = [], []
    for k, (split, name) in enumerate(plan):
        qid = f"cat-{split}-{k:06d}"
        surface = _neighbour(rng, names, name, surface_noise)  # the level the question's text looks like
        # each prompt is its own "exam" of total 100, as WebInstruct's prompts are
        record, demo = sum_question(rng, qid, qid, surface, LEVELS[name][1], TOTAL, split)
        record["difficulty"] = _neighbour(rng, names, name, label_noise)  # the annotator's label
        record["true_difficulty"] = name
        records.append(record)
        demos.append(demo)
    return records, demos
