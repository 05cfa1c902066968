"""Figure 2's EOS trajectories (rlev.analysis.eos): selection, teacher forcing, relative-position averaging."""

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from rlev.analysis.eos import binned_profile, eos_trajectories, extreme_prompts, figure2, relative_bins
from rlev.model import build_tiny, load_policy, render_prompt


def test_positions_go_to_the_bin_of_their_centre():
    assert relative_bins(4, 2).tolist() == [0, 0, 1, 1]
    assert relative_bins(2, 4).tolist() == [1, 3]  # centres 0.25 and 0.75
    assert relative_bins(1, 20).tolist() == [10]
    assert relative_bins(5, 5).tolist() == [0, 1, 2, 3, 4]


def test_responses_are_averaged_within_a_bin_first_then_with_equal_weight():
    long = np.array([0.1, 0.2, 0.3, 0.5])  # 2 bins: (0.1+0.2)/2 = 0.15, (0.3+0.5)/2 = 0.4
    short = np.array([0.2, 0.6])           # 2 bins: 0.2, 0.6
    mean, reached = binned_profile([long, short], bins=2)
    assert mean == pytest.approx([(0.15 + 0.2) / 2, (0.4 + 0.6) / 2])
    assert reached.tolist() == [2, 2]
    # 4 bins: the short response reaches bins 1 and 3 only; bin 0 holds the long one alone.
    mean, reached = binned_profile([long, short], bins=4)
    assert mean == pytest.approx([0.1, (0.2 + 0.2) / 2, 0.3, (0.5 + 0.6) / 2])
    assert reached.tolist() == [1, 2, 1, 2]
    # An empty trajectory reaches nothing; a bin nobody reaches is NaN.
    mean, reached = binned_profile([np.array([0.7]), np.array([])], bins=4)
    assert reached.tolist() == [0, 0, 1, 0] and np.isnan(mean[0]) and mean[2] == pytest.approx(0.7)


def test_extremes_are_the_k_highest_and_lowest_valued_capped_at_half():
    s = pd.DataFrame({"id": list("abcdef"), "value": [0.5, 0.1, 0.9, 0.3, 0.7, 0.2]})
    chosen = extreme_prompts(s, k=2)
    assert sorted(chosen.loc[chosen["extreme"] == "top", "id"]) == ["c", "e"]
    assert sorted(chosen.loc[chosen["extreme"] == "bottom", "id"]) == ["b", "f"]
    capped = extreme_prompts(s, k=200)  # n // 2 = 3 each, disjoint
    assert (capped["extreme"] == "top").sum() == 3 and capped["id"].is_unique
    with pytest.raises(ValueError, match="at least 2"):
        extreme_prompts(s.head(1))


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    texts = ["What is 12 + 30? Answer: 42", "Compute 7 * 6 step by step. 7 * 6 = 42. Answer: 42"] * 20
    shape = dict(vocab_size=300, hidden_size=32, intermediate_size=64, num_layers=1, num_heads=4, num_kv_heads=2,
                 max_position=128)
    build_tiny(texts, shape, out, seed=0)
    model, tokenizer = load_policy(out, "cpu")
    return model.eval(), tokenizer


def test_teacher_forced_eos_probability_matches_one_sequence_at_a_time(tiny_policy):
    model, tok = tiny_policy
    prompts = [render_prompt(tok, "What is 12 + 30?"), render_prompt(tok, "Compute 7 * 6 step by step.")]
    responses = ["Answer: 42", "7 * 6 = 42. Answer: 42"]
    stopped = [True, False]  # the second was truncated: no slot after its last token
    got = eos_trajectories(model, tok, prompts, responses, stopped, batch_size=2)  # padded together
    for p, r, s, traj in zip(prompts, responses, stopped, got):
        p_ids = tok(p, add_special_tokens=False)["input_ids"]
        r_ids = tok(r, add_special_tokens=False)["input_ids"]
        assert len(traj) == len(r_ids) + (1 if s else 0)
        for t in range(len(traj)):  # P(eos | prompt, first t response tokens), one prefix at a time
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([p_ids + r_ids[:t]])).logits[0, -1]
            assert traj[t] == pytest.approx(torch.softmax(logits, -1)[tok.eos_token_id].item(), rel=1e-4)


def write_run(root, estimator, reward, seed, eos_rows):
    run = root / estimator / reward / f"seed{seed}"
    (run / "eval").mkdir(parents=True)
    config = {"estimator": {"name": estimator, "adv_estimator": estimator}, "scale": {"name": "tiny"},
              "reward": {"variant": reward, "alpha": 10, "form": "additive_clipped"}, "seed": seed}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "eval" / "metrics.json").write_text("{}")
    rows = [{"id": i, "value": v, "extreme": e, "position": t, "positions": len(ps), "p_eos": p}
            for i, v, e, ps in eos_rows for t, p in enumerate(ps)]
    pd.DataFrame(rows).to_parquet(run / "eval" / "eos.parquet")
    return str(run / "eval" / "eos.parquet")


def test_figure2_averages_runs_by_relative_position(tmp_path):
    files = [
        write_run(tmp_path, "rloo", "correctness", 0, [("a", 0.9, "top", [0.1, 0.3]), ("b", 0.1, "bottom", [0.5])]),
        write_run(tmp_path, "rloo", "human", 0, [("a", 0.9, "top", [0.0, 0.2, 0.4, 0.8]),
                                                  ("b", 0.1, "bottom", [0.6, 1.0])]),
        write_run(tmp_path, "rloo", "human", 1, [("a", 0.9, "top", [0.2, 0.2]), ("b", 0.1, "bottom", [0.2, 0.4])]),
    ]
    data = figure2(files, tmp_path / "fig" / "figure2", bins=2)
    for ext in ("png", "svg", "csv"):
        assert (tmp_path / "fig" / f"figure2.{ext}").stat().st_size > 0

    def at(reward, extreme, b):
        row = data[(data["reward"] == reward) & (data["extreme"] == extreme) & (data["bin"] == b)].iloc[0]
        return row["p_eos"], row["seeds"]

    assert at("correctness", "top", 0) == (pytest.approx(0.1), 1)
    assert np.isnan(at("correctness", "bottom", 0)[0])  # one position sits in bin 1
    assert at("correctness", "bottom", 1)[0] == pytest.approx(0.5)
    # human: seed 0 top = [0.1, 0.6], seed 1 top = [0.2, 0.2]; seeds averaged.
    assert at("human-aligned", "top", 0) == (pytest.approx(0.15), 2)
    assert at("human-aligned", "top", 1)[0] == pytest.approx(0.4)
    assert at("human-aligned", "bottom", 1)[0] == pytest.approx((1.0 + 0.4) / 2)
    assert set(data["relative_position"]) == {0.25, 0.75}
    assert data["estimator"].unique().tolist() == ["RLOO"]
