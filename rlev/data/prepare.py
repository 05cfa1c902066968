"""The prepare stage: load a source, validate every row, compute v, split by exam, write.

Outputs, in `results/data/<dataset>/`:
    train.parquet, test.parquet   canonical records + `value` (v = score / total)
    verl/train.parquet, verl/test.parquet   the same rows in verl's RL dataset schema
    rejects.csv                   every input row that was not kept, with the reason
    stats.json                    row and exam counts, value statistics per split

Invariant (checked here, printed to the log): input rows = kept + rejected.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from rlev.data.sources import load_source
from rlev.data.validate import DataValidationError, validate_records, write_rejects
from rlev.data.verl_export import write_verl_parquet

log = logging.getLogger(__name__)


def split_by_exam(df: pd.DataFrame, test_share: float, seed: int) -> pd.Series:
    """Assign whole exams to train or test (never one exam in both); seeded.

    Keeps the source's own split when every row has one. At least one exam goes to each
    side when there are two or more exams.
    """
    given = df["split"]
    if given.notna().all():
        return given.astype(str)
    if given.notna().any():
        raise DataValidationError(
            f"{int(given.notna().sum())} rows have a split and {int(given.isna().sum())} do not; "
            "give every row a split or none (first row without one: "
            f"{df.loc[given.isna(), 'source_file'].iloc[0]} row {df.loc[given.isna(), 'source_row'].iloc[0]})"
        )
    exams = np.array(sorted(df["exam_id"].unique()))
    rng = np.random.default_rng(seed)
    rng.shuffle(exams)
    n_test = min(max(1, math.ceil(test_share * len(exams))), len(exams) - 1) if len(exams) > 1 else 0
    test_exams = set(exams[:n_test])
    return df["exam_id"].map(lambda e: "test" if e in test_exams else "train")


def value_stats(values: pd.Series) -> dict:
    return {
        "mean_v": float(values.mean()),
        "median_v": float(values.median()),
        "share_v_gt_0.1": float((values > 0.1).mean()),
    }


def prepare(
    source_cfg: dict,
    out_dir: Path,
    dataset: str,
    test_share: float,
    split_seed: int,
    max_reject_share: float,
    rejects_log: Path | None = None,
) -> dict:
    """Run the whole prepare stage for one dataset; returns the stats written to stats.json.

    `rejects_log`: a copy of rejects.csv in a folder that survives a failed job (Snakemake deletes
    a failed job's outputs, not its logs), written on success and on a validation error alike.
    """
    out_dir = Path(out_dir)
    rejects = out_dir / "rejects.csv"
    try:
        stats = _prepare(source_cfg, out_dir, dataset, test_share, split_seed, max_reject_share)
    except DataValidationError as err:
        if rejects_log is None or not rejects.exists():
            raise
        _copy(rejects, Path(rejects_log))
        raise DataValidationError(
            f"{err}\nEvery rejected row, with file, row, field and reason: {rejects_log}", err.result
        ) from None
    if rejects_log is not None:
        _copy(rejects, Path(rejects_log))
    return stats


def _copy(src: Path, dst: Path) -> None:
    import shutil

    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def _prepare(
    source_cfg: dict, out_dir: Path, dataset: str, test_share: float, split_seed: int, max_reject_share: float
) -> dict:
    raw = load_source(source_cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        result = validate_records(raw, max_reject_share=max_reject_share, dataset=dataset)
    except DataValidationError as err:
        if err.result is not None:  # the report of what was wrong survives the failure
            write_rejects(err.result.rejects, out_dir / "rejects.csv")
        raise
    for w in result.warnings:
        log.warning(w)
    kept, rejects = result.kept.copy(), result.rejects
    if len(kept) + len(rejects) != len(raw):  # the promise of this stage: nothing lost
        raise AssertionError(f"{dataset}: {len(raw)} input rows but {len(kept)} kept + {len(rejects)} rejected")
    kept["split"] = split_by_exam(kept, test_share, split_seed)

    write_rejects(rejects, out_dir / "rejects.csv")
    stats = {
        "dataset": dataset,
        "input_rows": len(raw),
        "kept_rows": len(kept),
        "rejected_rows": len(rejects),
        "warnings": list(result.warnings),
    }
    for split in ("train", "test"):
        part = kept[kept["split"] == split].reset_index(drop=True)
        if part.empty:
            raise DataValidationError(f"{dataset}: the {split} split is empty after validation and splitting")
        part.to_parquet(out_dir / f"{split}.parquet", index=False)
        write_verl_parquet(part, out_dir / "verl" / f"{split}.parquet", data_source=dataset)
        stats[split] = {"rows": len(part), "exams": int(part["exam_id"].nunique()), **value_stats(part["value"])}
    (out_dir / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    log.info(
        "%s: %d input rows = %d kept + %d rejected (train %d rows / %d exams, test %d rows / %d exams)",
        dataset,
        len(raw),
        len(kept),
        len(rejects),
        stats["train"]["rows"],
        stats["train"]["exams"],
        stats["test"]["rows"],
        stats["test"]["exams"],
    )
    return stats
