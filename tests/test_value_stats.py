import pandas as pd
import pytest

from rlev.analysis.value_stats import value_stats, value_table


@pytest.fixture
def dataset(tmp_path):
    d = tmp_path / "toy"
    d.mkdir()
    pd.DataFrame({"exam_id": ["a", "a", "b", "b"], "value": [0.05, 0.15, 0.2, 0.6]}).to_parquet(d / "train.parquet")
    pd.DataFrame({"exam_id": ["c"], "value": [0.01]}).to_parquet(d / "test.parquet")
    return d


def test_value_table(dataset):
    table = value_table([dataset]).set_index("split")
    assert table.loc["train", "rows"] == 4 and table.loc["train", "exams"] == 2
    assert table.loc["train", "mean_v"] == pytest.approx(0.25)
    assert table.loc["train", "median_v"] == pytest.approx(0.175)
    assert table.loc["train", "share_v_gt_0.1"] == pytest.approx(0.75)
    assert table.loc["test", "share_v_gt_0.1"] == 0


def test_value_stats_writes_figures_3_and_4(dataset, tmp_path):
    value_stats([dataset], tmp_path / "figures", tmp_path / "tables" / "value_stats")
    for name in ("figure3.png", "figure3.svg", "figure4.png", "figure4.svg"):
        assert (tmp_path / "figures" / name).stat().st_size > 1000
    assert "| toy | train | 4 | 2 |" in (tmp_path / "tables" / "value_stats.md").read_text()
