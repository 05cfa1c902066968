import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def run_snakemake(*args, cwd, check=True) -> subprocess.CompletedProcess:
    """Run snakemake from this interpreter's environment, with `rlev` on PATH for the rules."""
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
    cmd = [shutil.which("snakemake", path=bindir) or "snakemake", "--snakefile", str(REPO / "Snakefile"), *args]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture
def snakemake_cmd():
    return run_snakemake


FIXTURES = Path(__file__).resolve().parent / "fixtures"
# A hand-made CSV in a user's own layout with one broken row per validation rule.
BAD_CSV = FIXTURES / "bad_exams.csv"
BAD_CSV_COLUMNS = {
    "id": "qid",
    "exam_id": "paper",
    "question": "prompt",
    "answer": "reference",
    "score": "points",
    "total": "paper_total",
    "difficulty": "level",
    "split": "fold",
}


def readme_section(title: str) -> str:
    text = (REPO / "README.md").read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end]


def readme_bullet(prefix: str) -> str:
    """The bullet of "Changing one thing" that starts with `prefix`, up to the next bullet."""
    section = readme_section("Changing one thing")
    found = re.search(rf"^- {re.escape(prefix)}.*?(?=^- |^\S|\Z)", section, re.S | re.M)
    assert found, f"README's 'Changing one thing' has no bullet starting {prefix!r}"
    return found.group(0)


def yaml_block(bullet: str) -> dict:
    block = re.search(r"```yaml\n(.*?)```", bullet, re.S)
    assert block, "the bullet has no ```yaml block"
    return yaml.safe_load(textwrap.dedent(block.group(1)))


def save_gpt2(tokenizer, out: Path, n_positions: int, seed: int) -> Path:
    """An untrained GPT-2 (learned positions, no GQA: not rlev's own tiny model) of `tokenizer`'s
    vocabulary, saved with the tokenizer as a Hugging Face model directory at `out`."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    ids = dict(bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_embd=24, n_layer=2, n_head=2, n_positions=n_positions,
        pad_token_id=tokenizer.pad_token_id, **ids,
    )  # fmt: skip
    GPT2LMHeadModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """(train parquet, warm-started model dir) of the a+b task: a tiny Qwen2 (hidden 32, one layer)
    warm-started for a few seconds on exams whose questions are a+b with a, b in {0, 1, 2}; about
    two thirds of its sampled answers are right, so rewards and advantages are not all zero."""
    import json
    import random

    import pandas as pd

    from rlev.data.prepare import prepare
    from rlev.sft import init_model, train_sft

    root = tmp_path_factory.mktemp("toy")
    rng = random.Random(0)
    records, demos = [], []
    for e in range(9):
        points = [rng.randint(1, 4) for _ in range(4)]
        for q in range(4):
            a, b = rng.randint(0, 2), rng.randint(0, 2)
            qid = f"toy-{e}-{q}"
            records.append(
                dict(
                    id=qid,
                    exam_id=f"toy-{e}",
                    question=f"{a}+{b}=?",
                    answer=str(a + b),
                    score=points[q],
                    total=sum(points),
                    difficulty="primary",
                    split="train" if e < 8 else "test",
                )
            )
            demos.append(dict(id=qid, worked=f"{a}+{b}={a + b} #### {a + b}", direct=f"#### {a + b}"))
    (root / "exams.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (root / "demos.jsonl").write_text("".join(json.dumps(d) + "\n" for d in demos))
    prepare(
        {"source": "table", "path": str(root / "exams.jsonl")},
        root / "data",
        "toy",
        test_share=0.0,
        split_seed=0,
        max_reject_share=0.0,
    )
    init_model(
        dict(
            vocab_size=280,
            hidden_size=32,
            num_layers=1,
            num_heads=2,
            num_kv_heads=1,
            intermediate_size=64,
            max_position=64,
        ),
        root / "data" / "train.parquet",
        root / "demos.jsonl",
        root / "init",
    )
    train = pd.read_parquet(root / "data" / "train.parquet")
    train_sft(root / "init", root / "sft", train, root / "demos.jsonl", 150, 32, 1e-2, 1, seed=0, device="cpu")
    return {"train": root / "data" / "train.parquet", "sft": root / "sft", "root": root}
