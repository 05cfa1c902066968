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

from rlev.data.prepare import value_stats  # noqa: E402


def value_table(dataset_dirs: list[str | Path]) -> pd.DataFrame:
    """Rows, exams and value statistics per dataset and split."""
    records = []
    for d in map(Path, dataset_dirs):
        for split in ("train", "test"):
            part = pd.read_parquet(d / f"{split}.parquet", columns=["exam_id", "value"])
            records.append({"dataset": d.name, "split": split, "rows": len(part),
                            "exams": part["exam_id"].nunique(), **value_stats(part["value"])})
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
    ax.legend(title=f"{len(values):,} rows, {100 * (values > 0.1).mean():.1f}% with v > 0.1", fontsize=8,
              title_fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=150)
    fig.savefig(out.with_suffix(".svg"))
    plt.close(fig)


def write_value_report(dataset_dir: Path, other_dirs: list[Path], figures: Path, table: Path) -> None:
    """Figures 3 (train) and 4 (test) for the main dataset; the table for every dataset."""
    name = Path(dataset_dir).name
    for split, number in (("train", 3), ("test", 4)):
        values = pd.read_parquet(Path(dataset_dir) / f"{split}.parquet", columns=["value"])["value"]
        value_histogram(values, f"Figure {number}: values of the {name} {split} set",
                        figures / f"figure{number}.png")
    stats = value_table([dataset_dir, *other_dirs])
    table.parent.mkdir(parents=True, exist_ok=True)
    stats.to_csv(table.with_suffix(".csv"), index=False)
    header = "| " + " | ".join(stats.columns) + " |\n|" + "---|" * len(stats.columns) + "\n"
    rows = "".join(
        "| " + " | ".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row) + " |\n"
        for row in stats.itertuples(index=False)
    )
    table.with_suffix(".md").write_text("# Value statistics per dataset and split\n\n" + header + rows)
