"""The paper's dataset: ``sarosavo/RLEV`` on the Hugging Face Hub.

Origin: https://huggingface.co/datasets/sarosavo/RLEV (Yu et al., "Every Question Has Its
Own Value", arXiv 2510.20187). Licence: Apache-2.0. Expected rows: 100,000 train and
8,000 test per language, split by exam by the authors; English (GPT-4o translation) and
Chinese (``en`` / ``zh``) versions of both splits.

Layout, as far as it is documented: the dataset card says "JSON list using chat-template
with fields: query, label, score, total" and names no files. So this loader does not
hard-code file names: it lists the repository's data files (``.json``, ``.jsonl``,
``.parquet``) and takes those whose path has the split (``train`` / ``test``) and the
language (``en`` / ``zh``; also ``english`` / ``chinese`` / ``cn``) as name tokens, e.g.
``train_zh.json``, ``en/test.jsonl``, ``RLEV-zh-train.parquet``. A local copy
(``cfg["path"]``) is matched the same way when it is a folder; a single file is read as
is (its split from its name tokens, else ``cfg["split"]``, else None).

Fields: ``query`` is the prompt, either plain text, a list of chat messages
(``{role, content}``, possibly stored as a JSON string), or text already rendered with a
ChatML template (``<|im_start|>role ... <|im_end|>``); system turns become ``system`` and
user turns ``question``. ``label`` is the reference answer, ``score`` the question's
points, ``total`` its exam's total. Optional ``id``, ``exam_id`` (or ``exam`` / ``paper``)
and ``difficulty`` columns are used when present.

Exam id: the published rows carry no exam or paper identifier. The authors already split
by exam, so the split is taken as given, and each row is its own exam (``exam_id = id``):
per-exam checks then have nothing to group and cannot raise false alarms, and no
grouping is invented that the data does not support. If a later release adds an exam
column it is used instead.

``id`` = ``rlev-<language>-<split>-<row>`` (row = 1-based position in its file, which is
also ``source_row``; JSON lists have no useful line numbers) unless the data has an ``id``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd

from rlev.data.sources.canonical import SourceError, canonical_frame, label_or_none, resolve_path, text_or_empty
from rlev.data.sources.table import SUFFIXES, read_rows

SPLITS: tuple[str, ...] = ("train", "test")
LANGUAGE_TOKENS: dict[str, frozenset[str]] = {
    "en": frozenset({"en", "english"}),
    "zh": frozenset({"zh", "chinese", "cn"}),
}
EXAM_COLUMNS: tuple[str, ...] = ("exam_id", "exam", "paper_id", "paper")
REQUIRED_FIELDS: tuple[str, ...] = ("query", "label", "score", "total")

_CHATML = re.compile(r"<\|im_start\|>(\w+)\n?(.*?)(?:<\|im_end\|>|$)", re.S)


def _tokens(path: str) -> set[str]:
    return set(re.split(r"[^a-z0-9]+", path.lower()))


def pick_files(paths: list[str], split: str, language: str) -> list[str]:
    """Data files among ``paths`` whose name tokens include ``split`` and ``language``.

    When no file names a language (a single-language release), the split alone decides.

    >>> pick_files(["data/train_en.json", "data/train_zh.json", "data/test_zh.json"], "train", "zh")
    ['data/train_zh.json']
    """
    if language not in LANGUAGE_TOKENS:
        raise SourceError(f"RLEV: language must be one of {', '.join(LANGUAGE_TOKENS)}, got {language!r}")
    data = [p for p in paths if p.lower().endswith(SUFFIXES)]
    by_split = [p for p in data if split in _tokens(p)]
    any_language = set().union(*LANGUAGE_TOKENS.values())
    if any(_tokens(p) & any_language for p in by_split):
        return sorted(p for p in by_split if _tokens(p) & LANGUAGE_TOKENS[language])
    return sorted(by_split)


def split_query(query: Any, where: str = "") -> tuple[str, str]:
    """Return ``(system, question)`` from a query: plain text, chat messages or ChatML text.

    Several system or user turns are joined with a blank line. Any other role (e.g. an
    assistant turn) is an error: a single-turn prompt is what RLEV trains on.

    >>> split_query([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "1+1?"}])
    ('Be brief.', '1+1?')
    >>> split_query("<|im_start|>user\\n1+1?<|im_end|>\\n<|im_start|>assistant\\n")
    ('', '1+1?')
    """
    if isinstance(query, str):
        stripped = query.strip()
        if stripped.startswith("[") and '"role"' in stripped:
            try:
                query = json.loads(stripped)
            except json.JSONDecodeError:
                return "", query
        elif "<|im_start|>" in query:
            query = [
                {"role": role, "content": content.strip()}
                for role, content in _CHATML.findall(query)
                if not (role == "assistant" and not content.strip())  # the generation prompt
            ]
        else:
            return "", query
    if query is None or (isinstance(query, float) and query != query):
        return "", ""
    if isinstance(query, dict):
        query = [query]
    system: list[str] = []
    user: list[str] = []
    for turn in list(query):
        if not isinstance(turn, dict) or "role" not in turn:
            raise SourceError(f"{where}: field 'query': expected text or chat messages with a 'role', got {turn!r}")
        role, content = turn["role"], text_or_empty(turn.get("content"))
        if role == "system":
            system.append(content)
        elif role == "user":
            user.append(content)
        else:
            raise SourceError(f"{where}: field 'query': unexpected {role!r} turn; only system and user turns are read")
    return "\n\n".join(system), "\n\n".join(user)


def frame_from_rlev_rows(raw: pd.DataFrame, rows, file: str, split: str | None, language: str) -> pd.DataFrame:
    """Turn rows with RLEV fields (query, label, score, total) into canonical records."""
    missing = [f for f in REQUIRED_FIELDS if f not in raw.columns]
    if missing:
        raise SourceError(
            f"{file}: missing RLEV field(s) {', '.join(missing)}; its columns are: {', '.join(map(str, raw.columns))}"
        )
    rows = list(rows)
    turns = [split_query(q, f"{file}: row {r}") for q, r in zip(raw["query"].tolist(), rows)]
    if "id" in raw.columns:
        ids = [text_or_empty(v) for v in raw["id"].tolist()]
    else:
        ids = [f"rlev-{language}-{split or 'all'}-{r}" for r in rows]
    exam_col = next((c for c in EXAM_COLUMNS if c in raw.columns), None)
    columns: dict[str, Any] = {
        "id": ids,
        "exam_id": [text_or_empty(v) for v in raw[exam_col].tolist()] if exam_col else ids,
        "question": [q for _, q in turns],
        "system": [s for s, _ in turns],
        "answer": [text_or_empty(v) for v in raw["label"].tolist()],
        "score": raw["score"].tolist(),
        "total": raw["total"].tolist(),
        "split": [split] * len(raw),
        "source_file": [file] * len(raw),
        "source_row": rows,
    }
    if "difficulty" in raw.columns:
        columns["difficulty"] = [label_or_none(v) for v in raw["difficulty"].tolist()]
    return canonical_frame(columns, len(raw))


def _split_of(path: Path, fallback: str | None) -> str | None:
    found = [s for s in SPLITS if s in _tokens(path.name)]
    return found[0] if len(found) == 1 else fallback


def load_rlev_files(files: list[tuple[Path, str | None]], language: str) -> pd.DataFrame:
    """Read local RLEV files given as ``(path, split)`` pairs."""
    parts = []
    for path, split in files:
        raw, rows = read_rows(path)
        parts.append(frame_from_rlev_rows(raw, rows, str(path), split, language))
    return pd.concat(parts, ignore_index=True)


def _hub_files(hf_id: str, revision: str | None, splits: list[str], language: str) -> list[tuple[Path, str]]:
    """Download the data files of ``hf_id`` for ``splits`` and ``language``; return local paths.

    Files are fetched with ``huggingface_hub`` (the layer ``datasets`` downloads through,
    with the same cache) and parsed by the same reader as a local copy, rather than by
    ``datasets.load_dataset``: its JSON builder needs one Arrow type per field, which a file
    whose ``label`` mixes text and numbers breaks, and one code path serves both.
    """
    from huggingface_hub import hf_hub_download, list_repo_files

    listed = list_repo_files(hf_id, repo_type="dataset", revision=revision)
    out: list[tuple[Path, str]] = []
    for split in splits:
        chosen = pick_files(listed, split, language)
        if not chosen:
            raise SourceError(
                f"{hf_id}: no data file for split {split!r} and language {language!r} among: {', '.join(listed)}"
            )
        for name in chosen:
            local = hf_hub_download(hf_id, name, repo_type="dataset", revision=revision)
            out.append((Path(local), split))
    return out


def load_rlev(cfg: dict, base_dir: Path = Path(".")) -> pd.DataFrame:
    """Load RLEV as canonical records, from the Hub (``hf_id``) or a local copy (``path``).

    ``cfg`` keys (the config schema's ``rlev`` source, defaults filled by ``load_source``):
    ``language`` (``zh`` or ``en``), ``splits``, ``hf_id`` and ``revision`` for the Hub, or
    ``path``: a folder laid out like the Hub repository, or one JSON/JSONL/parquet file
    (``split`` then names its split if its file name does not).
    """
    language = cfg["language"]
    splits = list(cfg["splits"])
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise SourceError(f"RLEV: unknown split(s) {', '.join(unknown)}; choose from {', '.join(SPLITS)}")
    if "path" in cfg:
        path = resolve_path(cfg["path"], base_dir)
        if path.is_dir():
            listed = [str(p.relative_to(path)) for p in sorted(path.rglob("*")) if p.is_file()]
            files: list[tuple[Path, str | None]] = []
            for split in splits:
                chosen = pick_files(listed, split, language)
                if not chosen:
                    raise SourceError(
                        f"{path}: no data file for split {split!r} and language {language!r} "
                        f"among: {', '.join(listed) or '(empty folder)'}"
                    )
                files += [(path / name, split) for name in chosen]
        elif path.is_file():
            files = [(path, _split_of(path, cfg.get("split")))]
        else:
            raise SourceError(f"{path}: no such file or folder")
    else:
        files = _hub_files(cfg["hf_id"], cfg.get("revision"), splits, language)
    return load_rlev_files(files, language)
