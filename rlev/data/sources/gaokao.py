"""GAOKAO-Bench: real Chinese college-entrance-exam questions with points and paper totals.

Origin: https://github.com/OpenLMLab/GAOKAO-Bench (checked at commit ``6dbb24f8``), the
files ``Data/Objective_Questions/*.json`` and ``Data/Subjective_Questions/*.json``: 32
files, 2,811 items (1,781 objective + 1,030 subjective). Licence: Apache-2.0 (the
repository's; the exam texts are official 2010-2022 exam papers). Expected rows: 2,811,
173 exams; with the reference split 2,194 train rows / 134 exams and 617 test rows /
39 exams.

Layouts read (``cfg["path"]``), every public release of GAOKAO-Bench:
- the original (``OpenLMLab/GAOKAO-Bench``, 2010-2022): a folder holding
  ``Data/Objective_Questions/*.json`` and ``Data/Subjective_Questions/*.json``;
- the 2023 update (``OpenLMLab/GAOKAO-Bench-2023``, checked at ``db50d641``): a folder
  holding ``Data/2023_<Subject>_<Type>.json``, multiple-choice questions only;
- the yearly updates (``OpenLMLab/GAOKAO-Bench-Updates``, checked at ``a606c88``, 2023 and
  2024): a folder holding ``Data/GAOKAO-Bench-<year>/<year>_<Subject>_<Type>.json``,
  multiple-choice questions only;
- the converted ``gaokao_rlev`` layout (a folder with ``train.jsonl`` / ``test.jsonl``, or
  one such file; fields id, exam_id, subject, question, reference_answer, score, total,
  language, question_type; the split is the file name).
Upstream files of several releases copied under one ``Data/`` folder are read together.
Every upstream file has the same JSON shape (``{keywords, example: [{year, category,
question, answer, analysis, index, score}]}``); the updates give ``score`` as text
(``"2.5"``) and name the maths paper in ``category`` (``全国甲卷理科``, ``新课标Ⅰ卷``)
instead of the file name (``Math_I`` / ``Math_II``).

The conversion (``convert_gaokao_bench``) reproduces ``gaokao_rlev`` exactly:
- ``id`` = ``gaokao-bench/<file keywords>/<item index>``; ``question`` and the answer are
  the upstream text with surrounding whitespace stripped; a list of answer letters is
  joined with ``"; "`` in sub-question order (``"B; C; A"``).
- ``score``: objective items give points per sub-question and a list of answer letters;
  GAOKAO-Bench's own scorer (``Bench/OBJ_score_evaluation.py``) counts
  ``len(answer) * score``, so the row's points are that product (a reading passage with 4
  questions at 2 points = 8). Subjective items give the whole item's points.
- ``total`` = official full mark of the paper: 语文, 英语, 数学(理), 数学(文) and the
  新高考 数学 without tracks 150; 理科综合 and 文科综合 300. The value ``score / total`` is
  the question's share of the real exam.
- ``exam_id`` = ``gaokao-<year>-<paper label>-<paper>``: exam identity is year + national
  paper + subject paper. Upstream paper labels are noisy and are normalised (see
  ``normalise_paper_label``). In the updates a few ``category`` fields hold solution text
  instead of a label; the label is read from the end of that text when it is there, else
  the row's paper label is ``unlabelled`` (logged with file and item).
- ``split``: the exam-level split of ``gaokao_rlev`` (``REFERENCE_TEST_GROUPS``: all
  papers of one year and paper family in one split, because the labels are too noisy to
  split on exam_id alone and 理/文 maths share questions). The reference split covers
  2010-2022 only, so rows of later years get no split and prepare splits them by exam
  (give the updates on their own, or with ``split: none``). ``cfg["split"] = "none"``
  leaves the split to the caller for every row.

``source_row`` is the line number for JSONL and the 1-based position in the file's
``example`` list for upstream JSON.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rlev.data.sources.canonical import SourceError, canonical_frame, resolve_path, text_or_empty
from rlev.data.sources.table import ENCODING, read_rows

log = logging.getLogger(__name__)

# Paper -> official full marks (agrees with the per-subject totals hard-coded in
# GAOKAO-Bench's Bench/merge_OBJ_SUB_score.py: physics 110 + chemistry 100 + biology 90).
PAPER_TOTALS: dict[str, int] = {
    "语文": 150,
    "英语": 150,
    "数学(理)": 150,
    "数学(文)": 150,
    "数学": 150,  # the 新高考 papers (2023 on, 新课标I/II) have no science / liberal-arts tracks
    "理科综合": 300,
    "文科综合": 300,
}

# Keyword fragment in the upstream file name -> (subject, paper, language). Order matters:
# "Math_II" must be tried before "Math_I", both before "Math" (the updates' one maths file,
# whose paper each item's category names: see maths_paper).
SUBJECTS: tuple[tuple[str, str, str, str], ...] = (
    ("English", "English", "英语", "en"),
    ("Chinese", "Chinese", "语文", "zh"),
    ("Math_II", "Mathematics (liberal-arts track)", "数学(文)", "zh"),
    ("Math_I", "Mathematics (science track)", "数学(理)", "zh"),
    ("Math", "Mathematics", "数学", "zh"),
    ("Physics", "Physics", "理科综合", "zh"),
    ("Chemistry", "Chemistry", "理科综合", "zh"),
    ("Biology", "Biology", "理科综合", "zh"),
    ("Political_Science", "Politics", "文科综合", "zh"),
    ("History", "History", "文科综合", "zh"),
    ("Geography", "Geography", "文科综合", "zh"),
)

# Paper -> paper family used by the reference split.
PAPER_FAMILY: dict[str, str] = {
    "语文": "Chinese",
    "英语": "English",
    "数学(理)": "Math",
    "数学(文)": "Math",
    "数学": "Math",
    "理科综合": "SciComp",
    "文科综合": "LibComp",
}

# The test groups of gaokao_rlev (its stats.json, "test_groups"): (year, paper family).
REFERENCE_TEST_GROUPS: frozenset[tuple[str, str]] = frozenset(
    {
        ("2010", "Chinese"), ("2010", "English"), ("2010", "SciComp"),
        ("2011", "English"), ("2011", "LibComp"), ("2011", "SciComp"),
        ("2012", "Math"), ("2014", "LibComp"),
        ("2016", "Chinese"), ("2016", "Math"), ("2018", "LibComp"),
        ("2021", "Chinese"), ("2021", "English"), ("2021", "SciComp"),
        ("2022", "Math"), ("2022", "SciComp"),
    }
)  # fmt: skip

CONVERTED_FIELDS: tuple[str, ...] = (
    "id", "exam_id", "subject", "question", "reference_answer", "score", "total",
    "language", "question_type",
)  # fmt: skip

_ROMAN = str.maketrans({"ⅰ": "I", "ⅱ": "II", "ⅲ": "III", "ⅳ": "IV", "Ⅰ": "I", "Ⅱ": "II", "Ⅲ": "III", "Ⅳ": "IV"})


def normalise_paper_label(year: str | int, category: str) -> str:
    """Normalise an upstream ``category`` such as ``（新课标ⅰ）`` to a national-paper label.

    Rules (each fixes a spelling that names the same paper in different files):
    Roman-numeral variants unified (ⅰ / i / Ⅰ -> I), brackets and ``卷`` dropped,
    ``甲卷`` -> ``全国甲``; 2010-2012 ``新课标I`` -> ``新课标`` (there was one 新课标 paper then);
    2010-2012 ``全国II`` -> ``全国II(大纲)``; 2016-2020 ``全国III`` -> ``新课标III``.

    >>> normalise_paper_label("2015", "（新课标ⅱ）")
    '新课标II'
    >>> normalise_paper_label("2011", "（新课标Ⅰ卷）")
    '新课标'
    >>> normalise_paper_label("2021", "（甲卷）")
    '全国甲'
    """
    y = int(year)
    label = re.sub(r"[（）()\s]", "", category).replace("卷", "")
    label = label.translate(_ROMAN).upper()  # ASCII i/ii/iii -> I/II/III; Chinese unaffected
    if label in {"甲", "乙", "丙"}:
        label = "全国" + label
    if 2010 <= y <= 2012 and label == "新课标I":
        label = "新课标"
    if 2010 <= y <= 2012 and label == "全国II":
        label = "全国II(大纲)"
    if 2016 <= y <= 2020 and label == "全国III":
        label = "新课标III"
    return label


# A paper label as the updates spell it, after compacting (brackets, spaces, 卷 dropped, I/II/III):
# 全国乙, 全国甲理科, 新课标, 新课标全国II, 全国新高考II, 高考乙, 新课标I.
_UPDATE_LABEL = re.compile(r"^(?:全国|新课标|新高考|高考)+(?:甲|乙|丙|I{1,3})?(?:理科|文科)?$")


def _compact(text: str) -> str:
    return re.sub(r"[（）()\s]", "", text).replace("卷", "").translate(_ROMAN).upper()


def update_paper_label(category: str) -> tuple[str | None, str | None]:
    """(national-paper label, track 理/文 or None) of an update file's ``category``; label None if none.

    The updates spell one paper several ways (``新课标全国Ⅱ卷``, ``全国新高考Ⅱ卷``, ``新课标Ⅱ``
    are the 新课标II paper; ``高考乙卷`` is 全国乙) and put the maths track in the label
    (``全国甲卷理科``). A few categories hold solution text; the label is then read from its
    end (``...故选: C\n全国甲卷文科``) or is missing.

    >>> update_paper_label("新课标全国Ⅱ卷"), update_paper_label("全国乙卷理科")
    (('新课标II', None), ('全国乙', '理'))
    >>> update_paper_label("所以 d=1, 故选: 全国新高考Ⅱ卷"), update_paper_label("则圆心到渐近线距离为")
    (('新课标II', None), (None, None))
    """
    label = _compact(category)
    if not _UPDATE_LABEL.match(label):
        tail = re.split(r"[:：,，。;；\n]", category.strip())[-1]
        label = _compact(tail)
        if not _UPDATE_LABEL.match(label):
            return None, None
    track = None
    if label.endswith(("理科", "文科")):
        track, label = label[-2], label[:-2]
    if "新课标" in label or "新高考" in label:  # 新高考I/II are named 新课标I/II from 2023 on
        label = label.replace("全国", "").replace("新高考", "新课标")
    elif label.startswith("高考"):
        label = "全国" + label[len("高考") :]
    return label, track


def maths_paper(track: str | None) -> str:
    """The maths paper of an update item: its track's paper, or the 新高考 paper without tracks."""
    return {"理": "数学(理)", "文": "数学(文)"}.get(track, "数学")


def upstream_files(root: Path) -> list[tuple[Path, bool, bool]]:
    """(file, objective, from an update) for every upstream JSON file under ``root/Data``.

    The original's two folders say which items are objective; the updates hold
    multiple-choice questions only (their READMEs), as ``Data/<year>_*.json``
    (GAOKAO-Bench-2023) or ``Data/GAOKAO-Bench-<year>/<year>_*.json`` (GAOKAO-Bench-Updates).
    """
    data = Path(root) / "Data"
    files = [(p, True, False) for p in sorted((data / "Objective_Questions").glob("*.json"))]
    files += [(p, False, False) for p in sorted((data / "Subjective_Questions").glob("*.json"))]
    updates = sorted(data.glob("[0-9][0-9][0-9][0-9]_*.json")) + sorted(
        data.glob("GAOKAO-Bench-[0-9][0-9][0-9][0-9]/[0-9][0-9][0-9][0-9]_*.json")
    )
    return files + [(p, True, True) for p in updates]


def describe_file(keywords: str, objective: bool) -> dict[str, str]:
    """Subject, paper, language and question type of an upstream file, from its keywords."""
    for fragment, subject, paper, language in SUBJECTS:
        if fragment in keywords:
            break
    else:
        raise SourceError(
            f"GAOKAO-Bench file {keywords!r}: unknown subject; expected one of "
            f"{', '.join(s[0] for s in SUBJECTS)} in its name"
        )
    if objective:
        qtype = "multiple_choice"
    elif any(k in keywords for k in ("Fill-in-the-Blank", "Dictation", "Cloze_Passage")):
        qtype = "fill_in_blank"
    elif "Error_Correction" in keywords:
        qtype = "error_correction"
    else:
        qtype = "open_ended"
    return {"subject": subject, "paper": paper, "language": language, "question_type": qtype}


REFERENCE_YEARS = range(2010, 2023)  # the years gaokao_rlev's split covers


def reference_split(year: str, paper: str) -> str | None:
    """The gaokao_rlev split of an exam: ``"test"`` for the reference test groups, else ``"train"``;
    None for a year the reference does not cover (the updates, 2023 on)."""
    if not str(year).isdigit() or int(year) not in REFERENCE_YEARS:
        return None
    return "test" if (str(year), PAPER_FAMILY[paper]) in REFERENCE_TEST_GROUPS else "train"


def _points(value: Any) -> int | float:
    """Points as int when whole (1.5 * 20 = 30 -> 30), so totals print like the upstream data."""
    return int(value) if float(value).is_integer() else float(value)


def convert_gaokao_bench(root: Path) -> pd.DataFrame:
    """Convert an upstream GAOKAO-Bench checkout (any release layout) to gaokao_rlev rows.

    Returns one row per upstream item with ``CONVERTED_FIELDS`` plus ``split`` (reference
    split; None for years the reference does not cover), ``source_file`` and ``source_row``
    (1-based item position). Raises ``SourceError`` naming file and item when an item lacks
    a field or has an unusable score.
    """
    root = Path(root)
    files = upstream_files(root)
    if not files:
        raise SourceError(
            f"{root}: no GAOKAO-Bench files: expected Data/Objective_Questions/*.json and "
            "Data/Subjective_Questions/*.json (GAOKAO-Bench), Data/<year>_*.json (GAOKAO-Bench-2023) or "
            "Data/GAOKAO-Bench-<year>/<year>_*.json (GAOKAO-Bench-Updates)"
        )
    records: list[dict[str, Any]] = []
    for path, objective, update in files:
        with path.open(encoding=ENCODING) as fh:
            try:
                doc = json.load(fh)
            except json.JSONDecodeError as err:
                raise SourceError(f"{path}: line {err.lineno}: not valid JSON ({err.msg})") from err
        if not isinstance(doc, dict) or not isinstance(doc.get("example"), list):
            raise SourceError(f"{path}: expected a GAOKAO-Bench file: an object with an 'example' list")
        keywords = doc.get("keywords", path.stem)
        meta = describe_file(keywords, objective)
        for pos, item in enumerate(doc["example"], start=1):
            where = f"{path}: item {pos}"
            try:
                year, category, answer, score = item["year"], item["category"], item["answer"], item["score"]
                question, index = item["question"], item["index"]
            except KeyError as err:
                raise SourceError(f"{where}: missing field {err.args[0]!r}") from err
            try:
                per_item = float(score)
            except (TypeError, ValueError) as err:
                raise SourceError(f"{where}: field 'score' is not a number: {score!r}") from err
            # The benchmark's scorer gives `score` points per answer letter of an objective item.
            points = per_item * len(answer) if objective and isinstance(answer, list) else per_item
            paper = meta["paper"]
            if update:
                label, track = update_paper_label(text_or_empty(category))
                if label is None:
                    log.warning(
                        "%s: field 'category' names no paper (%.40r...); paper label 'unlabelled'",
                        where,
                        text_or_empty(category),
                    )
                    label = "unlabelled"
                if paper == "数学":
                    paper = maths_paper(track)
            else:
                label = normalise_paper_label(year, category)
            records.append(
                {
                    "id": f"gaokao-bench/{keywords}/{index}",
                    "exam_id": f"gaokao-{year}-{label}-{paper}",
                    "subject": meta["subject"],
                    "question": text_or_empty(question).strip(),
                    "reference_answer": text_or_empty(answer).strip(),
                    "score": _points(points),
                    "total": PAPER_TOTALS[paper],
                    "language": meta["language"],
                    "question_type": meta["question_type"],
                    "split": reference_split(str(year), paper),
                    "source_file": str(path),
                    "source_row": pos,
                }
            )
    return pd.DataFrame.from_records(records)


def _converted_files(path: Path) -> list[tuple[Path, str | None]]:
    """(file, split) pairs of a gaokao_rlev folder or file; the split is the file's stem."""
    if path.is_dir():
        found = [(path / f"{s}.jsonl", s) for s in ("train", "test") if (path / f"{s}.jsonl").is_file()]
        if not found:
            raise SourceError(
                f"{path}: neither an upstream GAOKAO-Bench checkout (Data/...) nor a "
                "gaokao_rlev folder (train.jsonl / test.jsonl)"
            )
        return found
    return [(path, path.stem if path.stem in ("train", "test") else None)]


def load_converted(path: Path) -> pd.DataFrame:
    """Read gaokao_rlev JSONL (a folder with train/test.jsonl, or one file) as canonical records."""
    parts = []
    for file, split in _converted_files(path):
        raw, rows = read_rows(file)
        missing = [f for f in ("id", "exam_id", "question", "reference_answer", "score", "total") if f not in raw]
        if missing:
            raise SourceError(f"{file}: missing gaokao_rlev field(s) {', '.join(missing)}")
        parts.append(
            canonical_frame(
                {
                    "id": raw["id"].map(text_or_empty),
                    "exam_id": raw["exam_id"].map(text_or_empty),
                    "question": raw["question"].map(text_or_empty),
                    "answer": raw["reference_answer"].map(text_or_empty),
                    "score": raw["score"],
                    "total": raw["total"],
                    "split": [split] * len(raw),
                    "source_file": [str(file)] * len(raw),
                    "source_row": rows,
                },
                len(raw),
            )
        )
    return pd.concat(parts, ignore_index=True)


def load_gaokao(cfg: dict, base_dir: Path = Path(".")) -> pd.DataFrame:
    """Load GAOKAO-Bench (upstream checkout or gaokao_rlev JSONL) as canonical records.

    ``cfg["path"]``: the checkout or the converted folder/file. ``cfg["split"]``:
    ``"reference"`` (default, the gaokao_rlev split) or ``"none"`` (split column None) for
    an upstream checkout; converted files always carry their file's split.
    """
    if "path" not in cfg:
        raise SourceError("gaokao source needs 'path': a GAOKAO-Bench checkout or a gaokao_rlev folder")
    path = resolve_path(cfg["path"], base_dir)
    split_mode = cfg["split"]
    if split_mode not in ("reference", "none"):
        raise SourceError(f"gaokao source: 'split' must be 'reference' or 'none', got {split_mode!r}")
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder")
    if not (path / "Data").is_dir():
        return load_converted(path)
    rows = convert_gaokao_bench(path)
    given = rows["split"].notna()
    if split_mode == "reference" and given.any() and not given.all():
        first = rows[~given].iloc[0]
        raise SourceError(
            f"{path}: {int(given.sum())} rows (2010-2022) have gaokao_rlev's reference split and "
            f"{int((~given).sum())} rows (later years, e.g. {first.source_file} item {first.source_row}) have "
            "none; set `split: none` on the dataset to split every exam the same seeded way"
        )
    return canonical_frame(
        {
            "id": rows["id"],
            "exam_id": rows["exam_id"],
            "question": rows["question"].map(text_or_empty),
            "answer": rows["reference_answer"],
            "score": rows["score"],
            "total": rows["total"],
            "split": rows["split"] if split_mode == "reference" else [None] * len(rows),
            "source_file": rows["source_file"],
            "source_row": np.asarray(rows["source_row"], dtype=np.int64),
        },
        len(rows),
    )
