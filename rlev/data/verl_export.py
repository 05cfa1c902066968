"""Export validated records to verl's RL parquet schema (read by ``RLHFDataset``).

One row per question with the columns verl's trainer reads (``data.prompt_key=prompt``):

- ``data_source`` (str): passed to the reward function as ``data_source``;
- ``prompt`` (list of ``{role, content}``): the system turn when not empty, then the user
  turn; verl applies the policy's chat template;
- ``ability`` (str): a free label verl carries along;
- ``reward_model`` (``{style: "rule", ground_truth: answer}``): ``ground_truth`` reaches
  ``compute_score`` as its ``ground_truth`` argument;
- ``extra_info`` (``{index, id, exam_id, question, value, score, total, difficulty, split}``):
  reaches ``compute_score`` as ``extra_info``; the RLEV reward reads ``value`` there, and an
  LLM judge is shown ``question`` (the user turn; verl hands compute_score only the response).

``extra_info`` has the same keys and types on every row (``index`` int64; ``value``,
``score``, ``total`` float64; the rest strings, ``""`` where missing) and is written with
an explicit Arrow schema, so it is a struct column and not a per-row map whose types
depend on the first rows.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

VERL_COLUMNS: tuple[str, ...] = ("data_source", "prompt", "ability", "reward_model", "extra_info")
REQUIRED_COLUMNS: tuple[str, ...] = (
    "id", "exam_id", "question", "system", "answer", "score", "total", "value", "difficulty", "split",
)  # fmt: skip

VERL_SCHEMA = pa.schema(
    [
        pa.field("data_source", pa.string()),
        pa.field("prompt", pa.list_(pa.struct([pa.field("role", pa.string()), pa.field("content", pa.string())]))),
        pa.field("ability", pa.string()),
        pa.field("reward_model", pa.struct([pa.field("style", pa.string()), pa.field("ground_truth", pa.string())])),
        pa.field(
            "extra_info",
            pa.struct(
                [
                    pa.field("index", pa.int64()),
                    pa.field("id", pa.string()),
                    pa.field("exam_id", pa.string()),
                    pa.field("question", pa.string()),
                    pa.field("value", pa.float64()),
                    pa.field("score", pa.float64()),
                    pa.field("total", pa.float64()),
                    pa.field("difficulty", pa.string()),
                    pa.field("split", pa.string()),
                ]
            ),
        ),
    ]
)


def _label(value) -> str:
    """Optional label as text: None / NaN -> ``""`` (one type for every row)."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value)


def to_verl_frame(df: pd.DataFrame, data_source: str, ability: str = "exam") -> pd.DataFrame:
    """Build verl's RL frame from validated records (the ``kept`` frame of ``validate_records``).

    ``extra_info.index`` is the row's position in ``df`` (0-based), which is what verl
    reports back as ``index``.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(
            f"to_verl_frame needs validated records; missing column(s) {', '.join(missing)} "
            "(run rlev.data.validate.validate_records first: it adds 'value')"
        )
    systems = df["system"].map(_label).tolist()
    questions = df["question"].astype(str).tolist()
    prompts = [
        ([{"role": "system", "content": s}] if s else []) + [{"role": "user", "content": q}]
        for s, q in zip(systems, questions)
    ]
    extra = [
        {
            "index": i,
            "id": str(qid),
            "exam_id": str(exam),
            "question": q,
            "value": float(v),
            "score": float(s),
            "total": float(t),
            "difficulty": _label(d),
            "split": _label(sp),
        }
        for i, (qid, exam, q, v, s, t, d, sp) in enumerate(
            zip(
                df["id"], df["exam_id"], questions, df["value"], df["score"], df["total"], df["difficulty"], df["split"]
            )
        )
    ]
    return pd.DataFrame(
        {
            "data_source": [data_source] * len(df),
            "prompt": prompts,
            "ability": [ability] * len(df),
            "reward_model": [{"style": "rule", "ground_truth": str(a)} for a in df["answer"].tolist()],
            "extra_info": extra,
        },
        columns=list(VERL_COLUMNS),
    )


def write_verl_parquet(df: pd.DataFrame, path: str | Path, data_source: str, ability: str = "exam") -> Path:
    """Write validated records as a verl RL parquet file at ``path``; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = to_verl_frame(df, data_source, ability)
    table = pa.Table.from_pandas(frame, schema=VERL_SCHEMA, preserve_index=False)
    pq.write_table(table, path)
    return path
