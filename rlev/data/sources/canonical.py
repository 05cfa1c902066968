"""The canonical record shape every source produces, and the helpers the loaders share.

See ``rlev.data.sources`` for the columns. Kept apart from the package's ``load_source`` so
that the loaders import these without importing the package that dispatches to them (no
import cycle between the package and its modules).
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
