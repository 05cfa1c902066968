"""``TIGER-Lab/WebInstruct-verified``: the paper's dataset for the noisy-value experiment (Table 3).

Origin: https://huggingface.co/datasets/TIGER-Lab/WebInstruct-verified (TIGER-Lab,
General-Reasoner). Licence: see its dataset card (Apache-2.0 at the time of writing). Splits
``train`` and ``test``; columns read here: ``id``, ``question``, ``answer`` and
``difficulty`` (also present, unused: ``answer_type``, ``category``). Layout checked against
the loader code of TIGER-Lab's own preprocessing and of projects filtering on
``difficulty in ["University", "PhD"]``.

What the paper does with it: 2,000 training rows per difficulty category
(primary school, junior high, senior high, university, PhD: 10,000 rows) and a 1,000-row
test set; every prompt gets total = 100 and the category's points 1 / 2 / 4 / 6 / 8. So
here:

- ``difficulty`` is normalised to ``primary`` / ``junior`` / ``senior`` / ``university`` /
  ``phd`` (``CATEGORY_ALIASES``: "Primary School", "Junior High School", "Senior High
  School", "University", "PhD" and close spellings, case-insensitive); the raw label is
  kept when it is none of these;
- ``score`` = the category's points (the paper's ladder, ``rlev.data.difficulty``), ``total`` = 100,
  so ``value`` is the weak value, the only value the dataset has; a row whose category is
  unknown gets no score and is rejected by validation with its file and row;
- every prompt is its own 100-point exam (``exam_id`` = ``id``); the split is the file's;
- training rows: a seeded sample of ``train_per_category`` rows of each category
  (``numpy.random.default_rng(seed)``, all rows when a category has fewer); test rows: a
  seeded sample of ``test_rows`` rows of the test split, categories as they come (the
  paper's per-category test accuracies imply a natural, not a balanced, test mix). Rows of
  the training split with an unknown category are not sampled; their count is logged.

``cfg`` keys (the config schema's ``webinstruct`` source, which holds their defaults;
``load_source`` fills them): ``hf_id`` and ``revision`` (loaded with
``datasets.load_dataset``) or ``path`` (a local copy: a folder holding files named by
split, e.g. the Hub's ``data/train-00000-of-00001.parquet``, or ``{train: file, test: file}``;
JSONL / JSON / CSV / parquet), ``train_per_category``, ``test_rows``, ``seed``.
``source_row`` is the 1-based row in the split's file (or the Hub split).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from rlev.data.difficulty import DIFFICULTY_POINTS
from rlev.data.sources.canonical import SourceError, canonical_frame, label_or_none, resolve_path, text_or_empty
from rlev.data.sources.table import SUFFIXES, read_rows

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "test")
REQUIRED_COLUMNS: tuple[str, ...] = ("question", "answer", "difficulty")
TOTAL = 100  # the paper's total for every WebInstruct prompt
# Normalised label (lower case, non-letters dropped) -> category name.
CATEGORY_ALIASES: dict[str, str] = {
    "primaryschool": "primary", "primary": "primary", "elementaryschool": "primary", "elementary": "primary",
    "juniorhighschool": "junior", "juniorhigh": "junior", "junior": "junior", "middleschool": "junior",
    "seniorhighschool": "senior", "seniorhigh": "senior", "senior": "senior", "highschool": "senior",
    "university": "university", "undergraduate": "university", "college": "university",
    "phd": "phd", "doctoral": "phd", "graduate": "phd",
}  # fmt: skip


def category(label) -> str | None:
    """The category name of a WebInstruct difficulty label, or None.

    >>> category("Junior High School"), category("PhD"), category(" university "), category("Olympiad")
    ('junior', 'phd', 'university', None)
    """
    text = label_or_none(label)
    if text is None:
        return None
    return CATEGORY_ALIASES.get(re.sub(r"[^a-z]", "", text.casefold()))


def frame_from_webinstruct_rows(raw: pd.DataFrame, rows: np.ndarray, file: str, split: str) -> pd.DataFrame:
    """Canonical records from WebInstruct rows (all of them, unsampled)."""
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:
        raise SourceError(
            f"{file}: missing WebInstruct column(s) {', '.join(missing)}; its columns are: "
            f"{', '.join(map(str, raw.columns))}"
        )
    labels = raw["difficulty"].tolist()
    names = [category(v) for v in labels]
    ids = (
        [text_or_empty(v) for v in raw["id"].tolist()] if "id" in raw.columns
        else [f"webinstruct-{split}-{r}" for r in rows.tolist()]
    )  # fmt: skip
    columns = {
        "id": ids,
        "exam_id": ids,  # each prompt is its own 100-point exam
        "question": [text_or_empty(v) for v in raw["question"].tolist()],
        "answer": [text_or_empty(v) for v in raw["answer"].tolist()],
        # No points for an unknown category: validation rejects the row, naming it.
        "score": [DIFFICULTY_POINTS[n] if n is not None else None for n in names],
        "total": [TOTAL] * len(raw),
        "difficulty": [n if n is not None else label_or_none(v) for n, v in zip(names, labels)],
        "split": [split] * len(raw),
        "source_file": [file] * len(raw),
        "source_row": rows,
    }
    return canonical_frame(columns, len(raw))


def sample_rows(frame: pd.DataFrame, split: str, train_per_category: int, test_rows: int, seed: int) -> pd.DataFrame:
    """The paper's subset: per-category training samples, one test sample; seeded, in input order."""
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    if split == "test":
        keep = np.sort(rng.permutation(len(frame))[: min(test_rows, len(frame))])
        return frame.iloc[keep].reset_index(drop=True)
    chosen = []
    known = frame["difficulty"].isin(list(DIFFICULTY_POINTS))
    if (~known).any():
        log.warning(
            "%s: %d training rows have no known difficulty category and are not sampled (labels: %s)",
            frame["source_file"].iloc[0],
            int((~known).sum()),
            sorted({str(v) for v in frame.loc[~known, "difficulty"]})[:10],
        )
    for name in DIFFICULTY_POINTS:
        idx = np.flatnonzero((frame["difficulty"] == name).to_numpy())
        if len(idx) < train_per_category:
            log.warning(
                "WebInstruct: category %s has %d training rows, fewer than %d; all are used",
                name,
                len(idx),
                train_per_category,
            )
        chosen.append(idx[rng.permutation(len(idx))[:train_per_category]])
    return frame.iloc[np.sort(np.concatenate(chosen))].reset_index(drop=True)


def _local_files(path: Path) -> dict[str, list[Path]]:
    """Split -> files of a local copy (a folder with files named by split)."""
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    out = {}
    for split in SPLITS:
        out[split] = [p for p in files if split in re.split(r"[^a-z0-9]+", p.name.lower())]
        if not out[split]:
            raise SourceError(f"{path}: no {split} file (a name with '{split}' and one of {', '.join(SUFFIXES)})")
    return out


def _read_local(cfg: dict, base_dir: Path) -> dict[str, pd.DataFrame]:
    spec = cfg["path"]
    if isinstance(spec, dict):
        files = {split: [resolve_path(spec[split], base_dir)] for split in SPLITS if split in spec}
        if set(files) != set(SPLITS):
            raise SourceError(f"webinstruct: 'path' as a mapping needs both train and test files, got {sorted(spec)}")
    else:
        root = resolve_path(spec, base_dir)
        if not root.is_dir():
            raise SourceError(f"{root}: expected a folder of WebInstruct files (or path: {{train: ..., test: ...}})")
        files = _local_files(root)
    out = {}
    for split, paths in files.items():
        parts = []
        for p in paths:
            raw, rows = read_rows(p)
            parts.append(frame_from_webinstruct_rows(raw, rows, str(p), split))
        out[split] = pd.concat(parts, ignore_index=True)
    return out


def _read_hub(cfg: dict) -> dict[str, pd.DataFrame]:
    import datasets

    hf_id = cfg["hf_id"]
    out = {}
    for split in SPLITS:
        raw = datasets.load_dataset(hf_id, split=split, revision=cfg.get("revision")).to_pandas()
        out[split] = frame_from_webinstruct_rows(raw, np.arange(1, len(raw) + 1), f"hf://{hf_id}/{split}", split)
    return out


def load_webinstruct(cfg: dict, base_dir: Path = Path(".")) -> pd.DataFrame:
    """WebInstruct-verified as canonical records: the paper's per-category training sample and test sample."""
    frames = _read_local(cfg, base_dir) if "path" in cfg else _read_hub(cfg)
    parts = [
        sample_rows(frames[split], split, cfg["train_per_category"], cfg["test_rows"], cfg["seed"]) for split in SPLITS
    ]
    out = pd.concat(parts, ignore_index=True)
    log.info("WebInstruct: %s", out.groupby(["split", "difficulty"], dropna=False).size().to_dict())
    return out
