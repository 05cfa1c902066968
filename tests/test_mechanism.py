"""The mechanism analysis (rlev.analysis.mechanism) on fixtures whose answer is known."""

import math

import numpy as np
import pandas as pd
import pytest
import yaml

from rlev.analysis.mechanism import (
    attach_points,
    cost_label,
    is_worked,
    length_by_value,
    mechanism,
    permutation_test,
    value_deciles,
    within_slope,
)

LEVELS = ["primary", "junior", "senior", "university", "phd"]


def make_test(n=500, seed=0):
    """A test split where points correlate with difficulty but vary within each level."""
    rng = np.random.default_rng(seed)
    level = rng.integers(0, len(LEVELS), n)
    points = np.clip(level + 1 + rng.integers(-2, 3, n), 1, 8).astype(float)
    total = 100.0
    return pd.DataFrame(
        {
            "id": [f"q{i:04d}" for i in range(n)],
            "exam_id": "e0",
            "score": points,
            "total": total,
            "value": points / total,
            "difficulty": [LEVELS[k] for k in level],
        }
    )


def write_run(root, test, reward, seed, length, worked, cost=None):
    """A run directory with config.yaml and eval/samples.parquet (greedy answers of the given form)."""
    tag = reward if cost is None else f"{reward}-cost"
    run = root / f"{tag}" / f"seed{seed}"
    (run / "eval").mkdir(parents=True)
    block = {"variant": reward, "alpha": 10, "form": "additive_clipped"}
    if cost is not None:
        block["cost"] = cost
    config = {
        "seed": seed,
        "estimator": {"name": "rloo", "adv_estimator": "rloo"},
        "scale": {"name": "tiny"},
        "reward": block,
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    responses = ["3+5=8 8+2=10 #### 10" if w else "#### 10" for w in worked]
    pd.DataFrame(
        {
            "id": test["id"],
            "exam_id": test["exam_id"],
            "value": test["value"],
            "difficulty": test["difficulty"],
            "response": responses,
            "length": np.asarray(length, int),
            "truncated": False,
            "correct": np.arange(len(test)) % 2 == 0,
        }
    ).to_parquet(run / "eval" / "samples.parquet")
    return str(run)


def level_index(test):
    return test["difficulty"].map({name: k for k, name in enumerate(LEVELS)}).to_numpy()


def test_is_worked_reads_steps_before_the_answer_mark():
    got = is_worked(pd.Series(["3+5=8 8+2=10 #### 10", "#### 10", "#### 1=1", "10", None, "1+2=3"]))
    assert got.tolist() == [True, False, False, False, False, True]


def test_within_slope_recovers_a_known_slope_despite_difficulty_confounding():
    test = make_test()
    rng = np.random.default_rng(1)
    lv = level_index(test)
    y = 2 + 3 * test["score"] + 10 * lv + rng.normal(0, 1, len(test))
    assert within_slope(y, test["score"], test["difficulty"]) == pytest.approx(3, abs=0.1)
    # without fixed effects the difficulty effect leaks into the slope: the fixed effects matter here
    assert within_slope(y, test["score"], np.zeros(len(test))) > 5


def test_within_slope_names_the_problem_when_points_are_a_function_of_difficulty():
    with pytest.raises(ValueError, match="do not vary within any difficulty level"):
        within_slope([1, 2, 3, 4], [1, 1, 2, 2], ["a", "a", "b", "b"])


def test_permutation_test_finds_a_real_effect_and_not_a_difficulty_only_one():
    test = make_test()
    test = test.assign(points=test["score"])
    lv = level_index(test)
    rng = np.random.default_rng(2)
    real, flat = [], []
    for s in range(3):
        p_work = np.clip(0.1 + 0.08 * test["score"], 0, 1)
        real.append(test.assign(worked=(rng.random(len(test)) < p_work).astype(float)))
        flat.append(test.assign(worked=(rng.random(len(test)) < 0.15 + 0.15 * lv).astype(float)))
    slope, p = permutation_test(real, "worked", permutations=2000)
    assert slope == pytest.approx(0.08, abs=0.03) and p < 0.01
    slope, p = permutation_test(flat, "worked", permutations=2000)
    assert abs(slope) < 0.03 and p > 0.05
    # p is never below 1 / (B + 1), and the same seed gives the same p
    assert permutation_test(real, "worked", permutations=99)[1] >= 1 / 100
    assert permutation_test(flat, "worked", 500, seed=3) == permutation_test(flat, "worked", 500, seed=3)


def test_permutation_test_refuses_runs_over_other_prompts():
    test = make_test().assign(worked=1.0, points=lambda t: t["score"])
    with pytest.raises(ValueError, match="other prompts"):
        permutation_test([test, test.iloc[:-1]], "worked", permutations=10)


def test_attach_points_joins_the_test_split_and_names_a_foreign_prompt():
    test = make_test(20)
    samples = test[["id", "value"]].assign(response="#### 3", length=2)
    out = attach_points(samples, test, "s.parquet")
    assert out["points"].tolist() == test["score"].tolist() and (out["worked"] == 0).all()
    bad = pd.concat([samples, pd.DataFrame({"id": ["zz"], "value": [0.1], "response": ["#### 1"], "length": [2]})])
    with pytest.raises(ValueError, match="s.parquet: 1 prompt.*'zz'"):
        attach_points(bad, test, "s.parquet")


def test_cost_label():
    from rlev.config import parse_reward_tag

    assert cost_label({"variant": "human"}) == "none"
    assert cost_label({"cost": {"kind": "none"}}) == "none"
    assert cost_label({"cost": parse_reward_tag("human-a10-additive_clipped-len0.005")["cost"]}) == "length 0.005/token"
    assert cost_label({"cost": parse_reward_tag("correctness-overlong16x1")["cost"]}) == "overlong 16x1"


def balanced_test():
    """600 prompts: 30 in each (difficulty, points) cell, points = level + 1..4, so points correlate with
    difficulty and vary within it, and a share of 1/5 or 1/10 can be exact in every cell."""
    rows = [(LEVELS[k], float(k + d)) for k in range(len(LEVELS)) for d in range(1, 5) for _ in range(30)]
    order = np.random.default_rng(0).permutation(len(rows))
    difficulty, points = zip(*[rows[i] for i in order])
    return pd.DataFrame(
        {
            "id": [f"q{i:04d}" for i in range(len(rows))],
            "exam_id": "e0",
            "score": points,
            "total": 100.0,
            "value": np.array(points) / 100,
            "difficulty": difficulty,
        }
    )


def balanced_worked(test, seed, every):
    """Worked on one in `every` prompts of each (difficulty, points) cell, which prompts shifting with
    the seed: a worked share the same at every point value, so the within-difficulty slope is ~0."""
    rank = test.groupby(["difficulty", "score"]).cumcount().to_numpy()
    return (rank + seed) % every == 0


def _experiment(tmp_path, effect_pp_per_point=0.1, seeds=3):
    """Four rewards x {no cost, a cost} x seeds. Without the cost every reward works on 9 of 10 answers;
    with it, on 1 of 5 at every point value (slope exactly 0), except that RLEV (when
    `effect_pp_per_point` > 0) works more on high-point questions: P(worked) = 0.2 + effect * (points - mean)."""
    test = balanced_test()
    test_path = tmp_path / "test.parquet"
    test.to_parquet(test_path)
    lv = level_index(test)
    rng = np.random.default_rng(5)
    runs = []
    for cost in (None, {"kind": "length", "per_token": 0.3}):
        for reward in ("correctness", "uniform", "shuffled", "human"):
            for seed in range(seeds):
                if cost is None:
                    worked = ~balanced_worked(test, seed, 10)
                elif reward == "human" and effect_pp_per_point:
                    p_work = 0.2 + effect_pp_per_point * (test["score"] - test["score"].mean())
                    worked = rng.random(len(test)) < np.clip(p_work, 0, 1)
                else:
                    worked = balanced_worked(test, seed, 5)
                length = np.where(worked, 8 + 2 * lv, 3)
                runs.append(write_run(tmp_path / "runs", test, reward, seed, length, worked, cost))
    return test, test_path, runs


def test_mechanism_table_on_a_fixture_with_a_known_answer(tmp_path):
    test, test_path, runs = _experiment(tmp_path)
    init = write_run(tmp_path / "start", test, "correctness", 0, np.full(len(test), 3), np.zeros(len(test), bool))
    table = mechanism(runs, str(test_path), tmp_path / "tables" / "mechanism", init=[f"{init}/eval"], permutations=2000)
    cells = table[table["kind"] == "cell"].set_index(["reward", "cost"])
    assert len(cells) == 8 and (cells["seeds"] == 3).all()
    rlev = cells.loc[("human-aligned", "length 0.3/token")]
    assert rlev["worked_slope"] == pytest.approx(10, abs=2.5)  # pp per point
    assert rlev["worked_slope_lo"] > 0 and rlev["worked_slope_p"] < 0.01 and rlev["length_slope_p"] < 0.01
    for reward in ("correctness", "uniform scaling", "random weights (shuffled)"):
        for cost in ("none", "length 0.3/token"):
            c = cells.loc[(reward, cost)]
            assert c["worked_slope_lo"] < 0 < c["worked_slope_hi"], (reward, cost)
    contrasts = table[table["kind"] == "contrast"].set_index(["reward", "cost"])
    assert len(contrasts) == 6
    assert contrasts.loc[("human-aligned - uniform scaling", "length 0.3/token"), "worked_slope_lo"] > 0
    start = table[table["kind"] == "start"].iloc[0]
    assert start["worked_share"] == 0 and start["seeds"] == 1 and math.isnan(start["worked_slope_lo"])
    md = (tmp_path / "tables" / "mechanism.md").read_text()
    assert "No power in 1 of 9 rows" in md  # the starting policy never works
    rows = [line for line in md.splitlines() if line.startswith("| RLOO") or line.startswith("| starting")]
    assert len(rows) == 15
    for line in rows:  # n in every cell with a number
        cells_md = line.strip("|").split("|")
        numbered = [c for c in cells_md[4:] if "[" in c or "(n=" in c]
        assert len(numbered) == 5 and all("(n=" in c for c in numbered), line


def test_mechanism_flat_fixture_gives_zero_slopes_whatever_the_level(tmp_path):
    _, test_path, runs = _experiment(tmp_path, effect_pp_per_point=0.0)
    table = mechanism(runs, str(test_path), tmp_path / "m", permutations=500)
    cells = table[table["kind"] != "start"]
    for m in ("worked_slope", "length_slope"):
        for column in (m, f"{m}_lo", f"{m}_hi"):
            assert np.allclose(cells[column], 0, atol=1e-9), column
        assert (cells.loc[cells["kind"] == "cell", f"{m}_p"] > 0.5).all(), m
    assert "No power" not in (tmp_path / "m.md").read_text()
    levels = cells[cells["kind"] == "cell"].groupby("cost")["worked_share"]
    assert np.allclose(levels.min()["none"], 90) and np.allclose(levels.max()["length 0.3/token"], 20)


def test_seed_interval_covers_a_zero_slope_95_times_in_100():
    """Outcomes independent of points, 3 seeds: the t-interval of the slope covers 0 about 95% of the time."""
    from rlev.metrics import mean_and_interval

    test = make_test(200)
    rng = np.random.default_rng(12)
    covered = []
    for _ in range(400):
        slopes = [within_slope(rng.random(len(test)) < 0.3, test["score"], test["difficulty"]) for _ in range(3)]
        _, lo, hi = mean_and_interval(slopes)
        covered.append(lo < 0 < hi)
    assert 0.92 < np.mean(covered) < 0.98


def test_permutation_p_is_calibrated_under_the_null():
    """Outcomes independent of points: p below 0.1 about one time in ten."""
    test = make_test(200)
    test = test.assign(points=test["score"])
    rng = np.random.default_rng(11)
    ps = [
        permutation_test(
            [test.assign(worked=(rng.random(len(test)) < 0.3).astype(float))], "worked", permutations=199, seed=k
        )[1]
        for k in range(200)
    ]
    assert 0.05 < np.mean(np.array(ps) < 0.1) < 0.16
    assert 0.4 < np.mean(ps) < 0.6


def test_value_deciles_are_equal_sized_and_ordered():
    df = pd.DataFrame({"id": [f"q{i}" for i in range(95)], "value": np.r_[np.full(40, 0.01), np.linspace(0.02, 1, 55)]})
    d = value_deciles(df.sample(frac=1, random_state=0))
    counts = d.value_counts()
    assert sorted(counts.index) == list(range(1, 11)) and counts.max() - counts.min() <= 1
    by = df.assign(d=value_deciles(df)).groupby("d")["value"]
    assert (by.max().to_numpy()[:-1] <= by.min().to_numpy()[1:]).all()


def test_length_by_value_draws_the_known_lines(tmp_path):
    test = make_test(200)
    decile = value_deciles(test).to_numpy()
    runs = []
    for seed in range(3):
        runs.append(write_run(tmp_path, test, "human", seed, 10 + 2 * decile + seed, np.ones(len(test), bool)))
        runs.append(write_run(tmp_path, test, "correctness", seed, np.full(len(test), 20), np.ones(len(test), bool)))
    data = length_by_value(runs, tmp_path / "fig" / "length_by_value")
    human = data[data["reward"] == "human-aligned"].set_index("decile")
    assert human["length"].tolist() == pytest.approx([11 + 2 * d for d in range(1, 11)])
    assert (human["length_lo"] < human["length"]).all() and (human["seeds"] == 3).all()
    flat = data[data["reward"] == "correctness"]
    assert (flat["length"] == 20).all() and (flat["length_lo"] == 20).all()
    assert (human["v_mean"].diff().dropna() >= 0).all() and human["prompts"].sum() == len(test)
    for ext in ("png", "svg", "csv"):
        assert (tmp_path / "fig" / f"length_by_value.{ext}").stat().st_size > 0
    other = write_run(tmp_path / "other", test.iloc[:-1], "human", 0, np.ones(len(test) - 1), np.ones(len(test) - 1))
    with pytest.raises(ValueError, match="share the test split"):
        length_by_value(runs + [other], tmp_path / "bad")
