"""rlev's decoding loop against transformers' `model.generate`: same greedy output, and speed.

    .venv/bin/python benchmarks/bench_rollout.py --device cpu
    python benchmarks/bench_rollout.py --device cuda --dtype bfloat16 --hidden 896 --layers 24 --max-new-tokens 256

Builds a Qwen2 of the given shape with rlev's byte-level tokenizer (random weights; with
--sft-steps > 0 it is first warm-started on the synthetic exams so responses end at
varied lengths, as in RL), checks that greedy decoding gives the same tokens as
`model.generate`, then times sampling `--prompts` x `--n` responses both ways (the same
sampler settings: temperature 1, no top-k/top-p). Needs only torch and transformers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--kv-heads", type=int, default=2)
    parser.add_argument("--intermediate", type=int, default=256)
    parser.add_argument("--sft-steps", type=int, default=0)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from rlev.data.synthetic import generate as synthetic_exams
    from rlev.model import build_tiny, load_policy, render_prompt
    from rlev.rollout import generate

    work = Path(tempfile.mkdtemp(prefix="bench_rollout_"))
    records, demos = synthetic_exams(60, 0, 10, seed=1234)
    texts = [r["question"] for r in records] + [d["worked"] for d in demos] + [d["direct"] for d in demos]
    shape = dict(
        vocab_size=320,
        hidden_size=args.hidden,
        num_layers=args.layers,
        num_heads=args.heads,
        num_kv_heads=args.kv_heads,
        intermediate_size=args.intermediate,
        max_position=1024,
    )
    build_tiny(texts, shape, work / "init")
    model_dir = work / "init"
    if args.sft_steps:
        from rlev.sft import train_sft

        train = pd.DataFrame([{**r, "system": "", "value": r["score"] / r["total"]} for r in records])
        (work / "demos.jsonl").write_text("".join(json.dumps(d) + "\n" for d in demos))
        train_sft(
            work / "init",
            work / "sft",
            train,
            work / "demos.jsonl",
            args.sft_steps,
            64,
            3e-3,
            args.threads,
            seed=0,
            device=args.device,
        )
        model_dir = work / "sft"
    model, tokenizer = load_policy(model_dir, args.device, args.dtype)
    model.eval()
    device = model.device
    params = sum(p.numel() for p in model.parameters())
    prompts = [render_prompt(tokenizer, r["question"]) for r in records[: args.prompts]]

    # 1. greedy: token for token the same as model.generate
    ours = generate(model, tokenizer, prompts, n=1, max_new_tokens=args.max_new_tokens, do_sample=False)
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    theirs = model.generate(
        **enc,
        max_new_tokens=args.max_new_tokens,
        do_sample=False,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    width = ours.sequences.shape[1]
    same = torch.equal(ours.sequences, theirs[:, :width]) and bool((theirs[:, width:] == tokenizer.pad_token_id).all())
    rows_same = sum(torch.equal(a, b[:width]) for a, b in zip(ours.sequences, theirs))

    # 2. sampling speed, n samples per prompt
    def time_ours():
        sync(device)
        t = time.perf_counter()
        ro = generate(model, tokenizer, prompts, n=args.n, max_new_tokens=args.max_new_tokens)
        sync(device)
        return time.perf_counter() - t, ro.lengths.float().mean().item()

    def time_hf():
        sync(device)
        t = time.perf_counter()
        out = model.generate(
            **enc,
            max_new_tokens=args.max_new_tokens,
            num_return_sequences=args.n,
            do_sample=True,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        sync(device)
        response = out[:, enc["input_ids"].shape[1] :]
        length = ((response != tokenizer.pad_token_id) & (response != tokenizer.eos_token_id)).sum(1)
        return time.perf_counter() - t, length.float().mean().item()

    time_ours(), time_hf()  # warm-up
    ours_t, hf_t = [], []
    for rep in range(args.repeats):
        torch.manual_seed(rep)
        ours_t.append(time_ours())
        torch.manual_seed(rep)
        hf_t.append(time_hf())
    completions = args.prompts * args.n
    rows = []
    for name, runs in (("rlev generate", ours_t), ("transformers generate", hf_t)):
        seconds = statistics.median(t for t, _ in runs)
        rows.append(
            {
                "decoder": name,
                "s_per_batch": seconds,
                "completions_per_s": completions / seconds,
                "mean_length": statistics.mean(length for _, length in runs),
            }
        )
    print(
        f"model: Qwen2 {params / 1e6:.1f}M parameters ({args.layers} layers x {args.hidden}), {args.dtype} on "
        f"{device}; {args.prompts} prompts x {args.n} samples, budget {args.max_new_tokens} tokens, "
        f"warm-started {args.sft_steps} SFT steps"
    )
    print(f"greedy identical to model.generate: {same} ({rows_same}/{len(prompts)} rows)")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print(f"speed-up (completions/s): {rows[0]['completions_per_s'] / rows[1]['completions_per_s']:.2f}")


if __name__ == "__main__":
    main()
