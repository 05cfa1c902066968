import numpy as np
import pytest

from rlev.reward import compute_score, reward_scale


@pytest.mark.parametrize(
    "variant, value, alpha, form, expected",
    [
        ("correctness", 0.5, 10, "additive_clipped", 1.0),
        ("human", 0.0, 10, "additive_clipped", 1.0),
        ("human", 0.02, 10, "additive_clipped", 1.2),  # the paper's mean v
        ("human", 0.1, 10, "additive_clipped", 2.0),  # alpha * v = 1: the clip starts
        ("human", 0.5, 10, "additive_clipped", 2.0),  # clipped
        ("human", 0.5, 1, "additive_clipped", 1.5),
        ("human", 0.5, 10, "multiplicative", 6.0),  # not clipped
    ],
)
def test_reward_scale(variant, value, alpha, form, expected):
    assert reward_scale(variant, value, alpha, form) == pytest.approx(expected)


def test_reward_scale_is_vectorised_and_bounded():
    v = np.linspace(0.001, 1, 50)
    s = reward_scale("human", v, 10, "additive_clipped")
    assert s.shape == v.shape and (s >= 1).all() and (s <= 2).all()
    assert (np.diff(s) >= 0).all()


def test_reward_scale_rejects_unknown_names():
    with pytest.raises(ValueError, match="variant"):
        reward_scale("humane", 0.1, 10, "additive_clipped")
    with pytest.raises(ValueError, match="form"):
        reward_scale("human", 0.1, 10, "additive")


def test_compute_score_for_verl():
    extra = {"value": 0.05}
    right = compute_score("synthetic", "3+4=7 #### 7", "7", extra, alpha=10, variant="human")
    assert right == {"score": 1.5, "correct": 1.0, "value": 0.05, "scale": 1.5}
    wrong = compute_score("synthetic", "#### 8", "7", extra, alpha=10, variant="human")
    assert wrong["score"] == 0.0 and wrong["correct"] == 0.0
    baseline = compute_score("synthetic", "#### 7", "7", extra, variant="correctness")
    assert baseline["score"] == 1.0
