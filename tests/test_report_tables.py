"""Table 8, the bootstrap table and the HTML rendering, on fixture run directories; the HTML report."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from rlev.metrics import evaluation_metrics
from rlev.report import bootstrap_table, markdown_to_html, table8, table_html


def write_run(root, estimator, reward, seed, correct, values, lengths=None):
    """A run directory as the pipeline writes it: config.yaml, eval/samples.parquet, eval/metrics.json."""
    run = root / "runs" / estimator / reward / f"seed{seed}"
    (run / "eval").mkdir(parents=True)
    config = {"estimator": {"name": estimator, "adv_estimator": estimator}, "scale": {"name": "tiny"},
              "reward": {"variant": reward, "alpha": 10, "form": "additive_clipped"}, "seed": seed}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    samples = pd.DataFrame({"id": [f"q{i}" for i in range(len(values))], "value": values, "correct": correct,
                            "length": lengths if lengths is not None else np.full(len(values), 10)})
    samples.to_parquet(run / "eval" / "samples.parquet")
    (run / "eval" / "metrics.json").write_text(json.dumps(evaluation_metrics(samples)))
    return str(run)


VALUES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]  # top 20% = 0.9, 1.0; bottom 20% = 0.1, 0.2


def test_table8_by_hand(tmp_path):
    runs = [
        write_run(tmp_path, "rloo", "correctness", 0, [1, 1, 0, 0, 1, 0, 0, 0, 0, 1], VALUES),  # 40; top 50; bottom 100
        write_run(tmp_path, "rloo", "human", 0, [0, 1, 0, 1, 1, 1, 0, 1, 1, 1], VALUES),        # 70; top 100; bottom 50
        write_run(tmp_path, "rloo", "human", 1, [0, 0, 0, 1, 1, 1, 0, 1, 1, 0], VALUES),        # 50; top 50; bottom 0
    ]
    table = table8(runs, tmp_path / "tables" / "table8")
    base = table[table["reward"] == "correctness"].iloc[0]
    assert (base["acc"], base["acc_top20"], base["acc_bottom20"], base["seeds"]) == (40, 50, 100, 1)
    assert np.isnan(base["acc_lo"])
    rlev = table[table["reward"] == "human-aligned"].iloc[0]
    assert (rlev["acc"], rlev["acc_top20"], rlev["acc_bottom20"], rlev["seeds"]) == (60, 75, 25, 2)
    # 95% t-interval of {70, 50}: 60 +- t(0.975, 1) * 14.142 / sqrt(2) = 60 +- 127.06
    assert rlev["acc_lo"] == pytest.approx(60 - 127.062, abs=0.01)
    assert rlev["runs"] == ";".join(runs[1:])
    md = (tmp_path / "tables" / "table8.md").read_text()
    assert "| RLOO | tiny | human-aligned | 60.0 [-67.1, 187.1] | 75.0 [" in md
    assert "| RLOO | tiny | correctness | 40.0 | 50.0 | 100.0 | 1 |" in md
    assert pd.read_csv(tmp_path / "tables" / "table8.csv")["runs"].tolist() == [runs[0], ";".join(runs[1:])]


def test_bootstrap_table_pairs_runs_by_estimator_and_seed(tmp_path):
    n = 200
    values = np.linspace(0.01, 0.2, n)
    runs = [
        write_run(tmp_path, "rloo", "correctness", 0, np.arange(n) < 100, values),
        write_run(tmp_path, "rloo", "human", 0, np.arange(n) < 120, values),
        write_run(tmp_path, "grpo", "correctness", 0, np.arange(n) % 2 == 0, values),
        write_run(tmp_path, "grpo", "human", 0, np.arange(n) % 2 == 0, values),
    ]
    table = bootstrap_table(runs, tmp_path / "tables" / "bootstrap", resamples=500, seed=0)
    rloo = table[(table["estimator"] == "RLOO") & (table["metric"] == "acc")].iloc[0]
    assert rloo["diff"] == pytest.approx(10.0) and rloo["lo"] < 10 < rloo["hi"] and rloo["share_positive"] == 1.0
    rloo_h = table[(table["estimator"] == "RLOO") & (table["metric"] == "h_acc")].iloc[0]
    assert rloo_h["diff"] == pytest.approx(100 * values[100:120].sum() / values.sum())
    assert rloo["runs"] == f"{runs[1]} - {runs[0]}"
    grpo = table[table["estimator"].str.startswith("GRPO")]
    assert (grpo["diff"] == 0).all() and (grpo["share_positive"] == 0).all()
    assert "| RLOO | tiny | acc | +10.00 | [" in (tmp_path / "tables" / "bootstrap.md").read_text()
    with pytest.raises(ValueError, match="needs both"):
        bootstrap_table(runs[:1], tmp_path / "x")


def test_markdown_tables_render_to_html_with_their_runs(tmp_path):
    md = tmp_path / "t.md"
    md.write_text("# Table 9: a & b\n\n| est | acc |\n|---|---|\n| RLOO | 1.0 [0.5, 1.5] |\n\nNote `x` < y.\n")
    csv = tmp_path / "t.csv"
    pd.DataFrame({"est": ["RLOO"], "runs": ["results/runs/a;results/runs/b"]}).to_csv(csv, index=False)
    table_html(md, tmp_path / "t.html", csv)
    html = (tmp_path / "t.html").read_text()
    assert "<title>Table 9: a &amp; b</title>" in html
    assert "<tr><th>est</th><th>acc</th></tr>" in html and "<td>1.0 [0.5, 1.5]</td>" in html
    assert "<p>Note <code>x</code> &lt; y.</p>" in html
    assert "Run directories: <code>results/runs/a</code>, <code>results/runs/b</code>" in html
    assert "---" not in markdown_to_html(md.read_text())


def test_table1_says_which_verifier_scored_and_where_the_kl_went(tmp_path):
    from rlev.report import table1

    plain = write_run(tmp_path, "rloo", "human", 0, [True] * 10, VALUES)
    judged = write_run(tmp_path, "grpo", "human", 0, [True] * 10, VALUES)
    metrics = json.loads((tmp_path / "runs/grpo/human/seed0/eval/metrics.json").read_text())
    (tmp_path / "runs/grpo/human/seed0/eval/metrics.json").write_text(json.dumps({**metrics, "verifier": "judge:J"}))
    config = yaml.safe_load((tmp_path / "runs/grpo/human/seed0/config.yaml").read_text())
    config["estimator"].update(use_kl_loss=True, kl_loss_coef=0.001, kl_loss_type="low_var_kl")
    (tmp_path / "runs/grpo/human/seed0/config.yaml").write_text(yaml.safe_dump(config))
    table1([plain, judged], [], tmp_path / "table1")
    text = (tmp_path / "table1.md").read_text()
    assert "Scored by: judge:J, rule; KL to the initial policy: loss 0.001 (low_var_kl), none." in text
