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

The record shape and the helpers every loader shares live in ``rlev.data.sources.canonical``
(re-exported here). Sources do not judge the values (``score`` and ``total`` stay raw); ``rlev.data.validate``
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

import pandas as pd

from rlev.data.sources.canonical import (
    CANONICAL_COLUMNS,
    SourceError,
    canonical_frame,
    label_or_none,
    resolve_path,
    text_or_empty,
)
from rlev.data.sources.gaokao import load_gaokao
from rlev.data.sources.rlev_hub import load_rlev
from rlev.data.sources.table import load_table
from rlev.data.sources.webinstruct import load_webinstruct

# cfg["source"] -> loader; each loads its optional dependencies (datasets, huggingface_hub) only when used.
LOADERS = {"rlev": load_rlev, "gaokao": load_gaokao, "table": load_table, "webinstruct": load_webinstruct}
SOURCES: tuple[str, ...] = tuple(LOADERS)


def load_source(cfg: dict, base_dir: Path = Path(".")) -> pd.DataFrame:
    """Load the data source described by ``cfg`` as canonical records (``CANONICAL_COLUMNS``).

    ``cfg["source"]`` picks the loader (``LOADERS``: ``"rlev"``, ``"gaokao"``, ``"table"`` or
    ``"webinstruct"``); ``cfg`` holds that source's keys of the config schema
    (``$defs.dataset``), whose defaults are filled in before the loader reads it. Relative
    paths in ``cfg`` are resolved against ``base_dir``. Examples::

        load_source({"source": "table", "path": "data/synthetic/exams.jsonl"})
        load_source({"source": "gaokao", "path": "data/GAOKAO-Bench"})
        load_source({"source": "rlev", "hf_id": "sarosavo/RLEV", "language": "zh"})
    """
    if not isinstance(cfg, dict) or "source" not in cfg:
        raise ValueError(f"data source config needs a 'source' key, one of {', '.join(SOURCES)}; got {cfg!r}")
    name = cfg["source"]
    if name not in LOADERS:
        raise ValueError(f"unknown data source {name!r}; choose one of: {', '.join(SOURCES)}")
    from rlev.config import fill_defaults

    frame = LOADERS[name](fill_defaults(cfg, "dataset"), base_dir)
    if tuple(frame.columns) != CANONICAL_COLUMNS:  # a loader bug, not a data problem
        raise AssertionError(f"source {name!r} returned columns {list(frame.columns)}")
    return frame


__all__ = [
    "CANONICAL_COLUMNS",
    "LOADERS",
    "SOURCES",
    "SourceError",
    "canonical_frame",
    "label_or_none",
    "load_source",
    "resolve_path",
    "text_or_empty",
]
