"""Training the score predictor on the verl back end: the SFT data, a composed and checked
`verl.trainer.sft_trainer` config and a torchrun launch script, written through the launcher the RL
runs use (rlev.train.verl_launch), then run where GPUs exist (rlev.predictor)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pandas as pd

from rlev.predictor.prompt import predictor_examples
from rlev.train.verl_launch import (
    VERL_VERSION,
    VerlConfigError,
    command_lines,
    compose,
    hydra_overrides,
    run_script,
    write_launch_files,
)

log = logging.getLogger(__name__)


def write_sft_parquet(rows: pd.DataFrame, path: Path) -> None:
    """verl's multi-turn SFT layout: a `messages` column of system / user / assistant turns."""
    messages = [
        [{"role": "system", "content": s}, {"role": "user", "content": q}, {"role": "assistant", "content": r[0]}]
        for q, s, r in predictor_examples(rows)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"messages": messages}).to_parquet(path, index=False)


def verl_sft_overrides(spec: dict, train_file: Path, out_dir: Path, name: str) -> list[str]:
    """Hydra overrides of verl's `sft_trainer_engine` config for the predictor's SFT."""
    ranks = spec["gpus_per_node"] * spec["nodes"]
    if spec["batch"] % ranks or (spec["batch"] // ranks) % spec["micro_batch_per_gpu"]:
        raise VerlConfigError(
            f"predictor.verl: batch {spec['batch']} must split into {ranks} GPUs x whole micro batches of "
            f"micro_batch_per_gpu={spec['micro_batch_per_gpu']} (verl asserts it mid-launch)"
        )
    return hydra_overrides([
        ("data.train_files", str(Path(train_file).resolve())),
        ("data.val_files", None),
        ("data.messages_key", "messages"),
        ("data.max_length", spec["max_length"]),
        ("data.truncation", "error"),
        ("data.train_batch_size", spec["batch"]),
        # fixed micro batches: with verl's default dynamic batch size the micro batch is ignored
        ("data.use_dynamic_bsz", False),
        ("data.micro_batch_size_per_gpu", spec["micro_batch_per_gpu"]),
        ("model.path", spec["model"]),
        ("optim.lr", spec["lr"]),
        ("trainer.total_epochs", spec["epochs"]),
        ("trainer.save_freq", -1),  # the last step is always saved
        ("checkpoint.save_contents", ["model", "optimizer", "extra", "hf_model"]),
        ("trainer.default_local_dir", str((Path(out_dir) / "checkpoints").resolve())),
        ("trainer.project_name", "rlev"),
        ("trainer.experiment_name", name),
        ("trainer.logger", ["console"]),
        ("trainer.n_gpus_per_node", spec["gpus_per_node"]),
        ("trainer.nnodes", spec["nodes"]),
    ])  # fmt: skip


def compose_sft_config(overrides: list[str]):
    """verl's SFT config composed offline with `overrides`: an unknown key or a malformed value is a
    VerlConfigError naming the override, here rather than on the cluster."""
    return compose("sft_trainer_engine", overrides)


def validate_sft_config(cfg) -> None:
    """What verl's SFT trainer checks of its config before it trains (SFTTrainer._build_config): the
    engine, optimiser, checkpoint and profiler sections as verl's dataclasses, and the profiler
    interval. (The model section is built from the model's files, which a CPU machine may not have.)
    Raises VerlConfigError."""
    from verl.utils.config import omega_conf_to_dataclass

    for section in ("engine", "optim", "checkpoint", "profiler"):
        try:
            omega_conf_to_dataclass(cfg[section])
        except Exception as err:  # hydra InstantiationException wraps dataclass errors
            raise VerlConfigError(f"verl {VERL_VERSION} SFT config, {section}: {type(err).__name__}: {err}") from err
    interval = list(cfg.trainer.profile_interval)
    if len(interval) != 2 or interval[1] < interval[0] or interval[0] < 0 <= interval[1]:
        raise VerlConfigError(
            f"trainer.profile_interval={interval}: verl's SFT trainer asserts two steps "
            "[start, end] with end >= start, and end < 0 when start < 0"
        )


def sft_script(spec: dict, overrides: list[str], name: str) -> str:
    """The launch script: one torchrun call of verl.trainer.sft_trainer with the overrides."""
    lines = [
        "#!/usr/bin/env bash",
        f"# rlev score predictor {name}: SFT of {spec['model']} for {spec['epochs']} epoch(s) (paper: 2 epochs,",
        "# Qwen2.5-7B; exact match 79.5%, Pearson r 0.91 on the exam test set).",
        "# Written by rlev.predictor.verl.write_sft_launch; verl_sft_config.yaml beside it is the composed config.",
        "# Usage: bash verl_sft.sh [extra Hydra overrides]",
        "set -euo pipefail",
        "",
        *command_lines(
            f"torchrun --nnodes={spec['nodes']} --nproc_per_node={spec['gpus_per_node']} -m verl.trainer.sft_trainer",
            overrides,
        ),
    ]
    return "\n".join(lines) + "\n"


SFT_REJECTS = "sft_rejects.csv"  # rows verl's SFT would refuse, beside the launch files


def drop_overlong(sft_file: Path, rows: pd.DataFrame, tokenizer, max_length: int, report: Path) -> int:
    """Remove from `sft_file` the examples longer than `max_length` tokens, listing them in `report`.

    verl's SFT dataset (MultiTurnSFTDataset with truncation=error) raises inside
    __getitem__, mid-training, on such a row; so each example is built here with verl's own
    dataset class and tokenizer, and a row it refuses goes to the report (id, exam_id,
    tokens, max_length, reason) instead of the training file. Returns the rows dropped;
    an error when none would be left.
    """
    from omegaconf import OmegaConf
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    config = OmegaConf.create({"max_length": max_length, "truncation": "error", "messages_key": "messages"})
    dataset = MultiTurnSFTDataset(str(sft_file), tokenizer, config)
    too_long = {}
    for i in range(len(dataset)):
        try:
            dataset[i]
        except ValueError as err:
            m = re.search(r"sequence_length=(\d+) is larger than", str(err))
            if not m:
                raise
            too_long[i] = int(m.group(1))
    ids = rows["id"].astype(str).tolist() if "id" in rows.columns else [str(i) for i in range(len(rows))]
    exams = rows["exam_id"].astype(str).tolist() if "exam_id" in rows.columns else [""] * len(rows)
    pd.DataFrame(
        [
            {
                "id": ids[i],
                "exam_id": exams[i],
                "tokens": n,
                "max_length": max_length,
                "reason": f"system + question + score is {n} tokens, over predictor.verl.max_length {max_length}",
            }
            for i, n in too_long.items()
        ],
        columns=["id", "exam_id", "tokens", "max_length", "reason"],
    ).to_csv(report, index=False)
    if len(too_long) == len(rows):
        raise ValueError(
            f"score predictor SFT: all {len(rows)} examples are over predictor.verl.max_length "
            f"{max_length} tokens (listed in {report}); raise max_length"
        )
    if too_long:
        kept = pd.read_parquet(sft_file).drop(index=list(too_long)).reset_index(drop=True)
        kept.to_parquet(sft_file, index=False)
        log.warning(
            "score predictor SFT: %d of %d examples are over %d tokens and are left out (listed in %s)",
            len(too_long),
            len(rows),
            max_length,
            report,
        )
    return len(too_long)


def write_sft_launch(spec: dict, train_rows: pd.DataFrame, out_dir: Path, name: str, tokenizer=None) -> Path:
    """SFT data, composed config and launch script for the verl back end; returns the script.

    With the model's `tokenizer`, examples over `max_length` tokens are left out of the data
    and listed in sft_rejects.csv (drop_overlong), so verl's SFT cannot stop on them mid-run.
    """
    out_dir = Path(out_dir)
    train_file = out_dir / "sft_train.parquet"
    write_sft_parquet(train_rows, train_file)
    if tokenizer is not None:
        drop_overlong(
            train_file, train_rows.reset_index(drop=True), tokenizer, spec["max_length"], out_dir / SFT_REJECTS
        )
    overrides = verl_sft_overrides(spec, train_file, out_dir, name)
    cfg = compose_sft_config(overrides)
    validate_sft_config(cfg)
    return write_launch_files(out_dir, "verl_sft.sh", sft_script(spec, overrides, name), "verl_sft_config.yaml", cfg)


def last_hf_model(checkpoints: Path) -> Path:
    """The Hugging Face export (a `huggingface` folder) of the newest global_step_N checkpoint."""
    found = sorted(
        ((int(m.group(1)), p) for p in Path(checkpoints).glob("global_step_*/**/huggingface")
         if (m := re.search(r"global_step_(\d+)", str(p)))),
    )  # fmt: skip
    if not found:
        raise FileNotFoundError(f"no global_step_N/.../huggingface model under {checkpoints}")
    return found[-1][1]


def train_verl(spec: dict, train_rows: pd.DataFrame, out_dir: Path, name: str) -> Path:
    """Write the checked launch files, then run them where GPUs exist; the model goes to out_dir/model."""
    import shutil

    import torch
    from transformers import AutoTokenizer

    # the model's own tokenizer measures each example as verl's SFT will (over-long rows are reported, not fatal)
    tokenizer = AutoTokenizer.from_pretrained(spec["model"])
    script = write_sft_launch(spec, train_rows, out_dir, name, tokenizer)
    if not torch.cuda.is_available():
        raise RuntimeError(
            f"score predictor {name}: the verl back end needs CUDA GPUs and none is visible here. "
            f"The checked launch script is {script}; run it on a GPU node (or with --profile profiles/slurm)."
        )
    run_script(script, Path(out_dir) / "verl_sft.log")
    shutil.copytree(last_hf_model(Path(out_dir) / "checkpoints"), Path(out_dir) / "model")
    return Path(out_dir) / "model"
