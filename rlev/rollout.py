"""Generation with Hugging Face `generate`, shared by RL rollouts and evaluation.

Prompts are left-padded so every response starts at the same column; a response ends at
its first eos. A response that reaches `max_new_tokens` without eos is *truncated* and
counts as wrong, whatever it says (a per-question token budget, as in verl).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Rollout:
    sequences: torch.Tensor      # (B, P + R) prompt and response ids
    attention_mask: torch.Tensor  # (B, P + R)
    prompt_len: int              # P
    response_mask: torch.Tensor  # (B, R) 1 on response tokens up to and including eos
    texts: list[str]             # decoded responses, eos and padding removed
    lengths: torch.Tensor        # (B,) generated tokens, eos excluded
    truncated: torch.Tensor      # (B,) bool: no eos within the budget


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], n: int = 1, max_new_tokens: int = 64, do_sample: bool = True,
             temperature: float = 1.0) -> Rollout:
    """n responses per prompt (rows grouped by prompt: prompt i -> rows i*n .. i*n+n-1)."""
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    prompt_len = enc["input_ids"].shape[1]
    kwargs = dict(do_sample=True, temperature=temperature, top_k=0, top_p=1.0) if do_sample else dict(do_sample=False)
    out = model.generate(
        **enc,
        max_new_tokens=max_new_tokens,
        num_return_sequences=n,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **kwargs,
    )
    response = out[:, prompt_len:]
    is_eos = response == tokenizer.eos_token_id
    has_eos = is_eos.any(dim=1)
    first_eos = torch.where(has_eos, is_eos.int().argmax(dim=1), torch.full_like(has_eos, response.shape[1], dtype=torch.long))
    positions = torch.arange(response.shape[1], device=response.device)
    response_mask = (positions[None, :] <= first_eos[:, None]).long()
    lengths = first_eos.clamp(max=response.shape[1])
    texts = tokenizer.batch_decode(
        [row[:length] for row, length in zip(response.tolist(), lengths.tolist())], skip_special_tokens=True
    )
    attention = torch.cat([enc["attention_mask"].repeat_interleave(n, dim=0), response_mask], dim=1)
    return Rollout(out, attention, prompt_len, response_mask, texts, lengths.cpu(), (~has_eos).cpu())


def response_logprobs(model, rollout: Rollout, temperature: float = 1.0) -> torch.Tensor:
    """(B, R) log-probabilities of the response tokens under `model` (with grad if enabled).

    Logits are divided by the sampling temperature, as verl does, so the ratio to the
    rollout policy is exact.
    """
    # Positions count real tokens only, as generate() does for left-padded prompts.
    position_ids = (rollout.attention_mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=rollout.sequences, attention_mask=rollout.attention_mask, position_ids=position_ids).logits
    logits = logits[:, rollout.prompt_len - 1 : -1, :].float() / temperature  # (B, R, V) predicts response tokens
    targets = rollout.sequences[:, rollout.prompt_len :]
    return torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
