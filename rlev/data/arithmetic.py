"""The arithmetic questions every synthetic data set is made of: sums of one-digit numbers.

One generator for the three synthetic sets, so they share their levels, their question
text and their answer format:

- the synthetic exams (``rlev.data.synthetic``): questions that state their points;
- the difficulty-only stand-in for WebInstruct-verified (``rlev.data.noisy``);
- the synthetic OOD benchmarks (``rlev.data.ood``: ``synthetic_mc``, ``synthetic_sums``).

A level of difficulty is a number of terms (``TERMS``: primary 2 ... phd 8) and is worth the
points of the paper's ladder (``rlev.data.difficulty``), together ``LEVELS``. A question is
answered directly (``"#### 17"``) or worked step by step (``"3+5=8 8+2=10 10+7=17 #### 17"``);
``ANSWER_MARK`` is what the rule verifier reads the final answer after.
"""

from __future__ import annotations

import re

from rlev.data.difficulty import DIFFICULTY_POINTS

ANSWER_MARK = "#### "
# difficulty -> number of one-digit terms; harder levels are longer sums.
TERMS: dict[str, int] = {"primary": 2, "junior": 3, "senior": 4, "university": 6, "phd": 8}
# difficulty -> (number of terms, points), in the ladder's order.
LEVELS: dict[str, tuple[int, int]] = {name: (TERMS[name], points) for name, points in DIFFICULTY_POINTS.items()}
# Points a question can be worth when they do not follow its difficulty (the levels' own set).
POINTS: tuple[int, ...] = tuple(DIFFICULTY_POINTS.values())
_POINTS_PREFIX = re.compile(r"^\((\d+) points?\) ")


def draw_terms(rng, n: int) -> list[int]:
    """`n` one-digit terms (1-9) drawn from `rng`."""
    return [int(t) for t in rng.integers(1, 10, size=n)]


def sum_text(terms: list[int]) -> str:
    """The question of a sum: '3+5+2=?'.

    >>> sum_text([3, 5, 2])
    '3+5+2=?'
    """
    return "+".join(map(str, terms)) + "=?"


def with_points(question: str, points: int) -> str:
    """The question as printed on the exam paper, its points first.

    >>> with_points("3+5=?", 6), with_points("3+5=?", 1)
    ('(6 points) 3+5=?', '(1 point) 3+5=?')
    """
    return f"({points} point{'s' if points != 1 else ''}) {question}"


def stated_points(question: str) -> int | None:
    """The points a question states (None when it states none): the inverse of with_points.

    >>> stated_points("(6 points) 3+5=?"), stated_points("3+5=?")
    (6, None)
    """
    m = _POINTS_PREFIX.match(question)
    return int(m[1]) if m else None


def without_points(question: str) -> str:
    """The question with its points statement removed (what a difficulty-only dataset shows).

    >>> without_points("(6 points) 3+5=?")
    '3+5=?'
    """
    return _POINTS_PREFIX.sub("", question, count=1)


def worked_solution(terms: list[int]) -> str:
    """Running sums, one step per term.

    >>> worked_solution([3, 5, 2])
    '3+5=8 8+2=10 #### 10'
    """
    steps, acc = [], terms[0]
    for t in terms[1:]:
        steps.append(f"{acc}+{t}={acc + t}")
        acc += t
    return " ".join(steps) + f" {ANSWER_MARK}{acc}"


def direct_solution(terms: list[int]) -> str:
    return f"{ANSWER_MARK}{sum(terms)}"


def sum_question(
    rng, qid: str, exam_id: str, difficulty: str, score: float, total: float, split: str
) -> tuple[dict, dict]:
    """One question of `difficulty` (its number of one-digit terms drawn from `rng`) as a
    canonical record, and its worked and direct demonstrations."""
    terms = draw_terms(rng, TERMS[difficulty])
    record = {
        "id": qid,
        "exam_id": exam_id,
        "question": sum_text(terms),
        "system": "",
        "answer": str(sum(terms)),
        "score": score,
        "total": total,
        "difficulty": difficulty,
        "split": split,
    }
    return record, {"id": qid, "worked": worked_solution(terms), "direct": direct_solution(terms)}
