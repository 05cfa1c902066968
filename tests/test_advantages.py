"""RLEV's scale reaches the update through RLOO, REINFORCE++ and mean-centred GRPO, but not
through std-normalised GRPO (s(x) is constant within a prompt's group and cancels)."""

import numpy as np
import pytest
import torch

from rlev.reward import reward_scale
from rlev.train.local import compute_advantages


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    prompts, n, width = 6, 8, 12
    correct = torch.rand(prompts * n, generator=g) < 0.5
    lengths = torch.randint(1, width + 1, (prompts * n,), generator=g)
    mask = (torch.arange(width)[None, :] < lengths[:, None]).float()
    values = np.repeat(np.linspace(0.01, 0.3, prompts), n)
    group = np.repeat(np.arange(prompts), n)
    return correct, mask, values, group


def advantages(estimator, batch, variant):
    correct, mask, values, group = batch
    scores = torch.tensor(reward_scale(variant, values, 10, "additive_clipped"), dtype=torch.float32) * correct
    return compute_advantages(estimator, scores, mask, group)


@pytest.mark.parametrize(
    "estimator",
    [
        {"adv_estimator": "rloo"},
        {"adv_estimator": "reinforce_plus_plus"},
        {"adv_estimator": "reinforce_plus_plus_baseline"},
        {"adv_estimator": "grpo", "norm_adv_by_std_in_grpo": False},
    ],
)
def test_rlev_changes_the_advantages(estimator, batch):
    diff = (advantages(estimator, batch, "human") - advantages(estimator, batch, "correctness")).abs().max()
    assert diff > 0.1


def test_std_normalised_grpo_cancels_rlev(batch):
    estimator = {"adv_estimator": "grpo", "norm_adv_by_std_in_grpo": True}
    diff = (advantages(estimator, batch, "human") - advantages(estimator, batch, "correctness")).abs().max()
    assert diff < 1e-4


def test_outcome_reward_sits_on_the_last_response_token(batch):
    correct, mask, values, group = batch
    adv = compute_advantages({"adv_estimator": "grpo", "norm_adv_by_std_in_grpo": False}, correct.float(), mask, group)
    assert (adv[mask == 0] == 0).all()  # nothing outside the response
