import math

import pandas as pd
import pytest

from rlev.metrics import evaluation_metrics, human_aligned_accuracy, mean_and_interval, value_density


def test_paper_arithmetic():
    # Table 1, 7B averages: 57.9 / 90.5 = 0.64 and 55.9 / 201.8 = 0.28
    assert round(value_density(57.9, 90.5), 2) == 0.64
    assert round(value_density(55.9, 201.8), 2) == 0.28


def test_hand_computed_metrics():
    samples = pd.DataFrame(
        {
            "value": [0.10, 0.20, 0.30, 0.40, 0.50],
            "correct": [True, False, True, False, True],
            "length": [10, 20, 30, 40, 50],
        }
    )
    m = evaluation_metrics(samples)
    assert m["acc"] == pytest.approx(60.0)
    assert m["h_acc"] == pytest.approx(100 * 0.9 / 1.5)  # (0.1 + 0.3 + 0.5) / 1.5 = 60%
    assert m["length"] == pytest.approx(30.0)
    assert m["density"] == pytest.approx(60.0 / 30.0)
    assert m["acc_top20"] == 100.0  # the one highest-valued prompt (0.5) is correct
    assert m["acc_bottom20"] == 100.0  # the lowest (0.1) is correct
    assert m["n"] == 5


def test_h_acc_weights_by_value():
    assert human_aligned_accuracy([0.9, 0.1], [1, 0]) == pytest.approx(0.9)
    assert human_aligned_accuracy([0.9, 0.1], [0, 1]) == pytest.approx(0.1)


def test_interval_over_seeds():
    mean, lo, hi = mean_and_interval([1.0])
    assert mean == 1.0 and math.isnan(lo) and math.isnan(hi)
    mean, lo, hi = mean_and_interval([1.0, 2.0, 3.0])
    assert mean == 2.0
    # t(0.975, 2) = 4.303; sd = 1; half-width = 4.303 / sqrt(3)
    assert hi - mean == pytest.approx(4.3027 / math.sqrt(3), rel=1e-3)
    assert mean - lo == pytest.approx(hi - mean)
