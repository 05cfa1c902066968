"""Out-of-distribution benchmarks (Table 2): the loaders and the rows they make.

Every multiple-choice benchmark becomes rows of one shape (``MC_COLUMNS``)::

    id           str         benchmark row id
    question     str
    options      list[str]   option texts in presentation order
    letters      list[str]   the letter shown before each option (A, B, ...)
    gold_letter  str         the correct option's letter
    subject      str         subject / category / discipline
    source       str         benchmark name

Loaders (the column names were read from lm-evaluation-harness, OpenCompass and
General-Reasoner loader code):

- ``gpqa`` (``Idavidrein/gpqa``, config ``gpqa_diamond``, split ``train``, 198 rows, gated,
  CC-BY-4.0): ``Question``, ``Correct Answer``, ``Incorrect Answer 1..3``. The data has no
  option order, so the four answers are shuffled with ``numpy.random.default_rng([seed,
  row])`` (fixed seed, recorded in the config) and the gold letter is where the correct
  answer lands. Text is cleaned as lm-eval does (strip, " [title]" -> ". ", double spaces).
- ``ceval`` (``ceval/ceval-exam``, one config per subject, split ``val``, CC BY-NC-SA 4.0):
  ``question``, ``A``..``D``, ``answer`` (a letter).
- ``mmlu_pro`` (``TIGER-Lab/MMLU-Pro``, split ``test``, MIT): ``question``, ``options`` (up to
  10, some padded with "N/A"), ``answer`` (a letter), ``category``. "N/A" options are not
  shown, and every other option keeps its original letter, so ``answer`` stays valid.
- ``supergpqa`` (``m-a-p/SuperGPQA``, split ``train``, MIT): ``question``, ``options`` (up to
  10), ``answer_letter``, ``discipline``.
- ``synthetic`` : sums of one-digit numbers as in the synthetic exams
  (``rlev.data.arithmetic.LEVELS``), four options (the sum and three distinct distractors
  within +-3), seeded. The tiny model never learnt the letter format (its replies are
  mostly truncated), so it scores ~0 here, below chance: kept as a format probe.
- ``synthetic_sums`` (the default scale's Table 2): free-form sums of a LENGTH NEVER TRAINED
  (``terms``: the numbers of one-digit terms to draw from, default 5 and 7; the synthetic
  exams have sums of 2, 3, 4, 6 and 8 terms, ``rlev.data.arithmetic.LEVELS``), asked exactly
  as the training questions are (points stated first, drawn from
  ``rlev.data.arithmetic.POINTS``: only the length is new) and answered in the format SFT
  taught (``#### N``, worked or direct). The tiny model can attempt these (its SFT start
  scored 44% at 5 terms and 16% at 7) where it fails sums longer than any trained on (9 to 12
  terms: under 3% even with room for the worked answer) and any change of surface form
  (no points, spaces, a 0 term: under 4%), so the table measures whether RL's gains carry
  over to held-out lengths. Rows of ``FREE_COLUMNS`` (id, question, answer, subject = "<k>
  terms", source), scored by the rule verifier; no chance level.

A benchmark config has ``loader`` plus ``hf_id`` / ``config`` / ``split`` (Hub, through
``datasets``) or ``path`` (a local copy: one file, or a folder whose data files are read;
files whose names carry another split are skipped), and optionally ``max_rows`` (a seeded
subset, for a quick look) and ``seed``.

The rows are written by ``ood_data`` (``rlev ood-data``, rule ood_data, one parquet per
benchmark) and asked and scored by rlev.evaluate.ood (``rlev ood``, rules ood and ood_base).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from rlev.data.arithmetic import LEVELS, POINTS, draw_terms, sum_text, with_points
from rlev.data.sources import SourceError, resolve_path, text_or_empty
from rlev.data.sources.table import SUFFIXES, read_rows

MC_COLUMNS: tuple[str, ...] = ("id", "question", "options", "letters", "gold_letter", "subject", "source")
LETTERS = "ABCDEFGHIJKLMNOP"
FREE_COLUMNS: tuple[str, ...] = ("id", "question", "answer", "subject", "source")
LOADERS: tuple[str, ...] = ("gpqa", "ceval", "mmlu_pro", "supergpqa", "synthetic", "synthetic_sums")
SPLIT_NAMES = frozenset({"train", "test", "val", "validation", "dev"})


def _frame(records: list[dict]) -> pd.DataFrame:
    return pd.DataFrame.from_records(records, columns=list(MC_COLUMNS))


def _check(raw: pd.DataFrame, needed: list[str], where: str, loader: str) -> None:
    missing = [c for c in needed if c not in raw.columns]
    if missing:
        raise SourceError(
            f"{where}: missing {loader} column(s) {', '.join(missing)}; its columns are: "
            f"{', '.join(map(str, raw.columns))}"
        )


def _options_list(value, where: str) -> list[str]:
    """A list cell (list, array, or a JSON string of a list)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise SourceError(f"{where}: field 'options' is not a list: {value[:60]!r}") from err
    if value is None or not hasattr(value, "__iter__"):
        raise SourceError(f"{where}: field 'options' is not a list: {value!r}")
    return [text_or_empty(v) for v in value]


def _gold(letter, letters: list[str], where: str) -> str:
    text = text_or_empty(letter).strip().upper()
    if text not in letters:
        raise SourceError(f"{where}: answer {letter!r} is not one of the shown letters {''.join(letters)}")
    return text


# --- the loaders: raw rows in a published layout -> MC rows ------------------------------------


def clean_gpqa(text) -> str:
    """lm-eval's GPQA preprocessing.

    >>> clean_gpqa("  What is  it [title] next ")
    'What is it. next'
    """
    text = text_or_empty(text).strip().replace(" [title]", ". ")
    return re.sub(r"\s+", " ", text.replace("  ", " ")).strip()


def gpqa_rows(raw: pd.DataFrame, rows, file: str, seed: int) -> pd.DataFrame:
    answers = ["Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3"]
    _check(raw, ["Question", *answers], file, "GPQA")
    records = []
    for (_, r), row in zip(raw.iterrows(), rows):
        # The option order is a seeded permutation of (correct, 3 incorrect) per row: fixed
        # across runs and models, so every model sees the same questions in the same order.
        order = np.random.default_rng([seed, int(row)]).permutation(4)
        options = [clean_gpqa(r[answers[i]]) for i in order]
        letters = list(LETTERS[:4])
        rid = text_or_empty(r["Record ID"]) if "Record ID" in raw.columns else f"gpqa-{row}"
        records.append({
            "id": rid or f"gpqa-{row}", "question": clean_gpqa(r["Question"]), "options": options,
            "letters": letters, "gold_letter": letters[int(np.flatnonzero(order == 0)[0])],
            "subject": text_or_empty(r.get("High-level domain", "")), "source": "gpqa_diamond",
        })  # fmt: skip
    return _frame(records)


def ceval_rows(raw: pd.DataFrame, rows, file: str, subject: str) -> pd.DataFrame:
    _check(raw, ["question", "A", "B", "C", "D", "answer"], file, "C-Eval")
    letters = list("ABCD")
    records = [
        {"id": f"ceval-{subject}-{text_or_empty(r['id']) if 'id' in raw.columns else row}",
         "question": text_or_empty(r["question"]), "options": [text_or_empty(r[x]) for x in letters],
         "letters": letters, "gold_letter": _gold(r["answer"], letters, f"{file}: row {row}"),
         "subject": subject, "source": "ceval"}
        for (_, r), row in zip(raw.iterrows(), rows)
    ]  # fmt: skip
    return _frame(records)


def mmlu_pro_rows(raw: pd.DataFrame, rows, file: str) -> pd.DataFrame:
    _check(raw, ["question", "options", "answer"], file, "MMLU-Pro")
    records = []
    for (_, r), row in zip(raw.iterrows(), rows):
        where = f"{file}: row {row}"
        all_options = _options_list(r["options"], where)
        # "N/A" pads some rows; it is not shown, and the other options keep their letters.
        kept = [(LETTERS[i], o) for i, o in enumerate(all_options) if o.strip() != "N/A"]
        letters = [x for x, _ in kept]
        qid = text_or_empty(r["question_id"]) if "question_id" in raw.columns else str(row)
        records.append({
            "id": f"mmlu_pro-{qid}", "question": text_or_empty(r["question"]), "options": [o for _, o in kept],
            "letters": letters, "gold_letter": _gold(r["answer"], letters, where),
            "subject": text_or_empty(r.get("category", "")), "source": "mmlu_pro",
        })  # fmt: skip
    return _frame(records)


def supergpqa_rows(raw: pd.DataFrame, rows, file: str) -> pd.DataFrame:
    _check(raw, ["question", "options", "answer_letter"], file, "SuperGPQA")
    records = []
    for (_, r), row in zip(raw.iterrows(), rows):
        where = f"{file}: row {row}"
        options = _options_list(r["options"], where)
        letters = list(LETTERS[: len(options)])
        uid = text_or_empty(r["uuid"]) if "uuid" in raw.columns else str(row)
        records.append({
            "id": f"supergpqa-{uid}", "question": text_or_empty(r["question"]), "options": options,
            "letters": letters, "gold_letter": _gold(r["answer_letter"], letters, where),
            "subject": text_or_empty(r.get("discipline", "")), "source": "supergpqa",
        })  # fmt: skip
    return _frame(records)


def synthetic_rows(n_rows: int, seed: int) -> pd.DataFrame:
    """Seeded arithmetic multiple choice in the MC row format (the default scale's OOD set).

    >>> rows = synthetic_rows(3, seed=0)
    >>> all(sorted(set(o)) == sorted(o) and len(o) == 4 for o in rows["options"])
    True
    """
    rng = np.random.default_rng(seed)
    names = list(LEVELS)
    records = []
    for k in range(n_rows):
        name = names[int(rng.integers(len(names)))]
        terms = draw_terms(rng, LEVELS[name][0])
        answer = sum(terms)
        offsets = rng.choice([-3, -2, -1, 1, 2, 3], size=3, replace=False)
        options = [answer, *(answer + int(d) for d in offsets)]
        order = rng.permutation(4)
        letters = list(LETTERS[:4])
        records.append({
            "id": f"synthetic_mc-{k:05d}", "question": sum_text(terms),
            "options": [str(options[i]) for i in order], "letters": letters,
            "gold_letter": letters[int(np.flatnonzero(order == 0)[0])], "subject": name, "source": "synthetic_mc",
        })  # fmt: skip
    return _frame(records)


def synthetic_sum_rows(n_rows: int, seed: int, terms: tuple[int, ...] = (5, 7)) -> pd.DataFrame:
    """Seeded free-form sums of one-digit numbers, each of a length drawn from `terms`, in the
    synthetic exams' question form (points first).

    >>> rows = synthetic_sum_rows(2, seed=0, terms=(7,))
    >>> rows["subject"].tolist(), [q.count("+") for q in rows["question"]], rows["question"][0][:10]
    (['7 terms', '7 terms'], [6, 6], '(1 point) ')
    """
    lengths = sorted({int(t) for t in terms})
    if not lengths or lengths[0] < 2:
        raise SourceError(f"synthetic_sums: 'terms' must list numbers of terms, each at least 2, got {list(terms)}")
    rng = np.random.default_rng(seed)
    records = []
    for k in range(n_rows):
        values = draw_terms(rng, int(rng.choice(lengths)))
        question = with_points(sum_text(values), int(rng.choice(POINTS)))
        records.append(
            {
                "id": f"synthetic_sums-{k:05d}",
                "question": question,
                "answer": str(sum(values)),
                "subject": f"{len(values)} terms",
                "source": "synthetic_sums",
            }
        )
    return pd.DataFrame.from_records(records, columns=list(FREE_COLUMNS))


# --- reading a benchmark: Hub or local copy ------------------------------------------------------


def _split_tokens(path: Path) -> set[str]:
    return set(re.split(r"[^a-z0-9]+", str(path).lower())) & SPLIT_NAMES


def local_files(path: Path, split: str) -> list[Path]:
    """Data files of a local copy for `split`: the file itself, or the folder's files that do not
    name another split (names such as `val/law_val.csv`, `data/test-00000-of-00001.parquet`)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise SourceError(f"{path}: no such file or folder")
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    chosen = [p for p in files if not (_split_tokens(p.relative_to(path)) - {split})]
    if not chosen:
        raise SourceError(f"{path}: no data file ({', '.join(SUFFIXES)}) for split {split!r}")
    return chosen


def ceval_subject(file: Path, split: str) -> str:
    """The subject of a C-Eval file: `val/law_val.csv` -> law, `law/val-00000-of-00001.parquet` -> law.

    >>> ceval_subject(Path("ceval/val/high_school_physics_val.csv"), "val")
    'high_school_physics'
    >>> ceval_subject(Path("ceval/law/val-00000-of-00001.parquet"), "val")
    'law'
    """
    stem = file.stem
    if stem.endswith(f"_{split}"):
        return stem[: -len(split) - 1]
    return file.parent.name


def _rows_of(loader: str, raw: pd.DataFrame, rows, file: str, cfg: dict, subject: str = "") -> pd.DataFrame:
    if loader == "gpqa":
        return gpqa_rows(raw, rows, file, int(cfg.get("seed", 0)))
    if loader == "ceval":
        return ceval_rows(raw, rows, file, subject)
    if loader == "mmlu_pro":
        return mmlu_pro_rows(raw, rows, file)
    if loader == "supergpqa":
        return supergpqa_rows(raw, rows, file)
    raise SourceError(f"unknown OOD loader {loader!r}; choose one of {', '.join(LOADERS)}")


def _load_local(cfg: dict, base_dir: Path) -> pd.DataFrame:
    loader, split = cfg["loader"], cfg.get("split", "")
    parts = []
    for file in local_files(resolve_path(cfg["path"], base_dir), split):
        raw, rows = read_rows(file)
        parts.append(_rows_of(loader, raw, rows, str(file), cfg, ceval_subject(file, split)))
    return pd.concat(parts, ignore_index=True)


def _load_hub(cfg: dict) -> pd.DataFrame:
    import datasets

    loader, hf_id, split = cfg["loader"], cfg["hf_id"], cfg["split"]
    if loader == "ceval":  # one config per subject; C-Eval has no "all" config
        subjects = [cfg["config"]] if cfg.get("config") else datasets.get_dataset_config_names(hf_id)
        parts = []
        for subject in subjects:
            raw = datasets.load_dataset(hf_id, subject, split=split).to_pandas()
            parts.append(ceval_rows(raw, range(1, len(raw) + 1), f"hf://{hf_id}/{subject}/{split}", subject))
        return pd.concat(parts, ignore_index=True)
    raw = datasets.load_dataset(hf_id, cfg.get("config"), split=split).to_pandas()
    return _rows_of(loader, raw, np.arange(1, len(raw) + 1), f"hf://{hf_id}/{split}", cfg)


def load_benchmark(cfg: dict, base_dir: Path = Path(".")) -> pd.DataFrame:
    """MC rows of one benchmark config (see the module docstring for its keys)."""
    loader = cfg.get("loader")
    if loader not in LOADERS:
        raise SourceError(f"OOD benchmark needs 'loader', one of {', '.join(LOADERS)}; got {loader!r}")
    if loader == "synthetic":
        rows = synthetic_rows(int(cfg.get("rows", 200)), int(cfg.get("seed", 0)))
    elif loader == "synthetic_sums":
        rows = synthetic_sum_rows(int(cfg.get("rows", 200)), int(cfg.get("seed", 0)), tuple(cfg.get("terms", (5, 7))))
    elif cfg.get("path"):
        rows = _load_local(cfg, base_dir)
    elif cfg.get("hf_id"):
        rows = _load_hub(cfg)
    else:
        raise SourceError(f"OOD benchmark ({loader}) needs 'path' (a local copy) or 'hf_id'")
    if cfg.get("max_rows") and len(rows) > cfg["max_rows"]:
        keep = np.sort(np.random.default_rng(int(cfg.get("seed", 0))).permutation(len(rows))[: cfg["max_rows"]])
        rows = rows.iloc[keep].reset_index(drop=True)
    dup = rows["id"].duplicated()
    if dup.any():
        raise SourceError(f"{loader}: duplicate row ids, e.g. {rows.loc[dup, 'id'].iloc[0]!r}")
    return rows


def ood_data(spec: dict, out: Path) -> pd.DataFrame:
    """`rlev ood-data`: the rows of one benchmark config (`spec`), written to `out` (parquet)."""
    rows = load_benchmark(spec)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    rows.to_parquet(out, index=False)
    return rows
