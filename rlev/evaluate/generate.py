"""Greedy generation, one function for every stage that asks a policy (evaluation, OOD, the score predictor).

`greedy_generate` renders each question with `rlev.model.render_prompt` (the chat template
when the tokenizer has one) and decodes greedily with one of two engines:

- `transformers`: rlev's decoding loop (`rlev.rollout.generate`, do_sample=False) on CPU or
  one GPU, `batch_size` prompts at a time;
- `vllm` (the verl scales): vLLM over `tensor_parallel` GPUs, temperature 0. vLLM stops at
  the tokenizer's eos and generation_config's eos ids; lengths leave the stop token out, as
  on the CPU path.

It returns (texts, lengths, truncated): a response is truncated when it reached the token
budget without a stop token.
"""

from __future__ import annotations

from rlev.model import load_policy, render_prompt
from rlev.progress import progress
from rlev.rollout import generate

ENGINES = ("transformers", "vllm")


def greedy_generate(
    model_path,
    questions: list[str],
    systems: list[str] | None = None,
    *,
    max_new_tokens: int,
    batch_size: int,
    engine: str = "transformers",
    device: str = "auto",
    dtype: str = "float32",
    tensor_parallel: int = 1,
    release_gpus: bool = False,
):
    """(texts, lengths, truncated) of greedy responses of the model at `model_path` to each question
    (with its system prompt, if `systems`). `release_gpus` (vllm): generate in a child process, so that
    its GPU memory is free when this returns (a judge served by the same job needs the GPUs next)."""
    if engine not in ENGINES:
        raise ValueError(f"unknown generation engine {engine!r}; choose one of {', '.join(ENGINES)}")
    systems = [""] * len(questions) if systems is None else list(systems)
    if engine == "vllm":
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_path)
        prompts = [render_prompt(tokenizer, q, s) for q, s in zip(questions, systems)]
        run = vllm_generate_released if release_gpus else vllm_generate
        return run(str(model_path), prompts, max_new_tokens, dtype, tensor_parallel)
    model, tokenizer = load_policy(model_path, device, dtype)
    model.eval()
    prompts = [render_prompt(tokenizer, q, s) for q, s in zip(questions, systems)]
    return decode_greedy(model, tokenizer, prompts, max_new_tokens, batch_size)


def decode_greedy(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int):
    """(texts, lengths, truncated) of a loaded model's greedy responses to rendered prompts (rlev's loop)."""
    texts, lengths, truncated = [], [], []
    for start in progress(range(0, len(prompts), batch_size), desc="generate"):
        ro = generate(
            model, tokenizer, prompts[start : start + batch_size], n=1, max_new_tokens=max_new_tokens, do_sample=False
        )
        texts += ro.texts
        lengths += ro.lengths.tolist()
        truncated += ro.truncated.tolist()
    return texts, lengths, truncated


def vllm_generate(model_path: str, prompts: list[str], max_new_tokens: int, dtype: str, tensor_parallel: int):
    """(texts, lengths, truncated) of greedy responses to rendered prompts with vLLM over `tensor_parallel`
    GPUs. vLLM is imported here only: the CPU path never needs it."""
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
    """vllm_generate in a child process, so that its GPU memory is free when it returns."""
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
