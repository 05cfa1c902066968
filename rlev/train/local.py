"""The single-process RL back end (CPU or one GPU): rollout -> reward -> advantage -> loss -> step.

    rlev train --spec results/runs/synthetic/tiny/rloo/human-a10-additive_clipped/seed0/config.yaml

The algorithm code is verl's own (`verl.trainer.ppo.core_algos`): the advantage
estimators (reinforce_plus_plus, reinforce_plus_plus_baseline, rloo, grpo with or without
std normalisation), the clipped policy loss, loss aggregation and the KL estimators. The
estimator block of the config uses verl's names and defaults, so a local run and a verl
run of one experiment read alike:

    use_kl_in_reward, kl_coef, kl_penalty   KL to the frozen initial policy subtracted from
                                            the token-level rewards (verl's apply_kl_penalty,
                                            fixed controller)
    use_kl_loss, kl_loss_coef, kl_loss_type KL to the frozen initial policy added to the loss
    entropy_coeff                           entropy bonus subtracted from the loss
    clip_ratio, loss_agg_mode, grad_clip    PPO clip, verl's aggregation, gradient-norm clip

By default each batch gets one update on the whole batch (verl with ppo_epochs=1 and one
mini-batch): the rollout policy is the policy being updated, the PPO ratio is 1 and the
clip is inert. `ppo_epochs` > 1 or `ppo_mini_batch` < `prompts_per_step` (in the scale)
make several updates per batch against log-probs recomputed once before the first, as
verl does. Each update accumulates gradients over micro-batches of similar response
length (at most `micro_batch_tokens` padded tokens each, verl's dynamic batch size), so
padding is hardly computed; the loss is aggregated over the whole mini-batch (verl's
global batch info), so the cut changes memory and speed, not the update.

Randomness: the torch generator is re-seeded from (seed, step) before each step's
sampling, and the prompt order of epoch e is a permutation seeded by (seed, e); so a
step's batch and samples depend only on the seed, the step and the weights. Two runs with
one seed give identical metrics on CPU, and a resumed run continues exactly.

Checkpoints: every `checkpoint_every` steps, `<out_dir>/checkpoints/step_<k>.pt` holds
the policy and optimiser state, the RNG states, the data position, the metrics so far
and the run config. Each is written to a temporary file, synced and renamed, so a kill
or a full disk never leaves a half-written checkpoint; the newest two are kept. Started
again after being killed, a run continues from the newest checkpoint that is readable
(an unreadable one is named in a warning and the older one is used; with none left the
run stops, naming the file), was written by the same configuration and lies within the
run's `rl_steps` (lowering `rl_steps` below a checkpoint resumes from an earlier one or
starts over, never keeps the extra steps). A finished run removes its checkpoints
(model/ and train/metrics.jsonl are its outputs).

One trainer per run directory: the run holds `train/trainer.lock` (rlev.train.lock)
while it trains, and a second trainer on the same directory stops at once, naming the
holder's pid.

Unverified samples: a response the LLM judge could not decide (after its retries) is
neither right nor wrong; it is left out of the step's reward, acc and h_acc, out of the
advantage estimate (its group's baseline is computed from the decided responses) and
out of the loss, and counted in `unverified`. A step with more than
`reward.verifier.max_unverified_share` of its responses undecided stops the run. A run
none of whose updates could be applied (every gradient non-finite) stops instead of
saving the unchanged policy as its result.

Reward scales: s(x) of each training row, computed when the run starts and written to its
values.parquet (rlev.values.write_values, the verl back end's function too).

Writes into the run directory: train/metrics.jsonl (one line per step, names in
STEP_METRICS) and model/ (the final policy in Hugging Face format).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import re
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from verl.trainer.config import AlgoConfig
from verl.trainer.ppo import core_algos
from verl.workers.config import ActorConfig

from rlev import nan_to_null
from rlev.metrics import human_aligned_accuracy
from rlev.model import load_policy, render_prompt
from rlev.progress import progress
from rlev.reward import response_cost
from rlev.rollout import Rollout, batch_logprobs, generate, length_buckets, response_logprobs
from rlev.tracking import start_wandb
from rlev.train.lock import run_lock
from rlev.values import write_values
from rlev.verify import run_verifier

log = logging.getLogger(__name__)

# Every key of a metrics.jsonl line; None where a quantity does not apply to the run.
STEP_METRICS: dict[str, str] = {
    "step": "0-based RL step",
    "reward": "mean reward s(x) * 1[correct] - cost of the batch's responses (before any KL penalty)",
    "cost": "mean value-independent cost of the batch's responses (reward.cost; 0 without one)",
    "acc": "share of correct responses in the batch (fraction); a truncated response is wrong",
    "h_acc": "human-aligned accuracy of the batch: sum(v * correct) / sum(v) over responses, human v (fraction)",
    "unverified": "responses the judge could not decide, left out of reward, acc, h_acc, advantages and loss",
    "length": "mean generated tokens per response (eos excluded)",
    "length_q1": "mean length of the responses to the quarter of the batch's prompts with the lowest v",
    "length_q2": "... second quarter by v (prompts ranked by v, ties in batch order)",
    "length_q3": "... third quarter by v",
    "length_q4": "... the quarter with the highest v",
    "truncated": "share of responses that reached max_new_tokens without eos",
    "loss": "total loss (policy - entropy_coeff * entropy + kl_loss_coef * kl_loss), mean over updates",
    "pg_loss": "verl's clipped policy-gradient loss, mean over updates",
    "pg_clipfrac": "share of tokens where the PPO clip is active (0 with one update per batch)",
    "pg_clipfrac_lower": "share of tokens where the dual-clip lower bound is active",
    "ppo_kl": "mean log(pi_old / pi) over response tokens at the updates (0 with one update per batch)",
    "entropy": "token-mean entropy of the policy's next-token distribution on the batch (at temperature)",
    "kl_ref": "token-mean KL(policy || reference) on the batch, k3 estimate; None without a reference model",
    "kl_loss": "verl's KL loss (kl_loss_type, aggregated by loss_agg_mode), mean over updates; None unless use_kl_loss",
    "reward_kl_penalty": "token-mean KL (kl_penalty) subtracted in the reward, before kl_coef; None unless use_kl_in_reward",
    "grad_norm": "gradient norm before clipping, mean over updates",
    "skipped_updates": "updates skipped because the gradient norm was not finite",
    "lr": "learning rate",
    "completions_per_s": "responses generated per second of generation time",
    "tokens_per_s": "response tokens (eos included) generated per second of generation time",
    "time_generate": "seconds spent sampling the batch",
    "time_reward": "seconds spent verifying responses",
    "time_logprob": "seconds spent on log-probs before the update (old policy for KL-in-reward or several updates, reference)",
    "time_update": "seconds spent on forward/backward/optimizer steps",
    "seconds": "wall-clock seconds of the whole step",
}
# Keys that measure the machine rather than the run: excluded when comparing two runs.
TIMING_METRICS = (
    "completions_per_s",
    "tokens_per_s",
    "time_generate",
    "time_reward",
    "time_logprob",
    "time_update",
    "seconds",
)


# --- advantages: verl's estimators on outcome rewards --------------------------------


def outcome_token_rewards(scores: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """(B, R) token-level scores on the CPU: each response's scalar score on its last response token."""
    response_mask = response_mask.cpu()
    last = response_mask.sum(dim=1).long().clamp(min=1) - 1
    token_level = torch.zeros(response_mask.shape, dtype=torch.float32)
    token_level[torch.arange(len(scores)), last] = scores.float().cpu()
    return token_level


def estimator_advantages(
    estimator: dict, token_level_rewards: torch.Tensor, response_mask: torch.Tensor, group: np.ndarray
) -> torch.Tensor:
    """verl's advantage estimator `estimator["adv_estimator"]` on (B, R) token-level rewards.

    group: (B,) prompt index of each response (the estimators' `index`). Returns (B, R).
    """
    algo = AlgoConfig(
        adv_estimator=estimator["adv_estimator"],
        norm_adv_by_std_in_grpo=estimator.get("norm_adv_by_std_in_grpo", True),
        gamma=estimator.get("gamma", 1.0),
    )
    fn = core_algos.get_adv_estimator_fn(estimator["adv_estimator"])
    kwargs = dict(
        token_level_rewards=token_level_rewards, response_mask=response_mask.float(), index=group, config=algo
    )
    if estimator["adv_estimator"] == "grpo":
        kwargs["norm_adv_by_std_in_grpo"] = algo.norm_adv_by_std_in_grpo
    advantages, _returns = fn(**kwargs)
    return advantages


def compute_advantages(estimator: dict, scores: torch.Tensor, response_mask: torch.Tensor, group: np.ndarray):
    """verl's estimator on outcome rewards: the score sits on each response's last token.

    scores: (B,) one scalar per response; response_mask: (B, R); group: (B,) prompt index.
    Returns advantages (B, R).
    """
    return estimator_advantages(estimator, outcome_token_rewards(scores, response_mask), response_mask.cpu(), group)


def verified_advantages(
    estimator: dict,
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    group: np.ndarray,
    verified: torch.Tensor,
) -> torch.Tensor:
    """verl's estimator over the verified responses alone; the others get advantage 0.

    A response the judge could not decide is not a wrong answer: it must not pull its
    group's baseline (RLOO, GRPO) or the batch statistics (REINFORCE++) down.
    verified: (B,) bool. Returns (B, R).
    """
    if bool(verified.all()):
        return estimator_advantages(estimator, token_level_rewards, response_mask, group)
    advantages = torch.zeros_like(token_level_rewards)
    keep = verified.nonzero().squeeze(1)
    if len(keep):
        advantages[keep] = estimator_advantages(
            estimator, token_level_rewards[keep], response_mask[keep], group[keep.numpy()]
        )
    return advantages


def kl_in_reward(
    token_level_scores: torch.Tensor,
    old_logp: torch.Tensor,
    ref_logp: torch.Tensor,
    response_mask: torch.Tensor,
    estimator: dict,
) -> tuple[torch.Tensor, float]:
    """verl's apply_kl_penalty with a fixed controller: rewards = scores - kl_coef * KL per token.

    All (B, R) on one device. Returns the token-level rewards and the batch's KL (mean over
    responses of each response's token-mean KL, as verl logs actor/reward_kl_penalty).
    """
    mask = response_mask.to(old_logp.dtype)
    kld = core_algos.kl_penalty(old_logp, ref_logp, kl_penalty=estimator["kl_penalty"]) * mask
    rewards = token_level_scores.to(kld.device) - estimator["kl_coef"] * kld
    per_response = (kld.sum(-1) / mask.sum(-1).clamp(min=1)).mean().item()
    return rewards, per_response


# --- the policy update ---------------------------------------------------------------


@dataclass
class Batch:
    """What one update needs, rows grouped by prompt (prompt i -> rows i*n .. i*n+n-1)."""

    rollout: Rollout
    advantages: torch.Tensor  # (B, R) on the policy's device
    old_logp: torch.Tensor | None  # (B, R) rollout policy log-probs; None: the update's own (ratio 1)
    ref_logp: torch.Tensor | None  # (B, R) reference log-probs; None without a reference model
    verified: torch.Tensor | None = None  # (B,) bool: rows in the loss; None: every row


def actor_config(est: dict, setup: dict) -> ActorConfig:
    """verl's actor settings for what update_policy does (its policy loss reads them)."""
    n = setup["n"]
    mini = setup["ppo_mini_batch"] or setup["prompts_per_step"]
    return ActorConfig(
        strategy="fsdp",
        # verl's vanilla loss reads clip_ratio_low/high (each defaulting to 0.2), not clip_ratio.
        clip_ratio=est["clip_ratio"],
        clip_ratio_low=est["clip_ratio"],
        clip_ratio_high=est["clip_ratio"],
        loss_agg_mode=est["loss_agg_mode"],
        # seq-mean-token-sum-norm divides by a constant: the response budget, as verl's max_response_length.
        loss_scale_factor=setup["max_new_tokens"],
        entropy_coeff=est["entropy_coeff"],
        use_kl_loss=est["use_kl_loss"],
        kl_loss_coef=est["kl_loss_coef"],
        kl_loss_type=est["kl_loss_type"],
        ppo_epochs=setup["ppo_epochs"],
        ppo_mini_batch_size=mini,
        # micro-batches are cut by token count (verl's use_dynamic_bsz), see length_buckets
        use_dynamic_bsz=True,
        ppo_max_token_len_per_gpu=setup["micro_batch_tokens"] or 1 << 30,
        rollout_n=n,
    )


def needs_old_logprobs(est: dict, setup: dict) -> bool:
    """The rollout policy's log-probs must be kept apart from the updated policy's when the
    reward uses them (KL in reward) or when the policy changes between updates on one batch."""
    mini = setup["ppo_mini_batch"] or setup["prompts_per_step"]
    return est["use_kl_in_reward"] or setup["ppo_epochs"] > 1 or mini < setup["prompts_per_step"]


def update_policy(model, optimizer, batch: Batch, est: dict, setup: dict, actor: ActorConfig) -> dict:
    """ppo_epochs passes over the batch in mini-batches of ppo_mini_batch prompts; one optimiser
    step per mini-batch, accumulated over micro-batches of similar response length of at
    most micro_batch_tokens padded tokens each. Returns step metrics."""
    policy_loss = core_algos.get_policy_loss_fn("vanilla")
    rollout, n = batch.rollout, setup["n"]
    rows = len(rollout.texts)
    mini_rows = (setup["ppo_mini_batch"] or setup["prompts_per_step"]) * n
    mask_all = rollout.response_mask.to(batch.advantages.dtype)
    if batch.verified is not None:  # undecided responses carry no loss (nor entropy, nor KL)
        mask_all = mask_all * batch.verified.to(mask_all.device, mask_all.dtype)[:, None]
    sums, counts = defaultdict(float), defaultdict(int)
    entropy_sum, kl_ref_sum, first_pass_tokens = 0.0, 0.0, 0.0
    skipped = 0
    for epoch in range(setup["ppo_epochs"]):
        for start in range(0, rows, mini_rows):
            mini = slice(start, min(start + mini_rows, rows))
            mini_mask = mask_all[mini]
            if not mini_mask.any():  # every response of the mini-batch undecided: nothing to learn from
                continue
            # The loss of every micro-batch is aggregated over the whole mini-batch (verl's
            # global batch info), so accumulating micro-batch gradients gives the mini-batch's.
            actor.global_batch_info.update(
                dp_size=1,
                batch_num_tokens=mini_mask.sum().item(),
                global_batch_size=(mini_mask.sum(-1) > 0).sum().item(),
                loss_scale_factor=actor.loss_scale_factor,
            )
            gbi = actor.global_batch_info
            optimizer.zero_grad(set_to_none=True)
            totals = defaultdict(float)
            for u in length_buckets(rollout, setup["micro_batch_tokens"], torch.arange(mini.start, mini.stop)):
                sub = rollout.select(u)  # its rows, response columns cut to its longest response
                u, width = u.to(mask_all.device), sub.response_len
                mask = mask_all[u, :width]
                logp, entropy = response_logprobs(
                    model, sub, setup["temperature"], with_entropy=True, entropy_grad=est["entropy_coeff"] != 0
                )
                old = batch.old_logp[u, :width] if batch.old_logp is not None else logp.detach()
                pg_loss, pg_metrics = policy_loss(
                    old, logp, batch.advantages[u, :width], mask, est["loss_agg_mode"], config=actor
                )
                entropy_loss = core_algos.agg_loss(entropy, mask, est["loss_agg_mode"], **gbi)
                loss = pg_loss - est["entropy_coeff"] * entropy_loss
                if est["use_kl_loss"]:
                    kld = core_algos.kl_penalty(logp, batch.ref_logp[u, :width], kl_penalty=est["kl_loss_type"])
                    kl_loss = core_algos.agg_loss(kld, mask, est["loss_agg_mode"], **gbi)
                    loss = loss + est["kl_loss_coef"] * kl_loss
                    totals["kl_loss"] += kl_loss.item()
                loss.backward()
                # Micro-batch losses are shares of the mini-batch loss: they add up.
                totals["loss"] += loss.item()
                totals["pg_loss"] += pg_loss.item()
                share = mask.sum().item() / max(gbi["batch_num_tokens"], 1)
                for key, value in pg_metrics.items():  # token means over the micro-batch
                    totals[key.removeprefix("actor/")] += value * share
                if epoch == 0:
                    entropy_sum += (entropy.detach() * mask).sum().item()
                    first_pass_tokens += mask.sum().item()
                    if batch.ref_logp is not None:
                        k3 = core_algos.kl_penalty(logp.detach(), batch.ref_logp[u, :width], kl_penalty="low_var_kl")
                        kl_ref_sum += (k3 * mask).sum().item()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), est["grad_clip"])
            if torch.isfinite(grad_norm):
                optimizer.step()
            else:  # as verl: a non-finite gradient skips the step instead of corrupting the weights
                optimizer.zero_grad(set_to_none=True)
                skipped += 1
            totals["grad_norm"] = grad_norm.item()
            for key, value in totals.items():
                sums[key] += value
                counts[key] += 1
    out = {key: sums[key] / counts[key] for key in sums}
    for key in ("loss", "pg_loss", "pg_clipfrac", "pg_clipfrac_lower", "ppo_kl", "grad_norm"):
        out.setdefault(key, None)  # no mini-batch had a decided response
    out["entropy"] = entropy_sum / max(first_pass_tokens, 1)
    out["kl_ref"] = kl_ref_sum / max(first_pass_tokens, 1) if batch.ref_logp is not None else None
    out["skipped_updates"] = skipped
    return out


# --- data order, seeds, checkpoints ---------------------------------------------------


@lru_cache(maxsize=4)
def _epoch_order(seed: int, epoch: int, n_rows: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n_rows)


def batch_rows(seed: int, n_rows: int, step: int, batch_size: int) -> np.ndarray:
    """Training rows of `step`: epoch e reads a permutation seeded by (seed, e) in order.

    A function of the step alone, so a resumed run reads the same batches.
    """
    positions = range(step * batch_size, (step + 1) * batch_size)
    return np.array([_epoch_order(seed, pos // n_rows, n_rows)[pos % n_rows] for pos in positions])


def step_seed(seed: int, step: int) -> int:
    """The torch seed of one step's sampling, derived from the run seed and the step."""
    return int(np.random.SeedSequence([seed, step]).generate_state(1)[0])


# Settings that change how a run is executed or logged, not what it computes: a checkpoint
# written under other values of these is still the same run.
RESUME_IGNORES = ("threads", "checkpoint_every", "wandb", "rl_steps", "device", "micro_batch_tokens")


def _resume_key(run: dict) -> str:
    setup = {k: v for k, v in run["scale"].items() if k not in RESUME_IGNORES}
    return json.dumps({**run, "scale": setup}, sort_keys=True, default=str)


_CHECKPOINT_NAME = re.compile(r"step_(\d+)\.pt")
KEEP_CHECKPOINTS = 2  # the newest, and one to fall back to if the newest cannot be read


class CheckpointError(RuntimeError):
    """No readable checkpoint of a run is left to resume from."""


def _checkpoint_paths(ckpt_dir: Path) -> list[Path]:
    """step_<k>.pt files, oldest first."""
    paths = [p for p in ckpt_dir.glob("step_*.pt") if _CHECKPOINT_NAME.fullmatch(p.name)]
    return sorted(paths, key=_checkpoint_step)


def _checkpoint_step(path: Path) -> int:
    return int(_CHECKPOINT_NAME.fullmatch(path.name)[1])


def _rng_states() -> dict:
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(
    ckpt_dir: Path, steps_done: int, model, optimizer, records: list[dict], run: dict, batch_size: int
) -> Path:
    """Write step_<steps_done>.pt atomically (temp file, fsync, rename); keep it and the newest older one."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    path = ckpt_dir / f"step_{steps_done:06d}.pt"
    tmp = path.with_suffix(".pt.tmp")
    state = {
        "steps_done": steps_done,
        "data_position": steps_done * batch_size,  # training rows consumed (batch_rows reads from here)
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": _rng_states(),
        "metrics": records,
        "config": run,
        "resume_key": _resume_key(run),
    }
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename makes it the checkpoint
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a failed write (a full disk) leaves no partial file
    # Older checkpoints beyond the fallback go, and so do later ones: those are left from an
    # earlier attempt under a larger rl_steps, and this run's own would replace them.
    older = [p for p in _checkpoint_paths(ckpt_dir) if _checkpoint_step(p) < steps_done]
    keep = {path, *older[len(older) - (KEEP_CHECKPOINTS - 1) :]}
    for other in _checkpoint_paths(ckpt_dir):
        if other not in keep:
            other.unlink()
    return path


def _read_checkpoint(path: Path) -> dict:
    state = torch.load(path, map_location="cpu", weights_only=False)
    missing = {"steps_done", "model", "optimizer", "rng", "metrics", "resume_key"} - set(state)
    if missing:
        raise ValueError(f"lacks {sorted(missing)}")
    if state["steps_done"] != _checkpoint_step(path) or len(state["metrics"]) != state["steps_done"]:
        raise ValueError(f"holds {state['steps_done']} steps and {len(state['metrics'])} metric lines")
    return state


def load_checkpoint(ckpt_dir: Path, run: dict, model, optimizer) -> tuple[int, list[dict]]:
    """Restore the newest usable checkpoint of this run: (steps done, metrics so far); (0, []) if none.

    Usable: within the run's rl_steps, readable (else a warning names the file and the next
    older one is tried; none readable raises CheckpointError naming them) and written by this
    run's configuration (else the run starts over).
    """
    for stale in ckpt_dir.glob("*.pt.tmp"):  # a write killed midway; this process holds the run's lock
        stale.unlink()
    budget = run["scale"]["rl_steps"]
    unreadable = []
    for path in reversed(_checkpoint_paths(ckpt_dir)):
        if _checkpoint_step(path) > budget:
            log.warning("%s is past this run's rl_steps (%d); not resuming from it", path, budget)
            continue
        try:
            state = _read_checkpoint(path)
        except Exception as e:  # a truncated or empty file: torch raises RuntimeError, EOFError, ...
            log.warning("%s cannot be read (%s: %s); trying an older checkpoint", path, type(e).__name__, e)
            unreadable.append(path)
            continue
        if state["resume_key"] != _resume_key(run):
            log.warning("%s was written with another configuration; starting the run from step 0", path)
            return 0, []
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        _set_rng_states(state["rng"])
        log.info("resuming %s from %s (%d steps done)", run["run_id"], path, state["steps_done"])
        return state["steps_done"], state["metrics"]
    if unreadable:
        raise CheckpointError(
            f"{', '.join(map(str, unreadable))}: unreadable checkpoint(s) of {run['run_id']} and no older one "
            f"to resume from; delete {ckpt_dir} to train the run from step 0"
        )
    return 0, []


# --- per-step metrics ---------------------------------------------------------------


def length_by_value_quantile(prompt_values: np.ndarray, lengths: np.ndarray, n: int, quantiles: int = 4) -> dict:
    """Mean response length per value quantile of the batch's prompts: {length_q1: ..., ...}.

    prompt_values: (P,) v of each prompt; lengths: (P * n,) grouped by prompt. Prompts are
    ranked by v (ties in batch order) and cut into `quantiles` near-equal groups; a group
    without prompts (fewer prompts than quantiles) is None.

    >>> length_by_value_quantile(np.array([0.3, 0.1]), np.array([5, 7, 1, 3]), n=2, quantiles=2)
    {'length_q1': 2.0, 'length_q2': 6.0}
    """
    per_prompt = lengths.reshape(len(prompt_values), n).astype(float)
    order = np.argsort(prompt_values, kind="stable")
    out = {}
    for k, part in enumerate(np.array_split(order, quantiles), start=1):
        out[f"length_q{k}"] = float(per_prompt[part].mean()) if len(part) else None
    return out


def _check_updates_applied(run: dict, records: list[dict], model) -> None:
    """Refuse to save a policy that no update changed, or one with non-finite weights."""
    setup = run["scale"]
    mini = setup["ppo_mini_batch"] or setup["prompts_per_step"]
    per_step = setup["ppo_epochs"] * math.ceil(setup["prompts_per_step"] / mini)
    if records and all(r["skipped_updates"] >= per_step for r in records):
        raise NoUpdateError(
            f"{run['run_id']}: all {per_step * len(records)} updates of {len(records)} steps were skipped for a "
            f"non-finite gradient (loss {records[-1]['loss']}), so the policy is the initial one; check the scale's "
            "lr, temperature and model (train/metrics.jsonl has the per-step losses)"
        )
    bad = [name for name, p in model.named_parameters() if not torch.isfinite(p).all()]
    if bad:
        raise NoUpdateError(f"{run['run_id']}: training left non-finite weights in {bad[:3]}; lower the scale's lr")


# --- the loop -------------------------------------------------------------------------


class UnverifiedError(RuntimeError):
    """The judge left more of a step's responses undecided than reward.verifier.max_unverified_share."""


class NoUpdateError(RuntimeError):
    """Training changed nothing (every update skipped) or left non-finite weights."""


def train(run: dict) -> None:
    """Train one run into run["out_dir"], holding the run directory's lock throughout."""
    with run_lock(run["out_dir"]):
        _train(run)


def _train(run: dict) -> None:
    setup, est = run["scale"], run["estimator"]
    seed = run["seed"]
    out_dir = Path(run["out_dir"])
    (out_dir / "train").mkdir(parents=True, exist_ok=True)
    ckpt_dir = out_dir / "checkpoints"

    # -- setup: seed, data, model, optimiser, resume ----------------------------------------
    torch.set_num_threads(setup["threads"])
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    train_rows = pd.read_parquet(run["dataset"]["train"])
    reward_scale_by_row = write_values(run, train_rows)["scale"].to_numpy()  # s(x) per training row
    human_values = train_rows["value"].to_numpy()  # h_acc is always measured with the human v
    answers, questions = train_rows["answer"].astype(str).to_numpy(), train_rows["question"].to_numpy()
    verifier_cfg = run["reward"].get("verifier") or {"kind": "rule"}
    verifier = run_verifier(verifier_cfg)
    max_unverified = verifier_cfg.get("max_unverified_share", 0.1)
    model, tokenizer = load_policy(setup["init_model"], setup["device"], setup["dtype"])
    # Eval mode throughout: dropout off, so the policy that samples is the policy that is
    # scored and updated (TRL disables dropout for the same reason); gradients still flow.
    model.eval()
    reference = None
    if est["use_kl_loss"] or est["use_kl_in_reward"]:
        reference, _ = load_policy(setup["init_model"], setup["device"], setup["dtype"])  # frozen initial policy
        reference.eval().requires_grad_(False)
    prompts = [render_prompt(tokenizer, q, sys_) for q, sys_ in zip(train_rows["question"], train_rows["system"])]
    optimizer = torch.optim.AdamW(model.parameters(), lr=setup["lr"], weight_decay=setup["weight_decay"])
    B, n = setup["prompts_per_step"], setup["n"]
    actor = actor_config(est, setup)
    keep_old = needs_old_logprobs(est, setup)
    group = np.repeat(np.arange(B), n)
    start_step, records = load_checkpoint(ckpt_dir, run, model, optimizer)
    log.info(
        "%s: %d training prompts, %d steps x %d prompts x %d samples, from step %d",
        run["run_id"],
        len(train_rows),
        setup["rl_steps"],
        B,
        n,
        start_step,
    )
    with open(out_dir / "train" / "metrics.jsonl", "w") as f:  # the resumed run's lines so far
        f.writelines(json.dumps(r) + "\n" for r in records)
    metrics_file = open(out_dir / "train" / "metrics.jsonl", "a")
    wandb_run = start_wandb(setup.get("wandb"), run, out_dir)

    steps = setup["rl_steps"]
    bar = progress(range(start_step, steps), desc=run["run_id"], initial=start_step, total=steps)
    for step in bar:
        t0 = time.perf_counter()
        # rollout: n samples for each of B prompts; sampling seeded by (seed, step)
        torch.manual_seed(step_seed(seed, step))
        rows = batch_rows(seed, len(train_rows), step, B)
        ro = generate(
            model,
            tokenizer,
            [prompts[i] for i in rows],
            n=n,
            max_new_tokens=setup["max_new_tokens"],
            temperature=setup["temperature"],
        )
        t_gen = time.perf_counter() - t0
        # reward: s(x) * correct - cost (value-independent, unscaled); a truncated response is wrong
        t1 = time.perf_counter()
        rows_rep = np.repeat(rows, n)
        verdicts = verifier(answers[rows_rep].tolist(), ro.texts, questions[rows_rep].tolist())
        correct = torch.tensor([bool(v) for v in verdicts]) & ~ro.truncated
        verified = torch.tensor([v is not None for v in verdicts]) | ro.truncated  # truncated: wrong anyway
        unverified = int((~verified).sum())
        if unverified > max_unverified * len(verdicts):
            raise UnverifiedError(
                f"{run['run_id']}: step {step}: the judge left {unverified} of {len(verdicts)} responses undecided, "
                f"more than reward.verifier.max_unverified_share ({max_unverified:g}); check the judge at "
                f"{verifier_cfg.get('url')} (the log names each failed request)"
            )
        # tokens with eos, as verl's reward managers count a response
        cost = torch.tensor(
            response_cost(run["reward"].get("cost"), ro.response_mask.sum(1).cpu().numpy(), setup["max_new_tokens"]),
            dtype=torch.float32,
        )
        scores = torch.tensor(reward_scale_by_row[rows_rep], dtype=torch.float32) * correct - cost
        t_reward = time.perf_counter() - t1
        # log-probs the update and the reward need besides the update's own
        t2 = time.perf_counter()
        temperature, micro_tokens = setup["temperature"], setup["micro_batch_tokens"]
        old_logp = batch_logprobs(model, ro, temperature, micro_tokens) if keep_old else None
        ref_logp = batch_logprobs(reference, ro, temperature, micro_tokens) if reference else None
        t_logprob = time.perf_counter() - t2
        # advantage (verl's estimator), with verl's KL penalty in the token-level rewards if asked
        token_rewards = outcome_token_rewards(scores, ro.response_mask)
        reward_kl = None
        if est["use_kl_in_reward"]:
            token_rewards, reward_kl = kl_in_reward(
                token_rewards, old_logp.cpu(), ref_logp.cpu(), ro.response_mask.cpu(), est
            )
        advantages = verified_advantages(est, token_rewards, ro.response_mask.cpu(), group, verified).to(model.device)
        # loss and step (verl's clipped policy loss, entropy bonus, KL loss)
        t3 = time.perf_counter()
        batch = Batch(ro, advantages, old_logp, ref_logp, None if unverified == 0 else verified)
        upd = update_policy(model, optimizer, batch, est, setup, actor)
        t_update = time.perf_counter() - t3
        # log
        record = {
            "step": step,
            "reward": scores[verified].mean().item() if verified.any() else None,
            "cost": cost.mean().item(),
            "acc": correct[verified].float().mean().item() if verified.any() else None,
            "h_acc": (
                human_aligned_accuracy(human_values[rows_rep][verified.numpy()], correct[verified].numpy())
                if verified.any()
                else None
            ),
            "unverified": unverified,
            "length": ro.lengths.float().mean().item(),
            **length_by_value_quantile(human_values[rows], ro.lengths.numpy(), n),
            "truncated": ro.truncated.float().mean().item(),
            "loss": upd["loss"],
            "pg_loss": upd["pg_loss"],
            "pg_clipfrac": upd["pg_clipfrac"],
            "pg_clipfrac_lower": upd["pg_clipfrac_lower"],
            "ppo_kl": upd["ppo_kl"],
            "entropy": upd["entropy"],
            "kl_ref": upd["kl_ref"],
            "kl_loss": upd.get("kl_loss"),
            "reward_kl_penalty": reward_kl,
            "grad_norm": upd["grad_norm"],
            "skipped_updates": upd["skipped_updates"],
            "lr": optimizer.param_groups[0]["lr"],
            "completions_per_s": len(ro.texts) / t_gen,
            "tokens_per_s": ro.response_mask.sum().item() / t_gen,
            "time_generate": t_gen,
            "time_reward": t_reward,
            "time_logprob": t_logprob,
            "time_update": t_update,
            "seconds": time.perf_counter() - t0,
        }
        record = nan_to_null(record)
        records.append(record)
        metrics_file.write(json.dumps(record) + "\n")
        metrics_file.flush()
        if wandb_run is not None:
            wandb_run.log({k: v for k, v in record.items() if v is not None and k != "step"}, step=step)
        bar.set_postfix(acc="-" if record["acc"] is None else f"{record['acc']:.2f}", len=f"{record['length']:.1f}")
        if setup["checkpoint_every"] and (step + 1) % setup["checkpoint_every"] == 0 and step + 1 < setup["rl_steps"]:
            save_checkpoint(ckpt_dir, step + 1, model, optimizer, records, run, B)
    metrics_file.close()
    _check_updates_applied(run, records, model)
    model.save_pretrained(out_dir / "model")
    tokenizer.save_pretrained(out_dir / "model")
    if wandb_run is not None:
        wandb_run.finish()
    # The run is complete: model/ and metrics.jsonl are its outputs; the checkpoints would
    # only double its disk use (and a rerun of a finished run must start from scratch).
    shutil.rmtree(ckpt_dir, ignore_errors=True)
