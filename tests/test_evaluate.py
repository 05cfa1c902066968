"""rlev.evaluate: the run's verifier scores the evaluation, and the tables can say which; one greedy generation."""

from __future__ import annotations

import json
import socket
import sys

import pandas as pd
import pytest

from rlev.evaluate import generate
from rlev.evaluate import in_domain as E
from rlev.model import build_tiny

QUESTIONS = ["3+4=?", "2+2=?", "5+1=?"]
SCALE = {"backend": "local", "max_new_tokens": 6, "eval_batch": 8, "threads": 1, "device": "cpu", "dtype": "float32"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    build_tiny(
        QUESTIONS + ["3+4=7 #### 7"],
        dict(
            vocab_size=280,
            hidden_size=16,
            num_layers=1,
            num_heads=2,
            num_kv_heads=1,
            intermediate_size=32,
            max_position=64,
        ),
        out,
        seed=0,
    )
    return out


@pytest.fixture
def test_file(tmp_path):
    path = tmp_path / "test.parquet"
    pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "exam_id": ["e"] * 3,
            "value": [0.1, 0.2, 0.3],
            "difficulty": [""] * 3,
            "question": QUESTIONS,
            "system": [""] * 3,
            "answer": ["7", "4", "6"],
        }
    ).to_parquet(path)
    return path


def test_evaluation_uses_the_runs_judge_and_says_so(tiny, test_file, tmp_path):
    from test_train_verl import _Judge

    judge = _Judge()
    try:
        verifier = {"kind": "judge", "model": "judge-model", "url": judge.url, "max_retries": 0}
        E.evaluate({**SCALE, "verifier": verifier}, str(tiny), str(test_file), tmp_path / "eval")
    finally:
        judge.stop()
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    samples = pd.read_parquet(tmp_path / "eval" / "samples.parquet")
    assert metrics["verifier"] == "judge:judge-model" and metrics["unverified"] == 0.0
    # the judge said YES to every answer it was asked about; truncated answers are wrong unasked
    assert samples["correct"].tolist() == (~samples["truncated"]).tolist()
    assert len(judge.asked) == int((~samples["truncated"]).sum())
    asked = " ".join(m["messages"][-1]["content"] for m in judge.asked)
    assert all(q in asked for q, t in zip(QUESTIONS, samples["truncated"]) if not t)


def test_rule_is_the_default_verifier_and_is_named(tiny, test_file, tmp_path):
    E.evaluate(SCALE, str(tiny), str(test_file), tmp_path / "eval")
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["verifier"] == "rule"


def test_a_judge_that_verl_served_is_served_by_the_evaluation_job(tmp_path):
    """No url: the job starts `vllm serve` with the training judge's settings and waits for it."""
    cmd = E.judge_server_command({"kind": "judge", "model": "Qwen/Qwen2.5-72B-Instruct", "tensor_parallel": 4,
                                  "gpu_memory_utilization": 0.85, "max_prompt_length": 4096,
                                  "max_response_length": 512}, 8123)  # fmt: skip
    assert cmd[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert cmd[cmd.index("--tensor-parallel-size") + 1] == "4" and cmd[cmd.index("--port") + 1] == "8123"
    assert cmd[cmd.index("--served-model-name") + 1] == "Qwen/Qwen2.5-72B-Instruct"
    # the serving logic, with a stand-in server that answers /v1/models
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "models").write_text("{}")
    stand_in = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(tmp_path)]
    with E.serve_judge(stand_in, f"http://127.0.0.1:{port}/v1", tmp_path / "server.log", timeout_s=60) as url:
        assert url.endswith("/v1")
    with pytest.raises(RuntimeError, match=r"exited with code 3 \(log: .*dead.log\)"):
        with E.serve_judge([sys.executable, "-c", "raise SystemExit(3)"], "http://127.0.0.1:9/v1",
                           tmp_path / "dead.log", timeout_s=60):  # fmt: skip
            pass


def test_ood_at_a_verl_scale_generates_with_vllm_over_tensor_parallel_gpus(tiny, tmp_path, monkeypatch):
    from rlev.data.ood import synthetic_rows
    from rlev.evaluate.ood import ood

    rows = synthetic_rows(4, seed=0)
    rows.to_parquet(tmp_path / "rows.parquet")
    calls = []

    def fake_vllm(model, prompts, max_new_tokens, dtype, tensor_parallel):
        calls.append((model, len(prompts), tensor_parallel))
        return ["Answer: A"] * len(prompts), [2] * len(prompts), [False] * len(prompts)

    monkeypatch.setattr(generate, "vllm_generate", fake_vllm)
    spec = {"backend": "verl", "threads": 1, "device": "auto", "dtype": "bfloat16", "max_new_tokens": 8,
            "eval_batch": 64, "tensor_parallel": 4}  # fmt: skip
    metrics = ood(spec, str(tiny), tmp_path / "rows.parquet", tmp_path / "out")
    assert calls == [(str(tiny), 4, 4)] and metrics["n"] == 4
