"""Value variants (rlev.values): each variant's per-row scale on a fixed batch, the reward
forms, and that the verl path (values stage -> verl file -> verl's reward loader ->
compute_score) gives every training row the same scale as the local trainer."""

from __future__ import annotations

import asyncio
import copy
import warnings

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from rlev.config import Run, load_config, run_config
from rlev.data.difficulty import DIFFICULTY_POINTS
from rlev.data.verl_export import write_verl_parquet
from rlev.reward import reward_scale
from rlev.values import VALUES_FILE, reward_scales, value_table, variant_values, write_values

VALUES = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5]
DIFFICULTY = ["primary", "junior", "senior", "university", "phd", "senior"]


@pytest.fixture
def rows() -> pd.DataFrame:
    """A fixed training batch with everything the variants read (and the verl export needs)."""
    n = len(VALUES)
    return pd.DataFrame(
        {
            "id": [f"q{i}" for i in range(n)],
            "exam_id": ["e0", "e0", "e0", "e1", "e1", "e1"],
            "question": [f"{i}+1=?" for i in range(n)],
            "system": [""] * n,
            "answer": [str(i + 1) for i in range(n)],
            "score": [1.0, 2.0, 5.0, 1.0, 2.0, 5.0],
            "total": [100.0, 100.0, 100.0, 10.0, 10.0, 10.0],
            "value": VALUES,
            "difficulty": DIFFICULTY,
            "split": ["train"] * n,
            "predicted_value": [0.03, 0.01, 0.04, 0.2, 0.1, 0.3],
        }
    )


def run_of(variant, alpha=10.0, form="additive_clipped", seed=0, **extra) -> dict:
    return {
        "run_id": f"test/{variant}",
        "seed": seed,
        "reward": {"variant": variant, "alpha": alpha, "form": form, **extra},
    }


def test_correctness_is_one(rows):
    assert reward_scales(run_of("correctness"), rows).tolist() == [1.0] * len(rows)


@pytest.mark.parametrize(
    "form, alpha, expected",
    [
        ("additive_clipped", 10, [1.1, 1.2, 1.5, 2.0, 2.0, 2.0]),  # 1 + min(alpha v, 1): clipped at 2
        ("additive_clipped", 1, [1.01, 1.02, 1.05, 1.1, 1.2, 1.5]),
        ("multiplicative", 10, [1.1, 1.2, 1.5, 2.0, 3.0, 6.0]),  # 1 + alpha v: not clipped
    ],
)
def test_human_values_and_forms(rows, form, alpha, expected):
    assert reward_scales(run_of("human", alpha, form), rows) == pytest.approx(expected)


@pytest.mark.parametrize("form", ["additive_clipped", "multiplicative"])
@pytest.mark.parametrize("alpha", [1.0, 10.0])
def test_uniform_gives_every_row_the_training_mean(rows, form, alpha):
    s = reward_scales(run_of("uniform", alpha, form), rows)
    human = reward_scales(run_of("human", alpha, form), rows)
    assert np.allclose(s, human.mean()) and len(set(s.tolist())) == 1
    if (form, alpha) == ("additive_clipped", 10.0):
        assert s[0] == pytest.approx((1.1 + 1.2 + 1.5 + 2 + 2 + 2) / 6)


def test_shuffled_keeps_the_multiset_and_breaks_the_alignment(rows):
    shuffled = variant_values(run_of("shuffled")["reward"], rows, seed=0)
    assert sorted(shuffled.tolist()) == sorted(VALUES)  # the same values ...
    assert shuffled.tolist() != VALUES  # ... on other questions
    s = reward_scales(run_of("shuffled"), rows)
    assert sorted(s.tolist()) == pytest.approx(sorted(reward_scales(run_of("human"), rows).tolist()))
    # the permutation is fixed by (shuffle_seed, run seed): same inputs, same result
    assert np.array_equal(variant_values(run_of("shuffled")["reward"], rows, seed=0), shuffled)
    others = {
        tuple(variant_values(run_of("shuffled", shuffle_seed=k)["reward"], rows, seed=s))
        for k in range(3)
        for s in range(3)
    }
    assert len(others) > 1  # another seed, another permutation


def test_shuffled_permutation_is_the_recorded_one(rows):
    perm = np.random.default_rng([7, 3]).permutation(len(rows))
    got = variant_values(run_of("shuffled", shuffle_seed=7)["reward"], rows, seed=3)
    assert got.tolist() == np.asarray(VALUES)[perm].tolist()


def test_weak_maps_difficulty_to_points_over_100(rows):
    weak = run_of("weak", weak_points=DIFFICULTY_POINTS)  # the paper's ladder, reward.weak_points' default
    v = variant_values(weak["reward"], rows, seed=0)
    assert v.tolist() == pytest.approx([0.01, 0.02, 0.04, 0.06, 0.08, 0.04])
    assert reward_scales(weak, rows) == pytest.approx([1.1, 1.2, 1.4, 1.6, 1.8, 1.4])


def test_weak_mapping_is_configurable_and_case_insensitive(rows):
    rows["difficulty"] = ["Primary", "JUNIOR", " senior ", "university", "phd", "senior"]
    points = {"primary": 10, "junior": 10, "senior": 20, "university": 30, "phd": 40}
    v = variant_values(run_of("weak", weak_points=points)["reward"], rows, seed=0)
    assert v.tolist() == pytest.approx([0.1, 0.1, 0.2, 0.3, 0.4, 0.2])


@pytest.mark.parametrize("label, shown", [(None, "missing"), ("", "missing"), ("postdoc", "'postdoc'")])
def test_weak_names_the_row_with_an_unknown_difficulty(rows, label, shown):
    rows.loc[4, "difficulty"] = label
    with pytest.raises(ValueError, match=rf"row 4 \(id 'q4'\) has difficulty {shown}"):
        reward_scales(run_of("weak", weak_points=DIFFICULTY_POINTS), rows)


def test_predicted_reads_the_predictor_column(rows):
    assert variant_values(run_of("predicted")["reward"], rows, 0).tolist() == rows["predicted_value"].tolist()
    assert reward_scales(run_of("predicted"), rows) == pytest.approx([1.3, 1.1, 1.4, 2.0, 2.0, 2.0])


def test_predicted_without_the_column_is_a_clear_error(rows):
    with pytest.raises(ValueError, match="needs a `predicted_value` column"):
        reward_scales(run_of("predicted"), rows.drop(columns="predicted_value"))
    rows.loc[2, "predicted_value"] = np.nan
    with pytest.raises(ValueError, match=r"row 2 \(id 'q2'\)"):
        reward_scales(run_of("predicted"), rows)


def test_unknown_variant_and_form_are_refused(rows):
    with pytest.raises(ValueError, match="unknown reward variant 'humane'"):
        reward_scales(run_of("humane"), rows)
    with pytest.raises(ValueError, match="unknown reward form 'additive'"):
        reward_scales(run_of("human", form="additive"), rows)
    with pytest.raises(ValueError, match="uniform"):  # no per-row formula for s_bar
        reward_scale("uniform", 0.1, 10, "additive_clipped")


def test_value_table_lists_every_row(rows):
    table = value_table(run_of("uniform"), rows)
    assert table.columns.tolist() == ["id", "value", "scale"] and table["id"].tolist() == rows["id"].tolist()
    assert table["value"].tolist() == VALUES  # uniform records the human v it averaged over


@pytest.mark.parametrize("variant", ["correctness", "human", "uniform", "shuffled", "weak", "predicted"])
@pytest.mark.parametrize("form", ["additive_clipped", "multiplicative"])
def test_verl_path_scores_with_the_local_scales(tmp_path, rows, variant, form):
    """Run config -> verl overrides -> verl's composed config and reward loader -> compute_score on
    the rows of the run's own verl file: the score of a right answer is the local trainer's scale."""
    from verl.trainer.ppo.reward import get_custom_reward_fn

    from rlev.train import verl as V

    config = load_config(REPO / "config.yaml", {"scale": "7B", "seeds": [3]})
    run = Run("synthetic", "7B", "rloo", "correctness" if variant == "correctness" else f"{variant}-a5-{form}", 3)
    rc = run_config(config, run)
    rc["out_dir"] = str(tmp_path / "run")
    rc["dataset"]["verl_test"] = str(tmp_path / "verl_test.parquet")

    # the run's values, as its training job writes them first
    rows = rows.iloc[::-1].reset_index(drop=True)
    write_values(copy.deepcopy(rc), rows)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = V.compose_verl_config(V.verl_overrides(rc))
    assert cfg.data.train_files == str(tmp_path / "run" / "verl_train.parquet")
    score_fn = get_custom_reward_fn(cfg)  # verl's own loader, with the run's reward kwargs
    verl_rows = pd.read_parquet(cfg.data.train_files)
    local = dict(zip(rows["id"], reward_scales(rc, rows)))
    for _, r in verl_rows.iterrows():
        extra = dict(r["extra_info"])
        gold = r["reward_model"]["ground_truth"]
        out = asyncio.run(
            score_fn(data_source=r["data_source"], solution_str=f"#### {gold}", ground_truth=gold, extra_info=extra)
        )
        assert out["score"] == pytest.approx(local[extra["id"]]) and out["correct"] == 1.0
        wrong = asyncio.run(
            score_fn(data_source="synthetic", solution_str="#### -1", ground_truth=gold, extra_info=extra)
        )
        assert wrong["score"] == 0.0 and wrong["scale"] == pytest.approx(local[extra["id"]])


def test_a_runs_verl_file_is_the_prepare_stages_with_its_values(tmp_path, rows):
    """The verl file a verl run trains on is the prepare stage's file of its rows, row for row, with
    only extra_info.value (the variant's v) and extra_info.scale (s(x)) its own."""
    config = load_config(REPO / "config.yaml", {"scale": "7B"})
    rc = run_config(config, Run("synthetic", "7B", "rloo", "shuffled-a10-additive_clipped", 1))
    rc["out_dir"] = str(tmp_path / "run")
    table = write_values(copy.deepcopy(rc), rows)
    prepared = pd.read_parquet(write_verl_parquet(rows, tmp_path / "prepared.parquet", data_source="synthetic"))
    own = pd.read_parquet(tmp_path / "run" / "verl_train.parquet")
    pd.testing.assert_frame_equal(own.drop(columns="extra_info"), prepared.drop(columns="extra_info"))
    for mine, theirs, v, s in zip(own["extra_info"], prepared["extra_info"], table["value"], table["scale"]):
        assert {k: mine[k] for k in theirs if k != "value"} == {k: x for k, x in theirs.items() if k != "value"}
        assert (mine["value"], mine["scale"]) == (v, s)
    assert table["value"].tolist() != rows["value"].tolist()  # shuffled: not the human v
    assert table["scale"].tolist() == reward_scales(rc, rows).tolist()


def test_write_values_records_what_the_run_trains_with(tmp_path, rows):
    """values.parquet is written again for each training (a stale one is replaced); a local run gets no verl file."""
    run = {**run_of("human", alpha=5.0), "out_dir": str(tmp_path / "hand" / "run1")}
    (tmp_path / "hand" / "run1").mkdir(parents=True)
    value_table(run_of("human", alpha=20.0), rows).to_parquet(tmp_path / "hand" / "run1" / VALUES_FILE)  # stale
    assert write_values(run, rows)["scale"].tolist() == reward_scales(run, rows).tolist()
    assert pd.read_parquet(tmp_path / "hand" / "run1" / VALUES_FILE).equals(value_table(run, rows))
    assert sorted(p.name for p in (tmp_path / "hand" / "run1").iterdir()) == [VALUES_FILE]
