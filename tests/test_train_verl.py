"""The verl back end: run configs compose into verl 0.9.1's real config and pass its checks.

Everything here runs on CPU: Hydra composes verl's shipped `ppo_trainer` config offline and
`verl.utils.config.validate_config` runs as main_ppo would run it before starting Ray.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
import warnings
from pathlib import Path

import pytest

pytest.importorskip("verl")

from rlev.config import fill_defaults  # noqa: E402
from rlev.train import verl as V  # noqa: E402
from rlev.train import verl_launch  # noqa: E402

PAPER_7B = {
    "name": "7B", "backend": "verl", "model": "Qwen/Qwen2.5-7B", "gpus_per_node": 8, "nodes": 1,
    "lr": 5.0e-7, "rollout_batch": 128, "n": 8, "max_prompt_length": 1024, "max_response_length": 1024,
    "epochs": 1, "temperature": 1.0, "save_freq": 50,
}  # fmt: skip
PAPER_32B = {
    **PAPER_7B, "name": "32B", "model": "Qwen/Qwen2.5-32B", "tensor_parallel": 4, "micro_batch_per_gpu": 2,
    "log_prob_micro_batch_per_gpu": 4, "param_offload": True, "optimizer_offload": True,
    "gpu_memory_utilization": 0.5,
}  # fmt: skip
ESTIMATORS = {
    "reinforce_plus_plus": {"adv_estimator": "reinforce_plus_plus"},
    "rloo": {"adv_estimator": "rloo"},
    "grpo": {"adv_estimator": "grpo", "norm_adv_by_std_in_grpo": False},
}


def make_run(tmp_path: Path, estimator="rloo", scale=PAPER_7B, variant="human", alpha=10.0, **extra) -> dict:
    run = {
        "run_id": f"rlev/{scale['name']}/{estimator}/{variant}-a{alpha:g}-additive_clipped/seed0",
        "out_dir": str(tmp_path / "run"),
        "seed": 0,
        "dataset": {"name": "rlev", "verl_test": str(tmp_path / "test.parquet")},
        # a run config holds every schema key, defaults filled (rlev.config.run_config)
        "scale": fill_defaults(scale, "scale"),
        "estimator": fill_defaults({"name": estimator, **ESTIMATORS[estimator]}, "estimator"),
        "reward": {"variant": variant, "alpha": alpha, "form": "additive_clipped", "verifier": {"kind": "rule"}},
    }  # fmt: skip
    run.update(extra)
    return run


@pytest.fixture
def echo_reward(tmp_path, monkeypatch) -> Path:
    """A reward module that returns the keyword arguments verl hands it, to see them arrive."""
    path = tmp_path / "echo_reward.py"
    path.write_text(
        "def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):\n"
        "    return {'score': 1.0, **kwargs}\n"
    )
    monkeypatch.setattr(V, "REWARD_MODULE", path)
    return path


def composed(run: dict):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return V.compose_verl_config(V.verl_overrides(run))


@pytest.mark.parametrize("estimator", list(ESTIMATORS))
def test_paper_7b_run_lands_where_verl_reads_it(tmp_path, echo_reward, estimator):
    run = make_run(tmp_path, estimator)
    cfg = composed(run)
    V.validate_verl_config(cfg)

    assert cfg.algorithm.adv_estimator == estimator
    assert cfg.algorithm.norm_adv_by_std_in_grpo is (estimator != "grpo")
    assert cfg.data.train_batch_size == 128
    assert cfg.data.max_prompt_length == 1024 and cfg.data.max_response_length == 1024
    # rollout lengths are interpolated from data.* in verl's tree: check they follow
    assert cfg.actor_rollout_ref.rollout.prompt_length == 1024
    assert cfg.actor_rollout_ref.rollout.response_length == 1024
    assert cfg.actor_rollout_ref.rollout.n == 8
    assert cfg.actor_rollout_ref.rollout.name == "vllm"
    assert cfg.actor_rollout_ref.actor.optim.lr == pytest.approx(5e-7)
    assert isinstance(cfg.actor_rollout_ref.actor.optim.lr, float)
    assert cfg.actor_rollout_ref.model.path == "Qwen/Qwen2.5-7B"
    assert cfg.trainer.total_epochs == 1 and cfg.trainer.n_gpus_per_node == 8 and cfg.trainer.nnodes == 1
    assert cfg.trainer.default_local_dir == str(tmp_path / "run" / "checkpoints")
    assert cfg.trainer.resume_mode == "auto"
    assert cfg.actor_rollout_ref.rollout.val_kwargs.do_sample is False  # greedy evaluation
    assert cfg.reward.custom_reward_function.path == str(echo_reward)
    assert cfg.reward.custom_reward_function.name == "compute_score"
    assert dict(cfg.reward.custom_reward_function.reward_kwargs) == {
        "variant": "human", "alpha": 10.0, "form": "additive_clipped", "verifier": "rule",
        "stats_dir": str(tmp_path / "run" / "reward_stats"),
    }  # fmt: skip
    assert cfg.critic.enable is False

    # The loader verl's reward workers use passes the kwargs on to compute_score.
    from verl.trainer.ppo.reward import get_custom_reward_fn

    out = get_custom_reward_fn(cfg)(data_source="rlev", solution_str="x", ground_truth="x", extra_info={})
    assert out["alpha"] == 10.0 and out["variant"] == "human" and out["form"] == "additive_clipped"


def test_default_reward_path_is_the_project_reward_module():
    assert V.REWARD_MODULE == Path(V.__file__).resolve().parents[1] / "reward.py"
    assert V.REWARD_MODULE.is_absolute()


def test_project_reward_function_loads_through_verl(tmp_path):
    if not V.REWARD_MODULE.is_file():
        pytest.skip("rlev/reward.py not written yet")
    cfg = composed(make_run(tmp_path))
    V.validate_verl_config(cfg, load_reward_fn=True)


def test_paper_32b_run_validates_with_larger_tensor_parallel(tmp_path, echo_reward):
    cfg = composed(make_run(tmp_path, "reinforce_plus_plus", PAPER_32B))
    V.validate_verl_config(cfg)
    assert cfg.actor_rollout_ref.model.path == "Qwen/Qwen2.5-32B"
    assert cfg.actor_rollout_ref.rollout.tensor_model_parallel_size == 4
    assert cfg.actor_rollout_ref.actor.fsdp_config.param_offload is True
    assert cfg.actor_rollout_ref.actor.fsdp_config.optimizer_offload is True
    assert cfg.trainer.n_gpus_per_node == 8 and cfg.trainer.nnodes == 1


def test_legacy_reward_keys_are_never_emitted_and_are_refused(tmp_path, echo_reward):
    overrides = V.verl_overrides(make_run(tmp_path))
    assert not [o for o in overrides if o.lstrip("+").startswith("custom_reward_function.")]
    # verl 0.9.1 composes the legacy key but ignores it; our validation must not.
    cfg = V.compose_verl_config(overrides + [f"custom_reward_function.path={echo_reward}"])
    with pytest.raises(V.VerlConfigError, match="legacy top-level custom_reward_function"):
        V.validate_verl_config(cfg)


def test_unknown_key_fails_naming_the_override(tmp_path, echo_reward):
    overrides = V.verl_overrides(make_run(tmp_path)) + ["trainer.no_such_key=1"]
    with pytest.raises(V.VerlConfigError, match=r"trainer\.no_such_key=1"):
        V.compose_verl_config(overrides)


def test_malformed_override_fails_naming_it(tmp_path):
    with pytest.raises(V.VerlConfigError, match=r"malformed override 'trainer.logger=\[console'"):
        V.compose_verl_config(["trainer.logger=[console"])


def test_batch_size_inconsistency_is_caught_by_verl_validation(tmp_path, echo_reward):
    # 25 prompts x 8 samples = 200 sequences cannot be split over 16 GPUs: verl's own check.
    run = make_run(tmp_path, scale={**PAPER_7B, "rollout_batch": 25, "ppo_mini_batch": 25, "nodes": 2})
    with pytest.raises(V.VerlConfigError, match=r"real_train_batch_size \(200\) must be divisible"):
        V.validate_verl_config(composed(run))
    # a mini batch larger than the rollout batch: verl's ActorConfig.validate
    run = make_run(tmp_path, scale={**PAPER_7B, "ppo_mini_batch": 256})
    with pytest.raises(V.VerlConfigError, match=r"must be >= actor.ppo_mini_batch_size"):
        V.validate_verl_config(composed(run))


def test_shapes_verl_checks_only_on_gpus_are_checked_here(tmp_path, echo_reward):
    run = make_run(tmp_path, scale={**PAPER_7B, "tensor_parallel": 3})
    with pytest.raises(V.VerlConfigError, match="cannot be split into vLLM replicas of 3"):
        V.validate_verl_config(composed(run))
    run = make_run(tmp_path, scale={**PAPER_7B, "n": 1})
    with pytest.raises(V.VerlConfigError, match="rollout.n must be >= 2"):
        V.validate_verl_config(composed(run))


def test_missing_reward_module_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.setattr(V, "REWARD_MODULE", tmp_path / "nowhere.py")
    with pytest.raises(V.VerlConfigError, match="does not exist"):
        V.validate_verl_config(composed(make_run(tmp_path)))


def test_hydra_values_round_trip_types(tmp_path, echo_reward):
    # a string that looks like a number and one with spaces must stay strings
    run = make_run(tmp_path)
    run["reward"]["tag"] = "10"
    run["reward"]["note"] = "two words"
    cfg = composed(run)
    kw = cfg.reward.custom_reward_function.reward_kwargs
    assert kw.tag == "10" and kw.note == "two words"


def test_launch_script_is_written_runnable_and_without_legacy_keys(tmp_path, echo_reward):
    run = make_run(tmp_path, "grpo")
    script = V.write_launch(run, tmp_path / "run")
    text = script.read_text()
    assert script.name == "verl_train.sh" and (tmp_path / "run" / "verl_config.yaml").is_file()
    assert run["run_id"] in text.splitlines()[1]
    assert text.count("-m verl.trainer.main_ppo") == 1
    assert '"$@"' in text
    assert "reward.custom_reward_function.path=" in text
    lines = [line.strip().strip("\\").strip().strip("'") for line in text.splitlines()]
    assert not [line for line in lines if line.lstrip("+").startswith("custom_reward_function.")]
    assert "srun" not in text  # one node: no Ray cluster to start
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    # the YAML beside it is the composed config verl will see
    import yaml

    saved = yaml.safe_load((tmp_path / "run" / "verl_config.yaml").read_text())
    assert saved["algorithm"]["adv_estimator"] == "grpo"
    assert saved["reward"]["custom_reward_function"]["reward_kwargs"]["alpha"] == 10.0


def test_launch_script_passes_extra_overrides_to_main_ppo(tmp_path, echo_reward):
    """Run the script with a fake python that prints its arguments."""
    script = V.write_launch(make_run(tmp_path), tmp_path / "run")
    fake = tmp_path / "fakepython"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    fake.chmod(0o755)
    out = subprocess.run(
        ["bash", str(script), "trainer.total_training_steps=2"],
        env={"PYTHON": str(fake), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert out[:2] == ["-m", "verl.trainer.main_ppo"]
    assert out[-1] == "trainer.total_training_steps=2"
    assert out[2:-2] == V.verl_overrides(make_run(tmp_path))
    # one node: verl starts Ray itself, with the job's CPUs (verl's config asks for a number under SLURM)
    assert re.fullmatch(r"ray_kwargs\.ray_init\.num_cpus=\d+", out[-2])
    out = subprocess.run(["bash", str(script)], env={"PYTHON": str(fake), "PATH": "/usr/bin:/bin",
                         "SLURM_CPUS_ON_NODE": "96"}, capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "ray_kwargs.ray_init.num_cpus=96" in out.splitlines()


def test_multi_node_script_starts_a_ray_cluster(tmp_path, echo_reward):
    run = make_run(tmp_path, scale={**PAPER_7B, "nodes": 2})
    text = V.write_launch(run, tmp_path / "run").read_text()
    assert "ray start --head" in text and "ray start --address" in text
    assert "NNODES=2" in text and "trainer.nnodes=2" in text
    # joining the running cluster, ray.init refuses num_cpus: the Ray steps set it instead
    assert "ray_init.num_cpus" not in text and '--num-cpus="$CPUS_PER_NODE"' in text
    assert subprocess.run(["bash", "-n", str(tmp_path / "run" / "verl_train.sh")]).returncode == 0
    # outside a SLURM allocation it stops at once with a clear message
    res = subprocess.run(["bash", str(tmp_path / "run" / "verl_train.sh")], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin"})  # fmt: skip
    assert res.returncode == 2 and "needs 2 nodes" in res.stderr


def test_judge_served_by_verl_gets_its_own_pool(tmp_path, echo_reward):
    run = make_run(tmp_path)
    run["reward"]["verifier"] = fill_defaults({"kind": "judge", "model": "Qwen/Qwen2.5-72B-Instruct"}, "verifier")
    cfg = composed(run)
    V.validate_verl_config(cfg)
    rm = cfg.reward.reward_model
    assert rm.enable is True and rm.enable_resource_pool is True
    assert rm.model_path == "Qwen/Qwen2.5-72B-Instruct" and rm.n_gpus_per_node == 8 and rm.nnodes == 1
    assert cfg.reward.custom_reward_function.reward_kwargs.verifier == "judge"
    assert cfg.reward.custom_reward_function.reward_kwargs.judge_model == "Qwen/Qwen2.5-72B-Instruct"
    assert V.job_nodes(run) == 2


def test_judge_at_a_url_is_passed_to_compute_score(tmp_path, echo_reward):
    run = make_run(tmp_path)
    run["reward"]["verifier"] = fill_defaults(
        {"kind": "judge", "model": "judge", "url": "http://judge-host:8000/v1"}, "verifier"
    )
    cfg = composed(run)
    V.validate_verl_config(cfg)
    assert cfg.reward.reward_model.enable is False
    assert cfg.reward.custom_reward_function.reward_kwargs.judge_url == "http://judge-host:8000/v1"
    assert V.job_nodes(run) == 1


def test_std_normalised_grpo_is_flagged_as_scale_invariant(tmp_path):
    run = make_run(tmp_path, "grpo")
    assert V.reward_scale_invariance_warning(run) is None
    run["estimator"]["norm_adv_by_std_in_grpo"] = True
    assert "cancels the per-prompt value scale" in V.reward_scale_invariance_warning(run)
    run["reward"]["variant"] = "correctness"
    assert V.reward_scale_invariance_warning(run) is None
    # a uniform scale is whitened away by REINFORCE++ (the rule of rlev.config.cancels_value_scale)
    run = make_run(tmp_path, "reinforce_plus_plus", variant="uniform")
    assert V.reward_scale_invariance_warning(run) is not None
    # under RLOO the uniform scale reaches the gradient, which AdamW's step ignores
    run = make_run(tmp_path, "rloo", variant="uniform")
    assert "AdamW's step does not change" in V.reward_scale_invariance_warning(run)


def test_last_checkpoint_and_merge_command(tmp_path):
    run = make_run(tmp_path)
    ckpt = tmp_path / "run" / "checkpoints"
    with pytest.raises(FileNotFoundError, match="no verl checkpoint"):
        V.merge_command(run)
    for step in (50, 100, 781):
        (ckpt / f"global_step_{step}" / "actor").mkdir(parents=True)
    (ckpt / "global_step_9999").mkdir()  # no actor folder: not a usable checkpoint
    assert V.last_checkpoint(ckpt).name == "global_step_781"
    (ckpt / "latest_checkpointed_iteration.txt").write_text("100")  # verl's tracker wins
    cmd = V.merge_command(run)
    assert cmd[1:5] == ["-m", "verl.model_merger", "merge", "--backend"]
    assert cmd[cmd.index("--local_dir") + 1] == str(ckpt / "global_step_100" / "actor")
    assert cmd[cmd.index("--target_dir") + 1] == str(tmp_path / "run" / "model")


def test_train_without_gpu_writes_files_then_fails_clearly(tmp_path, echo_reward, monkeypatch):
    import torch

    from test_verl_export import validated

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    run = make_run(tmp_path)
    validated().to_parquet(tmp_path / "rows.parquet")
    run["dataset"]["train"] = str(tmp_path / "rows.parquet")
    with pytest.raises(RuntimeError, match="needs CUDA GPUs"):
        V.train(run)
    for name in ("values.parquet", "verl_train.parquet", "rejects.csv", "verl_train.sh", "verl_config.yaml"):
        assert (tmp_path / "run" / name).is_file(), name


def test_a_hand_made_verl_run_trains_on_its_own_verl_file(tmp_path, echo_reward, monkeypatch):
    """`rlev train --spec X --out DIR`: the run's values and verl file are written in DIR, and verl
    trains on that file (the spec's run directory is left as it was)."""
    import torch
    import yaml

    from rlev.train import train_run
    from test_verl_export import validated

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    run = make_run(tmp_path)
    validated().to_parquet(tmp_path / "rows.parquet")
    run["dataset"]["train"] = str(tmp_path / "rows.parquet")
    with pytest.raises(RuntimeError, match="needs CUDA GPUs"):
        train_run(run, out=str(tmp_path / "hand"))
    assert (tmp_path / "hand" / "verl_train.parquet").is_file() and not (tmp_path / "run").exists()
    saved = yaml.safe_load((tmp_path / "hand" / "config.yaml").read_text())
    train_files = V.compose_verl_config(V.verl_overrides(saved)).data.train_files
    assert train_files == str(tmp_path / "hand" / "verl_train.parquet")


def test_missing_scale_key_is_named(tmp_path):
    run = make_run(tmp_path)
    del run["scale"]["rollout_batch"]
    with pytest.raises(V.VerlConfigError, match="rollout_batch"):
        V.verl_overrides(run)


def test_clip_and_kl_estimator_reach_the_keys_verl_reads(tmp_path):
    """verl 0.9.1's vanilla loss reads clip_ratio_low/high, not clip_ratio; the in-reward KL
    estimator is algorithm.kl_penalty."""
    run = make_run(tmp_path, "rloo")
    run["estimator"].update(clip_ratio=0.28, use_kl_in_reward=True, kl_penalty="low_var_kl")
    cfg = V.compose_verl_config(V.verl_overrides(run))
    actor = cfg.actor_rollout_ref.actor
    assert actor.clip_ratio_low == actor.clip_ratio_high == actor.clip_ratio == 0.28
    assert cfg.algorithm.kl_penalty == "low_var_kl" and cfg.algorithm.use_kl_in_reward is True


def _tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = __import__("tokenizers").decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<eos>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(["3+4=7 #### 7", "#### 8"], trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>")


def test_verl_reward_manager_scores_responses_with_the_rlev_reward(tmp_path):
    """verl's own reward manager (loaded from the composed config, as the trainer does)
    calls rlev's compute_score on a hand-built DataProto: score = s(x) * correct."""
    import numpy as np
    import torch
    from verl import DataProto
    from verl.trainer.ppo.reward import load_reward_manager

    tokenizer = _tiny_tokenizer()
    tokenizer.save_pretrained(tmp_path / "policy")  # where rlev's manager reads generation_config
    run = make_run(tmp_path, "rloo", variant="human", alpha=10.0, scale={**PAPER_7B, "model": str(tmp_path / "policy")})
    cfg = composed(run)
    manager = load_reward_manager(cfg, tokenizer)

    responses = ["3+4=7 #### 7", "#### 8", "#### 7"]
    values = [0.05, 0.05, 0.2]  # s = 1.5, 1.5, 2.0 (clipped)
    prompt_ids = torch.tensor([[tokenizer.pad_token_id, 5, 6]] * 3)
    encoded = [tokenizer(r)["input_ids"] + [tokenizer.eos_token_id] for r in responses]  # each ended at eos
    width = max(map(len, encoded))
    response_ids = torch.full((3, width), tokenizer.pad_token_id)
    attention = torch.zeros((3, 3 + width), dtype=torch.long)
    for i, ids in enumerate(encoded):
        response_ids[i, : len(ids)] = torch.tensor(ids)
        attention[i, 1:3] = 1
        attention[i, 3 : 3 + len(ids)] = 1
    data = DataProto.from_dict(
        tensors={"prompts": prompt_ids, "responses": response_ids, "attention_mask": attention},
        non_tensors={
            "data_source": np.array(["synthetic"] * 3, dtype=object),
            "reward_model": np.array([{"ground_truth": "7"}] * 3, dtype=object),
            "extra_info": np.array([{"value": v, "index": i} for i, v in enumerate(values)], dtype=object),
        },
    )

    async def score_all():
        return [await manager.run_single(data[i : i + 1]) for i in range(3)]

    results = manager.loop.run_until_complete(score_all())  # the loop verl's manager runs on
    assert [r["reward_score"] for r in results] == pytest.approx([1.5, 0.0, 2.0])
    assert [r["reward_extra_info"]["correct"] for r in results] == [1.0, 0.0, 1.0]


@pytest.mark.parametrize("scale", ["7B", "32B"])
def test_every_planned_paper_run_composes_and_validates(tmp_path, scale):
    """Every run that `--config scale=<scale> dataset=rlev` plans: verl's real config, verl's
    validation, and the keys verl reads."""
    from rlev.config import REPO_ROOT, load_config, plan_runs, run_config

    config = load_config(REPO_ROOT / "config.yaml", {"scale": scale, "dataset": "rlev", "seeds": [0]})
    runs = plan_runs(config)
    # 7B: main 6, ablation 2, alpha 4, form 1, noisy 9, the mechanism's cost arm 4; 32B: the main table only
    assert len(runs) == {"7B": 26, "32B": 6}[scale]
    for run in runs:
        rc = run_config(config, run)
        cfg = composed(rc)
        V.validate_verl_config(cfg)
        assert cfg.algorithm.adv_estimator == rc["estimator"]["adv_estimator"]
        assert cfg.reward.custom_reward_function.reward_kwargs.variant == rc["reward"]["variant"]
        assert cfg.actor_rollout_ref.rollout.n == rc["scale"]["n"] == 8
        assert cfg.data.max_response_length == 1024 and cfg.data.train_batch_size == 128
        assert cfg.actor_rollout_ref.model.path == f"Qwen/Qwen2.5-{scale}"


# --- what the v1 trainer reads (trainer.use_v1, verl 0.9.1's default) ------------------------


def test_v1_workers_read_every_setting_we_change(tmp_path, echo_reward):
    """The composed config read back through the dataclasses the v1 workers build
    (workers/engine_workers.py: ActorConfig, RolloutConfig; the reward loop: RewardModelConfig,
    the reward manager class), so a key that composes but is not read cannot pass."""
    from verl.trainer.ppo.reward import resolve_reward_manager_cls
    from verl.utils.config import omega_conf_to_dataclass

    run = make_run(tmp_path, "rloo", scale=PAPER_32B)
    run["estimator"].update(grad_clip=0.5, clip_ratio=0.28, use_kl_loss=True, kl_loss_coef=0.002, entropy_coeff=0.01)
    run["reward"]["verifier"] = fill_defaults({"kind": "judge", "model": "Qwen/Qwen2.5-72B-Instruct"}, "verifier")
    cfg = composed(run)
    V.validate_verl_config(cfg)
    actor = omega_conf_to_dataclass(cfg.actor_rollout_ref.actor)
    assert actor.optim.clip_grad == 0.5  # the engine's optimizer_step clips with this
    assert actor.optim.lr == pytest.approx(5e-7) and actor.optim.weight_decay == 0.01
    assert actor.clip_ratio_low == actor.clip_ratio_high == 0.28
    assert actor.use_kl_loss is True and actor.kl_loss_coef == 0.002 and actor.entropy_coeff == 0.01
    assert actor.ppo_mini_batch_size == 32 and actor.ppo_micro_batch_size_per_gpu == 2
    assert actor.engine.param_offload is True and actor.engine.optimizer_offload is True
    rollout = omega_conf_to_dataclass(cfg.actor_rollout_ref.rollout)
    assert rollout.n == 8 and rollout.tensor_model_parallel_size == 4 and rollout.gpu_memory_utilization == 0.5
    assert rollout.val_kwargs.do_sample is False and rollout.val_kwargs.temperature == 0.0
    judge = omega_conf_to_dataclass(cfg.reward.reward_model)
    # awake from the start: with a pool of its own, verl never calls the wake-up path
    assert judge.enable and judge.enable_resource_pool and judge.rollout.free_cache_engine is False
    assert resolve_reward_manager_cls(cfg).__name__ == "RlevRewardManager"
    algorithm = omega_conf_to_dataclass(cfg.algorithm)
    assert algorithm.adv_estimator == "rloo" and algorithm.use_kl_in_reward is False


def test_keys_that_compose_but_are_ignored_are_never_set(tmp_path, echo_reward):
    from verl.utils.config import omega_conf_to_dataclass

    overrides = V.verl_overrides(make_run(tmp_path, "grpo", scale=PAPER_32B))
    keys = {o.split("=", 1)[0].lstrip("+") for o in overrides}
    assert not keys & set(V.COMPOSED_BUT_IGNORED)
    # The list is right: actor.grad_clip composes, and the engine's optimizer never sees it.
    cfg = V.compose_verl_config(overrides + ["actor_rollout_ref.actor.grad_clip=0.3"])
    assert omega_conf_to_dataclass(cfg.actor_rollout_ref.actor).optim.clip_grad == 1.0
    # The predictor's SFT: neither trainer.seed nor a micro batch that dynamic batching ignores.
    from rlev.predictor.verl import compose_sft_config, verl_sft_overrides

    spec = {"max_length": 1024, "batch": 64, "micro_batch_per_gpu": 4, "model": "Qwen/Qwen2.5-7B", "lr": 1e-5,
            "epochs": 2, "gpus_per_node": 8, "nodes": 1}  # fmt: skip
    sft = verl_sft_overrides(spec, tmp_path / "sft.parquet", tmp_path, "p")
    assert not {o.split("=", 1)[0] for o in sft} & set(V.SFT_COMPOSED_BUT_IGNORED)
    sft_cfg = compose_sft_config(sft)
    assert sft_cfg.data.use_dynamic_bsz is False and sft_cfg.data.micro_batch_size_per_gpu == 4
    import verl

    sft_source = (Path(verl.__file__).parent / "trainer" / "sft_trainer.py").read_text()
    assert "trainer.seed" not in sft_source and ".seed" not in sft_source  # the claim in SFT_COMPOSED_BUT_IGNORED
    with pytest.raises(ValueError, match="micro_batch_per_gpu"):
        verl_sft_overrides({**spec, "micro_batch_per_gpu": 3}, tmp_path / "sft.parquet", tmp_path, "p")


def test_judge_served_by_verl_stays_awake(tmp_path, echo_reward):
    run = make_run(tmp_path)
    run["reward"]["verifier"] = fill_defaults({"kind": "judge", "model": "Qwen/Qwen2.5-72B-Instruct"}, "verifier")
    assert composed(run).reward.reward_model.rollout.free_cache_engine is False


# --- metrics over resumed launches --------------------------------------------------------


def test_resumed_launches_keep_every_step_in_metrics(tmp_path, echo_reward):
    """verl's file logger opens with "wb": each launch writes its own file, merged afterwards."""
    run = make_run(tmp_path)
    text = V.write_launch(run, tmp_path / "run").read_text()
    assert "export VERL_FILE_LOGGER_PATH=" in text and "/train/attempts/metrics.$(date" in text
    attempts = tmp_path / "run" / "train" / "attempts"
    attempts.mkdir(parents=True)
    line = lambda step, **data: json.dumps({"step": step, "data": data})  # noqa: E731
    (attempts / "metrics.20260101T000000.1.jsonl").write_text(
        "\n".join([line(0, **{"val-core/rlev/acc": 0.1}), line(1, loss=1.0), line(2, loss=0.9), line(3, loss=0.8)])
    )  # killed after step 3, resumed from the checkpoint of step 2
    (attempts / "metrics.20260102T000000.2.jsonl").write_text(
        "\n".join([line(2, **{"val-core/rlev/acc": 0.2}), line(3, loss=0.7), line(4, loss=0.6)])
    )
    merged = [json.loads(x) for x in V.merge_metrics(tmp_path / "run").read_text().splitlines()]
    assert [m["step"] for m in merged] == [0, 1, 2, 3, 4]
    assert merged[2]["data"] == {"loss": 0.9, "val-core/rlev/acc": 0.2} and merged[3]["data"] == {"loss": 0.7}
    (attempts / "metrics.20260103T000000.3.jsonl").write_text("not json\n")
    with pytest.raises(ValueError, match=r"metrics\.20260103T000000\.3\.jsonl:1"):
        V.merge_metrics(tmp_path / "run")


# --- the reward path as verl's v1 reward loop drives it ------------------------------------


class _Judge:
    """An OpenAI-compatible judge on localhost that answers YES and records what it was asked."""

    def __init__(self):
        import http.server
        import threading

        asked = self.asked = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                asked.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                body = json.dumps({"choices": [{"message": {"content": "YES"}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def _run_parquet(run_dir):
    """A run's verl training file as its training job writes it (extra_info: question, value, scale)."""
    import pandas as pd

    from rlev.values import VERL_TRAIN_FILE, verl_values_file
    from test_verl_export import validated

    records = validated()
    table = pd.DataFrame({"id": records["id"], "value": [0.02, 0.05, 0.08], "scale": [1.2, 1.5, 1.8]})
    verl_values_file(table, records, "rlev", run_dir / VERL_TRAIN_FILE)
    return run_dir / VERL_TRAIN_FILE


def _v1_reward_call(worker, tokenizer, row, response: str, eos: bool):
    """One sample as the v1 agent loop hands it to a reward loop worker (agent_loop._compute_score)."""
    import numpy as np
    import torch
    from tensordict import TensorDict
    from verl import DataProto

    prompt = torch.tensor(tokenizer.apply_chat_template(row["raw_prompt"], add_generation_prompt=True,
                                                        tokenize=True, return_dict=False))  # fmt: skip
    ids = tokenizer(response, add_special_tokens=False)["input_ids"] + ([tokenizer.eos_token_id] if eos else [])
    responses = torch.tensor(ids)
    kwargs = {k: row[k] for k in ("data_source", "reward_model", "extra_info", "index")}
    data = DataProto(
        batch=TensorDict({"prompts": prompt[None], "responses": responses[None],
                          "attention_mask": torch.ones(1, len(prompt) + len(ids), dtype=torch.int64)},
                         batch_size=1),
        non_tensor_batch={**{k: np.array([v]) for k, v in kwargs.items()},
                          "tool_extra_fields": np.array([{}], dtype=object)},
    )  # fmt: skip
    return worker.loop.run_until_complete(worker.compute_score(data))  # the loop verl's worker runs on


def test_v1_reward_loop_scores_a_runs_parquet_and_a_failing_judge_stops_the_run(tmp_path, monkeypatch):
    """verl's RewardLoopWorker (the v1 reward path) with rlev's manager and compute_score on a
    run's own parquet: the scale and the question arrive, truncation scores 0, and when the
    judge fails nothing raises inside verl (which would drop the samples) but the launcher's
    watch stops the run."""
    import datasets
    from omegaconf import OmegaConf
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker
    from verl.utils.dataset.rl_dataset import RLHFDataset

    from test_verl_export import tiny_tokenizer

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))
    policy = tmp_path / "policy"
    tokenizer = tiny_tokenizer()
    tokenizer.save_pretrained(policy)
    parquet = _run_parquet(tmp_path / "run")  # where make_run's run trains
    dataset = RLHFDataset(data_files=str(parquet), tokenizer=tokenizer,
                          config=OmegaConf.create({"prompt_key": "prompt", "max_prompt_length": 512,
                                                   "cache_dir": str(tmp_path / "verl_cache")}))  # fmt: skip
    row = dataset[1]  # "计算 2+3。", answer 5, scale 1.5

    judge = _Judge()
    run = make_run(tmp_path, "rloo", scale={**PAPER_7B, "model": str(policy)})
    run["reward"].update(verifier=fill_defaults({"kind": "judge", "model": "judge", "url": judge.url}, "verifier"),
                         judge_max_retries=0,
                         judge_timeout_s=2)  # fmt: skip
    run["reward"]["verifier"]["max_unverified_share"] = 0.25
    worker = RewardLoopWorker(composed(run), None)

    right = _v1_reward_call(worker, tokenizer, row, "2+3=5 #### 5", eos=True)
    assert right["reward_score"] == pytest.approx(1.5)  # s(x) from the run's parquet
    assert right["reward_extra_info"]["truncated"] == 0.0 and right["reward_extra_info"]["unverified"] == 0.0
    user_turn = judge.asked[-1]["messages"][-1]["content"]
    assert "计算 2+3。" in user_turn and "(not given)" not in user_turn  # the judge sees the question
    cut = _v1_reward_call(worker, tokenizer, row, "2+3=5 #### 5", eos=False)  # hit the budget: no eos
    assert cut["reward_score"] == 0.0 and cut["reward_extra_info"]["truncated"] == 1.0
    assert len(judge.asked) == 1  # a truncated answer is wrong without asking the judge

    stats = tmp_path / "run" / "reward_stats"
    assert V.unverified_problem(tmp_path / "run", V.max_unverified_share(run)) is None
    judge.stop()  # the judge goes down mid-run
    for _ in range(3):
        down = _v1_reward_call(worker, tokenizer, row, "#### 5", eos=True)
        assert down["reward_score"] == 0.0 and down["reward_extra_info"]["unverified"] == 1.0
    # verl loaded rlev/reward.py as a module of its own: rewrite the counts at the next sample
    reward_module = worker.reward_manager.compute_score.args[0].__globals__
    monkeypatch.setitem(reward_module, "STATS_WRITE_EVERY_S", 0.0)
    _v1_reward_call(worker, tokenizer, row, "#### 5", eos=True)
    assert list(stats.glob("*.json"))
    problem = V.unverified_problem(tmp_path / "run", V.max_unverified_share(run))
    assert problem and "4 of 6 samples" in problem and "max_unverified_share=0.25" in problem
    # the launcher's watch stops a running verl (here: a long sleep) at its next look
    start = time.monotonic()
    with pytest.raises(V.RunStopped, match="could not be verified"):
        verl_launch.stream(["sleep", "60"], tmp_path / "log.txt",
                           check=lambda: V.unverified_problem(tmp_path / "run", V.max_unverified_share(run)),
                           check_every_s=0.2)  # fmt: skip
    assert time.monotonic() - start < 30


def test_a_sample_that_raises_is_an_error_that_stops_the_run(tmp_path, monkeypatch):
    """A row without the scale its variant needs: compute_score returns error=1 (verl would
    drop a raising sample silently) and the launcher stops at any error."""
    import rlev.reward
    from rlev.reward import compute_score

    monkeypatch.setattr(rlev.reward, "STATS_WRITE_EVERY_S", 0.0)
    # counts are per process (one reward worker of one run); start from none here
    monkeypatch.setattr(rlev.reward, "_STATS", {"scored": 0, "unverified": 0, "errors": 0, "first_error": None})
    stats = tmp_path / "run" / "reward_stats"
    out = asyncio.run(compute_score("rlev", "#### 5", "5", {"id": "q9", "split": "train", "value": 0.1},
                                    variant="shuffled", stats_dir=str(stats)))  # fmt: skip
    assert out["score"] == 0.0 and out["error"] == 1.0 and out["unverified"] == 1.0
    assert set(out) == {"score", "correct", "value", "scale", "unverified", "truncated", "error"}
    problem = V.unverified_problem(tmp_path / "run", max_share=0.5)
    assert problem and "because of an error" in problem and "'q9'" in problem and "extra_info.scale" in problem


def test_validation_extras_logged_by_verl_stop_the_run(tmp_path):
    """verl logs validation reward extras as val-aux/<source>/<key>/mean@N: read them too."""
    attempts = tmp_path / "run" / "train" / "attempts"
    attempts.mkdir(parents=True)
    record = {"step": 0, "data": {"val-aux/rlev/unverified/mean@1": 0.4, "val-core/rlev/acc/mean@1": 0.5}}
    (attempts / "metrics.1.jsonl").write_text(json.dumps(record) + "\n")
    assert V.unverified_problem(tmp_path / "run", max_share=0.5) is None
    problem = V.unverified_problem(tmp_path / "run", max_share=0.1)
    assert problem and "val-aux/rlev/unverified/mean@1 = 0.4" in problem
