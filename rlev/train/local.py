"""The single-process RL back end (CPU or one GPU): rollout -> reward -> advantage -> loss -> step.

    rlev train results/runs/synthetic/tiny/rloo/human-a10-additive_clipped/seed0/config.yaml

The algorithm code is verl's own (`verl.trainer.ppo.core_algos`: advantage estimators,
the clipped policy loss and loss aggregation), so a local run and a verl run of the same
experiment differ only in the engine around them. One policy update per batch: the
rollout policy is the current policy, the PPO ratio is 1 at the update and clipping is
inert (as in verl with ppo_epochs=1 and one mini-batch).

Writes into the run directory: train/metrics.jsonl (one line per step) and model/ (the
final policy in Hugging Face format).
"""

from __future__ import annotations

import json
import logging
import random
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm
from verl.trainer.config import AlgoConfig
from verl.trainer.ppo import core_algos
from verl.workers.config import ActorConfig

from rlev.model import load_policy, render_prompt
from rlev.reward import reward_scale
from rlev.rollout import generate, response_logprobs
from rlev.verify import build_verifier

log = logging.getLogger(__name__)


def compute_advantages(estimator: dict, scores: torch.Tensor, response_mask: torch.Tensor, group: np.ndarray):
    """verl's estimator on outcome rewards: the score sits on each response's last token.

    scores: (B,) one scalar per response; response_mask: (B, R); group: (B,) prompt index.
    Returns advantages (B, R).
    """
    last = response_mask.sum(dim=1).long().clamp(min=1) - 1
    token_level_rewards = torch.zeros(response_mask.shape, dtype=torch.float32)
    token_level_rewards[torch.arange(len(scores)), last] = scores.float()
    algo = AlgoConfig(
        adv_estimator=estimator["adv_estimator"],
        norm_adv_by_std_in_grpo=estimator.get("norm_adv_by_std_in_grpo", True),
        gamma=estimator.get("gamma", 1.0),
    )
    fn = core_algos.get_adv_estimator_fn(estimator["adv_estimator"])
    kwargs = dict(token_level_rewards=token_level_rewards, response_mask=response_mask.float(), index=group, config=algo)
    if estimator["adv_estimator"] == "grpo":
        kwargs["norm_adv_by_std_in_grpo"] = algo.norm_adv_by_std_in_grpo
    advantages, _returns = fn(**kwargs)
    return advantages


def train(run: dict) -> None:
    s, est, rw = run["scale"], run["estimator"], run["reward"]
    out_dir = Path(run["out_dir"])
    (out_dir / "train").mkdir(parents=True, exist_ok=True)

    # -- setup: seed, data, model, optimiser --------------------------------------------
    torch.set_num_threads(s["threads"])
    random.seed(run["seed"])
    np.random.seed(run["seed"])
    torch.manual_seed(run["seed"])
    train_rows = pd.read_parquet(run["dataset"]["train"])
    scale_by_row = reward_scale(rw["variant"], train_rows["value"].to_numpy(), rw["alpha"], rw["form"])
    verifier = build_verifier({"kind": "rule"})
    model, tokenizer = load_policy(s["init_model"], s["device"], s["dtype"])
    prompts = [render_prompt(tokenizer, q, sys_) for q, sys_ in zip(train_rows["question"], train_rows["system"])]
    optimizer = torch.optim.AdamW(model.parameters(), lr=s["lr"], weight_decay=s["weight_decay"])
    B, n = s["prompts_per_step"], s["n"]
    # verl's actor settings for what this loop does: one update on the whole batch.
    actor = ActorConfig(strategy="fsdp", clip_ratio=est["clip_ratio"], loss_agg_mode=est["loss_agg_mode"],
                        ppo_mini_batch_size=B, ppo_micro_batch_size_per_gpu=B * n, rollout_n=n)
    policy_loss = core_algos.get_policy_loss_fn("vanilla")
    order = np.random.default_rng(run["seed"]).permutation(len(train_rows))
    log.info("%s: %d training prompts, %d steps x %d prompts x %d samples", run["run_id"], len(train_rows),
             s["rl_steps"], B, n)

    metrics_file = open(out_dir / "train" / "metrics.jsonl", "w")
    bar = tqdm(range(s["rl_steps"]), desc=run["run_id"], mininterval=5)
    for step in bar:
        t0 = time.perf_counter()
        # rollout: n samples for each of B prompts, taken in a seeded order (epochs wrap)
        rows = order[[(step * B + i) % len(order) for i in range(B)]]
        model.eval()
        ro = generate(model, tokenizer, [prompts[i] for i in rows], n=n, max_new_tokens=s["max_new_tokens"],
                      temperature=s["temperature"])
        t_gen = time.perf_counter() - t0
        # reward: s(x) * correct; a truncated response is wrong
        rows_rep = np.repeat(rows, n)
        verdicts = verifier(train_rows["answer"].to_numpy()[rows_rep].tolist(), ro.texts)
        correct = torch.tensor([bool(v) for v in verdicts]) & ~ro.truncated
        scores = torch.tensor(scale_by_row[rows_rep], dtype=torch.float32) * correct
        # advantage (verl's estimator) and the clipped policy loss (verl's)
        advantages = compute_advantages(est, scores, ro.response_mask.cpu(), np.repeat(np.arange(B), n)).to(model.device)
        model.train()
        logp = response_logprobs(model, ro, s["temperature"])
        mask = ro.response_mask.to(logp.dtype)
        loss, pg_metrics = policy_loss(logp.detach(), logp, advantages, mask, est["loss_agg_mode"], config=actor)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), est["grad_clip"])
        optimizer.step()
        # log
        values = train_rows["value"].to_numpy()[rows_rep]
        record = {
            "step": step,
            "reward": scores.mean().item(),
            "acc": correct.float().mean().item(),
            "h_acc": float((values * correct.numpy()).sum() / values.sum()),
            "length": ro.lengths.float().mean().item(),
            "truncated": ro.truncated.float().mean().item(),
            "loss": loss.item(),
            "grad_norm": grad_norm.item(),
            "completions_per_s": len(ro.texts) / t_gen,
            "seconds": time.perf_counter() - t0,
            **pg_metrics,
        }
        metrics_file.write(json.dumps(record) + "\n")
        metrics_file.flush()
        bar.set_postfix(acc=f"{record['acc']:.2f}", len=f"{record['length']:.1f}")
    metrics_file.close()
    model.save_pretrained(out_dir / "model")
    tokenizer.save_pretrained(out_dir / "model")
