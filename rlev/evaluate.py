"""The evaluate stage: greedy generation on the test split, verification, the paper's metrics.

    rlev evaluate --model results/runs/.../model --test results/data/synthetic/test.parquet --out results/runs/.../eval

Writes samples.parquet (one record per test prompt: id, exam_id, value, difficulty,
response, length, truncated, correct) and metrics.json (see rlev.metrics.METRICS).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from rlev.metrics import evaluation_metrics
from rlev.model import load_policy, render_prompt
from rlev.rollout import generate
from rlev.verify import build_verifier

log = logging.getLogger(__name__)


def greedy_samples(model, tokenizer, test: pd.DataFrame, max_new_tokens: int, batch_size: int,
                   verifier) -> pd.DataFrame:
    prompts = [render_prompt(tokenizer, q, s) for q, s in zip(test["question"], test["system"])]
    texts, lengths, truncated = [], [], []
    for start in tqdm(range(0, len(prompts), batch_size), desc="evaluate", mininterval=5):
        ro = generate(model, tokenizer, prompts[start : start + batch_size], n=1, max_new_tokens=max_new_tokens,
                      do_sample=False)
        texts += ro.texts
        lengths += ro.lengths.tolist()
        truncated += ro.truncated.tolist()
    return _records(test, texts, lengths, truncated, verifier)


def vllm_samples(model_path: str, test: pd.DataFrame, max_new_tokens: int, dtype: str, tensor_parallel: int,
                 verifier) -> pd.DataFrame:
    """Greedy generation with vLLM (GPU scales): same records as greedy_samples.

    vLLM is imported here only, so the CPU path never needs it installed.
    """
    from transformers import AutoTokenizer
    from vllm import LLM, SamplingParams

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    prompts = [render_prompt(tokenizer, q, s) for q, s in zip(test["question"], test["system"])]
    llm = LLM(model=model_path, dtype=dtype, tensor_parallel_size=tensor_parallel)
    outputs = llm.generate(prompts, SamplingParams(temperature=0.0, max_tokens=max_new_tokens))
    texts, lengths, truncated = [], [], []
    for out in outputs:
        completion = out.outputs[0]
        ids = list(completion.token_ids)
        ends_with_eos = bool(ids) and ids[-1] == tokenizer.eos_token_id
        texts.append(completion.text)
        lengths.append(len(ids) - int(ends_with_eos))  # eos excluded, as on the CPU path
        truncated.append(completion.finish_reason == "length")
    return _records(test, texts, lengths, truncated, verifier)


def _records(test: pd.DataFrame, texts, lengths, truncated, verifier) -> pd.DataFrame:
    verdicts = verifier(test["answer"].tolist(), texts, test["question"].tolist())
    samples = test[["id", "exam_id", "value", "difficulty"]].copy()
    samples["response"] = texts
    samples["length"] = lengths
    samples["truncated"] = truncated
    samples["correct"] = [bool(v) and not t for v, t in zip(verdicts, truncated)]
    return samples


def evaluate(model_path: str, test_path: str, out_dir: Path, max_new_tokens: int, batch_size: int, threads: int,
             device: str = "auto", dtype: str = "float32", engine: str = "transformers",
             tensor_parallel: int = 1) -> dict:
    """Greedy evaluation of one model on one test split; engine `transformers` (CPU or one
    GPU) or `vllm` (the verl scales)."""
    torch.set_num_threads(threads)
    test = pd.read_parquet(test_path)
    verifier = build_verifier({"kind": "rule"})
    if engine == "vllm":
        samples = vllm_samples(model_path, test, max_new_tokens, dtype, tensor_parallel, verifier)
    else:
        model, tokenizer = load_policy(model_path, device, dtype)
        model.eval()
        samples = greedy_samples(model, tokenizer, test, max_new_tokens, batch_size, verifier)
    metrics = evaluation_metrics(samples)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    samples.to_parquet(out_dir / "samples.parquet", index=False)
    (out_dir / "metrics.json").write_text(json.dumps({"model": str(model_path), **metrics}, indent=2) + "\n")
    log.info("%s: acc %.1f  h_acc %.1f  length %.1f  density %.3f", model_path, metrics["acc"], metrics["h_acc"],
             metrics["length"], metrics["density"])
    return metrics
