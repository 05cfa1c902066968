"""Policies: the tiny default model built from scratch, and loading any Hugging Face causal LM.

No pretrained weights can be assumed on a laptop, so the default scale builds a small
Qwen2-architecture model and a byte-level BPE tokenizer from the training text and saves
both in Hugging Face format; from then on it is loaded like any other checkpoint
(`AutoModelForCausalLM.from_pretrained(path)`), which is also how a user's
Qwen2.5-0.5B or a merged verl checkpoint enters the local back end.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

log = logging.getLogger(__name__)

EOS = "<|endoftext|>"
PAD = "<|pad|>"
# Qwen2's pre-tokenizer split. transformers 5 rebuilds a Qwen2Tokenizer (with this split
# and the byte-level step) from vocab+merges for any directory whose config says
# model_type=qwen2, ignoring tokenizer.json's pre-tokenizer; training with the same split
# and the full 256-byte alphabet keeps the two identical.
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def train_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE over `texts` with Qwen2's split, full byte alphabet, pad != eos."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(pattern=_regex(QWEN2_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=PAD, padding_side="left")


def _regex(pattern: str):
    from tokenizers import Regex

    return Regex(pattern)


def build_tiny(texts: list[str], shape: dict, out_dir: Path, seed: int = 0) -> None:
    """Build and save a randomly initialised tiny Qwen2 and its tokenizer in HF format."""
    torch.manual_seed(seed)
    tokenizer = train_tokenizer(texts, shape["vocab_size"])
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=shape["hidden_size"],
        intermediate_size=shape["intermediate_size"],
        num_hidden_layers=shape["num_layers"],
        num_attention_heads=shape["num_heads"],
        num_key_value_heads=shape["num_kv_heads"],
        max_position_embeddings=shape["max_position"],
        tie_word_embeddings=True,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    log.info("tiny Qwen2: %d parameters, vocabulary %d", sum(p.numel() for p in model.parameters()), len(tokenizer))


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_policy(path: str | Path, device: str = "auto", dtype: str = "float32"):
    """(model, tokenizer) from a Hugging Face id or directory, ready for left-padded generation."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:  # base models often ship without one
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    model.to(pick_device(device))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def render_prompt(tokenizer, question: str, system: str = "") -> str:
    """The text the policy is conditioned on: the chat template when the tokenizer has one."""
    if getattr(tokenizer, "chat_template", None):
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": question}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return (system + "\n" if system else "") + question + "\n"
