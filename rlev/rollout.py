"""Sampling responses and scoring them: shared by RL rollouts and evaluation.

Prompts are left-padded so every response starts at the same column; a response ends at
its first stop token: the tokenizer's eos or any of the model's generation_config eos ids
(the tokens vLLM stops at, e.g. both <|im_end|> and <|endoftext|> for Qwen2.5-Instruct).
A response that reaches `max_new_tokens` without one is *truncated* and counts as wrong,
whatever it says: the same rule on every back end (rlev's reward manager on verl sets
`truncated` for compute_score, which then scores 0; evaluation counts it wrong).

`generate` runs its own decoding loop over any Hugging Face causal LM that takes a
`DynamicCache` (Llama, Qwen2, GPT-2, Mistral, ...): each prompt is encoded once and its
cache copied to its n samples, and a response leaves the batch when it emits eos, so the
remaining steps only compute the responses still running. On a CPU this is 2-4x faster
than `model.generate` (which encodes each prompt n times and keeps finished rows to the
end); on an H100, where decoding small models is bound by kernel launches, the two are
about equally fast (0.95-1.1x; benchmarks/bench_rollout.py). Sampling is exact (inverse CDF of softmax(logits / temperature), no
top-k/top-p), greedy is argmax; models without DynamicCache support fall back to
`model.generate`.

`response_logprobs` scores a rollout under a model (with grad for the update, without
for old/reference log-probs); `length_buckets` cuts a batch into micro-batches of
similar response length so padding is not computed (the loss is aggregated over the
whole batch, so the update does not depend on the cut).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import DynamicCache


@dataclass
class Rollout:
    sequences: torch.Tensor  # (B, P + R) prompt and response ids
    attention_mask: torch.Tensor  # (B, P + R)
    prompt_len: int  # P
    response_mask: torch.Tensor  # (B, R) 1 on response tokens up to and including eos
    texts: list[str]  # decoded responses, eos and padding removed
    lengths: torch.Tensor  # (B,) generated tokens, eos excluded
    truncated: torch.Tensor  # (B,) bool: no eos within the budget

    @property
    def response_len(self) -> int:
        """R: response columns (the longest response of the batch, eos included)."""
        return self.response_mask.shape[1]

    def select(self, rows, trim: bool = True) -> "Rollout":
        """The rollout restricted to `rows` (a slice or index tensor): a mini- or micro-batch.

        With `trim`, response columns that are padding in every selected row are dropped
        (R shrinks to the longest selected response); slice other (B, R) tensors of the
        batch with [rows, :sub.response_len].
        """
        if isinstance(rows, slice):
            texts, rows_here, rows_cpu = self.texts[rows], rows, rows
        else:
            rows_cpu = torch.as_tensor(rows).cpu()
            rows_here = rows_cpu.to(self.sequences.device)
            texts = [self.texts[i] for i in rows_cpu.tolist()]
        response_mask = self.response_mask[rows_here]
        width = int(response_mask.sum(1).max().item()) if trim and len(texts) else self.response_len
        return Rollout(
            self.sequences[rows_here][:, : self.prompt_len + width],
            self.attention_mask[rows_here][:, : self.prompt_len + width],
            self.prompt_len,
            response_mask[:, :width],
            texts,
            self.lengths[rows_cpu],
            self.truncated[rows_cpu],
        )


def _supports_rlev_decoding(model) -> bool:
    """Our loop needs a DynamicCache (with row selection) and explicit position ids."""
    supports_cache = getattr(model, "_supports_default_dynamic_cache", lambda: False)()
    return bool(supports_cache) and "position_ids" in inspect.signature(model.forward).parameters


def _accepts_logits_to_keep(model) -> bool:
    """Most HF causal LMs (Llama, Qwen2, GPT-2, ...) can skip the LM head on the prompt; custom code may not."""
    cached = getattr(model, "_rlev_logits_to_keep", None)
    if cached is None:
        cached = "logits_to_keep" in inspect.signature(model.forward).parameters
        model._rlev_logits_to_keep = cached
    return cached


def _next_tokens(logits: torch.Tensor, do_sample: bool, temperature: float) -> torch.Tensor:
    """One token per row: a sample from softmax(logits / temperature) (inverse CDF), or argmax."""
    if not do_sample:
        return logits.argmax(-1)
    cdf = torch.softmax(logits.float() / temperature, dim=-1).cumsum(-1)  # (rows, V)
    # u in [0, total) against the unnormalised cdf: rounding in the cumsum can never pick a
    # token of probability 0 (cdf[i] > u >= cdf[i-1] needs cdf[i] > cdf[i-1]).
    u = torch.rand(cdf.shape[0], 1, device=cdf.device, dtype=cdf.dtype) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True).squeeze(1).clamp(max=cdf.shape[1] - 1)


# The batch is compacted (finished responses dropped from it and from the cache) when at
# most this share of it is still running. 1.0 compacts at every finish, which measured
# best both on CPU and on an H100 (benchmarks/bench_rollout.py; lower values keep
# computing finished rows to save cache copies, and were slower on both).
COMPACT_BELOW = 1.0


def stop_ids(model, tokenizer) -> list[int]:
    """The tokens a response ends at: the tokenizer's eos and generation_config's eos ids."""
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    config = getattr(model, "generation_config", None)
    extra = getattr(config, "eos_token_id", None) if config is not None else None
    for i in [extra] if isinstance(extra, int) else (extra or []):
        if i not in ids:
            ids.append(int(i))
    return ids


@torch.no_grad()
def _decode(
    model,
    input_ids,
    attention_mask,
    n: int,
    max_new_tokens: int,
    do_sample: bool,
    temperature: float,
    eos_id,
    pad_id: int,
) -> torch.Tensor:
    """(B * n, R) response ids (pad after eos), rows grouped by prompt."""
    # cuDNN's attention builds a plan per input shape, and a shrinking batch keeps making
    # new ones (measured on an H100: 2.5x slower than transformers' generate); the other
    # kernels have no such cost.
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]):
        return _decode_loop(model, input_ids, attention_mask, n, max_new_tokens, do_sample, temperature, eos_id, pad_id)


def _decode_loop(model, input_ids, attention_mask, n, max_new_tokens, do_sample, temperature, eos_id, pad_id):
    eos_ids = torch.as_tensor(eos_id, device=input_ids.device).reshape(-1)  # one id or several
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache(config=model.config)
    kwargs = {"logits_to_keep": 1} if _accepts_logits_to_keep(model) else {}
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        past_key_values=cache,
        use_cache=True,
        **kwargs,
    )
    # Each prompt was encoded once; its n samples share the cache from here.
    cache.batch_repeat_interleave(n)
    logits = out.logits[:, -1, :].repeat_interleave(n, dim=0)
    mask = attention_mask.repeat_interleave(n, dim=0)
    next_position = position_ids[:, -1:].repeat_interleave(n, dim=0) + 1
    rows = input_ids.shape[0] * n
    response = torch.full((rows, max_new_tokens), pad_id, dtype=torch.long, device=input_ids.device)
    batch_row = torch.arange(rows, device=input_ids.device)  # response row of each row of the running batch
    running = torch.ones(rows, dtype=torch.bool, device=input_ids.device)  # has not emitted eos yet
    width = 0
    for t in range(max_new_tokens):
        token = _next_tokens(logits, do_sample, temperature)
        response[batch_row[running], t] = token[running]
        width = t + 1
        if t == max_new_tokens - 1:
            break
        running &= ~torch.isin(token, eos_ids)
        still = int(running.sum())
        if still == 0:
            break
        if still < len(running) and still <= COMPACT_BELOW * len(running):  # drop finished rows
            keep = running.nonzero().squeeze(1)
            cache.batch_select_indices(keep)
            batch_row, token, mask, next_position = batch_row[keep], token[keep], mask[keep], next_position[keep]
            running = running[keep]
        mask = torch.cat([mask, mask.new_ones(len(batch_row), 1)], dim=1)
        logits = model(
            input_ids=token[:, None],
            attention_mask=mask,
            position_ids=next_position,
            past_key_values=cache,
            use_cache=True,
        ).logits[:, -1, :]
        next_position = next_position + 1
    return response[:, :width]


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: list[str],
    n: int = 1,
    max_new_tokens: int = 64,
    do_sample: bool = True,
    temperature: float = 1.0,
) -> Rollout:
    """n responses per prompt (rows grouped by prompt: prompt i -> rows i*n .. i*n+n-1).

    Sampling draws from torch's global generator: seed it (torch.manual_seed) for
    reproducible rollouts.
    """
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    prompt_len = enc["input_ids"].shape[1]
    eos, pad = stop_ids(model, tokenizer), tokenizer.pad_token_id
    if _supports_rlev_decoding(model):
        response = _decode(
            model, enc["input_ids"], enc["attention_mask"], n, max_new_tokens, do_sample, temperature, eos, pad
        )
        out = torch.cat([enc["input_ids"].repeat_interleave(n, dim=0), response], dim=1)
    else:
        kwargs = (
            dict(do_sample=True, temperature=temperature, top_k=0, top_p=1.0) if do_sample else dict(do_sample=False)
        )
        out = model.generate(
            **enc, max_new_tokens=max_new_tokens, num_return_sequences=n, eos_token_id=eos, pad_token_id=pad, **kwargs
        )
        response = out[:, prompt_len:]
    is_eos = torch.isin(response, torch.as_tensor(eos, device=response.device))
    has_eos = is_eos.any(dim=1)
    first_eos = torch.where(
        has_eos, is_eos.int().argmax(dim=1), torch.full_like(has_eos, response.shape[1], dtype=torch.long)
    )
    positions = torch.arange(response.shape[1], device=response.device)
    response_mask = (positions[None, :] <= first_eos[:, None]).long()
    lengths = first_eos.clamp(max=response.shape[1])
    texts = tokenizer.batch_decode(
        [row[:length] for row, length in zip(response.tolist(), lengths.tolist())], skip_special_tokens=True
    )
    attention = torch.cat([enc["attention_mask"].repeat_interleave(n, dim=0), response_mask], dim=1)
    return Rollout(out, attention, prompt_len, response_mask, texts, lengths.cpu(), (~has_eos).cpu())


def response_logprobs(
    model, rollout: Rollout, temperature: float = 1.0, with_entropy: bool = False, entropy_grad: bool = False
):
    """(B, R) log-probabilities of the response tokens under `model` (with grad if enabled).

    Logits are divided by the sampling temperature, as verl does, so the ratio to the
    rollout policy is exact. With `with_entropy`, also returns the (B, R) entropy of each
    next-token distribution (verl's `entropy_from_logits`), detached unless `entropy_grad`
    (an entropy bonus in the loss needs its gradient; logging does not).
    """
    # Positions count real tokens only, as generate() does for left-padded prompts.
    position_ids = (rollout.attention_mask.cumsum(-1) - 1).clamp(min=0)
    response_len = rollout.response_len
    kwargs = {}
    if _accepts_logits_to_keep(model):
        # Only the R positions that predict response tokens (+1 shifted) go through the LM head.
        kwargs["logits_to_keep"] = response_len + 1
    logits = model(
        input_ids=rollout.sequences,
        attention_mask=rollout.attention_mask,
        position_ids=position_ids,
        use_cache=False,
        **kwargs,
    ).logits
    logits = logits[:, -(response_len + 1) : -1, :].float() / temperature  # (B, R, V) predicts response tokens
    targets = rollout.sequences[:, rollout.prompt_len :]
    log_probs = torch.log_softmax(logits, dim=-1)  # (B, R, V)
    token_logp = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    if not with_entropy:
        return token_logp
    with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
        entropy = -(log_probs.exp() * log_probs).sum(-1)  # (B, R)
    return token_logp, entropy


def length_buckets(rollout: Rollout, max_tokens: int, rows: torch.Tensor | None = None) -> list[torch.Tensor]:
    """`rows` (default all) cut into micro-batches of similar response length.

    Rows are sorted by response length and packed in order while a micro-batch's padded
    size, rows x (P + its longest response), stays within `max_tokens` (a row alone may
    exceed it). 0 = one micro-batch. Cutting this way computes little padding.
    """
    if rows is None:
        rows = torch.arange(len(rollout.texts))
    if not max_tokens:
        return [rows]
    widths = rollout.response_mask[rows.to(rollout.response_mask.device)].sum(1).cpu()
    order = torch.argsort(widths, stable=True)
    buckets, current, longest = [], [], 0
    for i in order.tolist():
        width = rollout.prompt_len + int(widths[i])
        if current and (len(current) + 1) * max(longest, width) > max_tokens:
            buckets.append(rows[current])
            current, longest = [], 0
        current.append(i)
        longest = max(longest, width)
    buckets.append(rows[current])
    return buckets


@torch.no_grad()
def batch_logprobs(model, rollout: Rollout, temperature: float, max_tokens: int) -> torch.Tensor:
    """(B, R) response log-probs under `model` without grad, in length buckets (0 beyond each response)."""
    out = torch.zeros(rollout.response_mask.shape, dtype=torch.float32, device=rollout.sequences.device)
    for rows in length_buckets(rollout, max_tokens):
        sub = rollout.select(rows)
        out[rows.to(out.device), : sub.response_len] = response_logprobs(model, sub, temperature)
    return out
