import numpy as np
import pandas as pd

from rlev.data.arithmetic import LEVELS, POINTS, stated_points, without_points
from rlev.data.synthetic import generate
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


def test_harder_questions_are_worth_more_on_average():
    df = pd.DataFrame(generate(50, 0, 10, seed=0)[0])
    mean_points = df.groupby("difficulty")["score"].mean()
    ordered = [mean_points[name] for name in LEVELS]
    assert ordered == sorted(ordered)


def test_every_question_states_its_points_and_nothing_else_changes():
    records, _ = generate(20, 2, 10, seed=5)
    for r in records:
        assert stated_points(r["question"]) == r["score"]
        terms = without_points(r["question"]).removesuffix("=?").split("+")
        assert len(terms) == LEVELS[r["difficulty"]][0] and sum(map(int, terms)) == int(r["answer"])
    assert stated_points("(1 point) 2+3=?") == 1 and stated_points("2+3=?") is None


def test_points_vary_within_a_difficulty_so_value_and_difficulty_come_apart():
    df = pd.DataFrame(generate(200, 0, 10, seed=2)[0])
    level_points = df["difficulty"].map({name: p for name, (_, p) in LEVELS.items()})
    follows = (df["score"] == level_points).mean()
    # half follow the level; a uniform draw on POINTS hits the level's points 1 time in 5
    assert 0.55 < follows < 0.65
    for _, group in df.groupby("difficulty"):
        assert set(group["score"]) == set(POINTS)
    r = np.corrcoef(df["score"], df["difficulty"].map({n: i for i, n in enumerate(LEVELS)}))[0, 1]
    assert 0.4 < r < 0.8  # related, as on real exams, but not a function of difficulty


def test_points_follow_difficulty_is_a_dial():
    always = pd.DataFrame(generate(30, 0, 10, seed=2, points_follow_difficulty=1.0)[0])
    assert (always["score"] == always["difficulty"].map({n: p for n, (_, p) in LEVELS.items()})).all()
    never = pd.DataFrame(generate(300, 0, 10, seed=2, points_follow_difficulty=0.0)[0])
    by_level = never.groupby("difficulty")["score"].mean()
    assert by_level.max() - by_level.min() < 0.8  # points independent of difficulty (uniform mean 4.2)


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


def test_difficulty_labels_of_the_noisy_set_are_a_noisy_copy_of_the_true_difficulty():
    from rlev.data.noisy import generate_categories

    clean = pd.DataFrame(generate_categories(200, 0, seed=3)[0])
    noisy = pd.DataFrame(generate_categories(200, 0, seed=3, label_noise=0.3)[0])
    points = {name: p for name, (_, p) in LEVELS.items()}
    # the score (the value H-Acc uses) follows the question's true difficulty in both
    assert (clean["score"] == clean["difficulty"].map(points)).all()
    off = noisy["score"] != noisy["difficulty"].map(points)
    assert 0.2 < off.mean() < 0.4  # about label_noise of the labels are wrong
    assert (noisy["score"] == noisy["true_difficulty"].map(points)).all()
    n_terms = noisy["question"].str.count(r"\+") + 1
    true_terms = noisy["score"].map({p: t for t, p in LEVELS.values()})
    assert (n_terms == true_terms).all()  # without surface noise the question tells the truth
    blurred = pd.DataFrame(generate_categories(200, 0, seed=3, label_noise=0.3, surface_noise=0.3)[0])
    n_terms = blurred["question"].str.count(r"\+") + 1
    shown = n_terms.map({t: name for name, (t, _) in LEVELS.items()})
    assert 0.2 < (shown != blurred["true_difficulty"]).mean() < 0.4  # the text is a neighbouring level's
    names = list(LEVELS)
    assert ((shown.map(names.index) - blurred["true_difficulty"].map(names.index)).abs() <= 1).all()
    # the label's errors and the surface's are independent
    both = (shown != blurred["true_difficulty"]) & (blurred["difficulty"] != blurred["true_difficulty"])
    assert 0.03 < both.mean() < 0.15


def test_the_score_predictor_never_sees_the_stated_points():
    """It labels prompts that state no points; reading them off the exams would be no prediction."""
    from rlev.predictor.prompt import predictor_examples

    df = pd.DataFrame(generate(3, 0, 5, seed=1)[0])
    for (question, _, [target]), row in zip(predictor_examples(df), df.itertuples()):
        assert stated_points(row.question) == row.score and stated_points(question) is None
        assert question == without_points(row.question)
