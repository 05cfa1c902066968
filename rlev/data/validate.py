"""Validate canonical records: keep good rows, report every bad one with file, row and field.

Input is a frame of canonical records (``rlev.data.sources.CANONICAL_COLUMNS``) from any
source. ``validate_records`` splits it into ``kept`` and ``rejects`` (never dropping a row
silently: ``len(kept) + len(rejects) == len(input)``), adds the RLEV value
``v = score / total`` (the paper's ``v(x) = s_ij / T_i``) to kept rows, and checks each exam.

Per-row rules (a row breaking any of them is rejected; ``field`` lists the fields,
``reason`` says what is wrong, several separated by ``"; "``):
- ``id``, ``exam_id``, ``question``, ``answer``: must not be empty or blank;
- ``score``, ``total``: must be present and a finite number (text such as ``"5"`` is
  accepted; ``"5分"`` is not), and greater than 0;
- ``score`` must not exceed ``total`` (so ``0 < v <= 1``);
- ``split``: empty, ``"train"`` or ``"test"``;
- ``id``: unique; the first occurrence is kept and later ones are rejected naming the
  file and row of the first.

Per-exam rules:
- an exam whose rows carry different totals: every row of that exam is rejected
  (``field`` total). The total is the exam's, so a mismatch means some rows' v are wrong,
  and nothing says which;
- points of an exam summing to more than its total: the rows are kept with a warning
  naming the exam and saying which v is used: each row's own ``score / total``, so the
  exam's values sum past 1. A source may hold one exam's questions twice over (two papers
  under one label, as in GAOKAO-Bench's 2020 新课标II 语文), and each row's points over the
  paper's total is still that question's share of its real exam;
- an exam in two splits (train and test) raises ``DataValidationError``: that leaks test
  questions into training.

More rejects than ``max_reject_share`` of the rows also raises ``DataValidationError``: a
wrong column mapping or a broken file should stop the pipeline, not shrink the data. The
exception carries the ``ValidationResult`` (``err.result``) so that callers can still
write the reject report before failing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rlev import InputError

REJECT_COLUMNS: tuple[str, ...] = ("source_file", "source_row", "id", "field", "reason")
SPLITS: tuple[str, ...] = ("train", "test")
_SHOWN = 5  # how many examples an error message lists


class DataValidationError(InputError):
    """The data cannot be used as is; ``result`` holds the validation so far (or None)."""

    def __init__(self, message: str, result: "ValidationResult | None" = None):
        super().__init__(message)
        self.result = result


@dataclass
class ValidationResult:
    """Rows that passed (with float ``score``/``total`` and ``value``), rejected rows, warnings.

    ``rejects`` holds the rejected input rows as given plus ``field`` and ``reason``.
    """

    kept: pd.DataFrame
    rejects: pd.DataFrame
    warnings: list[str] = field(default_factory=list)


def _blank(values: pd.Series) -> pd.Series:
    """True where a text cell is missing or only whitespace."""
    text = values.astype(object).where(values.notna(), "")
    return text.astype(str).str.strip().eq("").fillna(True).astype(bool)


def _numbers(values: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Coerce raw cells to float: return (numbers, missing mask, not-a-finite-number mask)."""
    missing = _blank(values)
    # Through text on purpose: True is not 1 point, and " 5 " from a CSV is 5.
    text = values.astype(object).where(~missing, None).map(lambda v: None if v is None else str(v).strip())
    numbers = pd.to_numeric(text, errors="coerce").astype(float)
    bad = ~missing & ~np.isfinite(numbers.fillna(np.nan).to_numpy())
    return numbers.where(~missing & ~bad), missing, pd.Series(bad, index=values.index)


def _where(df: pd.DataFrame, pos: np.ndarray) -> list[str]:
    """``file:row`` of rows at positions ``pos``."""
    return [f"{f}:{r}" for f, r in zip(df["source_file"].to_numpy()[pos], df["source_row"].to_numpy()[pos])]


def _problems(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Every rule a row breaks, one row per (input position, field, reason); and score, total as floats."""
    n = len(df)
    found: list[pd.DataFrame] = []

    def add(fieldname: str, mask: pd.Series | np.ndarray, reason: pd.Series | str) -> None:
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return
        pos = np.flatnonzero(mask)
        why = reason if isinstance(reason, str) else pd.Series(reason).to_numpy()[pos]
        found.append(pd.DataFrame({"pos": pos, "field": fieldname, "reason": why}))

    for name in ("id", "exam_id", "question", "answer"):
        add(name, _blank(df[name]), f"{name}: empty")

    numbers = {}
    for name in ("score", "total"):
        value, missing, bad = _numbers(df[name])
        numbers[name] = value
        add(name, missing, f"{name}: missing")
        add(name, bad, f"{name}: not a finite number: " + df[name].astype(str))
        add(name, value <= 0, f"{name}: must be > 0, got " + value.astype(str))
    score, total = numbers["score"], numbers["total"]
    over = (score > total) & (score > 0) & (total > 0)
    add("score", over, "score: " + score.astype(str) + " is more than total " + total.astype(str))

    # One total per exam: rows whose exam carries several totals are all rejected.
    exam = df["exam_id"].astype(object).where(~_blank(df["exam_id"]), None)
    has_total = (total > 0) & exam.notna()  # a missing or non-positive total is reported on its own
    n_totals = total[has_total].groupby(exam[has_total], sort=False).nunique()
    mixed = n_totals[n_totals > 1].index
    if len(mixed):
        in_mixed = has_total & exam.isin(mixed)
        listed = (
            total[has_total]
            .groupby(exam[has_total], sort=False)
            .agg(lambda t: ", ".join(f"{x:g}" for x in sorted(t.unique())))
        )
        add(
            "total",
            in_mixed,
            "total: exam "
            + exam.map(repr)
            + " carries several totals ("
            + exam.map(listed).fillna("")
            + "); give every row of an exam the exam's one total",
        )

    split = df["split"].astype(object).where(df["split"].notna(), None)
    bad_split = split.notna() & ~split.isin(SPLITS)
    add("split", bad_split, "split: must be empty, 'train' or 'test', got " + split.astype(str))

    ids = df["id"].astype(object)
    dup = ids.duplicated(keep="first").to_numpy() & ~_blank(df["id"]).to_numpy()
    if dup.any():
        first = pd.Series(np.arange(n), index=ids).groupby(level=0).first()
        first_pos = first.reindex(ids[dup]).to_numpy()
        reason = np.full(n, "", dtype=object)
        reason[dup] = [f"id: duplicate of {w} (kept)" for w in _where(df, first_pos)]
        add("id", dup, pd.Series(reason))

    if not found:
        empty = pd.DataFrame({"pos": np.array([], dtype=np.int64), "field": [], "reason": []})
        return empty, score, total
    return pd.concat(found, ignore_index=True), score, total


def _split_leaks(kept: pd.DataFrame, dataset: str) -> str | None:
    """Message naming exams that appear in more than one split, or None."""
    given = kept[kept["split"].notna()]
    if given.empty:
        return None
    n_splits = given.groupby("exam_id", sort=False)["split"].nunique()
    leaking = n_splits[n_splits > 1].index
    if len(leaking) == 0:
        return None
    lines = []
    for exam in list(leaking)[:_SHOWN]:
        rows = given[given["exam_id"] == exam]
        parts = []
        for split, grp in rows.groupby("split", sort=True):
            parts.append(f"{split} ({len(grp)} rows, e.g. {grp['source_file'].iloc[0]}:{grp['source_row'].iloc[0]})")
        lines.append(f"  exam {exam!r} is in " + " and ".join(parts))
    more = f"\n  ... and {len(leaking) - _SHOWN} more" if len(leaking) > _SHOWN else ""
    return (
        f"{dataset}: {len(leaking)} exam(s) appear in more than one split, which leaks test "
        f"questions into training; split by exam:\n" + "\n".join(lines) + more
    )


def _exam_warnings(kept: pd.DataFrame, dataset: str) -> list[str]:
    """Warnings for exams whose points sum past their total (rows kept; each keeps its own v)."""
    if kept.empty:
        return []
    grouped = kept.groupby("exam_id", sort=True).agg(
        points=("score", "sum"),
        total=("total", "max"),
        rows=("score", "size"),
        file=("source_file", "first"),
        row=("source_row", "first"),
    )
    out = []
    # A small tolerance: half points summed as floats must not trip the check.
    for exam, g in grouped[grouped["points"] > grouped["total"] + 1e-9].iterrows():
        out.append(
            f"{dataset}: exam {exam!r}: points of its {g.rows} rows sum to {g.points:g}, "
            f"more than its total {g.total:g}; kept, each row with v = its own score / {g.total:g} "
            f"(the exam's values sum to {g.points / g.total:.3g}); first row {g.file}:{g.row}"
        )
    return out


def validate_records(df: pd.DataFrame, max_reject_share: float = 0.01, dataset: str = "dataset") -> ValidationResult:
    """Validate canonical records; return kept rows (with ``value``), rejects and warnings.

    Raises ``DataValidationError`` when the input is empty or lacks canonical columns, when
    rejects exceed ``max_reject_share`` of the rows, or when an exam is in two splits.
    Vectorised: 100k rows take well under a second.
    """
    from rlev.data.sources import CANONICAL_COLUMNS

    missing = [c for c in CANONICAL_COLUMNS if c not in df.columns]
    if missing:
        raise DataValidationError(f"{dataset}: records lack canonical column(s) {', '.join(missing)}")
    if len(df) == 0:
        raise DataValidationError(f"{dataset}: no rows to validate")
    df = df.reset_index(drop=True)

    problems, score, total = _problems(df)
    per_row = problems.groupby("pos", sort=True).agg(
        field=("field", lambda s: ",".join(dict.fromkeys(s))), reason=("reason", "; ".join)
    )
    bad = np.zeros(len(df), dtype=bool)
    bad[per_row.index.to_numpy(dtype=np.int64)] = True

    rejects = df[bad].copy()
    rejects["field"] = per_row["field"].to_numpy()
    rejects["reason"] = per_row["reason"].to_numpy()
    rejects = rejects.reset_index(drop=True)

    kept = df[~bad].copy()
    kept["score"] = score[~bad].astype(float)
    kept["total"] = total[~bad].astype(float)
    kept["value"] = kept["score"] / kept["total"]
    kept = kept.reset_index(drop=True)

    result = ValidationResult(kept=kept, rejects=rejects, warnings=[])
    share = len(rejects) / len(df)
    if share > max_reject_share:
        files = ", ".join(sorted(set(map(str, rejects["source_file"]))))
        shown = "\n".join(
            f"  {f}:{r} [{fld}] {why}"
            for f, r, fld, why in rejects[["source_file", "source_row", "field", "reason"]]
            .head(_SHOWN)
            .itertuples(index=False)
        )
        raise DataValidationError(
            f"{dataset}: {len(rejects)} of {len(df)} rows rejected ({share:.1%}), more than the "
            f"allowed {max_reject_share:.1%}; rejected rows come from {files}; first reasons:\n{shown}",
            result,
        )
    leaks = _split_leaks(kept, dataset)
    if leaks:
        raise DataValidationError(leaks, result)
    result.warnings.extend(_exam_warnings(kept, dataset))
    return result


def write_rejects(rejects: pd.DataFrame, path: str | Path) -> Path:
    """Write the reject report: CSV with columns source_file, source_row, id, field, reason."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = rejects.reindex(columns=list(REJECT_COLUMNS))
    frame.to_csv(path, index=False)
    return path


# Without the run's tokenizer a prompt is measured in UTF-8 bytes, an upper bound on its
# token count under a byte-level BPE (every token is at least one byte), plus this many
# tokens for the chat template's markers and default system turn (Qwen2.5's: about 30).
TEMPLATE_ALLOWANCE = 64


def load_tokenizer(model: str):
    """The tokenizer of `model` (a Hugging Face id or directory) if it is on this machine, else None.

    Never downloads: the check that uses it runs on CPU nodes, and a byte bound stands in.
    """
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(model, local_files_only=True)
    except Exception:  # not cached here, or not a tokenizer: the byte bound stands in
        return None


def overlong_prompts(
    rows: pd.DataFrame, max_prompt_length: int, tokenizer=None, model: str = "", drops: bool = True
) -> pd.DataFrame:
    """Rows whose prompt is longer than ``max_prompt_length`` tokens, as reject-report rows.

    verl's ``data.filter_overlong_prompts`` drops such prompts from training without naming
    them (``drops``; with it off verl stops at the first one). With ``tokenizer`` the count is
    verl's: the chat template applied with the generation prompt, then tokenised. Without
    one, a prompt is listed when its UTF-8 bytes plus ``TEMPLATE_ALLOWANCE`` exceed the
    budget: nothing verl drops is missed, and the reason says the count is a bound.
    """
    from rlev.model import render_prompt

    systems = rows["system"].fillna("").astype(str).tolist() if "system" in rows else [""] * len(rows)
    questions = rows["question"].astype(str).tolist()
    if tokenizer is not None:
        lengths = np.array(
            [
                len(tokenizer(render_prompt(tokenizer, q, s), add_special_tokens=False)["input_ids"])
                for q, s in zip(questions, systems)
            ],
            dtype=np.int64,
        )
        measure = f"{{n}} tokens ({model or 'the run'}'s tokenizer, chat template applied)"
    else:
        lengths = np.array(
            [len(s.encode()) + len(q.encode()) + TEMPLATE_ALLOWANCE for q, s in zip(questions, systems)], dtype=np.int64
        )
        measure = (
            f"at most {{n}} tokens by its UTF-8 bytes + {TEMPLATE_ALLOWANCE} (the tokenizer of "
            f"{model or 'the run'} is not on this machine to count exactly)"
        )
    effect = "verl drops it from training (filter_overlong_prompts)" if drops else "verl stops on it"
    over = lengths > max_prompt_length
    out = rows.loc[over].reindex(columns=["source_file", "source_row", "id"])
    out["field"] = "question"
    out["reason"] = [
        f"question: prompt of {measure.format(n=n)}, more than max_prompt_length {max_prompt_length}; {effect}"
        for n in lengths[over]
    ]
    return out.reset_index(drop=True)
