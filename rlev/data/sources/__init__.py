"""Data sources: every source normalises to one canonical record shape.

A source turns files (or a Hugging Face dataset) into a pandas DataFrame with exactly the
columns of ``CANONICAL_COLUMNS``, in that order, one row per question:

| column        | type           | meaning                                                     |
|---------------|----------------|-------------------------------------------------------------|
| ``id``        | str            | unique question id                                          |
| ``exam_id``   | str            | the exam (paper) the question belongs to                    |
| ``question``  | str            | the user turn                                               |
| ``system``    | str            | the system turn, ``""`` when there is none                  |
| ``answer``    | str            | reference answer                                            |
| ``score``     | raw            | points of the question, as given (validation coerces)       |
| ``total``     | raw            | total points of its exam, as given                          |
| ``difficulty``| str or None    | difficulty label where the source has one                   |
| ``split``     | str or None    | ``"train"`` / ``"test"``, None when the source gives none   |
| ``source_file``| str           | the file the row was read from                              |
| ``source_row``| int            | 1-based row of that file (each source says how it counts)   |

Sources do not judge the values (``score`` and ``total`` stay raw); ``rlev.data.validate``
does that, so that every bad row is reported with its file and row instead of vanishing in
a loader.

Sources (``cfg["source"]``):
- ``rlev``: the paper's dataset ``sarosavo/RLEV`` (``rlev_hub``).
- ``gaokao``: GAOKAO-Bench's JSON in any release layout (the original and its 2023/2024
  updates), or its converted ``gaokao_rlev`` JSONL (``gaokao``).
- ``table``: any JSONL / CSV / parquet with a column mapping (``table``); without a
  mapping the file is read as canonical records (what the synthetic generator writes).
- ``webinstruct``: ``TIGER-Lab/WebInstruct-verified``, difficulty categories only, total 100
  (``webinstruct``; the noisy-value experiment).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from rlev import InputError

CANONICAL_COLUMNS: tuple[str, ...] = (
    "id",
    "exam_id",
    "question",
    "system",
    "answer",
    "score",
    "total",
    "difficulty",
    "split",
    "source_file",
    "source_row",
)

SOURCES: tuple[str, ...] = ("rlev", "gaokao", "table", "webinstruct")


class SourceError(InputError):
    """A source could not be read: the message names the file, and the row where one applies."""


def resolve_path(path: str | Path, base_dir: Path = Path(".")) -> Path:
    """Return ``path`` as is when absolute, else relative to ``base_dir``."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else Path(base_dir) / p


def text_or_empty(value: Any) -> str:
    """Text of a cell for the string columns: missing -> ``""``, a list -> items joined by ``"; "``.

    Lists occur as reference answers of multi-part multiple-choice items (``["B", "C"]``);
    ``"; "`` is the joiner the gaokao_rlev conversion uses, so all sources agree.
    """
    if value is None:
        return ""
    if isinstance(value, float) and value != value:  # NaN from pandas readers
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ndarray":
        return "; ".join(text_or_empty(v) for v in value)
    return str(value)


def label_or_none(value: Any) -> str | None:
    """Optional label columns (difficulty, split): missing or blank -> None, else stripped text."""
    text = text_or_empty(value).strip()
    return text or None


def canonical_frame(columns: dict[str, Any], n_rows: int | None = None) -> pd.DataFrame:
    """Build a DataFrame with exactly ``CANONICAL_COLUMNS`` from a dict of column values.

    Missing optional columns get their empty value (``system`` -> ``""``, ``difficulty`` and
    ``split`` -> None). ``score`` and ``total`` are kept raw in an object column.
    """
    if n_rows is None:
        n_rows = len(next(iter(columns.values()))) if columns else 0
    defaults: dict[str, Any] = {"system": "", "difficulty": None, "split": None}
    data: dict[str, Any] = {}
    for name in CANONICAL_COLUMNS:
        if name in columns:
            data[name] = columns[name]
        elif name in defaults:
            data[name] = [defaults[name]] * n_rows
        else:
            raise KeyError(f"canonical column {name!r} was not produced")
    frame = pd.DataFrame(
        {
            name: pd.Series(
                list(data[name]) if not isinstance(data[name], pd.Series) else data[name].to_numpy(),
                dtype="int64" if name == "source_row" else object,
            )
            for name in CANONICAL_COLUMNS
        }
    )
    return frame


def load_source(cfg: dict, base_dir: Path = Path(".")) -> pd.DataFrame:
    """Load the data source described by ``cfg`` as canonical records (``CANONICAL_COLUMNS``).

    ``cfg["source"]`` picks the loader: ``"rlev"``, ``"gaokao"`` or ``"table"``; relative
    paths in ``cfg`` are resolved against ``base_dir``. Examples::

        load_source({"source": "table", "path": "data/synthetic/exams.jsonl"})
        load_source({"source": "gaokao", "path": "data/GAOKAO-Bench"})
        load_source({"source": "rlev", "hf_id": "sarosavo/RLEV", "language": "zh"})
    """
    if not isinstance(cfg, dict) or "source" not in cfg:
        raise ValueError(f"data source config needs a 'source' key, one of {', '.join(SOURCES)}; got {cfg!r}")
    name = cfg["source"]
    # Imported here so that each loader's optional dependencies (datasets, hub) load only when used.
    if name == "rlev":
        from rlev.data.sources.rlev_hub import load_rlev

        frame = load_rlev(cfg, base_dir)
    elif name == "gaokao":
        from rlev.data.sources.gaokao import load_gaokao

        frame = load_gaokao(cfg, base_dir)
    elif name == "table":
        from rlev.data.sources.table import load_table

        frame = load_table(cfg, base_dir)
    elif name == "webinstruct":
        from rlev.data.sources.webinstruct import load_webinstruct

        frame = load_webinstruct(cfg, base_dir)
    else:
        raise ValueError(f"unknown data source {name!r}; choose one of: {', '.join(SOURCES)}")
    if tuple(frame.columns) != CANONICAL_COLUMNS:  # a loader bug, not a data problem
        raise AssertionError(f"source {name!r} returned columns {list(frame.columns)}")
    return frame


__all__ = [
    "CANONICAL_COLUMNS",
    "SOURCES",
    "SourceError",
    "canonical_frame",
    "label_or_none",
    "load_source",
    "resolve_path",
    "text_or_empty",
]
