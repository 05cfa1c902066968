"""Synthetic exams: the default dataset, small enough for a CPU and checkable by rule.

Each exam has `questions_per_exam` questions (a fixed number, or drawn per exam from an
inclusive [min, max] range: real exams differ in size, and small exams are where the
high values come from); each question is a sum of one-digit numbers whose difficulty sets
the number of terms. As on a real exam paper, the question states what it is worth:

    (6 points) 3+5+2+7=?

Points are drawn so that value and difficulty can be told apart: with probability
`points_follow_difficulty` a question is worth its level's points (`rlev.data.arithmetic.LEVELS`:
harder = more), otherwise a uniform draw from `POINTS`, whatever its difficulty. The exam total is the sum
of its questions' points, so v = points / total as in a real exam (the total is not in the
prompt: it is the exam's, and the model sees one question).

A question can be answered in two ways, and the choice is the policy's:
- directly:  "#### 17"                          (short; fine for 2 terms, a guess for 8)
- worked:    "3+5=8 8+2=10 10+7=17 #### 17"     (long; each step is easy)
Working helps on hard items and only costs length (and a little risk per step) on easy
ones; with a value-independent cost on length (reward.cost) a long answer has a price that
the value can outweigh. The SFT warm start sees both forms at random, which leaves the
choice to RL.

Origin: generated here (seeded). Licence: same as the project. Row counts: train_exams x
questions_per_exam training rows, test_exams x questions_per_exam test rows (the
default, 95 + 14 exams of 6 to 80 questions, gives 4,220 and 720; mean v 0.022 and
1.4% of rows above v = 0.1; the paper: 0.02 and 1.18%).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rlev.data.arithmetic import LEVELS, POINTS, sum_question, with_points
from rlev.data.noisy import generate_categories


def draw_points(rng, difficulty: str, follow_difficulty: float) -> int:
    """A question's points: its level's with probability `follow_difficulty`, else uniform on POINTS."""
    if rng.random() < follow_difficulty:
        return LEVELS[difficulty][1]
    return int(rng.choice(POINTS))


def generate(
    train_exams: int,
    test_exams: int,
    questions_per_exam: int | list[int],
    seed: int,
    points_follow_difficulty: float = 0.5,
) -> tuple[list[dict], list[dict]]:
    """Exams as canonical records (see rlev.data.sources) plus SFT demonstrations.

    Returns (records, demonstrations); demonstrations hold one worked and one direct
    solution per question, keyed by question id.
    """
    rng = np.random.default_rng(seed)
    names = list(LEVELS)
    records, demos = [], []
    for e in range(train_exams + test_exams):
        split = "train" if e < train_exams else "test"
        exam_id = f"synth-{split}-{e:05d}"
        if isinstance(questions_per_exam, int):
            size = questions_per_exam
        else:
            size = int(rng.integers(questions_per_exam[0], questions_per_exam[1] + 1))
        levels = [names[lv] for lv in rng.choice(len(names), size=size)]
        points = [draw_points(rng, name, points_follow_difficulty) for name in levels]
        total = sum(points)
        for q, (name, pts) in enumerate(zip(levels, points)):
            record, demo = sum_question(rng, f"{exam_id}-q{q:02d}", exam_id, name, pts, total, split)
            record["question"] = with_points(record["question"], pts)
            records.append(record)
            demos.append(demo)
    return records, demos


def write(cfg: dict, exams_path: Path, demos_path: Path) -> None:
    """Generate the dataset described by a `datasets.<name>` config entry (source: synthetic).

    `kind: exams` (default) writes exams with points and totals; `kind: categories` writes
    difficulty-only prompts with total 100 (rlev.data.noisy, the noisy-value experiment).
    """
    if cfg["kind"] == "categories":
        records, demos = generate_categories(
            cfg["rows_per_category"], cfg["test_rows"], cfg["seed"], cfg["label_noise"], cfg["surface_noise"]
        )
    else:
        records, demos = generate(
            cfg["train_exams"],
            cfg["test_exams"],
            cfg["questions_per_exam"],
            cfg["seed"],
            cfg["points_follow_difficulty"],
        )
    for path, rows in ((exams_path, records), (demos_path, demos)):
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
