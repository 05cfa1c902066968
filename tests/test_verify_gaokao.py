"""Rule verifier on the real GAOKAO multiple-choice answers (../shared/data/gaokao_rlev).

Every multiple_choice row's reference answer ("C", "B; C; A", "AD", 20-part cloze keys)
must verify against a response that states it, and must fail against the same answer
with one letter changed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rlev.verify import verify

SHARED = Path(__file__).resolve().parents[2] / "shared"
GAOKAO_TEST = SHARED / "data" / "gaokao_rlev" / "test.jsonl"


def _multiple_choice_rows() -> list[dict]:
    if not GAOKAO_TEST.exists():
        pytest.skip(f"real data not found at {GAOKAO_TEST}")
    rows = [json.loads(line) for line in GAOKAO_TEST.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if r["question_type"] == "multiple_choice"]


def _wrong_variant(answer: str) -> str:
    """The answer with its last letter replaced by the next option (D -> A)."""
    letters = list(re.finditer(r"[A-G]", answer))
    last = letters[-1]
    options = "ABCD" if last.group() in "ABCD" else "ABCDEFG"
    wrong = options[(options.index(last.group()) + 1) % len(options)]
    return answer[: last.start()] + wrong + answer[last.end() :]


def test_every_gaokao_multiple_choice_answer_verifies():
    rows = _multiple_choice_rows()
    # The dataset README promises 406 multiple-choice rows in the test split.
    assert len(rows) == 406
    failures = []
    for row in rows:
        ref = row["reference_answer"]
        right = f"解析：根据题意逐项分析。答案是{ref}"
        wrong = f"解析：根据题意逐项分析。答案是{_wrong_variant(ref)}"
        if not verify(ref, right):
            failures.append((row["id"], ref, "right answer rejected"))
        if verify(ref, wrong):
            failures.append((row["id"], ref, "wrong answer accepted"))
    print(f"gaokao multiple_choice rows covered: {len(rows)}, failures: {len(failures)}")
    assert not failures, failures[:10]


def test_gaokao_multi_part_answers_accept_compact_forms():
    rows = [r for r in _multiple_choice_rows() if ";" in r["reference_answer"]]
    assert rows, "expected multi-part answers such as 'B; C; A' in the test split"
    for row in rows:
        ref = row["reference_answer"]
        letters = ref.replace(";", "").split()
        # "BCA", "B,C,A" and "B C A" all state the same ordered answer
        for form in ("".join(letters), ",".join(letters), " ".join(letters)):
            assert verify(ref, f"The answer is {form}"), (row["id"], form)
        # reversed order is wrong unless the sequence is a palindrome
        if letters != letters[::-1]:
            assert not verify(ref, f"The answer is {''.join(reversed(letters))}"), row["id"]
