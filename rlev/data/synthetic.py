"""Synthetic exams: the default dataset, small enough for a CPU and checkable by rule.

Each exam has `questions_per_exam` questions (a fixed number, or drawn per exam from an
inclusive [min, max] range: real exams differ in size, and small exams are where the
high values come from); each question is a sum of one-digit
numbers. Difficulty sets the number of terms and the points (harder = more points); the
exam total is the sum of its questions' points, so v = points / total as in a real exam.

A question can be answered in two ways, and the choice is the policy's:
- directly:  "#### 17"                          (short; fine for 2 terms, a guess for 8)
- worked:    "3+5=8 8+2=10 10+7=17 #### 17"     (long; each step is easy)
Working helps on hard items and only costs length (and a little risk per step) on easy
ones, so the reward can change behaviour. The SFT warm start sees both forms at random,
which leaves the choice to RL.

Origin: generated here (seeded). Licence: same as the project. Row counts: train_exams x
questions_per_exam training rows, test_exams x questions_per_exam test rows (the
default, 95 + 14 exams of 6 to 80 questions, gives about 4,100 and 600; mean v 0.023 and
1.6% of rows above v = 0.1, close to the paper's 0.02 and 1.18%).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# difficulty -> (number of terms, points). Names match the noisy-value experiment's
# categories so the same generator can stand in for WebInstruct's difficulty labels.
LEVELS = {
    "primary": (2, 1),
    "junior": (3, 2),
    "senior": (4, 4),
    "university": (6, 6),
    "phd": (8, 8),
}
ANSWER_MARK = "#### "


def worked_solution(terms: list[int]) -> str:
    """Running sums, one step per term: '3+5=8 8+2=10 #### 10'."""
    steps, acc = [], terms[0]
    for t in terms[1:]:
        steps.append(f"{acc}+{t}={acc + t}")
        acc += t
    return " ".join(steps) + f" {ANSWER_MARK}{acc}"


def direct_solution(terms: list[int]) -> str:
    return f"{ANSWER_MARK}{sum(terms)}"


def generate(train_exams: int, test_exams: int, questions_per_exam: int | list[int], seed: int
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
        levels = rng.choice(len(names), size=size)
        # Points jitter by one now and then: value tracks difficulty, but not perfectly.
        points = [max(1, LEVELS[names[lv]][1] + int(rng.choice([-1, 0, 0, 0, 1]))) for lv in levels]
        total = sum(points)
        for q, (lv, pts) in enumerate(zip(levels, points)):
            record, demo = sum_question(rng, f"{exam_id}-q{q:02d}", exam_id, names[lv], pts, total, split)
            records.append(record)
            demos.append(demo)
    return records, demos


def sum_question(rng, qid: str, exam_id: str, difficulty: str, score: float, total: float,
                 split: str) -> tuple[dict, dict]:
    """One question of `difficulty` (its number of one-digit terms drawn from `rng`) as a
    canonical record, and its worked and direct demonstrations."""
    terms = [int(t) for t in rng.integers(1, 10, size=LEVELS[difficulty][0])]
    record = {
        "id": qid,
        "exam_id": exam_id,
        "question": "+".join(map(str, terms)) + "=?",
        "system": "",
        "answer": str(sum(terms)),
        "score": score,
        "total": total,
        "difficulty": difficulty,
        "split": split,
    }
    return record, {"id": qid, "worked": worked_solution(terms), "direct": direct_solution(terms)}


def write(cfg: dict, exams_path: Path, demos_path: Path) -> None:
    """Generate the dataset described by a `datasets.<name>` config entry (source: synthetic).

    `kind: exams` (default) writes exams with points and totals; `kind: categories` writes
    difficulty-only prompts with total 100 (rlev.data.noisy, the noisy-value experiment).
    """
    if cfg.get("kind", "exams") == "categories":
        from rlev.data.noisy import generate_categories

        records, demos = generate_categories(cfg["rows_per_category"], cfg["test_rows"], cfg["seed"],
                                             cfg["label_noise"])
    else:
        records, demos = generate(cfg["train_exams"], cfg["test_exams"], cfg["questions_per_exam"], cfg["seed"])
    for path, rows in ((exams_path, records), (demos_path, demos)):
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
