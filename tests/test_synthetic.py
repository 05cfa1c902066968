import pandas as pd

from rlev.data.synthetic import LEVELS, generate
from rlev.verify import verify


def test_generator_is_seeded_and_well_formed():
    records, demos = generate(8, 2, 10, seed=7)
    again, _ = generate(8, 2, 10, seed=7)
    assert records == again
    df = pd.DataFrame(records)
    assert len(df) == 100 and df["id"].is_unique
    assert set(df[df.split == "test"]["exam_id"]).isdisjoint(df[df.split == "train"]["exam_id"])
    # the total of an exam is the sum of its points, so v sums to 1 per exam
    sums = df.groupby("exam_id")["score"].sum()
    assert (sums == df.groupby("exam_id")["total"].first()).all()


def test_harder_questions_are_worth_more():
    df = pd.DataFrame(generate(50, 0, 10, seed=0)[0])
    mean_points = df.groupby("difficulty")["score"].mean()
    ordered = [mean_points[name] for name in LEVELS]
    assert ordered == sorted(ordered)


def test_both_demonstrations_are_correct():
    records, demos = generate(5, 0, 10, seed=3)
    by_id = {d["id"]: d for d in demos}
    for r in records:
        d = by_id[r["id"]]
        assert verify(r["answer"], d["worked"]) and verify(r["answer"], d["direct"])
        assert len(d["worked"]) >= len(d["direct"])


def test_exam_sizes_drawn_from_a_range_give_a_right_skewed_value_tail():
    df = pd.DataFrame(generate(60, 0, [6, 80], seed=1)[0])
    sizes = df.groupby("exam_id").size()
    assert sizes.between(6, 80).all() and sizes.nunique() > 10
    v = df["score"] / df["total"]
    assert 0.01 < v.mean() < 0.05 and 0 < (v > 0.1).mean() < 0.1  # the paper: 0.02 and 1.18%
