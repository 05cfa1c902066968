"""WebInstruct-verified loader against a local copy in the Hub's layout (tests/fixtures/webinstruct)."""

from pathlib import Path

import pandas as pd
import pytest

from rlev.data.noisy import generate_categories
from rlev.data.sources import CANONICAL_COLUMNS, SourceError, load_source
from rlev.data.sources.webinstruct import category
from rlev.data.validate import validate_records

FIXTURE = Path(__file__).parent / "fixtures" / "webinstruct"
POINTS = {"primary": 1, "junior": 2, "senior": 4, "university": 6, "phd": 8}


def load(**kw):
    return load_source({"source": "webinstruct", "path": str(FIXTURE), **kw})


def test_paper_subset_per_category_and_test_sample():
    frame = load(train_per_category=2, test_rows=3, seed=0)
    assert tuple(frame.columns) == CANONICAL_COLUMNS
    train, test = frame[frame["split"] == "train"], frame[frame["split"] == "test"]
    # 2 of the 3 rows of each category; the "Olympiad" row belongs to none and is not sampled
    assert train["difficulty"].value_counts().to_dict() == {name: 2 for name in POINTS}
    assert len(test) == 3
    assert set(frame["total"]) == {100}
    assert (frame["exam_id"] == frame["id"]).all()
    known = train["difficulty"].map(POINTS)
    assert (train["score"].astype(float) == known).all()
    assert frame["source_file"].str.endswith(".parquet").all()


def test_sampling_is_seeded():
    a, b = load(train_per_category=1, test_rows=2, seed=3), load(train_per_category=1, test_rows=2, seed=3)
    pd.testing.assert_frame_equal(a, b)
    seeds = {tuple(load(train_per_category=1, test_rows=2, seed=s)["id"]) for s in range(6)}
    assert len(seeds) > 1  # the seed changes which rows are drawn


def test_row_without_a_category_is_rejected_by_validation_naming_its_row():
    frame = load(train_per_category=3, test_rows=4, seed=0)
    result = validate_records(frame, max_reject_share=0.5, dataset="webinstruct")
    assert len(result.rejects) == 1
    reject = result.rejects.iloc[0]
    assert reject["id"] == "wi-test-003" and "score" in reject["field"]
    assert reject["source_row"] == 4 and reject["source_file"].endswith("test-00000-of-00001.parquet")
    assert sorted(result.kept["value"].unique()) == [0.01, 0.02, 0.04, 0.06, 0.08]


def test_labels_normalise_to_the_five_categories():
    assert [category(x) for x in ["Primary School", "junior high", "Senior High School", "University", "PhD"]] == list(
        POINTS
    )
    assert category(None) is None and category("") is None and category("Olympiad") is None


def test_missing_column_and_missing_split_are_errors(tmp_path):
    pd.DataFrame({"question": ["q"], "answer": ["a"]}).to_parquet(tmp_path / "train.parquet")
    pd.DataFrame({"question": ["q"], "answer": ["a"], "difficulty": ["PhD"]}).to_parquet(tmp_path / "test.parquet")
    with pytest.raises(SourceError, match="difficulty"):
        load_source({"source": "webinstruct", "path": str(tmp_path)})
    (tmp_path / "train.parquet").unlink()
    with pytest.raises(SourceError, match="no train file"):
        load_source({"source": "webinstruct", "path": str(tmp_path)})


def test_synthetic_stand_in_has_the_same_shape():
    records, demos = generate_categories(rows_per_category=4, test_rows=7, seed=1)
    frame = pd.DataFrame(records)
    assert len(frame) == 27 and len(demos) == 27
    assert frame[frame["split"] == "train"]["difficulty"].value_counts().to_dict() == {n: 4 for n in POINTS}
    assert (frame["score"] == frame["difficulty"].map(POINTS)).all() and set(frame["total"]) == {100}
    assert generate_categories(4, 7, seed=1) == (records, demos)
