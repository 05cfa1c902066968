"""verl's naive reward manager, plus the one fact it does not hand compute_score: truncation.

verl 0.9.1's reward loop decodes the response without special tokens and calls
`compute_score(data_source, solution_str, ground_truth, extra_info)`, so the reward
function cannot tell an answer that ended at eos from one cut at the response budget.
rlev scores a truncated response 0 on every back end (the local trainer and the
evaluation count it wrong), so this manager sets `extra_info["truncated"]` before
delegating to verl's own `NaiveRewardManager.run_single`: truncated = the response does
not end with a stop token (the tokenizer's eos or one of generation_config's eos ids,
the tokens vLLM stops at).

verl loads it with `reward.reward_manager.source=importlib`,
`reward.reward_manager.module.path=<this file>`, `reward.reward_manager.name=RlevRewardManager`
(see rlev.train.verl); with a value-independent cost, `RlevDapoRewardManager` (verl's DAPO
manager, the overlong cost) or rlev.train.verl_cost's LengthCostRewardManager, both with
the same flag.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from verl.experimental.reward_loop.reward_manager.dapo import DAPORewardManager
from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager


def generation_config_file(model_path: str) -> Path | None:
    """A model's generation_config.json without touching the network: the model folder's, or
    the Hugging Face cache's for a Hub id (rlev.train.verl.train fetches it before launch)."""
    local = Path(model_path).expanduser()
    if local.is_dir():
        path = local / "generation_config.json"
        return path if path.is_file() else None
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model_path, "generation_config.json")
    except ValueError:  # not a repo id either
        return None
    return Path(cached) if isinstance(cached, str) else None


def stop_token_ids(tokenizer, model_path: str | None = None) -> set[int]:
    """The ids generation stops at: the tokenizer's eos and generation_config's eos ids."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    path = generation_config_file(model_path) if model_path else None
    if path is None:
        logging.getLogger(__name__).warning(
            "no generation_config.json for %s: a response counts as finished only at the tokenizer's eos %s",
            model_path,
            sorted(ids),
        )
        return ids
    eos = json.loads(path.read_text()).get("eos_token_id")
    if eos is not None:
        ids.update([eos] if isinstance(eos, int) else eos)
    return ids


class TruncationFlag:
    """Mixin for a verl reward manager: sets extra_info["truncated"] before its run_single."""

    def __init__(self, config, tokenizer, *args, **kwargs):
        super().__init__(config, tokenizer, *args, **kwargs)
        model = config.actor_rollout_ref.model
        self.stop_ids = stop_token_ids(tokenizer, model.get("tokenizer_path") or model.get("path"))

    async def run_single(self, data) -> dict:
        self.flag_truncation(data)
        return await super().run_single(data)

    def flag_truncation(self, data) -> None:
        item = data[-1:][0]  # the sequence verl scores (see NaiveRewardManager.run_single)
        responses = item.batch["responses"]
        length = int(item.batch["attention_mask"][-responses.shape[-1] :].sum())
        truncated = length == 0 or int(responses[length - 1]) not in self.stop_ids
        extra_info = item.non_tensor_batch.get("extra_info")
        if not isinstance(extra_info, dict):  # a row without extra_info: give it one to carry the flag
            import numpy as np

            extra_info = {}
            data.non_tensor_batch["extra_info"] = np.array([extra_info] * len(data), dtype=object)
        # The same dict object run_single passes on (it adds num_turns there the same way).
        extra_info["truncated"] = truncated


class RlevRewardManager(TruncationFlag, NaiveRewardManager):
    """verl's naive reward manager that tells compute_score whether the response was truncated."""


class RlevDapoRewardManager(TruncationFlag, DAPORewardManager):
    """verl's DAPO manager (the overlong cost) that tells compute_score about truncation."""
