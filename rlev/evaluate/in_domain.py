"""In-domain evaluation (`rlev evaluate`, rules evaluate_verl, evaluate_init, evaluate_base): greedy
generation on the test split, verification, the paper's metrics.

    rlev evaluate --spec SCALE --model results/runs/.../model --test results/data/synthetic/test.parquet \
        --out results/runs/.../eval
    rlev evaluate --spec results/runs/.../config.yaml --out results/runs/.../eval   # model and test from the run

(`--spec` is required: a scale's settings as JSON / a YAML file, or a run's config.yaml, whose
`<out_dir>/model` and `dataset.test` are then the defaults of `--model` and `--test`.)

--spec is a scale block plus `verifier` (what the rules pass), or a run's config.yaml, whose
model (<out_dir>/model), test split (dataset.test) and verifier (reward.verifier) are the
defaults. Generation runs on vLLM at a verl scale, else on rlev's decoding loop
(rlev.evaluate.generate). Writes samples.parquet (one record per test prompt: id, exam_id,
value, difficulty, response, length, truncated, correct, unverified) and metrics.json (see
rlev.metrics.METRICS, plus `verifier`: which verifier scored the samples, and `unverified`:
the share it could not decide).

Answers are checked by the run's verifier (`reward.verifier`), the one its training reward
used: `rule`, or an LLM judge at a `url`, or, for a judge that verl served during training,
a judge this job serves itself with `vllm serve` on its own GPUs once the policy's
generation is done (`serve_judge`). Correct: `rlev.evaluate.correct` (a truncated response
is wrong, as in training; the judge is not asked about it).
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

from rlev.evaluate import correct, scale_of
from rlev.evaluate.generate import greedy_generate
from rlev.metrics import evaluation_metrics
from rlev.verify import build_verifier

log = logging.getLogger(__name__)

JUDGE_START_TIMEOUT_S = 1800  # loading a 72B judge from a network file system can take many minutes


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
    # Truncated responses are wrong whatever they say (rlev.evaluate.correct): the judge is not asked about them.
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
    samples["correct"] = correct(verdicts, truncated)
    samples["unverified"] = [v is None for v in verdicts]
    return samples


def evaluate(spec: dict, model: str | None, test: str | None, out_dir: Path) -> dict:
    """`rlev evaluate`: greedy evaluation of one model on one test split (see the module docstring).

    `spec`: a scale block (with the run's `verifier`, default rule) or a run's config, whose
    model and test split fill in `model` and `test` when they are None. Engine: vLLM over
    the scale's tensor_parallel GPUs at a verl scale, else rlev's loop (CPU or one GPU).
    """
    s = scale_of(spec)
    model = model or (str(Path(spec["out_dir"]) / "model") if "out_dir" in spec else None)
    test = test or spec.get("dataset", {}).get("test")
    if model is None or test is None:
        raise SystemExit("rlev evaluate: --model and --test are needed unless --spec is a run's config.yaml")
    verifier = (spec.get("reward") or {}).get("verifier") or s.get("verifier")  # a run's, or the rules' spec
    engine = "vllm" if s["backend"] == "verl" else "transformers"
    torch.set_num_threads(s["threads"])
    rows = pd.read_parquet(test)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    serves_judge = (verifier or {}).get("kind") == "judge" and not verifier.get("url")
    texts, lengths, truncated = greedy_generate(
        model, rows["question"].tolist(), rows["system"].tolist(), max_new_tokens=s["max_new_tokens"],
        batch_size=s["eval_batch"], engine=engine, device=s["device"], dtype=s["dtype"],
        tensor_parallel=s.get("tensor_parallel", 1), release_gpus=engine == "vllm" and serves_judge,
    )  # fmt: skip
    samples = score_samples(rows, texts, lengths, truncated, verifier, out_dir)
    metrics = evaluation_metrics(samples)
    extra = {"verifier": verifier_label(verifier), "unverified": 100 * float(samples["unverified"].mean())}
    samples.to_parquet(out_dir / "samples.parquet", index=False)
    (out_dir / "metrics.json").write_text(json.dumps({"model": str(model), **metrics, **extra}, indent=2) + "\n")
    log.info(
        "%s: acc %.1f  h_acc %.1f  length %.1f  density %.3f (verifier %s)",
        model,
        metrics["acc"],
        metrics["h_acc"],
        metrics["length"],
        metrics["density"],
        extra["verifier"],
    )
    return metrics


def evaluate_local_run(run: dict) -> None:
    """A local run's final policy, right after training in the same process (`rlev train`): greedy
    evaluation on the test split (eval/samples.parquet, eval/metrics.json) and the EOS probabilities
    of Figure 2 (eval/eos.parquet), the same files `rlev evaluate` and `rlev eos` write."""
    from rlev.evaluate.eos import eos

    out = Path(run["out_dir"])
    model, test = str(out / "model"), run["dataset"]["test"]
    evaluate(run, model, test, out / "eval")  # the verifier the run trained with (reward.verifier)
    eos(run, model, test, str(out / "eval" / "samples.parquet"), out / "eval" / "eos.parquet")
