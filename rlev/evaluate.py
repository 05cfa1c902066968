"""The evaluate stage: greedy generation on the test split, verification, the paper's metrics.

    rlev evaluate --spec SCALE --model results/runs/.../model --test results/data/synthetic/test.parquet \
        --out results/runs/.../eval
    rlev evaluate --spec results/runs/.../config.yaml --out results/runs/.../eval   # model and test from the run

(`--spec` is required: a scale's settings as JSON / a YAML file, or a run's config.yaml, whose
`<out_dir>/model` and `dataset.test` are then the defaults of `--model` and `--test`.)

Writes samples.parquet (one record per test prompt: id, exam_id, value, difficulty,
response, length, truncated, correct, unverified) and metrics.json (see
rlev.metrics.METRICS, plus `verifier`: which verifier scored the samples, and
`unverified`: the share it could not decide).

Answers are checked by the run's verifier (`reward.verifier`, handed in the spec's
`verifier` key), the one its training reward used: `rule`, or an LLM judge at a `url`, or,
for a judge that verl served during training, a judge this job serves itself with
`vllm serve` on its own GPUs once the policy's generation is done (`serve_judge`). A
truncated response (no stop token within the budget) is wrong, as in training.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import torch

from rlev.metrics import evaluation_metrics
from rlev.model import load_policy, render_prompt
from rlev.progress import progress
from rlev.rollout import generate
from rlev.verify import build_verifier

log = logging.getLogger(__name__)

JUDGE_START_TIMEOUT_S = 1800  # loading a 72B judge from a network file system can take many minutes


def greedy_generate(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int):
    """(texts, lengths, truncated) of greedy responses with rlev's decoding loop (CPU or one GPU)."""
    texts, lengths, truncated = [], [], []
    for start in progress(range(0, len(prompts), batch_size), desc="generate"):
        ro = generate(model, tokenizer, prompts[start : start + batch_size], n=1, max_new_tokens=max_new_tokens,
                      do_sample=False)
        texts += ro.texts
        lengths += ro.lengths.tolist()
        truncated += ro.truncated.tolist()
    return texts, lengths, truncated


def vllm_generate(model_path: str, prompts: list[str], max_new_tokens: int, dtype: str, tensor_parallel: int):
    """(texts, lengths, truncated) of greedy responses with vLLM over `tensor_parallel` GPUs.

    vLLM stops at the tokenizer's eos and generation_config's eos ids; `lengths` leave the
    stop token out, as on the CPU path. vLLM is imported here only: the CPU path never needs it.
    """
    from vllm import LLM, SamplingParams

    llm = LLM(model=model_path, dtype=dtype, tensor_parallel_size=tensor_parallel)
    outputs = llm.generate(prompts, SamplingParams(temperature=0.0, max_tokens=max_new_tokens))
    texts, lengths, truncated = [], [], []
    for out in outputs:
        completion = out.outputs[0]
        stopped = completion.finish_reason == "stop"
        texts.append(completion.text)
        lengths.append(len(completion.token_ids) - int(stopped and len(completion.token_ids) > 0))
        truncated.append(completion.finish_reason == "length")
    return texts, lengths, truncated


def _vllm_generate_child(queue, *args) -> None:
    queue.put(vllm_generate(*args))


def vllm_generate_released(*args):
    """vllm_generate in a child process, so that its GPU memory is free when it returns
    (a judge served by this job needs the same GPUs next)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_vllm_generate_child, args=(queue, *args))
    child.start()
    result = queue.get()
    child.join()
    if child.exitcode:
        raise RuntimeError(f"vLLM generation failed in its process (exit code {child.exitcode})")
    return result


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def judge_server_command(verifier: dict, port: int) -> list[str]:
    """`vllm serve` of the judge a verl run served during training, with its training settings."""
    return [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", verifier["model"],
        "--served-model-name", verifier["model"],
        "--tensor-parallel-size", str(verifier.get("tensor_parallel", 4)),
        "--gpu-memory-utilization", str(verifier.get("gpu_memory_utilization", 0.85)),
        "--max-model-len", str(verifier.get("max_prompt_length", 4096) + verifier.get("max_response_length", 512)),
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip


@contextmanager
def serve_judge(command: list[str], base_url: str, log_path: Path, timeout_s: float = JUDGE_START_TIMEOUT_S):
    """Run an OpenAI-compatible server (`command`) until the block ends; yields `base_url`
    once `<base_url>/models` answers. A server that exits or does not answer in `timeout_s`
    is an error naming its log."""
    with open(log_path, "a") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"the judge server exited with code {proc.returncode} (log: {log_path})")
                try:
                    with urllib.request.urlopen(f"{base_url}/models", timeout=5):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"the judge server did not answer in {timeout_s:.0f} s (log: {log_path})")
                    time.sleep(2)
            yield base_url
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, 15)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, 9)


def verifier_label(verifier: dict | None) -> str:
    """What scored an evaluation, as tables show it: `rule` or `judge:<model>`."""
    verifier = verifier or {"kind": "rule"}
    return "rule" if verifier.get("kind", "rule") == "rule" else f"judge:{verifier['model']}"


def judge_client_config(verifier: dict, base_url: str) -> dict:
    """build_verifier's config of the judge client at `base_url`, with the run's judge options."""
    options = {k: verifier[k] for k in ("timeout_s", "max_retries", "concurrency") if k in verifier}
    return {"kind": "judge", "base_url": base_url, "model": verifier["model"], "on_failure": "unverified", **options}


def score_samples(test: pd.DataFrame, texts, lengths, truncated, verifier: dict | None, out_dir: Path) -> pd.DataFrame:
    """Per-sample records, answers checked by `verifier` (serving the judge when it needs to)."""
    verifier = verifier or {"kind": "rule"}
    if verifier.get("kind", "rule") == "rule":
        return _records(test, texts, lengths, truncated, build_verifier({"kind": "rule"}))
    if verifier.get("url"):
        return _records(test, texts, lengths, truncated, build_verifier(judge_client_config(verifier, verifier["url"])))
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    with serve_judge(judge_server_command(verifier, port), base_url, Path(out_dir) / "judge_server.log") as url:
        return _records(test, texts, lengths, truncated, build_verifier(judge_client_config(verifier, url)))


def _records(test: pd.DataFrame, texts, lengths, truncated, verifier) -> pd.DataFrame:
    # Truncated responses are wrong whatever they say: the judge is not asked about them.
    asked = [i for i, t in enumerate(truncated) if not t]
    verdicts = [False] * len(texts)
    got = verifier(test["answer"].iloc[asked].tolist(), [texts[i] for i in asked],
                   test["question"].iloc[asked].tolist())  # fmt: skip
    for i, v in zip(asked, got):
        verdicts[i] = v
    samples = test[["id", "exam_id", "value", "difficulty"]].copy()
    samples["response"] = texts
    samples["length"] = lengths
    samples["truncated"] = truncated
    samples["correct"] = [bool(v) and not t for v, t in zip(verdicts, truncated)]
    samples["unverified"] = [v is None for v in verdicts]
    return samples


def evaluate(model_path: str, test_path: str, out_dir: Path, max_new_tokens: int, batch_size: int, threads: int,
             device: str = "auto", dtype: str = "float32", engine: str = "transformers",
             tensor_parallel: int = 1, verifier: dict | None = None) -> dict:
    """Greedy evaluation of one model on one test split; engine `transformers` (CPU or one
    GPU) or `vllm` (the verl scales); answers checked by `verifier` (the run's, default rule)."""
    torch.set_num_threads(threads)
    test = pd.read_parquet(test_path)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if engine == "vllm":
        prompts = _vllm_prompts(model_path, test)
        serves_judge = (verifier or {}).get("kind") == "judge" and not verifier.get("url")
        run = vllm_generate_released if serves_judge else vllm_generate
        texts, lengths, truncated = run(model_path, prompts, max_new_tokens, dtype, tensor_parallel)
    else:
        model, tokenizer = load_policy(model_path, device, dtype)
        model.eval()
        prompts = [render_prompt(tokenizer, q, s) for q, s in zip(test["question"], test["system"])]
        texts, lengths, truncated = greedy_generate(model, tokenizer, prompts, max_new_tokens, batch_size)
    samples = score_samples(test, texts, lengths, truncated, verifier, out_dir)
    metrics = evaluation_metrics(samples)
    extra = {"verifier": verifier_label(verifier), "unverified": 100 * float(samples["unverified"].mean())}
    samples.to_parquet(out_dir / "samples.parquet", index=False)
    (out_dir / "metrics.json").write_text(json.dumps({"model": str(model_path), **metrics, **extra}, indent=2) + "\n")
    log.info("%s: acc %.1f  h_acc %.1f  length %.1f  density %.3f (verifier %s)", model_path, metrics["acc"],
             metrics["h_acc"], metrics["length"], metrics["density"], extra["verifier"])
    return metrics


def _vllm_prompts(model_path: str, test: pd.DataFrame) -> list[str]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    return [render_prompt(tokenizer, q, s) for q, s in zip(test["question"], test["system"])]
