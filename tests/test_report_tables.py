"""The tables (rlev.report.builders) and their CSV, Markdown and HTML, on fixture run directories; the landing page."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from rlev.metrics import evaluation_metrics
from rlev.report.builders import bootstrap, table1, table4, table5, table8


def write_run(root, estimator, reward, seed, correct, values, lengths=None, alpha=10, exams=None, **config_extra):
    """A run directory as the pipeline writes it: config.yaml, eval/samples.parquet, eval/metrics.json."""
    tag = reward if reward == "correctness" else f"{reward}-a{alpha}"
    run = root / "runs" / estimator / tag / f"seed{seed}"
    (run / "eval").mkdir(parents=True)
    config = {
        "estimator": {"name": estimator, "adv_estimator": estimator},
        "scale": {"name": "tiny"},
        "reward": {"variant": reward, "alpha": alpha, "form": "additive_clipped"},
        "seed": seed,
        "out_dir": str(run),
        "dataset": {"name": "d"},
        **config_extra,
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    ids = [f"q{i}" for i in range(len(values))]
    samples = pd.DataFrame(
        {
            "id": ids,
            "exam_id": exams if exams is not None else ids,
            "value": values,
            "correct": correct,
            "length": lengths if lengths is not None else np.full(len(values), 10),
        }
    )
    samples.to_parquet(run / "eval" / "samples.parquet")
    (run / "eval" / "metrics.json").write_text(json.dumps(evaluation_metrics(samples)))
    return str(run)


def write_start(root, correct, values):
    """The starting policy's evaluation folder (metrics.json, samples.parquet)."""
    folder = root / "models" / "sft_eval"
    folder.mkdir(parents=True)
    samples = pd.DataFrame(
        {
            "id": [f"q{i}" for i in range(len(values))],
            "value": values,
            "correct": correct,
            "length": np.full(len(values), 12),
        }
    )
    samples.to_parquet(folder / "samples.parquet")
    (folder / "metrics.json").write_text(json.dumps({**evaluation_metrics(samples), "model": "sft"}))
    return str(folder)


VALUES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]  # top 20% = 0.9, 1.0; bottom 20% = 0.1, 0.2


def test_table8_by_hand(tmp_path):
    runs = [
        write_run(tmp_path, "rloo", "correctness", 0, [1, 1, 0, 0, 1, 0, 0, 0, 0, 1], VALUES),  # 40; top 50; bottom 100
        write_run(tmp_path, "rloo", "human", 0, [0, 1, 0, 1, 1, 1, 0, 1, 1, 1], VALUES),  # 70; top 100; bottom 50
        write_run(tmp_path, "rloo", "human", 1, [0, 0, 0, 1, 1, 1, 0, 1, 1, 0], VALUES),  # 50; top 50; bottom 0
    ]
    start = write_start(tmp_path, [1, 1, 0, 0, 0, 0, 0, 0, 0, 0], VALUES)  # 20; top 0; bottom 100
    table = table8(runs, tmp_path / "tables" / "table8", [start])
    first = table.iloc[0]
    assert first["estimator"] == "starting policy (no RL)" and (first["acc"], first["acc_top20"]) == (20, 0)
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
    assert "| RLOO | tiny | correctness | 40.0 (n=1) | 50.0 (n=1) | 100.0 (n=1) | 1 |" in md
    assert "| starting policy (no RL) | tiny | - | 20.0 | 0.0 | 100.0 | - (one model) |" in md
    assert "alpha = 10, form additive_clipped" in md
    assert pd.read_csv(tmp_path / "tables" / "table8.csv")["runs"].tolist() == [start, runs[0], ";".join(runs[1:])]


def test_only_seeds_are_averaged_two_alphas_are_two_rows(tmp_path):
    """experiments.main.alphas: [5, 10] -> one row per alpha, each over its own seeds (issue: not "2 seeds")."""
    v = VALUES
    runs = [
        write_run(tmp_path, "rloo", "correctness", 0, [1] * 5 + [0] * 5, v),
        write_run(tmp_path, "rloo", "human", 0, [1] * 6 + [0] * 4, v, alpha=5),
        write_run(tmp_path, "rloo", "human", 1, [1] * 8 + [0] * 2, v, alpha=5),
        write_run(tmp_path, "rloo", "human", 0, [1] * 9 + [0] * 1, v, alpha=10),
    ]
    start = write_start(tmp_path, [1] * 3 + [0] * 7, v)
    table = table1(runs, [start], tmp_path / "t1")
    assert list(table["alpha"]) == ["-", "-", "5", "10"]
    human = table[table["reward"] == "human-aligned"].set_index("alpha")
    assert (human.loc["5", "acc"], human.loc["5", "seeds"]) == (70.0, 2)
    assert (human.loc["10", "acc"], human.loc["10", "seeds"]) == (90.0, 1)
    md = (tmp_path / "t1.md").read_text()
    assert "| estimator | scale | reward | alpha | acc |" in md
    assert "| RLOO | tiny | human-aligned | 10 | 90.0 (n=1) |" in md
    assert "alpha = 10, form additive_clipped; alpha = 5, form additive_clipped" in md
    # any other parameter that differs splits rows too; the same seed twice in one setting is refused
    other = write_run(tmp_path / "b", "rloo", "correctness", 1, [1] * 10, v, scale={"name": "tiny", "lr": 1e-4})
    table = table1(runs[:1] + [other], [], tmp_path / "t2")
    assert len(table) == 2 and "scale.lr" in table.columns
    copy = write_run(tmp_path / "c", "rloo", "correctness", 0, [1] * 10, v)
    with pytest.raises(ValueError, match="same setting and seed 0"):
        table1(runs[:1] + [copy], [], tmp_path / "t3")


def test_ablation_tables_start_with_the_starting_policy_and_say_when_uniform_is_a_no_op(tmp_path):
    v = VALUES
    runs = [write_run(tmp_path, "rloo", r, 0, [1] * 5 + [0] * 5, v) for r in ("correctness", "uniform", "human")]
    start = write_start(tmp_path, [1] * 3 + [0] * 7, v)
    table = table4(runs, tmp_path / "t4", [start])
    assert table.iloc[0]["estimator"] == "starting policy (no RL)" and table.iloc[0]["acc"] == 30.0
    md = (tmp_path / "t4.md").read_text()
    assert "Note: this table: estimator 'rloo'" in md and "AdamW's step does not change" in md
    # with an entropy term, uniform scaling changes the update: no note
    runs_e = [write_run(tmp_path / "e", "rloo", r, 0, [1] * 5 + [0] * 5, v) for r in ("correctness", "uniform")]
    for d in runs_e:
        cfg = yaml.safe_load((Path(d) / "config.yaml").read_text())
        cfg["estimator"]["entropy_coeff"] = 0.01
        (Path(d) / "config.yaml").write_text(yaml.safe_dump(cfg))
    table4(runs_e, tmp_path / "t4e", [start])
    assert "AdamW" not in (tmp_path / "t4e.md").read_text()
    table5(runs[2:], tmp_path / "t5", [start])
    assert "| starting policy (no RL) | tiny | - | - | - | 30.0 |" in (tmp_path / "t5.md").read_text()


def test_bootstrap_table_pairs_runs_by_estimator_and_seed(tmp_path):
    n = 200
    values = np.linspace(0.01, 0.2, n)
    runs = [
        write_run(tmp_path, "rloo", "correctness", 0, np.arange(n) < 100, values),
        write_run(tmp_path, "rloo", "human", 0, np.arange(n) < 120, values),
        write_run(tmp_path, "grpo", "correctness", 0, np.arange(n) % 2 == 0, values),
        write_run(tmp_path, "grpo", "human", 0, np.arange(n) % 2 == 0, values),
    ]
    table = bootstrap(runs, tmp_path / "tables" / "bootstrap", resamples=500, seed=0, cluster="prompt")
    rloo = table[(table["estimator"] == "RLOO") & (table["metric"] == "acc")].iloc[0]
    assert rloo["diff"] == pytest.approx(10.0) and rloo["lo"] < 10 < rloo["hi"] and rloo["share_positive"] == 1.0
    rloo_h = table[(table["estimator"] == "RLOO") & (table["metric"] == "h_acc")].iloc[0]
    assert rloo_h["diff"] == pytest.approx(100 * values[100:120].sum() / values.sum())
    assert rloo["runs"] == f"{runs[1]} - {runs[0]}"
    grpo = table[table["estimator"].str.startswith("GRPO")]
    assert (grpo["diff"] == 0).all() and (grpo["share_positive"] == 0).all()
    assert (
        "| RLOO | tiny | 10 | additive_clipped | acc | +10.00 | [" in (tmp_path / "tables" / "bootstrap.md").read_text()
    )
    assert "Test prompts resampled" in (tmp_path / "tables" / "bootstrap.md").read_text()
    with pytest.raises(ValueError, match="needs both"):
        bootstrap(runs[:1], tmp_path / "x")


def test_a_table_is_written_as_csv_markdown_and_html_with_its_runs(tmp_path):
    from rlev.report.render import write_table

    table = pd.DataFrame({"est": ["RLOO"], "acc": [1.0], "runs": ["results/runs/a;results/runs/b"]})
    shown = pd.DataFrame({"est": ["RLOO"], "acc": ["1.0 [0.5, 1.5]"]})
    write_table(tmp_path / "t", table, "Table 9: a & b", shown, ["Note `x` < y.\n"])
    assert pd.read_csv(tmp_path / "t.csv").columns.tolist() == ["est", "acc", "runs"]
    md = (tmp_path / "t.md").read_text()
    assert md == (
        "# Table 9: a & b\n\n| est | acc |\n|---|---|\n| RLOO | 1.0 [0.5, 1.5] |\n\nNote `x` < y.\n"
        "\n\nRun directories: `results/runs/a`, `results/runs/b`\n"
    )
    html = (tmp_path / "t.html").read_text()
    assert "<title>Table 9: a &amp; b</title>" in html
    assert "<th>est</th>" in html and "<td>1.0 [0.5, 1.5]</td>" in html  # pandas' to_html
    assert "<p>Note <code>x</code> &lt; y.</p>" in html
    assert "<li><code>results/runs/a</code></li>" in html and "<li><code>results/runs/b</code></li>" in html
    assert "---" not in html


def test_table1_says_which_verifier_scored_and_where_the_kl_went(tmp_path):

    plain = write_run(tmp_path, "rloo", "human", 0, [True] * 10, VALUES)
    judged = write_run(tmp_path, "grpo", "human", 0, [True] * 10, VALUES)
    metrics = json.loads((Path(judged) / "eval/metrics.json").read_text())
    (Path(judged) / "eval/metrics.json").write_text(json.dumps({**metrics, "verifier": "judge:J"}))
    config = yaml.safe_load((Path(judged) / "config.yaml").read_text())
    config["estimator"].update(use_kl_loss=True, kl_loss_coef=0.001, kl_loss_type="low_var_kl")
    (Path(judged) / "config.yaml").write_text(yaml.safe_dump(config))
    table1([plain, judged], [], tmp_path / "table1")
    text = (tmp_path / "table1.md").read_text()
    assert "Scored by: judge:J, rule; KL to the initial policy: loss 0.001 (low_var_kl), none." in text


def test_bootstrap_table_resamples_exams_by_default_and_says_so(tmp_path):
    n = 100
    exams = [f"e{i // 10}" for i in range(n)]
    runs = [
        write_run(tmp_path, "rloo", "correctness", 0, np.zeros(n, bool), np.ones(n), exams=exams),
        write_run(tmp_path, "rloo", "human", 0, np.arange(n) < 10, np.ones(n), exams=exams),
    ]
    table = bootstrap(runs, tmp_path / "b", resamples=2000, seed=0)
    acc = table[table["metric"] == "acc"].iloc[0]
    assert (acc["cluster"], acc["clusters"], acc["diff"]) == ("exam", 10, pytest.approx(10.0))
    assert acc["lo"] == 0.0  # a resample without exam e0 shows no difference
    md = (tmp_path / "b.md").read_text()
    assert "resampling whole exams" in md and "cluster bootstrap" in md and "| exams |" in md


def test_table3_groups_by_true_difficulty_and_reports_the_predictor(tmp_path):
    from rlev.report.builders import table3

    # 4 test prompts: labels say primary x2 / phd x2, the truth is primary, phd, phd, phd
    ids = ["t0", "t1", "t2", "t3"]
    truth = tmp_path / "exams.jsonl"
    truth.write_text(
        "".join(
            json.dumps({"id": i, "true_difficulty": d}) + "\n" for i, d in zip(ids, ["primary", "phd", "phd", "phd"])
        )
    )
    runs = []
    for reward, correct in (("correctness", [1, 0, 1, 1]), ("weak", [1, 1, 0, 0])):
        d = write_run(tmp_path, "rloo", reward, 0, correct, [0.01, 0.08, 0.08, 0.08])
        samples = pd.read_parquet(Path(d) / "eval" / "samples.parquet")
        samples["id"] = ids
        samples["difficulty"] = ["primary", "primary", "phd", "phd"]
        samples.to_parquet(Path(d) / "eval" / "samples.parquet")
        runs.append(d)
    start = Path(write_start(tmp_path, [0, 0, 0, 1], [0.01, 0.08, 0.08, 0.08]))
    s = pd.read_parquet(start / "samples.parquet").assign(id=ids, difficulty=["primary", "primary", "phd", "phd"])
    s.to_parquet(start / "samples.parquet")
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"exact_match": 62.5, "pearson_r": 0.8, "parsed": 8, "n": 8}))
    stats = tmp_path / "label_stats.json"
    m = {"exact_match": 70.0, "pearson_r": None, "parsed": 10, "n": 10}
    stats.write_text(
        json.dumps(
            {
                "rows": 10,
                "imputed": 0,
                "versus_true_points": m,
                "versus_weak_label": m,
                "weak_label_versus_true_points": m,
            }
        )
    )
    table = table3(runs, [str(start)], tmp_path / "t3", truth, [str(metrics), str(stats)]).set_index("reward")
    assert table.loc["correctness", "acc_primary"] == 100.0 and table.loc["correctness", "acc_phd"] == pytest.approx(
        200 / 3
    )
    assert table.loc["weak (difficulty)", "acc_phd"] == pytest.approx(100 / 3)
    assert table.loc["-", "acc_phd"] == pytest.approx(100 / 3) and table.loc["-", "acc_primary"] == 0.0
    md = (tmp_path / "t3.md").read_text()
    assert (
        "group test prompts by true difficulty: {'primary': 1, 'junior': 0, 'senior': 0, 'university': 0, 'phd': 3}"
        in md
    )
    assert (
        "exam test split: exact match 62.5%, Pearson r 0.80 (8 of 8 replies parsed); the paper's: exact match 79.5%, r 0.91"
        in md
    )
    assert "against the weak label's points: exact match 70.0%, Pearson r undefined" in md
    # without the truth file, the label groups (WebInstruct has no other difficulty)
    table = table3(runs, [], tmp_path / "t3b").set_index("reward")
    assert table.loc["correctness", "acc_primary"] == 50.0
    assert "group test prompts by label" in (tmp_path / "t3b.md").read_text()


def test_table2_shows_the_starting_policy_beside_chance_or_its_absence(tmp_path):
    from rlev.report.builders import table2

    runs = [
        write_run(tmp_path, "rloo", r, s, [1] * 10, VALUES) for r, s in (("correctness", 0), ("human", 0), ("human", 1))
    ]
    accs = {runs[0]: 20.0, runs[1]: 30.0, runs[2]: 40.0}
    for d, acc in accs.items():
        for b in ("sums", "mc"):
            (Path(d) / "ood" / b).mkdir(parents=True)
            (Path(d) / "ood" / b / "metrics.json").write_text(json.dumps({"acc": acc}))
    base = tmp_path / "base"
    for b, chance in (("sums", None), ("mc", 25.0)):
        (base / b).mkdir(parents=True)
        (base / b / "metrics.json").write_text(
            json.dumps({"acc": 10.0, "chance": chance, "n": 300, "unanswered": 2.0, "model": "sft"})
        )
    table = table2(runs, str(base), ["sums", "mc"], tmp_path / "t2")
    assert table["sums"].tolist() == [10.0, 20.0, 35.0] and table["seeds"].tolist() == [0, 1, 2]
    md = (tmp_path / "t2.md").read_text()
    assert "| starting policy (no RL) | tiny | - | 10.0 | 10.0 | - (one model) |" in md
    assert "sums: 300 questions, no chance level (a free-form answer); the starting policy (sft) scores 10.0%" in md
    assert "mc: 300 questions, chance 25.0%; the starting policy (sft) scores 10.0%" in md


def test_landing_page_says_what_ran_and_the_headline(tmp_path):
    from docutils.core import publish_parts

    from rlev.report.landing import landing

    n = 20
    exams = [f"e{i // 5}" for i in range(n)]
    runs = [
        write_run(tmp_path, "rloo", r, s, np.arange(n) < k, np.ones(n), exams=exams)
        for r, s, k in (("correctness", 0, 10), ("correctness", 1, 12), ("human", 0, 14), ("human", 1, 16))
    ]
    for d in runs:
        (Path(d) / "train").mkdir()
        (Path(d) / "train" / "metrics.jsonl").write_text(
            json.dumps({"step": 0, "time_generate": 30.0, "time_update": 15.0}) + "\n"
        )
    start = write_start(tmp_path, np.arange(n) < 8, np.ones(n))
    table1(runs, [start], tmp_path / "tables" / "table1")
    bootstrap(runs, tmp_path / "tables" / "bootstrap", resamples=200)
    text = landing(
        runs, tmp_path / "tables" / "table1.csv", tmp_path / "tables" / "bootstrap.csv", tmp_path / "landing.rst"
    )
    assert "4 training runs, seeds [0, 1]; 3.0 minutes of logged RL step time" in text
    assert (
        "- **RLOO**: correctness on d: seeds [0, 1]; human-aligned (alpha 10, additive_clipped) on d: seeds [0, 1]"
        in text
    )
    assert "- starting policy (no RL): H-Acc 40.0, Acc 40.0" in text
    assert "- RLOO, human-aligned: H-Acc 75.0 [" in text and "seeds 2" in text
    assert "- RLOO (alpha 10): +20.00 [" in text and "whole exams" in text
    html = publish_parts(text, writer_name="html", settings_overrides={"report_level": 2})["html_body"]
    assert "System Message" not in html and "<strong>RLOO</strong>" in html  # valid reStructuredText
