"""Tune the tiny testbed: train several local RL runs in one process, with greedy test metrics
every `--eval-every` steps (learning curves), from an existing SFT start.

    python benchmarks/testbed_probe.py --sft results/models/synthetic/tiny/sft \
        --runs '[{"estimator": "rloo", "variant": "human", "seed": 0, "lr": 1e-4, "rl_steps": 80}]' \
        --out /tmp/probe

Each run is the pipeline's own run config (rlev.config.run_config of config.yaml, the
scale's keys overridden by the run's `lr`, `rl_steps`, `max_new_tokens`, ...; `cost` a
reward.cost block), trained by rlev.train.local.train. The curve points are the greedy
evaluation of rlev.evaluate.in_domain (the test split, the paper's metrics) plus the worked share and
truncation. One JSON line per (run, step) goes to <out>/curves.jsonl; step 0 is the start.
docs/testbed.md records what these runs measured and what the defaults were chosen from.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
import torch

import rlev.train.local as local
from rlev.config import REPO_ROOT, Run, load_config, reward_tag, run_config
from rlev.evaluate.generate import decode_greedy
from rlev.evaluate.in_domain import score_samples
from rlev.metrics import evaluation_metrics
from rlev.model import load_policy, render_prompt

SCALE_KEYS = ("lr", "rl_steps", "max_new_tokens", "prompts_per_step", "n", "temperature", "threads")


def test_metrics(model, tokenizer, test: pd.DataFrame, max_new_tokens: int) -> dict:
    prompts = [render_prompt(tokenizer, q, s) for q, s in zip(test["question"], test["system"])]
    texts, lengths, truncated = decode_greedy(model, tokenizer, prompts, max_new_tokens, 256)
    samples = score_samples(test, texts, lengths, truncated, {"kind": "rule"}, Path("."))
    worked = samples["response"].str.contains("=", regex=False)
    hard = test["difficulty"].isin(["university", "phd"]).to_numpy()
    return {
        **{k: round(v, 2) for k, v in evaluation_metrics(samples).items() if k != "n"},
        "worked": round(100 * float(worked.mean()), 1),
        "truncated": round(100 * float(samples["truncated"].mean()), 1),
        "acc_hard": round(100 * float(samples["correct"][hard].mean()), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sft", required=True, help="the starting policy (a Hugging Face model directory)")
    ap.add_argument("--runs", required=True, help="JSON list of runs")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--eval-every", type=int, default=20)
    ap.add_argument("--config", default=str(REPO_ROOT / "config.yaml"))
    ap.add_argument("--test-rows", type=int, default=0, help="evaluate on the first this-many test rows (0: all)")
    args = ap.parse_args()
    config = load_config(args.config)
    test = pd.read_parquet(REPO_ROOT / "results" / "data" / config["dataset"] / "test.parquet")
    if args.test_rows:
        test = test.iloc[: args.test_rows]
    args.out.mkdir(parents=True, exist_ok=True)
    curves = open(args.out / "curves.jsonl", "a")
    for spec in json.loads(args.runs):
        name = json.dumps(spec, sort_keys=True)
        tag = reward_tag(spec["variant"], spec.get("alpha", config["reward"]["alpha"]), config["reward"]["form"])
        run = run_config(config, Run(config["dataset"], config["scale"], spec["estimator"], tag, spec["seed"]))
        run["scale"].update({k: spec[k] for k in SCALE_KEYS if k in spec})
        run["scale"].update(init_model=args.sft, checkpoint_every=args.eval_every, device="cpu")
        if spec.get("cost"):
            run["reward"]["cost"] = spec["cost"]
        run["out_dir"] = str(args.out / f"run{abs(hash(name)) % 10**8}")
        torch.set_num_threads(run["scale"]["threads"])
        t0 = time.perf_counter()

        def log_point(step, model, tokenizer):
            row = {
                "run": spec,
                "step": step,
                **test_metrics(model, tokenizer, test, run["scale"]["max_new_tokens"]),
                "seconds": round(time.perf_counter() - t0, 1),
            }
            curves.write(json.dumps(row) + "\n")
            curves.flush()
            print(json.dumps(row), flush=True)

        if spec.get("eval_start", False):
            model, tokenizer = load_policy(args.sft, "cpu")
            model.eval()
            log_point(0, model, tokenizer)

        # Instead of checkpointing, evaluate the policy where a checkpoint would be written.
        def evaluate_instead(ckpt_dir, steps_done, model, optimizer, records, run_, batch_size):
            from transformers import AutoTokenizer

            log_point(steps_done, model, AutoTokenizer.from_pretrained(args.sft))

        local.save_checkpoint = evaluate_instead
        local.train(run)
        model, tokenizer = load_policy(Path(run["out_dir"]) / "model", "cpu")
        model.eval()
        log_point(run["scale"]["rl_steps"], model, tokenizer)


if __name__ == "__main__":
    main()
