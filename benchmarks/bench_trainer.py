"""The local back end against TRL's GRPOTrainer: one tiny model, one task, one process.

    .venv/bin/python benchmarks/bench_trainer.py --steps 10 --threads 1

Both trainers start from the same warm-started tiny Qwen2 (built with rlev.model.build_tiny
on the synthetic exams and fine-tuned for --sft-steps with rlev.sft.train_sft, so rewards
are not all zero) and run the same RL problem with the same settings:

    prompts per step  --prompts         group size        --n
    response budget   --max-new-tokens  sampling          temperature 1, no top-k/top-p
    advantage         mean-centred GRPO (rlev: grpo, norm_adv_by_std_in_grpo false;
                      TRL: scale_rewards="none")
    loss              token mean over the batch (rlev: loss_agg_mode token-mean;
                      TRL: loss_type="dapo"), clip 0.2, no KL (TRL: beta 0)
    update            one AdamW step on the whole batch per generation (TRL:
                      num_iterations 1, gradient_accumulation_steps 1), grad clip 1,
                      constant lr, no weight decay, no vLLM, same torch threads
    reward            s(x) * 1[correct] with RLEV's additive_clipped scale (alpha 10), the
                      rule verifier, truncated = wrong

The prompts differ (each trainer shuffles with its own sampler), so the two runs see
different batches of the same distribution. Times exclude each trainer's first step
(warm-up). Prints completions/s and seconds per RL step for both, their ratio, and where
each step's time goes (generation, reward, update).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]


def build_task(work: Path, args) -> tuple[Path, Path, Path]:
    """Synthetic exams -> prepared train split, tiny Qwen2, SFT warm start. Returns (train, demos, sft dir)."""
    from rlev.data.prepare import prepare
    from rlev.data.synthetic import generate
    from rlev.sft import init_model, train_sft

    records, demos = generate(args.train_exams, 2, 10, seed=1234)
    exams, demos_path = work / "exams.jsonl", work / "demos.jsonl"
    exams.write_text("".join(json.dumps(r) + "\n" for r in records))
    demos_path.write_text("".join(json.dumps(d) + "\n" for d in demos))
    prepare(
        {"source": "table", "path": str(exams)},
        work / "data",
        "bench",
        test_share=0.05,
        split_seed=0,
        max_reject_share=0.0,
    )
    train_path = work / "data" / "train.parquet"
    shape = dict(
        vocab_size=320,
        hidden_size=64,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        intermediate_size=256,
        max_position=256,
    )
    init_model(shape, train_path, demos_path, work / "init")
    train = pd.read_parquet(train_path)
    train_sft(work / "init", work / "sft", train, demos_path, args.sft_steps, 64, 3e-3, args.threads, seed=0)
    return train_path, demos_path, work / "sft"


def run_config_for(train_path: Path, sft_dir: Path, out_dir: Path, args) -> dict:
    """The local back end's run config for the benchmark problem (defaults from the schema)."""
    from rlev.config import Run, load_config, run_config, validate

    config = load_config(REPO / "config.yaml")
    config["estimators"]["bench_grpo"] = {"adv_estimator": "grpo", "norm_adv_by_std_in_grpo": False}
    config["experiments"]["main"]["estimators"] = ["bench_grpo"]
    validate(config)
    run = run_config(config, Run(config["dataset"], config["scale"], "bench_grpo", "human-a10-additive_clipped", 0))
    run["dataset"]["train"] = str(train_path)
    run["out_dir"] = str(out_dir)
    run["scale"].update(
        init_model=str(sft_dir),
        rl_steps=args.steps,
        prompts_per_step=args.prompts,
        n=args.n,
        max_new_tokens=args.max_new_tokens,
        lr=args.lr,
        threads=args.threads,
        device=args.device,
        checkpoint_every=0,
        temperature=1.0,
        weight_decay=0.0,
    )
    return run


def bench_local(train_path: Path, sft_dir: Path, work: Path, args) -> list[dict]:
    from rlev.train.local import train

    run = run_config_for(train_path, sft_dir, work / "local", args)
    train(run)
    steps = [json.loads(line) for line in (work / "local" / "train" / "metrics.jsonl").read_text().splitlines()]
    return [
        {
            "seconds": r["seconds"],
            "generate": r["time_generate"],
            "reward": r["time_reward"],
            "update": r["time_update"] + r["time_logprob"],
            "completions": args.prompts * args.n,
            "length": r["length"],
            "reward_mean": r["reward"],
        }
        for r in steps
    ]


def bench_trl(train_path: Path, sft_dir: Path, work: Path, args) -> list[dict]:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from rlev.model import load_policy, render_prompt
    from rlev.values import reward_scales
    from rlev.verify import build_verifier

    run = run_config_for(train_path, sft_dir, work / "local_cfg", args)
    train = pd.read_parquet(train_path)
    model, tokenizer = load_policy(sft_dir, args.device, "float32")
    dataset = Dataset.from_dict(
        {
            "prompt": [render_prompt(tokenizer, q, s) for q, s in zip(train["question"], train["system"])],
            "answer": train["answer"].astype(str).tolist(),
            "scale": reward_scales(run, train).tolist(),
        }
    )
    verifier = build_verifier({"kind": "rule"})
    timers = {"generate": 0.0, "reward": 0.0}

    def rlev_reward(prompts, completions, completion_ids, answer, scale, **kwargs):
        t = time.perf_counter()
        verdicts = verifier(answer, completions)
        truncated = [tokenizer.eos_token_id not in ids for ids in completion_ids]
        timers["reward"] += time.perf_counter() - t
        return [s * float(bool(v) and not tr) for s, v, tr in zip(scale, verdicts, truncated)]

    # Time TRL's generation without changing it: the trainer calls this model's generate().
    plain_generate = model.generate

    def timed_generate(*a, **kw):
        t = time.perf_counter()
        out = plain_generate(*a, **kw)
        timers["generate"] += time.perf_counter() - t
        timers["tokens"] = timers.get("tokens", 0) + out.shape[0] * out.shape[1]
        return out

    model.generate = timed_generate
    steps: list[dict] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, *a, **kw):
            timers.update(generate=0.0, reward=0.0, start=time.perf_counter())

        def on_step_end(self, *a, **kw):
            seconds = time.perf_counter() - timers["start"]
            steps.append(
                {
                    "seconds": seconds,
                    "generate": timers["generate"],
                    "reward": timers["reward"],
                    "update": seconds - timers["generate"] - timers["reward"],
                    "completions": args.prompts * args.n,
                }
            )

        def on_log(self, _args, state, control, logs=None, **kw):
            if logs and steps and "completions/mean_length" in logs:
                steps[-1]["length"] = logs["completions/mean_length"]
                steps[-1]["reward_mean"] = logs.get("reward")

    config = GRPOConfig(
        output_dir=str(work / "trl"),
        per_device_train_batch_size=args.prompts * args.n,
        gradient_accumulation_steps=1,
        num_generations=args.n,
        max_completion_length=args.max_new_tokens,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        learning_rate=args.lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        optim="adamw_torch",
        max_grad_norm=1.0,
        beta=0.0,
        num_iterations=1,
        epsilon=0.2,
        loss_type="dapo",
        scale_rewards="none",
        max_steps=args.steps,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=args.device == "cpu" or not torch.cuda.is_available(),
        bf16=False,
        seed=0,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[rlev_reward],
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[StepTimer()],
    )
    torch.set_num_threads(args.threads)
    trainer.train()
    return steps


def summarise(name: str, steps: list[dict]) -> dict:
    timed = steps[1:] if len(steps) > 1 else steps  # the first step pays one-time costs
    seconds = statistics.mean(s["seconds"] for s in timed)
    return {
        "trainer": name,
        "steps_timed": len(timed),
        "s_per_step": seconds,
        "completions_per_s": statistics.mean(s["completions"] for s in timed) / seconds,
        "generate_s": statistics.mean(s["generate"] for s in timed),
        "reward_s": statistics.mean(s["reward"] for s in timed),
        "update_s": statistics.mean(s["update"] for s in timed),
        "mean_length": statistics.mean(s.get("length", float("nan")) or float("nan") for s in timed),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10, help="RL steps per trainer (the first is not timed)")
    parser.add_argument("--prompts", type=int, default=16, help="prompts per step")
    parser.add_argument("--n", type=int, default=8, help="samples per prompt")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--sft-steps", type=int, default=300, help="warm-start steps (rewards must not be all zero)")
    parser.add_argument("--train-exams", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--order", default="local,trl", help="which trainer runs first")
    parser.add_argument("--out", default=None, help="work directory (default: a temporary one)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    torch.set_num_threads(args.threads)
    work = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench_trainer_"))
    work.mkdir(parents=True, exist_ok=True)

    t = time.perf_counter()
    train_path, _, sft_dir = build_task(work, args)
    print(
        f"task: {len(pd.read_parquet(train_path))} training prompts, tiny Qwen2 warm-started for {args.sft_steps} "
        f"SFT steps in {time.perf_counter() - t:.0f}s; {args.steps} RL steps x {args.prompts} prompts x {args.n} "
        f"samples, budget {args.max_new_tokens} tokens, {args.threads} torch thread(s), device {args.device}"
    )
    results = {}
    for name in args.order.split(","):
        fn = {"local": bench_local, "trl": bench_trl}[name]
        results[name] = summarise(
            {"local": "rlev local", "trl": "TRL GRPOTrainer"}[name], fn(train_path, sft_dir, work, args)
        )
    table = pd.DataFrame([results["local"], results["trl"]])
    pd.set_option("display.width", 200)
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    ratio = results["local"]["completions_per_s"] / results["trl"]["completions_per_s"]
    print(
        f"completions/s ratio (rlev local / TRL): {ratio:.2f}; "
        f"s/step ratio (TRL / rlev local): {results['trl']['s_per_step'] / results['local']['s_per_step']:.2f}"
    )
    (work / "bench_trainer.json").write_text(
        json.dumps({"args": vars(args), "results": results, "ratio": ratio}, indent=2)
    )


if __name__ == "__main__":
    main()
