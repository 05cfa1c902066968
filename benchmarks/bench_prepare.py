"""Time the data path at the paper's size: load (table source) -> validate -> verl export.

    python benchmarks/bench_prepare.py                 # 100,000 rows, 4,000 exams
    python benchmarks/bench_prepare.py --rows 20000    # smaller

Generates a canonical dataset of ``--rows`` questions in ``--exams`` exams (the paper: 100k
training questions; points drawn so that exams sum to at most their total, with a
right-skewed value, mean v ~ 0.03; the paper's is 0.02), writes it as JSONL and parquet in a
temporary folder, and prints one line per stage with wall time and rows per second.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from rlev.data.sources import load_source
from rlev.data.validate import validate_records
from rlev.data.verl_export import write_verl_parquet


def make_exams(rows: int, exams: int, seed: int = 0) -> pd.DataFrame:
    """Canonical records: ``rows`` questions spread over ``exams`` exams, 80/20 split by exam."""
    rng = np.random.default_rng(seed)
    exam = np.sort(rng.integers(0, exams, rows))
    total = np.where(exam % 2 == 0, 150, 100)[exam]
    # Many 1-5 point items and a few big ones (essays), as in real papers.
    score = np.where(rng.random(rows) < 0.97, rng.integers(1, 6, rows), rng.integers(10, 26, rows))
    # Shrink the points of exams that would overflow their total, as a real paper cannot.
    points = np.bincount(exam, weights=score, minlength=exams)[exam]
    score = np.where(points > total, np.maximum(1, np.floor(score * total / points)), score).astype(int)
    test_exams = rng.random(exams) < 0.2
    return pd.DataFrame(
        {
            "id": [f"q{i:06d}" for i in range(rows)],
            "exam_id": [f"exam-{e:05d}" for e in exam],
            "question": [f"Question {i}: what is {i % 97} + {i % 13}?" for i in range(rows)],
            "system": "",
            "answer": [str(i % 97 + i % 13) for i in range(rows)],
            "score": score,
            "total": total,
            "difficulty": None,
            "split": np.where(test_exams[exam], "test", "train"),
        }
    )


def timed(label: str, rows: int, fn, results: list):
    start = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - start
    results.append((label, rows, seconds))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--exams", type=int, default=4_000)
    args = parser.parse_args()

    results: list[tuple[str, int, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        frame = make_exams(args.rows, args.exams)
        with (folder / "exams.jsonl").open("w", encoding="utf-8") as fh:
            for rec in frame.to_dict(orient="records"):
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        frame.to_parquet(folder / "exams.parquet")

        loaded = timed(
            "load table (JSONL)",
            args.rows,
            lambda: load_source({"source": "table", "path": "exams.jsonl"}, folder),
            results,
        )
        timed(
            "load table (parquet)",
            args.rows,
            lambda: load_source({"source": "table", "path": "exams.parquet"}, folder),
            results,
        )
        result = timed("validate", args.rows, lambda: validate_records(loaded, dataset="bench"), results)
        kept = result.kept
        timed(
            "verl export (parquet)",
            len(kept),
            lambda: write_verl_parquet(kept, folder / "train.parquet", "bench"),
            results,
        )

    print(
        f"{args.rows:,} rows, {args.exams:,} exams; kept {len(kept):,}, rejected {len(result.rejects):,}, "
        f"warnings {len(result.warnings)}, mean v {kept['value'].mean():.4f}"
    )
    print(f"| {'stage':<24} | {'rows':>8} | {'seconds':>8} | {'rows/s':>10} |")
    print(f"|{'-' * 26}|{'-' * 10}|{'-' * 10}|{'-' * 12}|")
    for label, rows, seconds in results:
        print(f"| {label:<24} | {rows:>8,} | {seconds:>8.2f} | {rows / seconds:>10,.0f} |")
    print(
        f"| {'total (JSONL path)':<24} | {args.rows:>8,} | "
        f"{sum(s for lbl, _, s in results if lbl != 'load table (parquet)'):>8.2f} | {'':>10} |"
    )


if __name__ == "__main__":
    main()
