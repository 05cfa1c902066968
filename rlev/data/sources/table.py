"""Any table of exam questions: JSONL, JSON, CSV or parquet, with a column mapping.

Origin and licence: whatever the user brings; this module only reads it. Row counts: as
in the file (one question per row, nothing is dropped here; see ``rlev.data.validate``).

Config (``cfg``)::

    source: table
    path: data/my_exams.csv          # or {train: a.jsonl, test: b.jsonl}: split from the key
    split: train                     # optional: one split for every row of a single file
    columns:                         # canonical field -> column in the file
      id: qid                        # optional: default "<file stem>-<row>"
      exam_id: paper
      question: prompt
      answer: reference
      score: points
      total: paper_total
      system: sys                    # optional
      difficulty: level              # optional
      split: fold                    # optional

Without ``columns`` the file is read as canonical records (the identity mapping): it must
have ``exam_id``, ``question``, ``answer``, ``score`` and ``total`` columns, and ``id``,
``system``, ``difficulty`` and ``split`` are used where present. That is how the synthetic
generator's ``exams.jsonl`` is loaded.

Rows are numbered 1-based (``source_row``) as a person finds them: the line of a JSONL
file (blank lines count), the item of a JSON list, the spreadsheet row of a CSV (the header
is row 1, so the first record is row 2; a record with a quoted line break is still one
row), the row of a parquet file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rlev.data.sources.canonical import (
    SourceError,
    canonical_frame,
    label_or_none,
    resolve_path,
    text_or_empty,
)

REQUIRED_FIELDS: tuple[str, ...] = ("exam_id", "question", "answer", "score", "total")
OPTIONAL_FIELDS: tuple[str, ...] = ("id", "system", "difficulty", "split")
SUFFIXES: tuple[str, ...] = (".jsonl", ".json", ".csv", ".parquet")


def read_rows(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """Read a JSONL / JSON / CSV / parquet file; return its rows and their 1-based row numbers.

    Cells are kept as the file has them (CSV cells as text, with empty cells as ``""``), so
    that validation can report the raw value. A JSON file must hold a list of objects (or an
    object with one such list). Text files are read as UTF-8 with or without a byte-order
    mark (what spreadsheet tools export) and with either line ending (LF or CRLF); a file in
    another encoding (GBK) is refused naming the line and byte of its first non-UTF-8 byte.
    Unreadable content raises ``SourceError``: one line naming the file, and the row where
    one applies.
    """
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise SourceError(f"{path}: unsupported file type {suffix!r}; use one of {', '.join(SUFFIXES)}")
    if path.stat().st_size == 0:
        raise SourceError(f"{path}: the file is empty (0 bytes); expected {_EXPECTED[suffix]}")
    if suffix != ".parquet":
        _require_utf8(path)
    if suffix == ".jsonl":
        records: list[dict] = []
        rows: list[int] = []
        with path.open(encoding=ENCODING) as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as err:
                    raise SourceError(f"{path}: line {lineno}: not valid JSON ({err.msg})") from err
                if not isinstance(obj, dict):
                    raise SourceError(f"{path}: line {lineno}: expected a JSON object, got {type(obj).__name__}")
                records.append(obj)
                rows.append(lineno)
        if not records:
            raise SourceError(f"{path}: no records (only blank lines); expected {_EXPECTED[suffix]}")
        return pd.DataFrame.from_records(records), np.asarray(rows, dtype=np.int64)
    if suffix == ".json":
        try:
            with path.open(encoding=ENCODING) as fh:
                obj = json.load(fh)
        except json.JSONDecodeError as err:
            raise SourceError(f"{path}: line {err.lineno}: not valid JSON ({err.msg})") from err
        if isinstance(obj, dict):
            lists = [v for v in obj.values() if isinstance(v, list)]
            if len(lists) != 1:
                raise SourceError(f"{path}: expected a JSON list of records (or an object holding one list)")
            obj = lists[0]
        if not isinstance(obj, list):
            raise SourceError(f"{path}: expected a JSON list of records, got {type(obj).__name__}")
        for i, item in enumerate(obj, start=1):
            if not isinstance(item, dict):
                raise SourceError(f"{path}: item {i}: expected a JSON object, got {type(item).__name__}")
        return pd.DataFrame.from_records(obj), np.arange(1, len(obj) + 1, dtype=np.int64)
    if suffix == ".csv":
        return _read_csv(path)
    try:
        frame = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for a damaged or foreign file
        raise SourceError(f"{path}: not a readable parquet file ({type(err).__name__}: {err})") from err
    return frame, np.arange(1, len(frame) + 1, dtype=np.int64)


ENCODING = "utf-8-sig"  # UTF-8; a leading byte-order mark is dropped, not read as part of the first field
_EXPECTED = {
    ".jsonl": "one JSON object per line",
    ".json": "a JSON list of records",
    ".csv": "a header row, then one row per question",
    ".parquet": "a parquet table",
}


def _require_utf8(path: Path) -> None:
    """Stop at the first byte that is not UTF-8, naming its line and offset: spreadsheets on
    Chinese Windows save CSV as GBK, which would otherwise fail as a bare UnicodeDecodeError."""
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        try:
            raw.decode("gb18030")
            how = f", e.g. iconv -f GB18030 -t UTF-8 {path.name} > utf8-{path.name} (it reads as GBK/GB18030)"
        except UnicodeDecodeError:
            how = " (in a spreadsheet: save as CSV UTF-8)"
        message = f"{path}: line {line} (byte {err.start}): not UTF-8 text; re-save the file as UTF-8{how}"
        raise SourceError(message) from None


# pandas' C parser: "Error tokenizing data. C error: Expected 6 fields in line 7, saw 7"
_CSV_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def _read_csv(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """A CSV's cells as text, rows numbered as a spreadsheet shows them (header = row 1)."""
    try:
        # dtype=str and no NA parsing: "N/A" or "" in a score cell must reach validation as
        # written, to be reported, not silently turned into NaN here.
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[], encoding=ENCODING)
    except pd.errors.EmptyDataError as err:
        raise SourceError(
            f"{path}: no header row (the file holds only blank lines); expected {_EXPECTED['.csv']}"
        ) from err
    except pd.errors.ParserError as err:
        found = _CSV_FIELDS.search(str(err))
        if found is None:
            raise SourceError(f"{path}: not a readable CSV file ({err})") from err
        expected, line, saw = found.groups()
        raise SourceError(
            f"{path}: line {line}: {saw} fields where the header has {expected}; quote a cell that holds "
            'a comma ("a, b")'
        ) from err
    return frame, np.arange(2, len(frame) + 2, dtype=np.int64)


def _column_mapping(cfg: dict, path: Path, available: list[str]) -> dict[str, str]:
    """Resolve canonical field -> file column, checking that every needed column exists."""
    mapping = cfg.get("columns")
    if mapping is None:  # identity: canonical records
        missing = [f for f in REQUIRED_FIELDS if f not in available]
        if missing:
            raise SourceError(
                f"{path}: no column mapping given and the file lacks canonical column(s) "
                f"{', '.join(missing)}; its columns are: {', '.join(map(str, available))}"
            )
        return {f: f for f in REQUIRED_FIELDS + OPTIONAL_FIELDS if f in available}
    if not isinstance(mapping, dict):
        raise SourceError(f"{path}: 'columns' must map canonical fields to file columns, got {mapping!r}")
    unknown = [k for k in mapping if k not in REQUIRED_FIELDS + OPTIONAL_FIELDS]
    if unknown:
        raise SourceError(
            f"{path}: unknown field(s) {', '.join(map(str, unknown))} in 'columns'; "
            f"allowed: {', '.join(REQUIRED_FIELDS + OPTIONAL_FIELDS)}"
        )
    unmapped = [f for f in REQUIRED_FIELDS if f not in mapping]
    if unmapped:
        raise SourceError(f"{path}: 'columns' must map the required field(s) {', '.join(unmapped)}")
    for field, column in mapping.items():
        if column not in available:
            raise SourceError(
                f"{path}: column {column!r} (mapped to field {field!r}) is not in the file; "
                f"its columns are: {', '.join(map(str, available))}"
            )
    return dict(mapping)


def frame_from_rows(
    raw: pd.DataFrame,
    rows: np.ndarray,
    path: Path,
    mapping: dict[str, str],
    split: str | None = None,
) -> pd.DataFrame:
    """Turn raw rows into canonical records using ``mapping`` (canonical field -> column)."""
    n = len(raw)

    def texts(field: str) -> list[str]:
        return [text_or_empty(v) for v in raw[mapping[field]].tolist()]

    def labels(field: str) -> list[str | None]:
        return [label_or_none(v) for v in raw[mapping[field]].tolist()]

    columns: dict[str, Any] = {
        "id": texts("id") if "id" in mapping else [f"{path.stem}-{r}" for r in rows.tolist()],
        "exam_id": texts("exam_id"),
        "question": texts("question"),
        "answer": texts("answer"),
        # Raw on purpose: validation coerces and reports non-numbers with their row.
        "score": raw[mapping["score"]].tolist(),
        "total": raw[mapping["total"]].tolist(),
        "source_file": [str(path)] * n,
        "source_row": rows,
    }
    if "system" in mapping:
        columns["system"] = texts("system")
    if "difficulty" in mapping:
        columns["difficulty"] = labels("difficulty")
    if split is not None:
        columns["split"] = [split] * n
    elif "split" in mapping:
        columns["split"] = labels("split")
    return canonical_frame(columns, n)


def load_table_file(path: Path, columns: dict[str, str] | None = None, split: str | None = None) -> pd.DataFrame:
    """Load one table file as canonical records (``columns=None``: identity mapping)."""
    raw, rows = read_rows(path)
    cfg = {} if columns is None else {"columns": columns}
    mapping = _column_mapping(cfg, path, [str(c) for c in raw.columns])
    return frame_from_rows(raw, rows, path, mapping, split)


def load_table(cfg: dict, base_dir: Path = Path(".")) -> pd.DataFrame:
    """Load ``cfg["path"]`` (one file, or ``{split: file}``) with the mapping ``cfg["columns"]``."""
    if "path" not in cfg:
        raise SourceError("table source needs 'path': a JSONL/JSON/CSV/parquet file or {split: file}")
    paths = cfg["path"]
    if isinstance(paths, dict):
        if "split" in cfg:
            raise SourceError("table source: give the split either by 'path' keys or by 'split', not both")
        parts = [
            load_table_file(resolve_path(p, base_dir), cfg.get("columns"), split=str(split))
            for split, p in paths.items()
        ]
        return pd.concat(parts, ignore_index=True)
    return load_table_file(resolve_path(paths, base_dir), cfg.get("columns"), split=cfg.get("split"))
