"""Training curves (rlev.analysis.curves) on fixture run directories whose per-step means are known."""

import json

import pytest
import yaml

from rlev.analysis.curves import curves, read_metrics


def write_run(root, reward, seed, steps):
    run = root / reward / f"seed{seed}"
    (run / "train").mkdir(parents=True)
    config = {
        "estimator": {"name": "rloo", "adv_estimator": "rloo"},
        "scale": {"name": "tiny"},
        "reward": {"variant": reward, "alpha": 10, "form": "additive_clipped"},
        "seed": seed,
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config))  # no eval/: the curves need only training
    (run / "train" / "metrics.jsonl").write_text("".join(json.dumps(s) + "\n" for s in steps))
    return str(run)


def step(k, reward, length, q1=None, q4=None):
    return {"step": k, "reward": reward, "acc": reward / 2, "length": length, "length_q1": q1, "length_q4": q4}


def test_curves_average_seeds_per_step_and_keep_rewards_apart(tmp_path):
    runs = [
        write_run(tmp_path, "correctness", 0, [step(0, 0.5, 10, 8, 12), step(1, 0.7, 12, 9, 15)]),
        write_run(tmp_path, "human", 0, [step(0, 1.0, 10, 8, 12), step(1, 1.2, 14, 9, 20)]),
        # a resumed run logged step 1 twice: the last line counts
        write_run(tmp_path, "human", 1, [step(0, 2.0, 20, 8, 12), step(1, 9.9, 99), step(1, 1.6, 18, 11, 22)]),
    ]
    table = curves(runs, tmp_path / "fig" / "curves_main", "Table 1 runs", window=1)
    for ext in ("png", "svg", "csv"):
        assert (tmp_path / "fig" / f"curves_main.{ext}").stat().st_size > 0
    at = table.set_index(["variant", "step"])
    assert at.loc[("correctness", 1), "reward"] == pytest.approx(0.7)
    assert at.loc[("human-aligned", 0), "reward"] == pytest.approx(1.5) and at.loc[("human-aligned", 0), "seeds"] == 2
    assert at.loc[("human-aligned", 1), "length_q4"] == pytest.approx(21.0)
    assert at.loc[("human-aligned", 1), "acc"] == pytest.approx((0.6 + 0.8) / 2)
    assert len(read_metrics(runs[2])) == 2
