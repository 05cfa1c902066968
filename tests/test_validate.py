"""Validation: every rule, on hand-made bad files; rejects name file, row and field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import BAD_CSV, BAD_CSV_COLUMNS, FIXTURES
from rlev.data.sources import CANONICAL_COLUMNS, canonical_frame, load_source
from rlev.data.validate import REJECT_COLUMNS, DataValidationError, validate_records, write_rejects

BAD_CFG = {"source": "table", "path": str(BAD_CSV), "columns": BAD_CSV_COLUMNS}


@pytest.fixture(scope="module")
def bad_result():
    return validate_records(load_source(BAD_CFG), max_reject_share=1.0, dataset="bad_exams")


def reject_at(result, row: int) -> pd.Series:
    match = result.rejects[result.rejects["source_row"] == row]
    assert len(match) == 1, f"expected one reject at row {row}, got {len(match)}"
    return match.iloc[0]


# (spreadsheet row in bad_exams.csv, field, words the reason must contain)
RULES = [
    (3, "score", "score: missing"),  # empty score cell
    (4, "score", "score: not a finite number: five"),  # text score
    (5, "score", "score: must be > 0"),  # 0 points
    (6, "total", "total: must be > 0"),  # negative total
    (7, "score", "more than total 100"),  # 120 of 100
    (8, "question", "question: empty"),  # blank question
    (9, "answer", "answer: empty"),  # empty answer
    (10, "id", f"id: duplicate of {BAD_CSV}:2"),  # q1 again; the first (row 2) is kept
    (11, "total", "total: not a finite number: N/A"),  # N/A total, record with a line break
]


@pytest.mark.parametrize("row, field, reason", RULES)
def test_each_rule_rejects_its_row_naming_file_row_and_field(bad_result, row, field, reason):
    reject = reject_at(bad_result, row)
    assert reject["field"] == field
    assert reason in reject["reason"]
    assert reject["source_file"] == str(BAD_CSV)


def test_good_rows_kept_with_values(bad_result):
    kept = bad_result.kept
    assert kept["id"].tolist() == ["q1", "q11"]
    assert kept["source_row"].tolist() == [2, 12]
    assert kept["score"].dtype == np.float64 and kept["total"].dtype == np.float64
    assert kept["value"].tolist() == pytest.approx([0.02, 0.04])
    assert list(kept.columns) == list(CANONICAL_COLUMNS) + ["value"]


def test_kept_plus_rejects_is_input(bad_result):
    assert len(bad_result.kept) + len(bad_result.rejects) == 11
    assert sorted(bad_result.kept["source_row"].tolist() + bad_result.rejects["source_row"].tolist()) == list(
        range(2, 13)
    )


def test_reject_share_above_limit_raises_with_counts_and_reasons():
    with pytest.raises(DataValidationError) as info:
        validate_records(load_source(BAD_CFG), max_reject_share=0.5, dataset="bad_exams")
    message = str(info.value)
    assert "9 of 11 rows rejected" in message
    assert str(BAD_CSV) in message
    assert f"{BAD_CSV}:3 [score] score: missing" in message
    # the caller can still write the report
    assert len(info.value.result.rejects) == 9


def test_split_leak_raises_naming_exam_splits_and_rows():
    path = FIXTURES / "leaky_exams.jsonl"
    with pytest.raises(DataValidationError) as info:
        validate_records(load_source({"source": "table", "path": str(path)}), dataset="leaky")
    message = str(info.value)
    assert "1 exam(s) appear in more than one split" in message
    assert "'exam-2019-a'" in message
    assert f"test (1 rows, e.g. {path}:4)" in message
    assert f"train (2 rows, e.g. {path}:1)" in message
    assert "exam-2020-b" not in message


def test_exam_points_over_total_warns_and_keeps_rows():
    path = FIXTURES / "overfull_exam.jsonl"
    result = validate_records(load_source({"source": "table", "path": str(path)}), dataset="overfull")
    assert len(result.kept) == 5 and result.rejects.empty
    assert len(result.warnings) == 1
    warning = result.warnings[0]
    assert "'paper-x'" in warning and "sum to 120, more than its total 100" in warning
    # which v is used: each row's own score over the stated total (40 / 100), not a renormalised one
    assert "v = its own score / 100" in warning and "sum to 1.2)" in warning
    assert f"{path}:1" in warning
    assert result.kept.loc[result.kept["exam_id"] == "paper-x", "value"].tolist() == [0.4, 0.4, 0.4]


def test_exam_with_several_totals_is_rejected_whole_with_the_reason():
    """The total belongs to the exam: with 100 on one row and 150 on another, some v is wrong."""
    frame = _frame(
        id=["a", "b", "c", "d"],
        exam_id=["e", "e", "e", "f"],
        question=["q"] * 4,
        answer=["1"] * 4,
        score=[1, 2, 3, 4],
        total=[100, "150", 100, 150],
        split=[None] * 4,
        source_file=["t.csv"] * 4,
        source_row=[2, 3, 4, 5],
    )
    result = validate_records(frame, max_reject_share=1.0)
    assert result.kept["id"].tolist() == ["d"]
    assert result.rejects["id"].tolist() == ["a", "b", "c"]
    assert set(result.rejects["field"]) == {"total"}
    assert result.rejects["reason"].str.contains("exam 'e' carries several totals \\(100, 150\\)").all()
    assert not result.warnings  # rejected, not warned about


def _frame(**overrides) -> pd.DataFrame:
    base = {
        "id": ["a", "b"],
        "exam_id": ["e", "e"],
        "question": ["q1", "q2"],
        "answer": ["1", "2"],
        "score": [1, 2],
        "total": [10, 10],
        "split": ["train", "train"],
        "source_file": ["t.jsonl", "t.jsonl"],
        "source_row": [1, 2],
    }
    base.update(overrides)
    return canonical_frame(base)


@pytest.mark.parametrize(
    "overrides, field, reason",
    [
        ({"id": ["a", "  "]}, "id", "id: empty"),
        ({"exam_id": ["e", None]}, "exam_id", "exam_id: empty"),
        ({"split": ["train", "val"]}, "split", "got val"),
        ({"score": [1, float("inf")]}, "score", "not a finite number"),
        ({"total": [10, None]}, "total", "total: missing"),
    ],
)
def test_more_rules_on_the_second_row(overrides, field, reason):
    result = validate_records(_frame(**overrides), max_reject_share=1.0)
    assert result.rejects["source_row"].tolist() == [2]
    assert result.rejects.loc[0, "field"] == field
    assert reason in result.rejects.loc[0, "reason"]


def test_numbers_as_text_are_accepted_and_several_faults_are_all_named():
    result = validate_records(_frame(score=[" 2 ", "3"], total=["10", "4.5"], exam_id=["e", "f"]))
    assert result.kept["value"].tolist() == pytest.approx([0.2, 3 / 4.5])
    result = validate_records(_frame(question=["q", ""], score=[1, "x"]), max_reject_share=1.0)
    reject = result.rejects.iloc[0]
    assert reject["field"] == "question,score"
    assert "question: empty" in reject["reason"] and "score: not a finite number: x" in reject["reason"]


def test_boolean_score_is_not_a_point():
    result = validate_records(_frame(score=[1, True]), max_reject_share=1.0)
    assert result.rejects["field"].tolist() == ["score"]


def test_empty_input_and_missing_columns_raise():
    with pytest.raises(DataValidationError, match="no rows"):
        validate_records(_frame().iloc[:0])
    with pytest.raises(DataValidationError, match="lack canonical column"):
        validate_records(_frame().drop(columns=["total"]))


def test_write_rejects_csv(bad_result, tmp_path):
    path = write_rejects(bad_result.rejects, tmp_path / "reports" / "rejects.csv")
    report = pd.read_csv(path, keep_default_na=False)
    assert tuple(report.columns) == REJECT_COLUMNS
    assert len(report) == 9
    row = report[report["source_row"] == 4].iloc[0]
    assert (row["id"], row["field"], row["source_file"]) == ("q3", "score", str(BAD_CSV))
    empty = pd.read_csv(write_rejects(bad_result.rejects.iloc[:0], tmp_path / "none.csv"))
    assert tuple(empty.columns) == REJECT_COLUMNS and empty.empty


def test_invariant_on_100k_random_rows():
    rng = np.random.default_rng(0)
    n = 100_000
    score = rng.integers(-1, 12, n).astype(object)
    score[rng.random(n) < 0.002] = "x"
    total = np.full(n, 10, dtype=object)
    total[rng.random(n) < 0.002] = None
    ids = [f"q{i}" for i in rng.integers(0, n * 50, n)]  # a few collisions
    exams = [f"e{i // 25}" for i in range(n)]
    frame = canonical_frame(
        {
            "id": ids,
            "exam_id": exams,
            "question": ["q?"] * n,
            "answer": ["a"] * n,
            "score": score,
            "total": total,
            "split": [None] * n,
            "source_file": ["big.jsonl"] * n,
            "source_row": np.arange(1, n + 1),
        }
    )
    result = validate_records(frame, max_reject_share=0.5)
    assert len(result.kept) + len(result.rejects) == n
    expected_bad = (
        (pd.to_numeric(pd.Series(score), errors="coerce").fillna(-1).to_numpy() <= 0)
        | pd.isna(pd.Series(total)).to_numpy()
        | pd.Series(ids).duplicated().to_numpy()
        | (pd.to_numeric(pd.Series(score), errors="coerce").fillna(0).to_numpy() > 10)
    )
    assert len(result.rejects) == int(expected_bad.sum())


GAOKAO_RLEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "gaokao_rlev"


@pytest.mark.skipif(not GAOKAO_RLEV.is_dir(), reason="../shared/data/gaokao_rlev is not present")
def test_real_gaokao_data_keeps_every_row_and_warns_about_the_one_merged_paper():
    """Its README: no row is bad; only gaokao-2020-新课标II-语文 sums past its total (178 > 150)."""
    result = validate_records(load_source({"source": "gaokao", "path": str(GAOKAO_RLEV)}), dataset="gaokao")
    assert len(result.kept) == 2811 and result.rejects.empty
    assert len(result.warnings) == 1
    assert "'gaokao-2020-新课标II-语文'" in result.warnings[0] and "sum to 178" in result.warnings[0]
    assert result.kept["value"].between(0, 1, inclusive="right").all()


# ---------------------------------------------------------------- over-long prompts (verl scales)


def _prompts(questions: list[str]) -> pd.DataFrame:
    n = len(questions)
    return canonical_frame(
        {
            "id": [f"q{i}" for i in range(n)],
            "exam_id": ["e"] * n,
            "question": questions,
            "answer": ["1"] * n,
            "score": [1] * n,
            "total": [10] * n,
            "source_file": ["mine.csv"] * n,
            "source_row": list(range(2, n + 2)),
        }
    )


def test_overlong_prompts_counted_with_the_runs_tokenizer(tmp_path):
    from rlev.data.validate import load_tokenizer, overlong_prompts
    from rlev.model import render_prompt, train_tokenizer

    train_tokenizer(["1+1=? 2+2=? " * 20, "word " * 50], 300).save_pretrained(tmp_path / "tok")
    tokenizer = load_tokenizer(str(tmp_path / "tok"))
    rows = _prompts(["1+1=?", "word " * 400, "2+2=?"])
    # what the policy is conditioned on (no chat template here: the question and a newline)
    lengths = [len(tokenizer(render_prompt(tokenizer, q))["input_ids"]) for q in rows["question"]]
    assert lengths[1] == len(tokenizer("word " * 400)["input_ids"]) + 1 and lengths[0] < 50 < lengths[1]
    over = overlong_prompts(rows, 50, tokenizer, "tok")
    assert tuple(over.columns) == REJECT_COLUMNS
    assert over[["source_file", "source_row", "id", "field"]].values.tolist() == [["mine.csv", 3, "q1", "question"]]
    assert over["reason"].item() == (
        f"question: prompt of {lengths[1]} tokens (tok's tokenizer, chat template "
        "applied), more than max_prompt_length 50; verl drops it from training "
        "(filter_overlong_prompts)"
    )


def test_overlong_prompts_without_a_tokenizer_use_a_byte_bound_that_misses_none():
    from rlev.data.validate import TEMPLATE_ALLOWANCE, load_tokenizer, overlong_prompts

    assert load_tokenizer("no-such-org/no-such-model") is None  # never downloads
    # a million-character question, a CJK one near the limit (3 bytes a character), a short one
    rows = _prompts(["x" * 1_000_000, "题" * 300, "1+1=?"])
    over = overlong_prompts(rows, 1024, None, "Qwen/Qwen2.5-7B")
    assert over["id"].tolist() == ["q0"]
    assert f"at most {1_000_000 + TEMPLATE_ALLOWANCE} tokens by its UTF-8 bytes" in over["reason"].iloc[0]
    assert "Qwen/Qwen2.5-7B is not on this machine" in over["reason"].iloc[0]
    assert overlong_prompts(rows, 800, None)["id"].tolist() == ["q0", "q1"]  # 900 bytes + 64 > 800


def test_values_stage_of_a_verl_run_lists_overlong_prompts(tmp_path):
    """A run's values (written when its training starts) are where its scale (its prompt budget) meets the data."""
    from conftest import REPO
    from rlev.config import Run, load_config, run_config
    from rlev.values import write_values

    config = load_config(REPO / "config.yaml", {"scale": "7B"})
    rc = run_config(config, Run("synthetic", "7B", "rloo", "human-a10-additive_clipped", 0))
    rc["out_dir"] = str(tmp_path / "run")
    rows = validate_records(_prompts(["1+1=?", "y" * 5000, "2+2=?"])).kept.assign(difficulty=None, split="train")
    write_values(rc, rows)
    report = pd.read_csv(tmp_path / "run" / "rejects.csv")
    assert report["id"].tolist() == ["q1"] and report["source_row"].tolist() == [3]
    assert "more than max_prompt_length 1024" in report["reason"].item()
