"""The paired bootstrap over test prompts (rlev.stats) on cases with a known answer."""

import numpy as np
import pandas as pd
import pytest

from rlev.stats import paired_bootstrap, paired_samples


def samples(ids, values, correct):
    return pd.DataFrame({"id": ids, "value": values, "correct": correct})


def test_observed_h_acc_difference_by_hand():
    # RLEV right on values 1, 2, 3: H-Acc 6/10; baseline right on 1, 3, 4: 8/10 -> -20 points.
    ids, v = ["a", "b", "c", "d"], [0.1, 0.2, 0.3, 0.4]
    pair = paired_samples(samples(ids, v, [1, 1, 1, 0]), samples(ids[::-1], v[::-1], [1, 1, 0, 1]))
    r = paired_bootstrap([pair], "h_acc", resamples=500)
    assert r.diff == pytest.approx(-20.0)
    # Acc: 3/4 both -> 0.
    assert paired_bootstrap([pair], "acc", resamples=500).diff == pytest.approx(0.0)


def test_a_known_difference_is_recovered_with_an_interval_around_it():
    # 400 prompts, equal values: RLEV right on 60%, baseline on 50%, nested -> Acc +10 points,
    # and the per-prompt difference is 1 on 10% of prompts, 0 elsewhere.
    n = 400
    ids = [f"q{i}" for i in range(n)]
    rlev = samples(ids, np.ones(n), np.arange(n) < 240)
    base = samples(ids, np.ones(n), np.arange(n) < 200)
    r = paired_bootstrap([paired_samples(rlev, base)], "h_acc", resamples=2000, seed=0)
    assert r.diff == pytest.approx(10.0)
    assert r.lo < 10.0 < r.hi
    # The resampled difference is 100 * Binomial(400, 0.1) / 400: sd = 100 * sqrt(.1 * .9 / 400) = 1.5,
    # so the 95% interval is about 10 +- 2.94.
    assert r.lo == pytest.approx(10 - 1.96 * 1.5, abs=0.6) and r.hi == pytest.approx(10 + 1.96 * 1.5, abs=0.6)
    assert r.share_positive == 1.0
    assert (r.n_prompts, r.seed_pairs, r.resamples) == (n, 1, 2000)


def test_identical_models_give_zero_and_no_positive_resamples():
    ids = list("abcdef")
    s = samples(ids, [1, 2, 3, 4, 5, 6], [1, 0, 1, 0, 1, 1])
    r = paired_bootstrap([paired_samples(s, s)], "h_acc", resamples=200)
    assert (r.diff, r.lo, r.hi, r.share_positive) == (0.0, 0.0, 0.0, 0.0)


def test_resampling_matches_a_plain_index_loop():
    rng = np.random.default_rng(3)
    n = 30
    ids = [f"q{i}" for i in range(n)]
    v = rng.uniform(0.01, 0.2, n)
    ct, cb = rng.random(n) < 0.6, rng.random(n) < 0.5
    pair = paired_samples(samples(ids, v, ct), samples(ids, v, cb))
    r = paired_bootstrap([pair], "h_acc", resamples=4000, seed=1)
    # The same statistic by explicit index resampling (another random stream: compare loosely).
    loop_rng = np.random.default_rng(2)
    diffs = []
    for _ in range(4000):
        i = loop_rng.integers(0, n, n)
        diffs.append(100 * ((v[i] * ct[i]).sum() - (v[i] * cb[i]).sum()) / v[i].sum())
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    assert r.lo == pytest.approx(lo, abs=1.5) and r.hi == pytest.approx(hi, abs=1.5)
    assert r.diff == pytest.approx(100 * ((v * ct).sum() - (v * cb).sum()) / v.sum())


def test_several_seed_pairs_average_their_differences():
    n = 100
    ids = [f"q{i}" for i in range(n)]
    base = samples(ids, np.ones(n), np.arange(n) < 50)
    pairs = [
        paired_samples(samples(ids, np.ones(n), np.arange(n) < 60), base),  # +10
        paired_samples(samples(ids, np.ones(n), np.arange(n) < 70), base),
    ]  # +20
    r = paired_bootstrap(pairs, "acc", resamples=300, seed=0)
    assert r.diff == pytest.approx(15.0) and r.seed_pairs == 2
    assert r.lo < 15 < r.hi


def test_the_same_seed_gives_the_same_interval():
    n = 50
    ids = [f"q{i}" for i in range(n)]
    pair = paired_samples(
        samples(ids, np.ones(n), np.arange(n) % 2 == 0), samples(ids, np.ones(n), np.arange(n) % 3 == 0)
    )
    assert paired_bootstrap([pair], resamples=300, seed=7) == paired_bootstrap([pair], resamples=300, seed=7)


def test_unpaired_or_inconsistent_samples_are_refused_by_name():
    a = samples(["x", "y"], [1, 2], [1, 0])
    with pytest.raises(
        ValueError, match=r"2 prompt\(s\) answered by one model only, e.g. id 'y' only in the treatment"
    ):
        paired_samples(a, samples(["x", "z"], [1, 2], [1, 0]), what="runA vs runB")
    with pytest.raises(ValueError, match="'y' has different values"):
        paired_samples(a, samples(["x", "y"], [1, 3], [1, 0]))
    with pytest.raises(ValueError, match="'x' appears more than once"):
        paired_samples(samples(["x", "x"], [1, 1], [1, 0]), a)
    with pytest.raises(ValueError, match="metric"):
        paired_bootstrap([paired_samples(a, a)], "length")


def exam_samples(exams: int, per_exam: int, correct) -> pd.DataFrame:
    ids = [f"e{e}-q{q}" for e in range(exams) for q in range(per_exam)]
    return pd.DataFrame(
        {"id": ids, "exam_id": [i.split("-")[0] for i in ids], "value": np.ones(len(ids)), "correct": correct}
    )


def test_exam_bootstrap_draws_whole_exams():
    # 10 exams of 20 prompts; RLEV is better on every prompt of exam e0 and nowhere else: +10 points.
    # Drawing exams, a resample misses e0 with probability 0.9^10 = 0.349 and then shows no difference,
    # so about 65% of resamples are positive and the interval reaches 0; drawing prompts, e0's 20 prompts
    # are spread over the resample and (almost) every resample is positive.
    n = 200
    base = exam_samples(10, 20, np.zeros(n, bool))
    rlev = exam_samples(10, 20, np.arange(n) < 20)
    pair = paired_samples(rlev, base)
    by_exam = paired_bootstrap([pair], "acc", resamples=4000, seed=0, cluster="exam")
    by_prompt = paired_bootstrap([pair], "acc", resamples=4000, seed=0, cluster="prompt")
    assert by_exam.diff == by_prompt.diff == pytest.approx(10.0)
    assert by_exam.share_positive == pytest.approx(1 - 0.9**10, abs=0.03)
    assert by_exam.lo == 0.0 and by_prompt.lo > 5
    assert (by_exam.cluster, by_exam.n_clusters, by_prompt.n_clusters) == ("exam", 10, 200)


def test_one_prompt_per_exam_is_the_prompt_bootstrap():
    rng = np.random.default_rng(4)
    n = 40
    ids = [f"q{i}" for i in range(n)]
    t = pd.DataFrame({"id": ids, "exam_id": ids, "value": rng.uniform(0.01, 0.2, n), "correct": rng.random(n) < 0.6})
    b = t.assign(correct=rng.random(n) < 0.5)
    pair = paired_samples(t, b)
    by_exam = paired_bootstrap([pair], resamples=500, seed=3, cluster="exam")
    by_prompt = paired_bootstrap([pair], resamples=500, seed=3, cluster="prompt")
    assert (by_exam.diff, by_exam.lo, by_exam.hi) == (by_prompt.diff, by_prompt.lo, by_prompt.hi)
    with pytest.raises(ValueError, match="exam_id"):
        paired_bootstrap(
            [paired_samples(samples(ids, np.ones(n), t["correct"]), samples(ids, np.ones(n), b["correct"]))],
            cluster="exam",
        )
