import json

import pandas as pd
import pytest

from rlev.data.prepare import prepare, split_by_exam
from rlev.data.synthetic import generate
from rlev.data.validate import DataValidationError


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def exams(tmp_path):
    records, _ = generate(30, 0, 6, seed=1)
    for r in records:
        r["split"] = None  # let prepare split by exam
    records[3]["score"] = "n/a"  # -> rejected: non-numeric score
    records[10]["score"] = records[10]["total"] + 1  # -> rejected: score > total
    path = tmp_path / "exams.jsonl"
    write_jsonl(path, records)
    return path, records


def run_prepare(path, out, **kw):
    args = dict(test_share=0.2, split_seed=0, max_reject_share=0.1) | kw
    return prepare({"source": "table", "path": str(path)}, out, "toy", **args)


def test_prepare_keeps_or_reports_every_row(exams, tmp_path):
    path, records = exams
    stats = run_prepare(path, tmp_path / "out")
    assert stats["input_rows"] == len(records) == stats["kept_rows"] + stats["rejected_rows"]
    assert stats["rejected_rows"] == 2
    rejects = pd.read_csv(tmp_path / "out" / "rejects.csv")
    assert sorted(rejects["source_row"]) == [4, 11]  # 1-based lines of the JSONL file
    assert set(rejects["field"]) == {"score"}


def test_prepare_values_and_split(exams, tmp_path):
    path, _ = exams
    run_prepare(path, tmp_path / "out")
    train = pd.read_parquet(tmp_path / "out" / "train.parquet")
    test = pd.read_parquet(tmp_path / "out" / "test.parquet")
    for part in (train, test):
        assert (part["value"] == part["score"] / part["total"]).all()
        assert part["value"].between(0, 1, inclusive="right").all()
    assert set(train["exam_id"]).isdisjoint(test["exam_id"])
    assert test["exam_id"].nunique() == 6  # 20% of 30 exams
    verl = pd.read_parquet(tmp_path / "out" / "verl" / "train.parquet")
    assert len(verl) == len(train)
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["train"]["rows"] == len(train) and stats["test"]["exams"] == 6


def test_reject_report_is_written_when_too_many_rows_fail(exams, tmp_path):
    path, _ = exams
    with pytest.raises(DataValidationError):
        run_prepare(path, tmp_path / "out", max_reject_share=0.001)
    assert len(pd.read_csv(tmp_path / "out" / "rejects.csv")) == 2


def test_split_by_exam_is_seeded_and_keeps_given_splits():
    df = pd.DataFrame(
        {
            "exam_id": [f"e{i // 3}" for i in range(30)],
            "split": [None] * 30,
            "source_file": "f",
            "source_row": range(1, 31),
        }
    )
    a, b = split_by_exam(df, 0.3, seed=5), split_by_exam(df, 0.3, seed=5)
    assert (a == b).all()
    assert (df.assign(split=a).groupby("exam_id")["split"].nunique() == 1).all()
    given = df.assign(split=["train"] * 27 + ["test"] * 3)
    assert (split_by_exam(given, 0.3, seed=5) == given["split"]).all()
    partial = df.assign(split=["train"] + [None] * 29)
    with pytest.raises(DataValidationError, match="give every row a split or none"):
        split_by_exam(partial, 0.3, seed=5)


def test_exam_warnings_are_kept_in_stats(tmp_path):
    """A warning (here: an exam whose points sum past its total) outlives the log, in stats.json."""
    rows = [
        {
            "id": f"q{i}",
            "exam_id": f"e{i % 4}",
            "question": f"{i}+1?",
            "answer": str(i + 1),
            "score": 60,
            "total": 100,
            "split": None,
        }
        for i in range(12)
    ]
    path = tmp_path / "exams.jsonl"
    write_jsonl(path, rows)
    stats = run_prepare(path, tmp_path / "out")
    saved = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert saved["warnings"] == stats["warnings"] and len(saved["warnings"]) == 4
    assert "exam 'e0': points of its 3 rows sum to 180" in saved["warnings"][0]
