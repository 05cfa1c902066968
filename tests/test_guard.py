"""The guard against no-op comparisons.

s(x) is constant within a prompt's group of samples, so an estimator that divides each
group's rewards by their std (verl's default GRPO) cancels it: every value variant then
trains exactly like correctness. This file measures that with verl's own estimator, checks
that `rlev.config.cancels_value_scale` predicts it, that config validation refuses such a
run (or warns, when the experiment opts in), and that the tables say which GRPO ran.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from verl.trainer.config import AlgoConfig
from verl.trainer.ppo import core_algos

from conftest import REPO
from rlev.config import ConfigError, Run, cancels_value_scale, load_config, run_config, validate, value_scale_invariance
from rlev.data.difficulty import DIFFICULTY_POINTS
from rlev.report import builders
from rlev.values import reward_scales

ESTIMATORS = [
    {"adv_estimator": "grpo", "norm_adv_by_std_in_grpo": True},
    {"adv_estimator": "grpo", "norm_adv_by_std_in_grpo": False},
    {"adv_estimator": "rloo"},
    {"adv_estimator": "reinforce_plus_plus"},
    {"adv_estimator": "reinforce_plus_plus_baseline"},
]


def verl_advantages(estimator: dict, scores: np.ndarray, group: np.ndarray, width: int = 6) -> torch.Tensor:
    """verl's estimator on outcome rewards (the score on each response's last token)."""
    mask = torch.ones(len(scores), width)
    token_rewards = torch.zeros(len(scores), width)
    token_rewards[:, -1] = torch.tensor(scores, dtype=torch.float32)
    config = AlgoConfig(
        adv_estimator=estimator["adv_estimator"], norm_adv_by_std_in_grpo=estimator.get("norm_adv_by_std_in_grpo", True)
    )
    kwargs = dict(token_level_rewards=token_rewards, response_mask=mask, index=group, config=config)
    if estimator["adv_estimator"] == "grpo":
        kwargs["norm_adv_by_std_in_grpo"] = config.norm_adv_by_std_in_grpo
    advantages, _ = core_algos.get_adv_estimator_fn(estimator["adv_estimator"])(**kwargs)
    return advantages


@pytest.fixture
def batch():
    """8 prompts x 8 samples with seeded correctness; training values of the 8 prompts."""
    rng = np.random.default_rng(0)
    prompts, n = 8, 8
    rows = pd.DataFrame(
        {
            "id": [f"q{i}" for i in range(prompts)],
            "value": np.linspace(0.005, 0.3, prompts),
            "difficulty": ["primary", "junior", "senior", "university", "phd"] * 1 + ["phd"] * 3,
        }
    )
    correct = rng.random(prompts * n) < 0.5
    return rows, correct, np.repeat(np.arange(prompts), n), n


@pytest.mark.parametrize(
    "estimator", ESTIMATORS, ids=lambda e: f"{e['adv_estimator']}-{e.get('norm_adv_by_std_in_grpo', '')}"
)
@pytest.mark.parametrize("variant", ["human", "shuffled", "weak", "uniform"])
def test_measured_invariance_is_what_the_guard_predicts(batch, estimator, variant):
    """Std-normalised GRPO cancels every value variant; batch whitening (REINFORCE++) cancels the
    one constant s_bar of `uniform`; everything else changes the advantages."""
    rows, correct, group, n = batch
    run = {
        "seed": 0,
        "reward": {"variant": variant, "alpha": 10, "form": "additive_clipped", "weak_points": DIFFICULTY_POINTS},
    }
    baseline = {"seed": 0, "reward": {"variant": "correctness", "alpha": 10, "form": "additive_clipped"}}
    a_value = verl_advantages(estimator, np.repeat(reward_scales(run, rows), n) * correct, group)
    a_correct = verl_advantages(estimator, np.repeat(reward_scales(baseline, rows), n) * correct, group)
    diff = (a_value - a_correct).abs().max().item()
    if cancels_value_scale(estimator, variant):
        assert diff < 1e-5, f"max |A_{variant} - A_correctness| = {diff:.2e}"
    else:
        assert diff > 0.05, f"max |A_{variant} - A_correctness| = {diff:.2e}"
    expected_cancel = (estimator["adv_estimator"] == "grpo" and estimator["norm_adv_by_std_in_grpo"]) or (
        variant == "uniform" and estimator["adv_estimator"].startswith("reinforce_plus_plus")
    )
    assert cancels_value_scale(estimator, variant) == expected_cancel


def test_a_kl_term_in_the_reward_breaks_the_invariance():
    assert cancels_value_scale({"adv_estimator": "grpo"})  # verl's default: std-normalised
    assert not cancels_value_scale({"adv_estimator": "grpo", "use_kl_in_reward": True})
    assert not cancels_value_scale({"adv_estimator": "grpo", "norm_adv_by_std_in_grpo": False})
    assert not cancels_value_scale({"adv_estimator": "reinforce_plus_plus", "use_kl_in_reward": True}, "uniform")
    assert not cancels_value_scale({"adv_estimator": "grpo"}, "correctness")


def test_config_refuses_uniform_under_batch_whitening(raw):
    raw["experiments"]["ablation"]["estimators"] = ["rloo", "reinforce_plus_plus"]
    with pytest.raises(
        ConfigError, match=r"experiments.ablation: estimator 'reinforce_plus_plus' .*whitens.*" r"its uniform run\(s\)"
    ):
        validate(raw)


@pytest.fixture
def raw():
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_config_refuses_a_no_op_comparison_and_names_the_fix(raw):
    raw["estimators"]["grpo_std"] = {"adv_estimator": "grpo", "norm_adv_by_std_in_grpo": True}
    raw["experiments"]["main"]["estimators"].append("grpo_std")
    with pytest.raises(ConfigError) as err:
        validate(raw)
    message = str(err.value)
    assert "experiments.main" in message and "'grpo_std'" in message and "cancels the per-prompt value scale" in message
    assert "norm_adv_by_std_in_grpo: false under estimators.grpo_std" in message
    assert "rloo / reinforce_plus_plus" in message and "allow_scale_invariant" in message


def test_std_grpo_is_fine_for_correctness_only(raw):
    raw["estimators"]["grpo_std"] = {"adv_estimator": "grpo"}
    raw["experiments"]["main"] = {"estimators": ["grpo_std"], "rewards": ["correctness"]}
    validate(raw)


def test_opting_in_turns_the_error_into_a_warning_and_the_run_records_its_grpo(raw):
    raw["estimators"]["grpo_std"] = {"adv_estimator": "grpo"}
    raw["experiments"]["main"]["estimators"].append("grpo_std")
    raw["experiments"]["main"]["allow_scale_invariant"] = True
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config = validate(raw)
    assert any("cancels the per-prompt value scale" in str(w.message) for w in caught)
    rc = run_config(config, Run("synthetic", "tiny", "grpo_std", "human-a10-additive_clipped", 0))
    assert rc["estimator"]["norm_adv_by_std_in_grpo"] is True  # written into the run's config.yaml


def test_default_config_passes_the_guard():
    load_config(REPO / "config.yaml")


def fake_run(root, estimator: dict, variant: str, acc: float) -> str:
    """A run directory as the pipeline leaves it (config.yaml + eval/metrics.json), for the table builder."""
    name = estimator["name"] + ("-std" if estimator.get("norm_adv_by_std_in_grpo") else "")
    run = root / name / variant
    (run / "eval").mkdir(parents=True)
    config = {
        "seed": 0,
        "scale": {"name": "tiny"},
        "estimator": estimator,
        "reward": {"variant": variant, "alpha": 10.0, "form": "additive_clipped"},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "eval" / "metrics.json").write_text(
        json.dumps({"acc": acc, "h_acc": acc, "length": 10.0, "density": acc / 10})
    )
    return str(run)


@pytest.mark.parametrize("table", ["table4", "table5", "table6"])
def test_tables_4_to_6_say_which_grpo_ran(tmp_path, table):
    runs = [
        fake_run(tmp_path, {"name": "grpo", "adv_estimator": "grpo", "norm_adv_by_std_in_grpo": False}, "human", 50),
        fake_run(tmp_path, {"name": "grpo", "adv_estimator": "grpo", "norm_adv_by_std_in_grpo": True}, "human", 40),
        fake_run(tmp_path, {"name": "rloo", "adv_estimator": "rloo"}, "human", 60),
    ]
    out = getattr(builders, table)(runs, tmp_path / "tables" / table)
    assert out["estimator"].tolist() == ["GRPO (mean-centred)", "GRPO (std-norm)", "RLOO"]
    assert out["acc"].tolist() == [50, 40, 60]
    md = (tmp_path / "tables" / f"{table}.md").read_text()
    assert "GRPO (mean-centred)" in md and "GRPO (std-norm)" in md


def adamw_parameters(scale: float, entropy_coeff: float = 0.0, steps: int = 30) -> torch.Tensor:
    """A small policy's parameters after `steps` AdamW steps on scale * (policy-gradient loss) - entropy term."""
    torch.manual_seed(0)
    logits = torch.nn.Parameter(torch.randn(4, 6))
    opt = torch.optim.AdamW([logits], lr=1e-2, weight_decay=0.01)
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        actions = torch.randint(0, 6, (4, 8), generator=gen)
        advantages = torch.randn(4, 8, generator=gen)
        logp = torch.log_softmax(logits, -1)
        pg = -(scale * advantages * logp.gather(1, actions)).mean()
        entropy = -(logp.exp() * logp).sum(-1).mean()
        opt.zero_grad()
        (pg - entropy_coeff * entropy).backward()
        opt.step()
    return logits.detach().clone()


def test_adamw_ignores_one_constant_scale_of_the_advantages_unless_the_loss_has_an_unscaled_term():
    """The measurement behind value_scale_invariance's "adam" case (uniform = s_bar * correctness advantages)."""
    base = adamw_parameters(1.0)
    assert (adamw_parameters(1.2) - base).abs().max().item() < 1e-5  # s_bar = 1.2: the same policy
    assert (adamw_parameters(1.0) - base).abs().max().item() == 0.0
    moved = (adamw_parameters(1.0, entropy_coeff=0.5) - adamw_parameters(1.2, entropy_coeff=0.5)).abs().max().item()
    assert moved > 1e-3  # an entropy term s_bar does not scale: the mean scale matters


def test_uniform_under_adam_is_flagged_but_allowed():
    rloo = {"adv_estimator": "rloo"}
    assert value_scale_invariance(rloo, "uniform") == "adam" and not cancels_value_scale(rloo, "uniform")
    assert value_scale_invariance(rloo, "human") is None  # per-prompt scales change the update
    assert value_scale_invariance({**rloo, "entropy_coeff": 0.01}, "uniform") is None
    assert value_scale_invariance({**rloo, "use_kl_loss": True}, "uniform") is None
    assert value_scale_invariance({**rloo, "use_kl_in_reward": True}, "uniform") is None
    assert value_scale_invariance({"adv_estimator": "grpo", "norm_adv_by_std_in_grpo": False}, "uniform") == "adam"
    # a value-independent cost in the reward is a term s_bar does not scale: never a no-op
    assert value_scale_invariance(rloo, "uniform", {"kind": "length", "per_token": 0.005}) is None
    assert value_scale_invariance({"adv_estimator": "grpo"}, "human", {"kind": "overlong"}) is None
    assert value_scale_invariance(rloo, "uniform", {"kind": "none"}) == "adam"


def test_the_default_ablation_warns_that_uniform_is_a_no_op_under_adamw(raw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        validate(raw)  # a warning, not an error: the run still answers "is uniform == correctness?"
    messages = [str(w.message) for w in caught if "AdamW" in str(w.message)]
    # one per experiment with a uniform run and no cost: the ablation and the mechanism's no-cost arm
    # (the mechanism's message names that arm: its runs under the length cost are not no-ops)
    assert [m.split(":")[0] for m in messages] == [
        "WARNING experiments.ablation",
        "WARNING experiments.mechanism (its runs with cost none)",
    ]
    assert messages[0].startswith("WARNING experiments.ablation: estimator 'rloo'") and "uniform run(s)" in messages[0]
    raw["reward"]["cost"] = {"kind": "length", "per_token": 0.005}  # every run pays a cost s_bar does not scale
    del raw["experiments"]["mechanism"]  # (its no-cost arm names `kind: none` itself)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        validate(raw)
    assert not [w for w in caught if "AdamW" in str(w.message)]
