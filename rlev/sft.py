"""Warm start: supervised fine-tuning of the policy on demonstrations, shared by all RL runs.

RL from a random tiny model would never sample a correct answer, so the default scale
first teaches the answer format. For the synthetic exams each question has a worked and
a direct demonstration and one of the two is drawn at random per example, so the SFT
model can do both and RL decides which to use. Other datasets fall back to the
reference answer in the same `#### <answer>` format.

    rlev sft --spec SCALE --init results/models/synthetic/tiny/init --train results/data/synthetic/train.parquet \
        --demos data/synthetic/demonstrations.jsonl --out results/models/synthetic/tiny/sft [--metrics FILE]

(SCALE: the scale's settings as JSON or a YAML/JSON file; `--demos` is optional, `--init` comes
from `rlev init-model`.)
"""

from __future__ import annotations

import json
import logging
import math
import random
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rlev.data.arithmetic import ANSWER_MARK
from rlev.model import build_tiny, load_policy, render_prompt
from rlev.progress import progress

log = logging.getLogger(__name__)


def sft_examples(train: pd.DataFrame, demos_path: Path | None) -> list[tuple[str, str, list[str]]]:
    """(question, system, candidate responses) per training row."""
    demos = {}
    if demos_path is not None and Path(demos_path).exists():
        with open(demos_path) as f:
            for line in f:
                d = json.loads(line)
                demos[d["id"]] = [d["worked"], d["direct"]]
    return [
        (row.question, row.system, demos.get(row.id, [f"{ANSWER_MARK}{row.answer}"]))
        for row in train.itertuples(index=False)
    ]


def init_model(tiny: dict, train_path: Path, demos_path: Path | None, out_dir: Path) -> None:
    """The tiny Qwen2 and its byte-level BPE (rlev.model.build_tiny), the tokenizer learnt from the
    texts SFT will show it: every training question and both answer forms."""
    train = pd.read_parquet(train_path)
    texts = [q for q, _, responses in sft_examples(train, demos_path) for q in [q, *responses]]
    build_tiny(texts, tiny, out_dir)


def encode(tokenizer, question: str, system: str, response: str) -> tuple[list[int], int]:
    """Token ids of prompt + response + eos, and where the response starts."""
    prompt_ids = tokenizer(render_prompt(tokenizer, question, system), add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return prompt_ids + response_ids, len(prompt_ids)


def collate(batch: list[tuple[list[int], int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention = torch.zeros_like(input_ids)
    labels = torch.full_like(input_ids, -100)  # loss on the response only
    for i, (ids, start) in enumerate(batch):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        attention[i, : len(ids)] = 1
        labels[i, start : len(ids)] = torch.tensor(ids[start:])
    return input_ids, attention, labels


def train_sft(init_dir: Path, out_dir: Path, train: pd.DataFrame, demos_path: Path | None, *args, **kwargs) -> None:
    """The policy warm start: fit_sft on the training split's demonstrations (see sft_examples);
    the other arguments are fit_sft's (steps, batch_size, lr, threads, seed, device, dtype, metrics_path)."""
    fit_sft(init_dir, out_dir, sft_examples(train, demos_path), *args, **kwargs)


def fit_sft(
    init_dir: Path,
    out_dir: Path,
    examples: list[tuple[str, str, list[str]]],
    steps: int,
    batch_size: int,
    lr: float,
    threads: int,
    seed: int,
    device: str = "auto",
    dtype: str = "float32",
    metrics_path: Path | None = None,
) -> None:
    """SFT on (question, system, candidate responses) examples; loss on the response only.

    Shared by the policy warm start and the score predictor (rlev.predictor).
    """
    torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    model, tokenizer = load_policy(init_dir, device, dtype)
    # Every candidate response is tokenised once; each draw picks one per question.
    encoded = [[encode(tokenizer, q, s, r) for r in responses] for q, s, responses in examples]
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.95))
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda i: min(1.0, (i + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(i, steps) / steps))
    )
    rng = random.Random(seed)
    model.train()
    out = open(metrics_path, "w") if metrics_path else None
    bar = progress(range(steps), desc="sft")
    for step in bar:
        batch = [rng.choice(encoded[rng.randrange(len(encoded))]) for _ in range(batch_size)]
        input_ids, attention, labels = (t.to(model.device) for t in collate(batch, tokenizer.pad_token_id))
        loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if step % 50 == 0 or step == steps - 1:
            bar.set_postfix(loss=f"{loss.item():.3f}")
            if out:
                out.write(json.dumps({"step": step, "loss": loss.item(), "lr": schedule.get_last_lr()[0]}) + "\n")
    if out:
        out.close()
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    log.info("SFT done: %d steps, final loss %.4f, saved to %s", steps, loss.item(), out_dir)
