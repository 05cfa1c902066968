"""Data sources: each loader produces canonical records with file and row for every row."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from conftest import BAD_CSV, BAD_CSV_COLUMNS, FIXTURES
from rlev.data.sources import CANONICAL_COLUMNS, SourceError, load_source
from rlev.data.sources.gaokao import convert_gaokao_bench, normalise_paper_label, update_paper_label
from rlev.data.sources.rlev_hub import pick_files, split_query
from rlev.data.validate import validate_records

SHARED = Path(__file__).resolve().parents[2] / "shared"
GAOKAO_RLEV = SHARED / "data" / "gaokao_rlev"


def assert_canonical(frame: pd.DataFrame) -> None:
    assert tuple(frame.columns) == CANONICAL_COLUMNS
    assert frame["id"].is_unique
    assert (frame["source_row"] >= 1).all()
    assert frame["source_file"].map(lambda p: Path(p).is_file()).all()


# ---------------------------------------------------------------- dispatch


def test_unknown_source_lists_choices():
    with pytest.raises(ValueError, match="rlev, gaokao, table"):
        load_source({"source": "csv", "path": "x.csv"})


def test_missing_source_key_is_an_error():
    with pytest.raises(ValueError, match="'source'"):
        load_source({"path": "x.csv"})


# ---------------------------------------------------------------- table


def test_table_identity_mapping_reads_canonical_jsonl(tmp_path):
    """The synthetic generator's output: canonical JSONL, loaded with no mapping."""
    rows = [
        {
            "id": "s-1",
            "exam_id": "e1",
            "question": "1+1?",
            "system": "",
            "answer": "2",
            "score": 1,
            "total": 10,
            "difficulty": "easy",
            "split": "train",
        },
        {
            "id": "s-2",
            "exam_id": "e2",
            "question": "2+2?",
            "system": "Be brief.",
            "answer": "4",
            "score": 4,
            "total": 10,
            "difficulty": None,
            "split": "test",
        },
    ]
    data = tmp_path / "data" / "synthetic"
    data.mkdir(parents=True)
    # A blank line between records: source_row must still be the line a person sees.
    (data / "exams.jsonl").write_text(json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n", encoding="utf-8")
    frame = load_source({"source": "table", "path": "data/synthetic/exams.jsonl"}, base_dir=tmp_path)
    assert_canonical(frame)
    assert frame["id"].tolist() == ["s-1", "s-2"]
    assert frame["system"].tolist() == ["", "Be brief."]
    assert frame["difficulty"].tolist() == ["easy", None]
    assert frame["split"].tolist() == ["train", "test"]
    assert frame["score"].tolist() == [1, 4]
    assert frame["source_row"].tolist() == [1, 3]
    assert frame["source_file"].iloc[0] == str(data / "exams.jsonl")


def test_table_csv_with_mapping_keeps_raw_cells_and_spreadsheet_rows():
    cfg = {"source": "table", "path": str(BAD_CSV), "columns": BAD_CSV_COLUMNS}
    frame = load_source(cfg)
    assert tuple(frame.columns) == CANONICAL_COLUMNS
    assert len(frame) == 11
    # Raw cells reach validation as written: empty stays "", text stays text.
    assert frame.loc[frame["id"] == "q2", "score"].item() == ""
    assert frame.loc[frame["id"] == "q3", "score"].item() == "five"
    # Header is row 1; the record with a quoted line break is one row (q10 is record 11).
    assert frame.loc[frame["id"] == "q10", "source_row"].item() == 11
    assert frame.loc[frame["id"] == "q10", "question"].item() == "A question\nover two lines?"
    assert frame["split"].tolist()[-2:] == ["test", "test"]


def test_table_missing_mapped_column_names_file_and_column():
    cfg = {
        "source": "table",
        "path": str(BAD_CSV),
        "columns": {
            "exam_id": "paper",
            "question": "prompt",
            "answer": "reference",
            "score": "marks",
            "total": "paper_total",
        },
    }
    with pytest.raises(SourceError, match=r"bad_exams\.csv.*'marks'.*'score'"):
        load_source(cfg)


def test_table_identity_mapping_names_missing_canonical_columns(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("question,answer,score\nq,a,1\n", encoding="utf-8")
    with pytest.raises(SourceError, match=r"x\.csv.*exam_id, total"):
        load_source({"source": "table", "path": str(path)})


def test_table_split_per_file_and_parquet(tmp_path):
    frame = pd.DataFrame({"q": ["a?", "b?"], "a": ["1", "2"], "p": [1.0, 2.0], "t": [10, 10], "e": ["x", "y"]})
    frame.iloc[:1].to_parquet(tmp_path / "tr.parquet")
    frame.iloc[1:].to_parquet(tmp_path / "te.parquet")
    cfg = {
        "source": "table",
        "path": {"train": "tr.parquet", "test": "te.parquet"},
        "columns": {"exam_id": "e", "question": "q", "answer": "a", "score": "p", "total": "t"},
    }
    out = load_source(cfg, base_dir=tmp_path)
    assert out["split"].tolist() == ["train", "test"]
    assert out["id"].tolist() == ["tr-1", "te-1"]  # default id: file stem and row
    assert out["source_row"].tolist() == [1, 1]


def test_table_bad_jsonl_line_is_named(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"a": 1}\n{"a": \n', encoding="utf-8")
    with pytest.raises(SourceError, match=r"broken\.jsonl: line 2"):
        load_source({"source": "table", "path": str(path)})


MAPPING = {
    "id": "qid",
    "exam_id": "paper",
    "question": "text",
    "answer": "gold",
    "score": "points",
    "total": "paper_total",
}
RECORDS = [
    {"qid": "q1", "paper": "p1", "text": "1+1?", "gold": "2", "points": "5", "paper_total": "100"},
    {"qid": "q2", "paper": "p1", "text": "2+3?", "gold": "5", "points": "10", "paper_total": "100"},
]


def _csv_text(records: list[dict]) -> str:
    header = list(records[0])
    return "\n".join([",".join(header)] + [",".join(r[h] for h in header) for r in records]) + "\n"


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".json"])
def test_table_reads_utf8_with_bom_and_crlf(tmp_path, suffix):
    """What spreadsheet tools export: a byte-order mark and CRLF line ends, read like plain UTF-8."""
    if suffix == ".csv":
        text = _csv_text(RECORDS)
    elif suffix == ".jsonl":
        text = "".join(json.dumps(r) + "\n" for r in RECORDS)
    else:
        text = json.dumps(RECORDS, indent=1)
    path = tmp_path / f"mine{suffix}"
    path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))
    frame = load_source({"source": "table", "path": str(path), "columns": MAPPING})
    assert frame["id"].tolist() == ["q1", "q2"]  # the first column's name is "qid", not "\ufeffqid"
    assert frame["total"].map(str).tolist() == ["100", "100"]  # no "\r" left on the last field
    assert frame["source_row"].tolist() == {".csv": [2, 3], ".jsonl": [1, 2], ".json": [1, 2]}[suffix]


def test_gaokao_upstream_file_with_bom_is_read(tmp_path):
    src = FIXTURES / "gaokao_bench" / "Data" / "Objective_Questions" / "2010-2022_Math_I_MCQs.json"
    dest = tmp_path / "Data" / "Objective_Questions" / src.name
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"\xef\xbb\xbf" + src.read_bytes().replace(b"\n", b"\r\n"))
    rows = convert_gaokao_bench(tmp_path)
    assert len(rows) == 3 and rows["score"].tolist() == [5, 5, 5]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".json", ".parquet"])
def test_table_empty_file_is_one_line_naming_the_file(tmp_path, suffix):
    path = tmp_path / f"empty{suffix}"
    path.write_bytes(b"")
    with pytest.raises(SourceError) as err:
        load_source({"source": "table", "path": str(path), "columns": MAPPING})
    message = str(err.value)
    assert "\n" not in message and str(path) in message and "empty (0 bytes)" in message


def test_table_csv_with_only_blank_lines_or_a_stray_comma_names_file_and_line(tmp_path):
    blank = tmp_path / "blank.csv"
    blank.write_text("\n\n", encoding="utf-8")
    with pytest.raises(SourceError, match=r"blank\.csv: no header row"):
        load_source({"source": "table", "path": str(blank), "columns": MAPPING})
    stray = tmp_path / "stray.csv"
    rows = [dict(RECORDS[0]), dict(RECORDS[1], text="2, then 3?")]  # an unquoted comma in row 3
    stray.write_text(_csv_text(rows), encoding="utf-8")
    with pytest.raises(SourceError, match=r"stray\.csv: line 3: 7 fields where the header has 6"):
        load_source({"source": "table", "path": str(stray), "columns": MAPPING})


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".json"])
def test_table_gbk_file_names_file_line_byte_and_the_fix(tmp_path, suffix):
    """A CSV saved by a spreadsheet on Chinese Windows is GBK; the first Chinese character is on line 3."""
    records = [dict(r) for r in RECORDS]
    records[1]["text"] = "北京是中国的首都吗?"
    if suffix == ".csv":
        text = _csv_text(records)
    elif suffix == ".jsonl":
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    else:
        text = json.dumps(records, ensure_ascii=False, indent=1)
    path = tmp_path / f"gbk{suffix}"
    path.write_bytes(text.encode("gbk"))
    line = text[: text.index("北")].count("\n") + 1
    byte = len(text[: text.index("北")].encode("gbk"))
    with pytest.raises(SourceError) as err:
        load_source({"source": "table", "path": str(path), "columns": MAPPING})
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{path}: line {line} (byte {byte}): not UTF-8 text")
    assert f"re-save the file as UTF-8, e.g. iconv -f GB18030 -t UTF-8 gbk{suffix}" in message
    path.write_bytes(b"qid,exam,text\n\xff\xfe,1,2\n" if suffix == ".csv" else b'{"qid": "\xff"}\n')
    with pytest.raises(SourceError, match=r"line \d+ \(byte \d+\): not UTF-8 text; re-save the file as UTF-8 \(in a"):
        load_source({"source": "table", "path": str(path), "columns": MAPPING})


def test_table_damaged_parquet_names_the_file(tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(SourceError, match=r"broken\.parquet: not a readable parquet file"):
        load_source({"source": "table", "path": str(path), "columns": MAPPING})


# ---------------------------------------------------------------- RLEV


def test_rlev_local_folder_in_published_layout():
    frame = load_source({"source": "rlev", "path": str(FIXTURES / "rlev_hub"), "language": "zh"})
    assert_canonical(frame)
    assert frame["split"].tolist() == ["train"] * 4 + ["test"]
    train = frame[frame["split"] == "train"].reset_index(drop=True)
    # chat messages with a system turn
    assert train.loc[0, "system"].startswith("Please reason step by step")
    assert train.loc[0, "question"] == "计算 2+3。"
    # chat messages without one, and plain text
    assert train.loc[1, ["system", "question"]].tolist() == ["", "中国的首都是哪座城市？"]
    assert train.loc[2, ["system", "question"]].tolist() == ["", "已知 x+1=4，求 x。"]
    # text rendered with a ChatML template
    assert train.loc[3, "question"] == "1 公里等于多少米？"
    assert train.loc[3, "system"].startswith("Please reason")
    assert train["answer"].tolist() == ["5", "北京", "3", "1000"]
    assert train["score"].tolist() == [3, 2, 5, 1.5]
    assert train["total"].tolist() == [150, 100, 150, 120]
    # no exam column in the data: each row is its own exam
    assert (frame["exam_id"] == frame["id"]).all()
    assert train["id"].tolist()[:2] == ["rlev-zh-train-1", "rlev-zh-train-2"]
    assert train["source_row"].tolist() == [1, 2, 3, 4]


def test_rlev_language_and_split_selection():
    frame = load_source({"source": "rlev", "path": str(FIXTURES / "rlev_hub"), "language": "en", "splits": ["test"]})
    assert frame["question"].tolist() == ["What is 3 squared?"]
    assert frame["split"].tolist() == ["test"]


def test_rlev_single_file_split_from_name():
    frame = load_source({"source": "rlev", "path": str(FIXTURES / "rlev_hub" / "data" / "train_en.json")})
    assert frame["split"].tolist() == ["train"]
    assert frame["question"].tolist() == ["What is 2+3?"]


def test_rlev_missing_field_names_file(tmp_path):
    path = tmp_path / "train_zh.jsonl"
    path.write_text(json.dumps({"query": "q", "answer": "a", "score": 1, "total": 2}) + "\n", encoding="utf-8")
    with pytest.raises(SourceError, match=r"train_zh\.jsonl: missing RLEV field\(s\) label"):
        load_source({"source": "rlev", "path": str(path)})


def test_rlev_assistant_turn_is_rejected_with_row(tmp_path):
    path = tmp_path / "test_zh.jsonl"
    rows = [
        {"query": "ok", "label": "a", "score": 1, "total": 2},
        {
            "query": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
            "label": "a",
            "score": 1,
            "total": 2,
        },
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    with pytest.raises(SourceError, match=r"test_zh\.jsonl: row 2: field 'query'.*'assistant'"):
        load_source({"source": "rlev", "path": str(path)})


@pytest.mark.parametrize(
    "query, expected",
    [
        ("plain text", ("", "plain text")),
        ('[{"role": "user", "content": "as json"}]', ("", "as json")),
        (
            [{"role": "system", "content": "S"}, {"role": "user", "content": "U1"}, {"role": "user", "content": "U2"}],
            ("S", "U1\n\nU2"),
        ),
        ("<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n", ("S", "U")),
    ],
)
def test_split_query_forms(query, expected):
    assert split_query(query) == expected


def test_pick_files_by_tokens():
    files = ["README.md", "zh/train.json", "zh/test.json", "en/train.json", "en/test.json", "train_chinese_2.jsonl"]
    assert pick_files(files, "train", "zh") == ["train_chinese_2.jsonl", "zh/train.json"]
    assert pick_files(files, "test", "en") == ["en/test.json"]
    # a single-language release names no language: the split decides
    assert pick_files(["data/train.parquet", "data/test.parquet"], "test", "zh") == ["data/test.parquet"]


# ---------------------------------------------------------------- GAOKAO-Bench


@pytest.mark.parametrize(
    "year, category, label",
    [
        ("2011", "（新课标ⅰ）", "新课标"),
        ("2014", "（新课标ⅰ）", "新课标I"),
        ("2014", "（新课标Ⅰ卷）", "新课标I"),
        ("2015", "（新课标ii）", "新课标II"),
        ("2010", "（全国卷ii）", "全国II(大纲)"),
        ("2017", "（全国卷Ⅲ）", "新课标III"),
        ("2021", "（甲卷）", "全国甲"),
        ("2022", "（全国乙卷）", "全国乙"),
        ("2021", "（解析版）", "解析版"),
    ],
)
def test_paper_label_normalisation(year, category, label):
    assert normalise_paper_label(year, category) == label


def test_gaokao_upstream_fixture_conversion():
    rows = convert_gaokao_bench(FIXTURES / "gaokao_bench").set_index("id")
    assert len(rows) == 7
    reading = rows.loc["gaokao-bench/2010-2022_English_Reading_Comp/0"]
    # 4 sub-questions x 2 points each, as GAOKAO-Bench's scorer counts them
    assert (reading.score, reading.total, reading.reference_answer) == (8, 150, "B; C; A; D")
    assert (reading.exam_id, reading.language, reading.split) == ("gaokao-2015-新课标II-英语", "en", "train")
    cloze = rows.loc["gaokao-bench/2012-2022_English_Cloze_Test/0"]
    assert cloze.score == 30 and float(cloze.score).is_integer()  # 20 x 1.5, printed as 30
    assert cloze.exam_id == "gaokao-2010-全国II(大纲)-英语" and cloze.split == "test"
    assert cloze.question == "A short cloze passage with twenty blanks ..."  # whitespace stripped
    math = rows.loc["gaokao-bench/2010-2022_Math_I_MCQs/1"]
    assert (math.exam_id, math.score, math.total, math.split) == ("gaokao-2016-新课标III-数学(理)", 5, 150, "test")
    open_ended = rows.loc["gaokao-bench/2010-2022_Math_II_Open-ended_Questions/0"]
    assert (open_ended.score, open_ended.question_type, open_ended.reference_answer) == (
        12,
        "open_ended",
        "$S_n=n(n+1)$",
    )
    assert open_ended.exam_id == "gaokao-2021-全国甲-数学(文)"
    dictation = rows.loc["gaokao-bench/2010-2022_Chinese_Language_Famous_Passages_and_Sentences_Dictation/3"]
    assert (dictation.question_type, dictation.exam_id) == ("fill_in_blank", "gaokao-2018-新课标I-语文")
    assert rows["source_row"].tolist() == [1, 1, 2, 3, 1, 1, 1]


def test_gaokao_upstream_fixture_as_source():
    frame = load_source({"source": "gaokao", "path": str(FIXTURES / "gaokao_bench")})
    assert_canonical(frame)
    assert sorted(frame["split"].unique()) == ["test", "train"]
    unsplit = load_source({"source": "gaokao", "path": str(FIXTURES / "gaokao_bench"), "split": "none"})
    assert unsplit["split"].isna().all()


@pytest.mark.parametrize(
    "category, expected",
    [
        ("全国乙卷", ("全国乙", None)),
        ("高考乙卷", ("全国乙", None)),
        ("（新课标）", ("新课标", None)),
        ("新课标卷", ("新课标", None)),
        ("新课标全国Ⅱ卷", ("新课标II", None)),
        ("全国新高考Ⅱ卷", ("新课标II", None)),
        ("新课标 I ", ("新课标I", None)),
        ("全国甲卷文科", ("全国甲", "文")),
        ("方法二: ... 故选: C\n全国甲卷文科", ("全国甲", "文")),
        ("所以双曲线的一条渐近线不妨取 $y=2 x$,", (None, None)),
    ],
)
def test_update_paper_labels(category, expected):
    assert update_paper_label(category) == expected


def test_gaokao_bench_2023_layout(caplog):
    """OpenLMLab/GAOKAO-Bench-2023: Data/2023_*.json, scores as text, the maths track in the category."""
    frame = load_source({"source": "gaokao", "path": str(FIXTURES / "gaokao_bench_2023")})
    assert_canonical(frame)
    rows = frame.set_index("id")
    assert rows["exam_id"].to_dict() == {
        "gaokao-bench/2023_English_Reading_Comp/0": "gaokao-2023-新课标I-英语",
        "gaokao-bench/2023_Math_MCQs/0": "gaokao-2023-全国乙-数学(理)",
        "gaokao-bench/2023_Math_MCQs/1": "gaokao-2023-全国甲-数学(文)",
        "gaokao-bench/2023_Math_MCQs/2": "gaokao-2023-新课标I-数学",
        "gaokao-bench/2023_Math_MCQs/3": "gaokao-2023-新课标II-数学",
    }
    reading = rows.loc["gaokao-bench/2023_English_Reading_Comp/0"]
    assert (reading.score, reading.total, reading.answer) == (5, 150, "C; B")  # "2.5" points x 2 questions
    assert rows["total"].tolist() == [150] * 5
    assert frame["split"].isna().all()  # no reference split after 2022: prepare splits by exam
    assert not caplog.records  # every category named its paper


def test_gaokao_bench_updates_layout(caplog):
    """OpenLMLab/GAOKAO-Bench-Updates: Data/GAOKAO-Bench-<year>/<year>_*.json, 2023 and 2024."""
    with caplog.at_level("WARNING"):
        frame = load_source({"source": "gaokao", "path": str(FIXTURES / "gaokao_bench_updates")})
    assert_canonical(frame)
    rows = frame.set_index("id")
    assert rows["exam_id"].to_dict() == {
        "gaokao-bench/2023_History_MCQs/0": "gaokao-2023-全国甲-文科综合",
        "gaokao-bench/2023_History_MCQs/1": "gaokao-2023-全国乙-文科综合",
        "gaokao-bench/2023_History_MCQs/2": "gaokao-2023-unlabelled-文科综合",
        "gaokao-bench/2024_Math_MCQs/0": "gaokao-2024-新课标I-数学",
        "gaokao-bench/2024_Math_MCQs/1": "gaokao-2024-全国甲-数学(理)",
        "gaokao-bench/2024_Physics_MCQs/0": "gaokao-2024-新课标-理科综合",
    }
    assert rows["total"].to_dict()["gaokao-bench/2024_Physics_MCQs/0"] == 300
    assert rows["score"].tolist() == [4, 4, 4, 5, 5, 6]
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "2023_History_MCQs.json: item 3: field 'category' names no paper" in warning
    result = validate_records(frame, dataset="updates")
    assert len(result.kept) == 6 and result.rejects.empty


def test_gaokao_original_and_updates_in_one_checkout_need_split_none(tmp_path):
    shutil.copytree(FIXTURES / "gaokao_bench", tmp_path, dirs_exist_ok=True)
    shutil.copytree(FIXTURES / "gaokao_bench_updates", tmp_path, dirs_exist_ok=True)
    with pytest.raises(SourceError, match="set `split: none`"):
        load_source({"source": "gaokao", "path": str(tmp_path)})
    frame = load_source({"source": "gaokao", "path": str(tmp_path), "split": "none"})
    assert len(frame) == 7 + 6 and frame["split"].isna().all()


def test_gaokao_folder_in_no_known_layout_lists_the_layouts(tmp_path):
    (tmp_path / "Data" / "misc").mkdir(parents=True)
    with pytest.raises(SourceError, match=r"GAOKAO-Bench-<year>/<year>_\*\.json"):
        load_source({"source": "gaokao", "path": str(tmp_path)})


def test_gaokao_bad_item_names_file_and_item(tmp_path):
    folder = tmp_path / "Data" / "Objective_Questions"
    folder.mkdir(parents=True)
    item = {"year": "2015", "category": "（新课标ⅰ）", "question": "q", "answer": ["A"], "index": 0}  # no score
    (folder / "2010-2022_Physics_MCQs.json").write_text(
        json.dumps({"keywords": "2010-2022_Physics_MCQs", "example": [item]}), encoding="utf-8"
    )
    with pytest.raises(SourceError, match=r"2010-2022_Physics_MCQs\.json: item 1: missing field 'score'"):
        load_source({"source": "gaokao", "path": str(tmp_path)})


def _read_jsonl(path: Path) -> pd.DataFrame:
    with path.open(encoding="utf-8") as fh:
        return pd.DataFrame([json.loads(line) for line in fh])


@pytest.mark.skipif(not GAOKAO_RLEV.is_dir(), reason="../shared/data/gaokao_rlev is not present")
def test_gaokao_rlev_converted_data_matches_files_and_stats():
    frame = load_source({"source": "gaokao", "path": str(GAOKAO_RLEV)})
    assert_canonical(frame)
    stats = json.loads((GAOKAO_RLEV / "stats.json").read_text(encoding="utf-8"))
    for split, rows, exams in (("train", 2194, 134), ("test", 617, 39)):
        part = frame[frame["split"] == split].reset_index(drop=True)
        assert len(part) == rows == stats[split]["rows"]
        assert part["exam_id"].nunique() == exams == stats[split]["exams"]
        ref = _read_jsonl(GAOKAO_RLEV / f"{split}.jsonl")
        assert part["id"].tolist() == ref["id"].tolist()
        assert part["exam_id"].tolist() == ref["exam_id"].tolist()
        assert part["question"].tolist() == ref["question"].tolist()
        assert part["answer"].tolist() == ref["reference_answer"].tolist()
        assert part["score"].tolist() == ref["score"].tolist()
        assert part["total"].tolist() == ref["total"].tolist()
        value = pd.Series(part["score"].tolist()) / pd.Series(part["total"].tolist())
        assert round(value.mean(), 4) == stats[split]["mean_v"]
        assert round(value.max(), 4) == stats[split]["max_v"]
    assert not set(frame.loc[frame["split"] == "train", "exam_id"]) & set(
        frame.loc[frame["split"] == "test", "exam_id"]
    )


# Set RLEV_GAOKAO_BENCH to a GAOKAO-Bench checkout (commit 6dbb24f8) to check that the
# conversion reproduces gaokao_rlev row for row; neither is part of this repository.
UPSTREAM = os.environ.get("RLEV_GAOKAO_BENCH")


@pytest.mark.skipif(not (UPSTREAM and GAOKAO_RLEV.is_dir()), reason="RLEV_GAOKAO_BENCH or ../shared not set up")
def test_gaokao_conversion_reproduces_gaokao_rlev():
    converted = convert_gaokao_bench(Path(UPSTREAM)).set_index("id")
    for split in ("train", "test"):
        ref = _read_jsonl(GAOKAO_RLEV / f"{split}.jsonl").set_index("id")
        ours = converted.loc[ref.index]
        assert (ours["split"] == split).all()
        for column in (
            "exam_id",
            "subject",
            "question",
            "reference_answer",
            "score",
            "total",
            "language",
            "question_type",
        ):
            assert ours[column].tolist() == ref[column].tolist(), column
    assert len(converted) == 2811


def test_rlev_from_hub_id_picks_split_and_language_files(monkeypatch):
    """The Hub path without network: the repository listing and downloads come from the fixture."""
    import huggingface_hub

    root = FIXTURES / "rlev_hub"
    calls = []

    def list_repo_files(repo_id, repo_type=None, revision=None):
        calls.append(("list", repo_id, repo_type, revision))
        return [".gitattributes", "README.md"] + sorted(str(p.relative_to(root)) for p in root.rglob("*.json"))

    def hf_hub_download(repo_id, filename, repo_type=None, revision=None):
        calls.append(("download", repo_id, filename))
        return str(root / filename)

    monkeypatch.setattr(huggingface_hub, "list_repo_files", list_repo_files)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    frame = load_source({"source": "rlev", "hf_id": "sarosavo/RLEV", "language": "en"})
    assert calls[0] == ("list", "sarosavo/RLEV", "dataset", None)
    assert [c[2] for c in calls[1:]] == ["data/train_en.json", "data/test_en.json"]
    assert frame["split"].tolist() == ["train", "test"]
    assert frame["question"].tolist() == ["What is 2+3?", "What is 3 squared?"]
    assert frame["source_file"].tolist() == [str(root / "data/train_en.json"), str(root / "data/test_en.json")]
