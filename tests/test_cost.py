"""The value-independent cost (reward.cost): the formula, the run's identity, and the reward
it gives on both back ends (the local trainer's rollouts; verl's reward managers built from
the composed config, as verl's reward workers build them)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import yaml

from conftest import REPO
from rlev.config import ConfigError, experiment_runs, parse_reward_tag, reward_tag, run_config, validate
from rlev.reward import cost_settings, response_cost

LENGTH = {"kind": "length", "per_token": 0.01}
OVERLONG = {"kind": "overlong", "overlong_buffer": 4, "overlong_penalty": 0.5}


def test_length_cost_is_per_token():
    assert response_cost(LENGTH, [0, 7, 20]).tolist() == pytest.approx([0.0, 0.07, 0.2])


def test_overlong_cost_is_dapos_soft_punishment():
    # budget 12, buffer 4: free up to 8 tokens, then rising linearly to the penalty at 12
    assert response_cost(OVERLONG, [3, 8, 9, 10, 12], 12).tolist() == pytest.approx([0, 0, 0.125, 0.25, 0.5])


def test_no_cost_and_bad_costs():
    assert response_cost({"kind": "none", "per_token": 1.0}, [5, 9]).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="unknown cost"):
        response_cost({"kind": "sqrt"}, [1])
    with pytest.raises(ValueError, match="overlong_buffer=20"):
        response_cost({**OVERLONG, "overlong_buffer": 20}, [1], 12)
    with pytest.raises(ValueError, match="needs"):
        cost_settings({"kind": "length"})


# --- the cost is part of the run's identity -----------------------------------------------


def smoke_config(**reward):
    config = yaml.safe_load((REPO / "tests" / "config_smoke" / "config.yaml").read_text())
    config.setdefault("reward", {}).update(reward)
    return validate(config)


@pytest.mark.parametrize("cost", [LENGTH, OVERLONG, {"kind": "length", "per_token": 1e-05}])
@pytest.mark.parametrize("variant", ["correctness", "human"])
def test_reward_tags_spell_the_cost_and_parse_back(variant, cost):
    tag = reward_tag(variant, 10, "additive_clipped", cost)
    assert tag != reward_tag(variant, 10, "additive_clipped")
    assert parse_reward_tag(tag)["cost"] == cost_settings(cost)
    assert parse_reward_tag(tag)["variant"] == variant


def test_tags_without_a_cost_are_unchanged():
    assert reward_tag("human", 10, "additive_clipped", {"kind": "none", "per_token": 3}) == "human-a10-additive_clipped"
    assert parse_reward_tag("human-a10-additive_clipped")["cost"] == {"kind": "none"}
    with pytest.raises(ConfigError):
        parse_reward_tag("human-a10-additive_clipped-len")


def test_runs_with_different_costs_never_share_a_directory():
    config = smoke_config()
    config["experiments"]["main"]["costs"] = [{"kind": "none"}, LENGTH, {"kind": "length", "per_token": 0.02}, OVERLONG]
    validate(config)
    runs = experiment_runs(config, "main")
    per_cost = (
        len(config["experiments"]["main"]["estimators"])
        * len(config["experiments"]["main"]["rewards"])
        * len(config["seeds"])
    )
    assert len({r.path for r in runs}) == len(runs) == 4 * per_cost
    for run in runs:  # the run's resolved config carries exactly the cost its name spells
        rc = run_config(config, run)
        assert rc["reward"].get("cost", {"kind": "none"}) == parse_reward_tag(run.reward)["cost"]


def test_a_run_without_a_cost_is_untouched_by_the_cost_settings():
    """Changing a setting the cost kind does not read changes no run name and no run config."""
    a, b = smoke_config(cost={"kind": "none"}), smoke_config(cost={"kind": "none", "per_token": 0.3})
    runs_a, runs_b = experiment_runs(a, "main"), experiment_runs(b, "main")
    assert runs_a == runs_b
    assert [run_config(a, r) for r in runs_a] == [run_config(b, r) for r in runs_b]
    c = smoke_config(cost={**LENGTH, "overlong_buffer": 3})
    d = smoke_config(cost={**LENGTH, "overlong_buffer": 9})
    assert [run_config(c, r) for r in experiment_runs(c, "main")] == [
        run_config(d, r) for r in experiment_runs(d, "main")
    ]
    assert experiment_runs(c, "main") != runs_a


def test_a_cost_the_run_name_would_round_is_refused():
    with pytest.raises(ConfigError, match="reward.cost"):
        smoke_config(cost={"kind": "length", "per_token": 0.00123456789})


def test_the_schema_fills_and_checks_the_cost():
    assert smoke_config()["reward"]["cost"]["kind"] == "none"
    with pytest.raises(ConfigError, match="reward.cost"):
        smoke_config(cost={"kind": "length", "per_token": -1})


# --- local back end -------------------------------------------------------------------------

from test_train_local import make_run as local_run  # noqa: E402
from test_train_local import read_metrics  # noqa: E402  (the toy fixture is conftest's)


@pytest.mark.parametrize("cost", [LENGTH, {"kind": "overlong", "overlong_buffer": 12, "overlong_penalty": 0.5}])
def test_local_rewards_pay_the_cost(toy, tmp_path, cost):  # noqa: F811
    """Same seed, same first rollout: the reward drops by exactly the cost of its tokens, and
    the different advantages make different weights."""
    import rlev.train.local as local

    plain = local_run(toy, tmp_path / "plain", {"adv_estimator": "rloo"}, "human", max_new_tokens=12)
    costly = copy.deepcopy(plain)
    costly["reward"]["cost"] = cost
    costly["out_dir"] = str(tmp_path / "costly")
    local.train(plain)
    local.train(costly)
    p, c = read_metrics(tmp_path / "plain")[0], read_metrics(tmp_path / "costly")[0]
    assert (p["acc"], p["length"], p["truncated"]) == (c["acc"], c["length"], c["truncated"])
    assert p["cost"] == 0
    tokens = c["length"] + 1 - c["truncated"]  # eos counted, as verl counts a response
    if cost["kind"] == "length":
        assert c["cost"] == pytest.approx(cost["per_token"] * tokens, rel=1e-5)
    else:  # buffer = the whole budget: the cost is penalty * tokens / budget for every response
        assert c["cost"] == pytest.approx(cost["overlong_penalty"] * tokens / 12, rel=1e-5)
    assert c["cost"] > 0
    assert c["reward"] == pytest.approx(p["reward"] - c["cost"], abs=1e-6)
    assert read_metrics(tmp_path / "plain")[1] != read_metrics(tmp_path / "costly")[1]


# --- verl back end --------------------------------------------------------------------------


def _verl_batch(tokenizer, responses, values, eos_on):
    """A hand-built DataProto as verl's rollout hands it to the reward manager."""
    import torch
    from verl import DataProto

    prompt_ids = torch.tensor([[tokenizer.pad_token_id, 5, 6]] * len(responses))
    encoded = [
        tokenizer(r)["input_ids"] + ([tokenizer.eos_token_id] if eos else []) for r, eos in zip(responses, eos_on)
    ]
    width = max(map(len, encoded))
    response_ids = torch.full((len(responses), width), tokenizer.pad_token_id)
    attention = torch.zeros((len(responses), 3 + width), dtype=torch.long)
    for i, ids in enumerate(encoded):
        response_ids[i, : len(ids)] = torch.tensor(ids)
        attention[i, 1:3] = 1
        attention[i, 3 : 3 + len(ids)] = 1
    data = DataProto.from_dict(
        tensors={"prompts": prompt_ids, "responses": response_ids, "attention_mask": attention},
        non_tensors={
            "data_source": np.array(["synthetic"] * len(responses), dtype=object),
            "reward_model": np.array([{"ground_truth": "7"}] * len(responses), dtype=object),
            "extra_info": np.array([{"value": v, "index": i} for i, v in enumerate(values)], dtype=object),
        },
    )
    return data, [len(ids) for ids in encoded]


def _manager_scores(run, responses, values, eos_on):
    """Rewards of verl's reward manager, loaded from the run's composed config as verl loads it."""
    from verl.trainer.ppo.reward import load_reward_manager

    from test_train_verl import _tiny_tokenizer, composed

    cfg = composed(run)
    manager = load_reward_manager(cfg, _tiny_tokenizer())
    data, tokens = _verl_batch(_tiny_tokenizer(), responses, values, eos_on)

    async def score_all():
        return [await manager.run_single(data[i : i + 1]) for i in range(len(responses))]

    return cfg, manager, manager.loop.run_until_complete(score_all()), tokens


RESPONSES = ["3+4=7 #### 7", "#### 8", "#### 7", "1+2=3 3+4=7 #### 7"]
VALUES = [0.05, 0.05, 0.2, 0.05]  # s = 1.5, 1.5, 2.0 (clipped), 1.5
CORRECT_SCORES = [1.5, 0.0, 2.0, 1.5]


def test_verl_length_cost_is_subtracted_by_rlevs_reward_manager(tmp_path):
    pytest.importorskip("verl")
    from test_train_verl import make_run as verl_run

    run = verl_run(tmp_path, "rloo", variant="human", alpha=10.0)
    run["reward"]["cost"] = LENGTH
    cfg, manager, results, tokens = _manager_scores(run, RESPONSES, VALUES, [True] * 4)
    assert type(manager).__name__ == "LengthCostRewardManager"
    assert cfg.reward.reward_kwargs.length_cost_per_token == 0.01
    expected = [s - 0.01 * t for s, t in zip(CORRECT_SCORES, tokens)]
    assert [r["reward_score"] for r in results] == pytest.approx(expected)
    assert [r["reward_extra_info"]["cost"] for r in results] == pytest.approx([0.01 * t for t in tokens])
    assert [r["reward_extra_info"]["score"] for r in results] == pytest.approx(CORRECT_SCORES)  # compute_score's


def test_verl_overlong_cost_is_dapos_manager(tmp_path):
    pytest.importorskip("verl")
    from test_train_verl import make_run as verl_run

    run = verl_run(tmp_path, "rloo", variant="human", alpha=10.0)
    run["reward"]["cost"] = {"kind": "overlong", "overlong_buffer": 4, "overlong_penalty": 0.5}
    run["scale"]["max_response_length"] = 12
    cfg, manager, results, tokens = _manager_scores(run, RESPONSES, VALUES, [True] * 4)
    from verl.experimental.reward_loop.reward_manager.dapo import DAPORewardManager

    assert isinstance(manager, DAPORewardManager)  # rlev's subclass: the same cost, plus the truncation flag
    assert cfg.reward.reward_manager.name == "RlevDapoRewardManager" and cfg.reward.reward_kwargs.max_resp_len == 12
    cost = response_cost(run["reward"]["cost"], tokens, 12)
    assert cost.max() > 0  # the longest response is inside the buffer
    assert [r["reward_score"] for r in results] == pytest.approx([s - c for s, c in zip(CORRECT_SCORES, cost)])


def test_verl_without_a_cost_keeps_the_naive_manager(tmp_path):
    pytest.importorskip("verl")
    from test_train_verl import make_run as verl_run

    run = verl_run(tmp_path, "rloo", variant="human", alpha=10.0)
    cfg, manager, results, _ = _manager_scores(run, RESPONSES, VALUES, [True] * 4)
    assert type(manager).__name__ == "RlevRewardManager" and "reward_kwargs" not in cfg.reward
    assert [r["reward_score"] for r in results] == pytest.approx(CORRECT_SCORES)


def test_verl_overlong_buffer_longer_than_the_budget_is_refused(tmp_path):
    pytest.importorskip("verl")
    from rlev.train import verl as V
    from test_train_verl import make_run as verl_run

    run = verl_run(tmp_path, "rloo")
    run["reward"]["cost"] = {"kind": "overlong", "overlong_buffer": 4096, "overlong_penalty": 1.0}
    with pytest.raises(V.VerlConfigError, match="overlong_buffer=4096"):
        V.verl_overrides(run)
