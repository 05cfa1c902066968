"""Figure 2's measurements (`rlev eos`, rule eos): end-of-sequence probability along a model's own
greedy response.

The paper's mechanism: s(x) scales the gradient on the EOS logit, so an RLEV policy should
learn to stop sooner on low-value prompts and keep going on high-value ones. Figure 2
shows P(eos) along the generation for the 200 highest- and 200 lowest-valued of 8,000
test prompts (2.5% each), baseline (correctness reward) vs RLEV (human-aligned).

Per run:
  1. take the `share` highest- and lowest-valued test prompts (default 2.5%, the paper's
     200 of 8,000; at least one each, at most n // 2; the stable ordering of
     `rlev.metrics.value_extremes`);
  2. re-tokenise prompt (rendered by `rlev.model.render_prompt`, exactly as generation saw
     it) and the run's own greedy response (`eval/samples.parquet`), and run one
     teacher-forced forward pass;
  3. P(eos) at response position t = P(next token is a stop token | prompt, response tokens
     before t), for t = 0 .. R where the model stopped (R response tokens, then the "stop
     slot" where it emitted eos), or t = 0 .. R-1 for a truncated response (no stop slot).
     Stop tokens are the tokenizer's eos and the generation config's eos ids (what
     generation stops on). Only these log-probabilities are computed: the decoder's hidden
     states at the response positions, then logsumexp over the vocabulary in chunks
     (`stop_log_probs`), so no (batch x length x vocabulary) logits tensor is ever built
     (at 7B: 64 x 1,024 x 152k floats, ~40 GB in float32).
  Writes `eval/eos.parquet`, one row per (prompt, position), with `tokens` = R and
  `stop_slot` = whether the position is the slot where the model stopped.

The figure across runs (`rlev figure2`, rule figure2) is drawn by rlev.report.figure2.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rlev.evaluate import scale_of
from rlev.model import load_policy, render_prompt

log = logging.getLogger(__name__)

SHARE = 0.025  # the paper's 200 highest- and 200 lowest-valued of 8,000 test prompts
VOCAB_CHUNK = 16384
EOS_BATCH = 16  # prompts per teacher-forced forward pass: hidden states only, so small batches suffice


def extreme_prompts(samples: pd.DataFrame, share: float = SHARE) -> pd.DataFrame:
    """The `share` highest- ("top") and lowest-valued ("bottom") rows: k = round(share * n), 1 <= k <= n // 2."""
    if not 0 < share <= 0.5:
        raise ValueError(f"the top/bottom share must be in (0, 0.5], got {share}")
    if len(samples) < 2:
        raise ValueError(f"need at least 2 evaluated prompts for EOS trajectories, got {len(samples)}")
    k = min(max(1, int(round(share * len(samples)))), len(samples) // 2)
    samples = samples.reset_index(drop=True)
    order = np.argsort(samples["value"].to_numpy(), kind="stable")
    top, bottom = samples.iloc[order[-k:]], samples.iloc[order[:k]]
    return pd.concat([top.assign(extreme="top"), bottom.assign(extreme="bottom")], ignore_index=True)


def stop_token_ids(model, tokenizer) -> list[int]:
    """The tokens generation stops on: the tokenizer's eos and the generation config's eos id(s)."""
    ids = {tokenizer.eos_token_id}
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if config_eos is not None:
        ids.update(config_eos if isinstance(config_eos, (list, tuple)) else [config_eos])
    return sorted(i for i in ids if i is not None)


def stop_log_probs(hidden, lm_head, stop_ids: list[int], chunk: int = VOCAB_CHUNK):
    """log P(stop) for each row of `hidden` (M, H): logsumexp of the stop logits minus logsumexp of all.

    The vocabulary is walked in chunks of `chunk` rows of the output matrix, so memory is
    M x chunk floats, never M x vocabulary.
    """
    weight = lm_head.weight
    bias = getattr(lm_head, "bias", None)
    h = hidden.float()
    total = torch.full((h.shape[0],), -float("inf"), device=h.device)
    for start in range(0, weight.shape[0], chunk):
        logits = h @ weight[start : start + chunk].float().T
        if bias is not None:
            logits = logits + bias[start : start + chunk].float()
        total = torch.logaddexp(total, torch.logsumexp(logits, dim=-1))
    stop = h @ weight[stop_ids].float().T
    if bias is not None:
        stop = stop + bias[stop_ids].float()
    return torch.logsumexp(stop, dim=-1) - total


def _decoder_and_head(model):
    """The decoder that yields final hidden states, and the output projection, of a causal LM."""
    head = model.get_output_embeddings()
    decoder = getattr(model, model.base_model_prefix, None)
    if head is None or decoder is None or getattr(model.config, "final_logit_softcapping", None):
        raise ValueError(
            f"{type(model).__name__}: P(eos) needs a plain linear output head over the decoder's "
            "hidden states (no logit soft-capping)"
        )
    return decoder, head


def eos_trajectories(
    model,
    tokenizer,
    prompts: list[str],
    responses: list[str],
    stopped: list[bool],
    batch_size: int = EOS_BATCH,
    chunk: int = VOCAB_CHUNK,
) -> list[np.ndarray]:
    """P(stop) at each response position, teacher-forced (see the module docstring).

    Prompt and response are tokenised separately, as generation saw them (the prompt was
    encoded alone, the response is the decoded generated tokens re-encoded). Sequences are
    right-padded, so positions need no correction.
    """
    decoder, head = _decoder_and_head(model)
    stop_ids = stop_token_ids(model, tokenizer)
    out: list[np.ndarray] = []
    for start in range(0, len(prompts), batch_size):
        batch_p = tokenizer(prompts[start : start + batch_size], add_special_tokens=False)["input_ids"]
        batch_r = tokenizer(responses[start : start + batch_size], add_special_tokens=False)["input_ids"]
        seqs = [p + r for p, r in zip(batch_p, batch_r)]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
        # the hidden state at index j predicts token j + 1: response token t is predicted at len(p) - 1 + t
        spans = []
        for i, (p, r) in enumerate(zip(batch_p, batch_r)):
            positions = len(r) + 1 if stopped[start + i] else len(r)
            spans.append((i, len(p) - 1, positions))
        with torch.no_grad():
            hidden = decoder(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).last_hidden_state
            rows = torch.cat([hidden[i, first : first + n] for i, first, n in spans])
            logp = stop_log_probs(rows, head, stop_ids, chunk).exp().cpu().numpy()
        offset = 0
        for _, _, n in spans:
            out.append(logp[offset : offset + n].copy())
            offset += n
    return out


def eos(
    spec: dict,
    model: str,
    test: str,
    samples: str,
    out: Path,
    share: float | None = None,
    batch_size: int | None = None,
) -> pd.DataFrame:
    """`rlev eos`: eval/eos.parquet for one run (id, value, extreme, position, tokens, stop_slot, p_eos).

    `spec`: a scale block or a run's config (threads, device, dtype); `share` default SHARE,
    `batch_size` default EOS_BATCH.
    """
    s = scale_of(spec)
    share = SHARE if share is None else share
    batch_size = EOS_BATCH if batch_size is None else batch_size
    torch.set_num_threads(s["threads"])
    samples_path, test_path, out = samples, test, Path(out)
    samples = pd.read_parquet(samples_path)
    test = pd.read_parquet(test_path, columns=["id", "question", "system"])
    missing = set(samples["id"]) - set(test["id"])
    if missing:
        raise ValueError(f"{samples_path}: {len(missing)} prompt id(s) not in {test_path}, e.g. {sorted(missing)[0]!r}")
    chosen = extreme_prompts(samples, share).merge(test, on="id", how="left", validate="one_to_one")
    policy, tokenizer = load_policy(model, s["device"], s["dtype"])
    policy.eval()
    prompts = [render_prompt(tokenizer, q, system) for q, system in zip(chosen["question"], chosen["system"])]
    stopped = (~chosen["truncated"].astype(bool)).tolist()
    trajectories = eos_trajectories(policy, tokenizer, prompts, chosen["response"].tolist(), stopped, batch_size)
    rows = []
    for row, p, stop in zip(chosen.itertuples(index=False), trajectories, stopped):
        tokens = len(p) - 1 if stop else len(p)
        rows += [
            {
                "id": row.id,
                "value": row.value,
                "extreme": row.extreme,
                "position": t,
                "tokens": tokens,
                "stop_slot": stop and t == tokens,
                "p_eos": float(p[t]),
            }
            for t in range(len(p))
        ]
    table = pd.DataFrame(rows, columns=["id", "value", "extreme", "position", "tokens", "stop_slot", "p_eos"])
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(out, index=False)
    log.info(
        "%s: P(eos) over %d positions of %d responses (%d per extreme, share %g)",
        model,
        len(table),
        len(trajectories),
        len(chosen) // 2,
        share,
    )
    return table
