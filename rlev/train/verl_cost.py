"""The per-token length cost on the verl back end: a reward manager that verl loads by path.

verl's `compute_score` gets the decoded response, not its tokens, so a cost per token
cannot live there. verl 0.9.1 has no length cost of its own (its DAPO manager has only the
overlong penalty, which rlev uses as is for `reward.cost.kind: overlong`), so for
`kind: length` rlev.train.verl sets

    reward.reward_manager.source=importlib
    reward.reward_manager.name=LengthCostRewardManager
    reward.reward_manager.module.path=<this file>
    +reward.reward_kwargs.length_cost_per_token=<per_token>

and verl's reward workers build this manager instead of the naive one. It is verl's naive
manager (same compute_score call, same extras) with one change: the reward of each
response becomes compute_score's score minus `rlev.reward.response_cost`, the formula the
local trainer uses, of the response's valid token count (eos included), and the cost is
logged as the extra `cost` beside compute_score's `score`.
"""

from __future__ import annotations

from rlev.reward import response_cost
from rlev.train.verl import PER_TOKEN_KEY
from rlev.train.verl_reward_manager import RlevRewardManager


class LengthCostRewardManager(RlevRewardManager):
    """verl's naive reward manager (with rlev's truncation flag) minus rlev's per-token length cost."""

    def __init__(self, config, tokenizer, compute_score, reward_router_address=None, reward_model_tokenizer=None):
        super().__init__(config, tokenizer, compute_score, reward_router_address, reward_model_tokenizer)
        per_token = (config.reward.get("reward_kwargs") or {}).get(PER_TOKEN_KEY)
        if per_token is None:
            raise ValueError(
                f"LengthCostRewardManager needs reward.reward_kwargs.{PER_TOKEN_KEY} in verl's config "
                "(rlev.train.verl sets it from reward.cost.per_token)"
            )
        self.cost = {"kind": "length", "per_token": float(per_token)}

    async def run_single(self, data):
        result = await super().run_single(data)
        item = data[-1:][0]  # the sequence the naive manager scored
        response_length = item.batch["responses"].shape[-1]
        tokens = int(item.batch["attention_mask"][-response_length:].sum())
        cost = float(response_cost(self.cost, tokens))
        result["reward_score"] = result["reward_score"] - cost
        result["reward_extra_info"]["cost"] = cost
        return result
