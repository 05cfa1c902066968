"""Figure 2's EOS trajectories (rlev.evaluate.eos, rlev.analysis.figure2): selection, teacher forcing without full logits, and
P(eos) by absolute position over the responses still running."""

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from rlev.analysis.figure2 import figure2
from rlev.evaluate.eos import eos_trajectories, extreme_prompts, stop_log_probs
from rlev.model import build_tiny, load_policy, render_prompt


def test_extremes_are_a_share_of_the_test_set_capped_at_half():
    s = pd.DataFrame({"id": list("abcdef"), "value": [0.5, 0.1, 0.9, 0.3, 0.7, 0.2]})
    chosen = extreme_prompts(s, share=2 / 6)
    assert sorted(chosen.loc[chosen["extreme"] == "top", "id"]) == ["c", "e"]
    assert sorted(chosen.loc[chosen["extreme"] == "bottom", "id"]) == ["b", "f"]
    assert len(extreme_prompts(s, share=0.025)) == 2  # at least one prompt per group
    capped = extreme_prompts(s, share=0.5)  # n // 2 = 3 each, disjoint
    assert (capped["extreme"] == "top").sum() == 3 and capped["id"].is_unique
    paper = extreme_prompts(pd.DataFrame({"id": range(8000), "value": np.random.default_rng(0).random(8000)}))
    assert (paper["extreme"] == "top").sum() == 200  # the paper's 200 of 8,000
    with pytest.raises(ValueError, match="at least 2"):
        extreme_prompts(s.head(1))


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    texts = ["What is 12 + 30? Answer: 42", "Compute 7 * 6 step by step. 7 * 6 = 42. Answer: 42"] * 20
    shape = dict(
        vocab_size=300,
        hidden_size=32,
        intermediate_size=64,
        num_layers=1,
        num_heads=4,
        num_kv_heads=2,
        max_position=128,
    )
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


def test_chunked_stop_log_probs_equal_the_full_log_softmax(tiny_policy):
    """The memory-light path (hidden states, logsumexp over vocabulary chunks) equals log_softmax of full logits."""
    model, tok = tiny_policy
    ids = torch.tensor([tok("What is 12 + 30? Answer: 42", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        full = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
        hidden = model.model(input_ids=ids).last_hidden_state[0]
        for chunk in (7, 64, 100000):  # chunks that do not divide the vocabulary, and one chunk
            got = stop_log_probs(hidden, model.lm_head, [tok.eos_token_id], chunk)
            assert torch.allclose(got, full[:, tok.eos_token_id], atol=1e-5)
        two = stop_log_probs(hidden, model.lm_head, [tok.eos_token_id, 5], chunk=50)
        assert torch.allclose(two, torch.logsumexp(full[:, [tok.eos_token_id, 5]], -1), atol=1e-5)


def write_run(root, estimator, reward, seed, responses):
    """A run folder with eval/eos.parquet: responses = [(id, extreme, [p_eos per position], stopped)]."""
    run = root / estimator / reward / f"seed{seed}"
    (run / "eval").mkdir(parents=True)
    config = {
        "estimator": {"name": estimator, "adv_estimator": estimator},
        "scale": {"name": "tiny"},
        "reward": {"variant": reward, "alpha": 10, "form": "additive_clipped"},
        "seed": seed,
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "eval" / "metrics.json").write_text("{}")
    rows = []
    for i, extreme, ps, stopped in responses:
        tokens = len(ps) - 1 if stopped else len(ps)
        rows += [
            {
                "id": i,
                "value": 0.5,
                "extreme": extreme,
                "position": t,
                "tokens": tokens,
                "stop_slot": stopped and t == tokens,
                "p_eos": p,
            }
            for t, p in enumerate(ps)
        ]
    pd.DataFrame(rows).to_parquet(run / "eval" / "eos.parquet")
    return str(run / "eval" / "eos.parquet")


def test_figure2_averages_by_absolute_position_over_running_responses(tmp_path):
    # correctness, seed 0: top responses of 3 and 1 tokens (both stopped), bottom one of 2 tokens (truncated).
    files = [
        write_run(
            tmp_path,
            "rloo",
            "correctness",
            0,
            [
                ("a", "top", [0.1, 0.2, 0.3, 0.9], True),
                ("b", "top", [0.3, 0.7], True),
                ("c", "bottom", [0.01, 0.02], False),
            ],
        ),
        write_run(
            tmp_path, "rloo", "human", 0, [("a", "top", [0.2, 0.4, 1.0], True), ("c", "bottom", [0.05, 0.8], True)]
        ),
        write_run(
            tmp_path, "rloo", "human", 1, [("a", "top", [0.4, 0.6, 0.8], True), ("c", "bottom", [0.15, 0.6], True)]
        ),
    ]
    running, stop = figure2(files, tmp_path / "fig" / "figure2", min_responses=1)
    for name in ("figure2.png", "figure2.svg", "figure2.csv", "figure2_stop.csv"):
        assert (tmp_path / "fig" / name).stat().st_size > 0

    def at(reward, extreme, t):
        row = running[(running["reward"] == reward) & (running["extreme"] == extreme) & (running["position"] == t)]
        return (row["p_eos"].item(), row["responses"].item()) if len(row) else None

    # t = 0: both top responses run; t = 1: only "a" (b's 1 is its stop slot, shown apart); t = 3 is a's stop slot
    assert at("correctness", "top", 0) == (pytest.approx(0.2), 2)
    assert at("correctness", "top", 1) == (pytest.approx(0.2), 1)
    assert at("correctness", "top", 2) == (pytest.approx(0.3), 1) and at("correctness", "top", 3) is None
    assert at("correctness", "bottom", 1) == (pytest.approx(0.02), 1)  # truncated: no stop slot
    # seeds averaged with equal weight
    assert at("human-aligned", "top", 1) == (pytest.approx(0.5), 2)
    assert at("human-aligned", "bottom", 0)[0] == pytest.approx(0.1)
    s = stop.set_index(["reward", "extreme"])
    assert s.loc[("correctness", "top"), "p_eos_at_stop"] == pytest.approx((0.9 + 0.7) / 2)
    assert s.loc[("correctness", "top"), "mean_tokens"] == pytest.approx(2.0)
    assert (s.loc[("correctness", "bottom"), "stopped"], s.loc[("correctness", "bottom"), "responses"]) == (0, 1)
    assert s.loc[("human-aligned", "top"), "p_eos_at_stop"] == pytest.approx(0.9)
    assert s.loc[("human-aligned", "top"), "seeds"] == 2
    # a run contributes a position only while min_responses of its responses run
    running, _ = figure2(files, tmp_path / "fig2" / "figure2", min_responses=2)
    assert running[running["reward"] == "correctness"]["position"].tolist() == [0]
