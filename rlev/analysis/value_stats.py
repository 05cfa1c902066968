"""How values are distributed: the paper's Figures 3 and 4 and a small table per dataset.

The paper's data is strongly right-skewed (mean v = 0.02, 1.18% of training rows above
0.1); these show whether a dataset looks like that. Everything is read from the prepare
stage's parquet files, so the figures describe exactly the rows the runs train and test on.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from rlev.data import prepare  # noqa: E402
from rlev.report.render import write_table  # noqa: E402


def value_table(dataset_dirs: list[str | Path]) -> pd.DataFrame:
    """Rows, exams and value statistics per dataset and split."""
    records = []
    for d in map(Path, dataset_dirs):
        for split in ("train", "test"):
            part = pd.read_parquet(d / f"{split}.parquet", columns=["exam_id", "value"])
            records.append(
                {
                    "dataset": d.name,
                    "split": split,
                    "rows": len(part),
                    "exams": part["exam_id"].nunique(),
                    **prepare.value_stats(part["value"]),
                }
            )
    return pd.DataFrame(records)


def value_histogram(values: pd.Series, title: str, out: Path) -> None:
    """Histogram of v (log-scaled counts: the mass sits near 0), with mean and share v > 0.1."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.hist(values, bins=np.linspace(0, max(values.max(), 1e-3), 41), color="#4477aa", edgecolor="white")
    ax.set_yscale("log")
    ax.set_xlabel("value v = points / exam total")
    ax.set_ylabel("questions (log scale)")
    ax.set_title(title, fontsize=10)
    ax.axvline(values.mean(), color="#cc6677", linestyle="--", label=f"mean {values.mean():.3f}")
    ax.legend(
        title=f"{len(values):,} rows, {100 * (values > 0.1).mean():.1f}% with v > 0.1", fontsize=8, title_fontsize=8
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=150)
    fig.savefig(out.with_suffix(".svg"))
    plt.close(fig)


def value_stats(datasets: list[str | Path], figures: str | Path, out: Path) -> pd.DataFrame:
    """Figures 3 (train) and 4 (test) for the main dataset (the first); the table for every dataset."""
    main = Path(datasets[0])
    for split, number in (("train", 3), ("test", 4)):
        values = pd.read_parquet(main / f"{split}.parquet", columns=["value"])["value"]
        value_histogram(
            values, f"Figure {number}: values of the {main.name} {split} set", Path(figures) / f"figure{number}.png"
        )
    stats = value_table(datasets)
    shown = pd.DataFrame(
        [[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row] for row in stats.itertuples(index=False)],
        columns=stats.columns,
    )
    write_table(out, stats, "Value statistics per dataset and split", shown, [])
    return stats
