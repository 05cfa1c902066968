"""The verl back end: one run = one `python -m verl.trainer.main_ppo` call, written to a file.

A run config (a plain dict, see `rlev.config.run_config`) becomes a list of dotted Hydra
overrides for verl 0.9.1's `ppo_trainer` config. Before anything runs, the overrides are
composed against the config tree shipped inside the installed verl package (so a key
verl does not know is an error, not a silent no-op) and checked with verl's own
`validate_config`, the call `main_ppo.main` makes before it starts Ray. Then, beside the
run, we write

    <out_dir>/verl_train.sh      the runnable launch script: one main_ppo call, one
                                 override per line, extra overrides passed through "$@"
    <out_dir>/verl_config.yaml   the fully composed config verl will see

and, on a GPU node, run the script and merge the last FSDP checkpoint into a Hugging
Face model at `<out_dir>/model` with `python -m verl.model_merger`.

verl 0.9.1 runs its new trainer by default (`trainer.use_v1`: `verl/trainer/ppo/v1/`, the
reward loop of `verl/experimental/reward_loop`, `workers/engine_workers.py`, the FSDP
engine); every override here is one that path reads (tests read the composed config back
through the dataclasses its workers build). COMPOSED_BUT_IGNORED lists keys that compose
but are not read there. While verl runs, `train` watches what compute_score could not
score (`unverified_problem`) and stops the run; each launch logs its own metrics file
(verl's file logger truncates its file), merged into `<out_dir>/train/metrics.jsonl`.

By hand:

    python -c "import yaml, rlev.train.verl as v; v.train(yaml.safe_load(open('run.yaml')))"
    bash results/runs/<run>/verl_train.sh trainer.total_training_steps=2   # a smoke test

How the RLEV reward reaches verl
--------------------------------
`reward.custom_reward_function.path` is the absolute path of `rlev/reward.py` and
`.name=compute_score`; alpha, variant and form travel as
`+reward.custom_reward_function.reward_kwargs.<key>=<value>`, which verl merges into
every `compute_score(data_source, solution_str, ground_truth, extra_info, **kwargs)`
call. Never the legacy top-level `custom_reward_function.*` keys: they still compose in
0.9.1, but the trainer reads only `reward.custom_reward_function` and would fall back to
its default scorer without a word. `validate_verl_config` refuses a config that sets them.

A value-independent cost (`reward.cost`, see rlev.reward) is not compute_score's: verl
does not hand it the response's tokens. `kind: overlong` selects verl's own DAPO reward
manager (`reward.reward_manager.name=dapo`, `+reward.reward_kwargs.overlong_buffer_cfg.
{enable,len,penalty_factor,log}`, `+reward.reward_kwargs.max_resp_len` = max_response_length);
`kind: length` loads rlev.train.verl_cost.LengthCostRewardManager by path
(`reward.reward_manager.source=importlib`, `+reward.reward_kwargs.length_cost_per_token`).
Both call the same compute_score and subtract the cost from its score.

The LLM judge at scale
----------------------
The paper verifies answers with Qwen2.5-72B-Instruct as a judge. Two ways are supported,
chosen by `run["reward"]["verifier"]`:

* ``{"kind": "judge", "model": "Qwen/Qwen2.5-72B-Instruct"}`` (no ``url``), the default
  for a judge and the one we recommend: verl serves the judge itself
  (`reward.reward_model.enable=True`, `model_path`, vLLM rollout) in a resource pool of
  its own (`enable_resource_pool=True`, `gpus_per_node` x `nodes`, 8 x 1 by default), so
  the judge lives and dies with the training job, needs no second SLURM job, and cannot
  take GPU memory from the policy. A 72B judge in bf16 needs ~145 GB, more than one
  80 GB GPU next to a colocated policy, hence the separate pool. verl hands
  `compute_score` the address of the router in front of the judge replicas as the
  keyword `reward_router_address` (an OpenAI-compatible `/v1/chat/completions`); we
  also pass `verifier="judge"` and `judge_model=<model>`. The SLURM job then needs
  `job_nodes(run)` nodes: the policy's plus the judge's.
* ``{"kind": "judge", "model": ..., "url": "http://host:8000/v1"}``: an OpenAI-compatible
  server you run yourself (e.g. `vllm serve Qwen/Qwen2.5-72B-Instruct`); its URL and the
  model name reach `compute_score` as `judge_url` and `judge_model`. Useful when one
  judge server is shared by many runs.

With ``{"kind": "rule"}`` (the default) `compute_score` gets `verifier="rule"` and
checks answers by rule.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import textwrap
from pathlib import Path

import yaml

from rlev.train.verl_launch import (
    VERL_VERSION,
    RunStopped,
    VerlConfigError,
    command_lines,
    compose,
    hydra_overrides,
    render_template,
    run_script,
    stream,
    write_launch_files,
)

REWARD_MODULE = Path(__file__).resolve().parents[1] / "reward.py"
REWARD_FUNCTION = "compute_score"
COST_MANAGER_MODULE = Path(__file__).resolve().parent / "verl_cost.py"  # reward.cost.kind: length
PER_TOKEN_KEY = "length_cost_per_token"  # reward.reward_kwargs.<this>: what verl_cost's manager reads
REWARD_MANAGER_MODULE = Path(__file__).resolve().parent / "verl_reward_manager.py"
REWARD_MANAGER_CLASS = "RlevRewardManager"
REWARD_STATS_DIR = "reward_stats"  # <out_dir>/reward_stats/<host>-<pid>.json, see rlev.reward
METRICS_ATTEMPTS_DIR = "train/attempts"  # one verl metrics file per launch, merged into train/metrics.jsonl
PROJECT_NAME = "rlev"

# Keys of verl 0.9.1's configs that compose (Hydra accepts them) but that the code that runs
# does not read: the v1 trainer (trainer.use_v1, the default), its FSDP engine and reward
# loop, and verl.trainer.sft_trainer for the score predictor. rlev never sets them (tested).
COMPOSED_BUT_IGNORED: dict[str, str] = {
    "actor_rollout_ref.actor.grad_clip": "the FSDP engine clips with actor.optim.clip_grad "
    "(workers/engine/fsdp/transformer_impl.py, optimizer_step)",
    "actor_rollout_ref.actor.fsdp_config.seed": "read only with fsdp_config.full_determinism "
    "(workers/engine/fsdp/transformer_impl.py, __init__)",
    "custom_reward_function.path": "legacy top-level key: the reward loop reads reward.custom_reward_function",
    "custom_reward_function.name": "legacy top-level key: the reward loop reads reward.custom_reward_function",
}
# (data.micro_batch_size_per_gpu of the SFT config is ignored too while data.use_dynamic_bsz is
# true, verl's default: rlev.predictor.verl turns dynamic batching off when it sets a micro batch.)
SFT_COMPOSED_BUT_IGNORED: dict[str, str] = {
    "trainer.seed": "sft_trainer never reads it; its DistributedSampler shuffles with torch's default seed 0",
}

GROUP_ESTIMATORS = {"grpo", "rloo"}  # of the schema's estimators, those that need n >= 2 samples per prompt


# --- run config -> overrides ------------------------------------------------------------


def _abs(path: str | os.PathLike) -> str:
    """Absolute path: Ray workers do not share the launching shell's working directory."""
    return str(Path(path).expanduser().resolve())


def experiment_name(run: dict) -> str:
    """The run id as one token, for wandb and verl's default paths."""
    return run["run_id"].replace("/", "-")


def setup_settings(run: dict) -> dict:
    """The run's model-size settings (its `scale` block): every key of the config schema's
    `verl_scale`, defaults filled by the config (rlev.config.validate; rlev.config.fill_defaults
    for a run built by hand)."""
    return run["scale"]


def estimator_settings(run: dict) -> dict:
    """The run's estimator: the schema's `estimator` keys (verl's names), defaults filled by the config."""
    return run["estimator"]


def verifier_settings(run: dict) -> dict:
    """The run's verifier: {"kind": "rule"} (a run config has no verifier block then) or the
    judge's block, its defaults filled by the config (the schema's `verifier`)."""
    verifier = run["reward"].get("verifier", {"kind": "rule"})
    if isinstance(verifier, str):
        verifier = {"kind": verifier}
    kind = verifier.get("kind", "rule")
    if kind == "rule":
        return {"kind": "rule"}
    if kind != "judge":
        raise VerlConfigError(f"reward.verifier.kind must be 'rule' or 'judge', not {kind!r}")
    return verifier


def _reward_kwargs(run: dict) -> dict:
    """Keyword arguments verl adds to every compute_score call of this run."""
    reward = run["reward"]
    missing = [k for k in ("variant", "alpha", "form") if reward.get(k) is None]
    if missing:
        raise VerlConfigError(f"run {run['run_id']}: reward is missing {missing}")
    kwargs = {"variant": reward["variant"], "alpha": float(reward["alpha"]), "form": reward["form"]}
    # Other scalar reward settings (e.g. a uniform-scaling s_bar) pass straight through.
    for key, value in reward.items():
        if key not in kwargs and key != "verifier" and isinstance(value, (str, int, float, bool)):
            kwargs[key] = _abs(value) if key == "judge_cache_path" else value  # Ray workers have another cwd
    verifier = verifier_settings(run)
    kwargs["verifier"] = verifier["kind"]
    if verifier["kind"] == "judge":
        kwargs["judge_model"] = verifier["model"]
        if verifier.get("url"):
            kwargs["judge_url"] = verifier["url"]
    return kwargs


def _cost_overrides(run: dict, setup: dict) -> list[tuple[str, object]]:
    """The value-independent cost (rlev.reward.response_cost) as the reward manager verl builds.

    compute_score never sees a response's tokens, so the cost is the reward manager's:
    `overlong` is verl's own DAPO manager (reward.reward_kwargs.overlong_buffer_cfg and
    max_resp_len, read by verl.experimental.reward_loop.reward_manager.dapo), `length` is
    rlev.train.verl_cost.LengthCostRewardManager loaded by path; `none` leaves verl's naive
    manager. Both add the cost to compute_score's score, as the local trainer does.
    """
    from rlev.reward import cost_settings

    cost = cost_settings(run["reward"].get("cost"))
    if cost["kind"] == "overlong":
        if not 0 < int(cost["overlong_buffer"]) <= int(setup["max_response_length"]):
            raise VerlConfigError(
                f"run {run['run_id']}: reward.cost.overlong_buffer={cost['overlong_buffer']} must be in "
                f"[1, max_response_length={setup['max_response_length']}]"
            )
        return [
            # verl's DAPO manager plus the truncation flag (rlev.train.verl_reward_manager)
            ("reward.reward_manager.source", "importlib"),
            ("reward.reward_manager.name", "RlevDapoRewardManager"),
            ("reward.reward_manager.module.path", str(REWARD_MANAGER_MODULE)),
            ("+reward.reward_kwargs.overlong_buffer_cfg.enable", True),
            ("+reward.reward_kwargs.overlong_buffer_cfg.len", int(cost["overlong_buffer"])),
            ("+reward.reward_kwargs.overlong_buffer_cfg.penalty_factor", float(cost["overlong_penalty"])),
            ("+reward.reward_kwargs.overlong_buffer_cfg.log", True),
            ("+reward.reward_kwargs.max_resp_len", int(setup["max_response_length"])),
        ]
    if cost["kind"] == "length":
        return [
            ("reward.reward_manager.source", "importlib"),
            ("reward.reward_manager.name", "LengthCostRewardManager"),
            ("reward.reward_manager.module.path", str(COST_MANAGER_MODULE)),
            (f"+reward.reward_kwargs.{PER_TOKEN_KEY}", float(cost["per_token"])),
        ]
    # verl's naive manager plus the truncation flag (rlev.train.verl_reward_manager)
    return [
        ("reward.reward_manager.source", "importlib"),
        ("reward.reward_manager.name", REWARD_MANAGER_CLASS),
        ("reward.reward_manager.module.path", str(REWARD_MANAGER_MODULE)),
    ]


def verl_overrides(run: dict) -> list[str]:
    """The full dotted override list for `python -m verl.trainer.main_ppo` for one run.

    Reads run keys: run_id, out_dir (its verl_train.parquet: rlev.values.run_verl_train), seed,
    dataset.verl_test, scale.* (the schema's verl_scale, defaults filled; model or init_model),
    estimator.* (the schema's estimator, defaults filled), reward.variant/alpha/form and
    reward.verifier (optional).
    """
    from rlev.values import run_verl_train

    setup = setup_settings(run)
    est = estimator_settings(run)
    out_dir = Path(_abs(run["out_dir"]))
    seed = int(run.get("seed", 0))
    logger = list(setup["logger"])
    if "file" not in logger:  # per-step metrics JSONL beside the run, see launch_script
        logger.append("file")
    model = setup.get("init_model") or setup["model"]
    required = [
        "lr",
        "rollout_batch",
        "n",
        "max_prompt_length",
        "max_response_length",
        "epochs",
        "gpus_per_node",
        "nodes",
    ]
    missing = [k for k in required if k not in setup]
    if missing:
        raise VerlConfigError(f"run {run['run_id']}: scale {setup.get('name', '?')!r} is missing {missing}")
    if "adv_estimator" not in est:
        raise VerlConfigError(f"run {run['run_id']}: estimator is missing adv_estimator")

    o: list[tuple[str, object]] = [
        # data: verl-schema parquet files (prompt as chat messages, reward_model.ground_truth)
        ("data.train_files", _abs(run_verl_train(run))),
        ("data.val_files", _abs(run["dataset"]["verl_test"])),
        ("data.prompt_key", "prompt"),
        ("data.max_prompt_length", int(setup["max_prompt_length"])),
        ("data.max_response_length", int(setup["max_response_length"])),
        ("data.train_batch_size", int(setup["rollout_batch"])),
        ("data.filter_overlong_prompts", bool(setup["filter_overlong_prompts"])),
        ("data.truncation", "error"),
        ("data.shuffle", True),
        ("data.seed", seed),
        # algorithm: the advantage estimator and where a KL term (if any) goes
        ("algorithm.adv_estimator", est["adv_estimator"]),
        ("algorithm.norm_adv_by_std_in_grpo", bool(est["norm_adv_by_std_in_grpo"])),
        ("algorithm.gamma", float(est["gamma"])),
        ("algorithm.use_kl_in_reward", bool(est["use_kl_in_reward"])),
        ("algorithm.kl_ctrl.kl_coef", float(est["kl_coef"])),
        ("algorithm.kl_penalty", est["kl_penalty"]),
        # no value model: every estimator the schema allows is critic-free
        ("critic.enable", False),
        # policy model
        ("actor_rollout_ref.model.path", model),
        ("actor_rollout_ref.model.enable_gradient_checkpointing", bool(setup["gradient_checkpointing"])),
        ("actor_rollout_ref.model.use_remove_padding", bool(setup["use_remove_padding"])),
        # actor update
        ("actor_rollout_ref.actor.optim.lr", float(setup["lr"])),
        ("actor_rollout_ref.actor.optim.weight_decay", float(setup["weight_decay"])),
        ("actor_rollout_ref.actor.ppo_mini_batch_size", int(setup["ppo_mini_batch"])),
        ("actor_rollout_ref.actor.use_dynamic_bsz", bool(setup["use_dynamic_bsz"])),
        ("actor_rollout_ref.actor.ppo_max_token_len_per_gpu", int(setup["max_token_len_per_gpu"])),
        ("actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu", int(setup["micro_batch_per_gpu"])),
        ("actor_rollout_ref.actor.use_kl_loss", bool(est["use_kl_loss"])),
        ("actor_rollout_ref.actor.kl_loss_coef", float(est["kl_loss_coef"])),
        ("actor_rollout_ref.actor.kl_loss_type", est["kl_loss_type"]),
        # verl 0.9.1's vanilla loss reads clip_ratio_low/high (each 0.2 by default), not
        # clip_ratio: set all three so the configured clip is the one applied.
        ("actor_rollout_ref.actor.clip_ratio", float(est["clip_ratio"])),
        ("actor_rollout_ref.actor.clip_ratio_low", float(est["clip_ratio"])),
        ("actor_rollout_ref.actor.clip_ratio_high", float(est["clip_ratio"])),
        ("actor_rollout_ref.actor.loss_agg_mode", est["loss_agg_mode"]),
        # verl's FSDP engine clips with optim.clip_grad; actor.grad_clip composes but is never read.
        ("actor_rollout_ref.actor.optim.clip_grad", float(est["grad_clip"])),
        ("actor_rollout_ref.actor.entropy_coeff", float(est["entropy_coeff"])),
        ("actor_rollout_ref.actor.data_loader_seed", seed),
        ("actor_rollout_ref.actor.fsdp_config.param_offload", bool(setup["param_offload"])),
        ("actor_rollout_ref.actor.fsdp_config.optimizer_offload", bool(setup["optimizer_offload"])),
        # rollout: sampling for training, greedy for validation (the paper evaluates greedily)
        ("actor_rollout_ref.rollout.name", setup["rollout_engine"]),
        ("actor_rollout_ref.rollout.n", int(setup["n"])),
        ("actor_rollout_ref.rollout.temperature", float(setup["temperature"])),
        ("actor_rollout_ref.rollout.seed", seed),
        ("actor_rollout_ref.rollout.tensor_model_parallel_size", int(setup["tensor_parallel"])),
        ("actor_rollout_ref.rollout.gpu_memory_utilization", float(setup["gpu_memory_utilization"])),
        ("actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu", int(setup["log_prob_micro_batch_per_gpu"])),
        ("actor_rollout_ref.rollout.val_kwargs.do_sample", False),
        ("actor_rollout_ref.rollout.val_kwargs.temperature", 0.0),
        ("actor_rollout_ref.rollout.val_kwargs.n", 1),
        # the reference policy is only built when a KL term needs it
        ("actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu", int(setup["log_prob_micro_batch_per_gpu"])),
        ("actor_rollout_ref.ref.fsdp_config.param_offload", bool(setup["param_offload"])),
        # the RLEV reward (never the legacy top-level custom_reward_function.* keys)
        ("reward.custom_reward_function.path", str(REWARD_MODULE)),
        ("reward.custom_reward_function.name", REWARD_FUNCTION),
    ]
    o += [(f"+reward.custom_reward_function.reward_kwargs.{k}", v) for k, v in _reward_kwargs(run).items()]
    o += _cost_overrides(run, setup)
    # where compute_score's processes write what they could not score (watch_unverified)
    o.append(("+reward.custom_reward_function.reward_kwargs.stats_dir", str(out_dir / REWARD_STATS_DIR)))

    verifier = verifier_settings(run)
    if verifier["kind"] == "judge" and not verifier.get("url"):
        # verl serves the judge in a pool of its own; see the module docstring.
        o += [
            ("reward.reward_model.enable", True),
            ("reward.reward_model.model_path", verifier["model"]),
            ("reward.reward_model.enable_resource_pool", True),
            ("reward.reward_model.n_gpus_per_node", int(verifier["gpus_per_node"])),
            ("reward.reward_model.nnodes", int(verifier["nodes"])),
            ("reward.reward_model.rollout.name", setup["rollout_engine"]),
            ("reward.reward_model.rollout.tensor_model_parallel_size", int(verifier["tensor_parallel"])),
            ("reward.reward_model.rollout.gpu_memory_utilization", float(verifier["gpu_memory_utilization"])),
            ("reward.reward_model.rollout.prompt_length", int(verifier["max_prompt_length"])),
            ("reward.reward_model.rollout.response_length", int(verifier["max_response_length"])),
            ("reward.reward_model.rollout.temperature", 0.0),
            ("reward.reward_model.rollout.do_sample", False),
            # With free_cache_engine verl puts the judge to sleep at start, and with a pool of
            # its own the only wake-up (RewardLoopManager.compute_rm_score) is never called.
            ("reward.reward_model.rollout.free_cache_engine", False),
        ]

    o += [
        # trainer: bookkeeping, checkpoints and per-step JSONL dumps beside the run
        ("trainer.project_name", PROJECT_NAME),
        ("trainer.experiment_name", experiment_name(run)),
        ("trainer.logger", list(logger)),
        ("trainer.n_gpus_per_node", int(setup["gpus_per_node"])),
        ("trainer.nnodes", int(setup["nodes"])),
        ("trainer.total_epochs", int(setup["epochs"])),
        ("trainer.save_freq", int(setup["save_freq"])),
        ("trainer.test_freq", int(setup["test_freq"])),
        ("trainer.val_before_train", bool(setup["val_before_train"])),
        ("trainer.max_actor_ckpt_to_keep", setup["max_ckpt_to_keep"]),
        ("trainer.resume_mode", "auto"),
        ("trainer.default_local_dir", str(out_dir / "checkpoints")),
        ("trainer.validation_data_dir", str(out_dir / "verl_validation")),
        ("trainer.rollout_data_dir", str(out_dir / "verl_rollouts")),
        ("trainer.default_hdfs_dir", None),
        ("trainer.critic_warmup", 0),
    ]
    return hydra_overrides(o)


def job_nodes(run: dict) -> int:
    """Nodes the training job needs: the policy's, plus the judge's when verl serves it."""
    nodes = int(setup_settings(run)["nodes"])
    verifier = verifier_settings(run)
    if verifier["kind"] == "judge" and not verifier.get("url"):
        nodes += int(verifier["nodes"])
    return nodes


def eval_gpus(setup: dict, verifier: dict | None = None) -> int:
    """GPUs of one evaluation job at a verl scale: vLLM shards the policy over the scale's
    tensor_parallel GPUs; a judge that verl serves in training is served by the evaluation job
    itself (rlev.evaluate), so the job needs the larger of the two."""
    gpus = int(setup["tensor_parallel"])
    if verifier is not None:
        verifier = {"kind": verifier} if isinstance(verifier, str) else verifier
        if verifier.get("kind") == "judge" and not verifier.get("url"):
            gpus = max(gpus, int(verifier["tensor_parallel"]))
    return gpus


def gpu_layout(config: dict, stage: str, scale_name: str, run: dict | None = None) -> tuple[int, int]:
    """(nodes, GPUs per node) of one GPU job of the workflow; (1, 0) at a local scale.

    SLURM gets them as `--nodes` and `--gres=gpu:<per node>`: a job-wide GPU count
    (`--gpus`) may be spread over several nodes, which none of these programs can use.
    stage: train (one verl RL run: `run` is its run config), evaluate (vLLM, in domain),
    ood (vLLM, Table 2), eos (teacher-forced on one GPU), predictor_train (verl SFT),
    predictor_generate (one GPU).
    """
    setup = config["scales"][scale_name]
    if setup["backend"] == "local":
        return 1, 0
    if stage == "train":
        if run is None:
            raise ValueError("gpu_layout('train') needs the run config")
        return job_nodes(run), int(setup_settings(run)["gpus_per_node"])
    if stage == "evaluate":
        return 1, eval_gpus(setup, config["reward"].get("verifier"))
    if stage == "ood":
        return 1, eval_gpus(setup)
    if stage == "predictor_train":
        predictor = config["predictor"]["verl"]
        return int(predictor["nodes"]), int(predictor["gpus_per_node"])
    if stage in ("eos", "predictor_generate"):
        return 1, 1
    raise ValueError(f"unknown GPU stage {stage!r}")


def reward_scale_invariance_warning(run: dict) -> str | None:
    """Say so when the value scale s(x) cannot change this run's policy update
    (the rule is rlev.config.value_scale_invariance, which config validation enforces)."""
    from rlev.config import scale_invariance_message, value_scale_invariance

    settings = estimator_settings(run)
    reason = value_scale_invariance(settings, run["reward"]["variant"], run["reward"].get("cost"))
    if reason is None:
        return None
    return scale_invariance_message(
        f"run {run['run_id']}", run["estimator"]["name"], settings, [run["reward"]["variant"]], reason
    )


# --- compose and validate ---------------------------------------------------------------


def compose_verl_config(overrides: list[str]):
    """Compose verl's `ppo_trainer` config with `overrides`, offline, as main_ppo would
    (rlev.train.verl_launch.compose: an unknown key or a malformed value is a VerlConfigError
    naming the override)."""
    return compose("ppo_trainer", overrides)


def _check_reward_wiring(cfg, load_reward_fn: bool) -> None:
    legacy = cfg.get("custom_reward_function") or {}
    if any(v is not None for v in legacy.values()):
        raise VerlConfigError(
            "legacy top-level custom_reward_function.* is set; verl 0.9.1 ignores it and scores "
            "with its default function. Use reward.custom_reward_function.{path,name,reward_kwargs}."
        )
    fn = cfg.reward.custom_reward_function
    if not fn.path:
        raise VerlConfigError("reward.custom_reward_function.path is not set: verl would use its default scorer")
    if not Path(fn.path).is_file():
        raise VerlConfigError(f"reward.custom_reward_function.path={fn.path} does not exist")
    if load_reward_fn:
        # The very loader the trainer's reward workers use.
        from verl.trainer.ppo.reward import get_custom_reward_fn

        try:
            get_custom_reward_fn(cfg)
        except Exception as err:  # noqa: BLE001 - any failure to load is a config error here
            raise VerlConfigError(
                f"cannot load reward function {fn.name!r} from {fn.path}: {type(err).__name__}: {err}"
            ) from err


def _check_runtime_shapes(cfg) -> None:
    """Checks verl only makes once GPUs are up (so a bad run would fail after a queue wait)."""
    n_gpus = cfg.trainer.n_gpus_per_node * cfg.trainer.nnodes
    rollout = cfg.actor_rollout_ref.rollout
    actor = cfg.actor_rollout_ref.actor
    infer_world = rollout.tensor_model_parallel_size * rollout.data_parallel_size * rollout.pipeline_model_parallel_size
    if n_gpus % infer_world:
        raise VerlConfigError(
            f"{n_gpus} GPUs cannot be split into vLLM replicas of {infer_world} GPUs "
            f"(actor_rollout_ref.rollout.tensor_model_parallel_size={rollout.tensor_model_parallel_size})"
        )
    if not actor.use_dynamic_bsz:
        dp = n_gpus // actor.ulysses_sequence_parallel_size
        global_mini = actor.ppo_mini_batch_size * rollout.n
        if global_mini % dp:
            raise VerlConfigError(
                f"actor_rollout_ref.actor.ppo_mini_batch_size ({actor.ppo_mini_batch_size}) x rollout.n "
                f"({rollout.n}) = {global_mini} sequences must divide evenly over {dp} data-parallel ranks"
            )
    if cfg.algorithm.adv_estimator in GROUP_ESTIMATORS and rollout.n < 2:
        raise VerlConfigError(
            f"algorithm.adv_estimator={cfg.algorithm.adv_estimator} compares samples of one prompt: "
            f"actor_rollout_ref.rollout.n must be >= 2, not {rollout.n}"
        )
    rm = cfg.reward.reward_model
    if rm.enable and rm.enable_resource_pool:
        rm_world = rm.rollout.tensor_model_parallel_size * rm.rollout.data_parallel_size
        if (rm.n_gpus_per_node * rm.nnodes) % rm_world:
            raise VerlConfigError(
                f"judge pool of {rm.n_gpus_per_node * rm.nnodes} GPUs cannot hold replicas of {rm_world} GPUs "
                f"(reward.reward_model.rollout.tensor_model_parallel_size={rm.rollout.tensor_model_parallel_size})"
            )


def validate_verl_config(cfg, load_reward_fn: bool = True) -> None:
    """Run verl's own pre-flight validation on a composed config, plus what it checks later.

    This is `verl.utils.config.validate_config` with the same reference-policy and critic
    flags `main_ppo.main` derives; then the algorithm and rollout sections are turned into
    verl's dataclasses (as its workers do), the reward wiring is checked (and, with
    `load_reward_fn`, the function is loaded with verl's loader), and the batch shapes that
    verl asserts only on GPUs are checked here. Raises VerlConfigError.
    """
    import contextlib
    import io

    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import omega_conf_to_dataclass, validate_config

    try:
        # validate_config prints a success line; keep our callers' logs quiet.
        with contextlib.redirect_stdout(io.StringIO()):
            validate_config(config=cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
        omega_conf_to_dataclass(cfg.algorithm)
        omega_conf_to_dataclass(cfg.actor_rollout_ref.rollout)
    except (AssertionError, ValueError, TypeError) as err:
        raise VerlConfigError(f"verl {VERL_VERSION} validation failed: {err}") from err
    except Exception as err:  # hydra InstantiationException wraps dataclass errors
        raise VerlConfigError(f"verl {VERL_VERSION} validation failed: {type(err).__name__}: {err}") from err
    _check_reward_wiring(cfg, load_reward_fn)
    _check_runtime_shapes(cfg)


# --- launch files -----------------------------------------------------------------------


def _describe(run: dict) -> list[str]:
    setup, est, reward = run["scale"], run["estimator"], run["reward"]
    if reward["variant"] == "correctness":
        what = "correctness reward r = 1[correct] (the RLVR baseline)"
    else:
        what = f"{reward['variant']} values, reward form {reward['form']}, alpha = {reward['alpha']:g}"
    grpo = ""
    if est["adv_estimator"] == "grpo":
        grpo = " (std-normalised)" if est["norm_adv_by_std_in_grpo"] else " (mean-centred, Dr.GRPO)"
    lines = [
        "Reproduces: Yu et al. 2025, 'Every Question Has Its Own Value: Reinforcement Learning",
        "with Explicit Human Values' (RLEV, arXiv 2510.20187).",
        f"  {est['adv_estimator']}{grpo} on {setup.get('init_model') or setup['model']}, {what};",
        f"  dataset {run['dataset']['name']}, seed {run.get('seed', 0)}.",
    ]
    return lines


def _ray_cluster_block(run: dict) -> str:
    """Shell that starts a Ray cluster over the SLURM allocation (verl's SLURM recipe):
    templates/ray_launch.sh."""
    gpus = int(run["scale"]["gpus_per_node"])
    nodes = job_nodes(run)
    verifier = verifier_settings(run)
    if verifier["kind"] == "judge" and not verifier.get("url") and int(verifier["gpus_per_node"]) != gpus:
        raise VerlConfigError(
            f"the judge pool asks for {verifier['gpus_per_node']} GPUs per node and the policy for {gpus}; "
            "one SLURM allocation gives every node the same GPUs, so make them equal"
        )
    return render_template("ray_launch.sh", nodes=nodes, gpus=gpus, total_gpus=gpus * nodes)


def launch_script(run: dict, overrides: list[str]) -> str:
    """The text of verl_train.sh for `run` with `overrides`."""
    header = [
        "#!/usr/bin/env bash",
        f"# rlev run {run['run_id']}: verl {VERL_VERSION} RL training, one main_ppo call.",
        *[f"# {line}" for line in _describe(run)],
        "#",
        "# Written by rlev.train.verl.write_launch; verl_config.yaml beside it is the composed config.",
        "# Usage: bash verl_train.sh [extra Hydra overrides, e.g. trainer.total_training_steps=2]",
    ]
    warning = reward_scale_invariance_warning(run)
    if warning:
        header += ["#", *textwrap.wrap("WARNING: " + warning, 88, initial_indent="# ", subsequent_indent="#   ")]
    attempts = Path(_abs(run["out_dir"])) / METRICS_ATTEMPTS_DIR
    body = [
        "set -euo pipefail",
        'PYTHON="${PYTHON:-python3}"',
        # verl's `file` logger opens its file with "wb": a resumed run would erase the steps
        # before it. So each launch logs to a file of its own, merged into train/metrics.jsonl
        # afterwards (rlev.train.verl.merge_metrics).
        f"mkdir -p {shlex.quote(str(attempts))}",
        f"export VERL_FILE_LOGGER_PATH={shlex.quote(str(attempts))}/metrics.$(date -u +%Y%m%dT%H%M%S).$$.jsonl",
        "",
    ]
    multi_node = job_nodes(run) > 1
    if multi_node:
        body.append(_ray_cluster_block(run))
    else:
        # verl starts Ray itself; under SLURM, give it the job's CPUs, not the node's.
        body += ['RAY_NUM_CPUS="${SLURM_CPUS_ON_NODE:-$(nproc)}"', ""]
    # joining a running cluster (RAY_ADDRESS), ray.init refuses num_cpus
    raw = () if multi_node else ('"ray_kwargs.ray_init.num_cpus=$RAY_NUM_CPUS"',)
    body += command_lines('"$PYTHON" -m verl.trainer.main_ppo', overrides, raw)
    return "\n".join(header + [""] + body) + "\n"


def write_launch(run: dict, run_dir: Path | str | None = None, load_reward_fn: bool = True) -> Path:
    """Compose and validate the run's verl config, write verl_train.sh and verl_config.yaml.

    Returns the script's path. Nothing is written when the config does not validate.
    """
    run_dir = Path(run_dir if run_dir is not None else run["out_dir"])
    overrides = verl_overrides(run)
    cfg = compose_verl_config(overrides)
    if job_nodes(run) == 1:  # the launch script adds the job's CPU count: check that it composes
        compose_verl_config(overrides + ["ray_kwargs.ray_init.num_cpus=8"])
    validate_verl_config(cfg, load_reward_fn=load_reward_fn)
    return write_launch_files(run_dir, "verl_train.sh", launch_script(run, overrides), "verl_config.yaml", cfg)


# --- checkpoints -> Hugging Face ---------------------------------------------------------


def last_checkpoint(checkpoint_dir: Path | str) -> Path:
    """The newest `global_step_N` directory under verl's `default_local_dir`.

    verl's tracker file `latest_checkpointed_iteration.txt` names it; without one, the
    largest N that has an `actor` folder.
    """
    checkpoint_dir = Path(checkpoint_dir)
    tracker = checkpoint_dir / "latest_checkpointed_iteration.txt"
    if tracker.is_file():
        step = checkpoint_dir / f"global_step_{int(tracker.read_text().strip())}"
        if (step / "actor").is_dir():
            return step
    steps = [
        (int(m.group(1)), p)
        for p in checkpoint_dir.glob("global_step_*")
        if (m := re.fullmatch(r"global_step_(\d+)", p.name)) and (p / "actor").is_dir()
    ]
    if not steps:
        raise FileNotFoundError(f"no verl checkpoint (global_step_N/actor) under {checkpoint_dir}")
    return max(steps)[1]


def merge_command(run: dict) -> list[str]:
    """verl's model merger call turning the run's last FSDP actor checkpoint into a HF model."""
    out_dir = Path(_abs(run["out_dir"]))
    step = last_checkpoint(out_dir / "checkpoints")
    return [
        sys.executable, "-m", "verl.model_merger", "merge",
        "--backend", "fsdp",
        "--local_dir", str(step / "actor"),
        "--target_dir", str(out_dir / "model"),
    ]  # fmt: skip


# --- the whole run ----------------------------------------------------------------------


# --- metrics and what could not be scored ------------------------------------------------


def merge_metrics(out_dir: Path | str) -> Path:
    """Merge every launch's verl metrics file into `<out_dir>/train/metrics.jsonl`.

    Lines are verl's `{"step": N, "data": {...}}`; a resumed launch repeats the steps after
    its checkpoint, and the later launch wins for a step it logged again (its keys
    replace the earlier ones). Returns the merged file's path.
    """
    import json

    out_dir = Path(out_dir)
    by_step: dict[int, dict] = {}
    for path in sorted((out_dir / METRICS_ATTEMPTS_DIR).glob("metrics.*.jsonl")):  # names sort by start time
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                step = int(record["step"])
            except (ValueError, KeyError, TypeError) as err:
                raise ValueError(f"{path}:{number}: not a verl metrics line ({err})") from err
            by_step.setdefault(step, {}).update(record.get("data", {}))
    merged = out_dir / "train" / "metrics.jsonl"
    merged.parent.mkdir(parents=True, exist_ok=True)
    merged.write_text("".join(json.dumps({"step": s, "data": by_step[s]}) + "\n" for s in sorted(by_step)))
    return merged


_VAL_EXTRA = re.compile(r"^val-(?:core|aux)/(?P<source>.+)/(?P<key>unverified|error)/mean@\d+$")


def unverified_problem(out_dir: Path | str, max_share: float) -> str | None:
    """Why the run must stop, or None: a sample compute_score could not score because of an
    error, or a share of unverified samples above `max_share`.

    Reads the counts rlev.reward's compute_score writes per reward worker process
    (`<out_dir>/reward_stats/*.json`: training and validation samples) and verl's
    validation extras in the launches' metrics files (`val-*/<source>/unverified|error/mean@N`).
    verl 0.9.1's trainer logs the reward extras of validation only (trainer_base
    `_val_metrics_update`), not of training batches, hence the counts files.
    """
    import json

    out_dir = Path(out_dir)
    scored = unverified = errors = 0
    first_error = None
    for path in sorted((out_dir / REWARD_STATS_DIR).glob("*.json")):
        try:
            counts = json.loads(path.read_text())
        except ValueError:  # replaced while read: the next look sees it whole
            continue
        scored += int(counts.get("scored", 0))
        unverified += int(counts.get("unverified", 0))
        errors += int(counts.get("errors", 0))
        first_error = first_error or counts.get("first_error")
    if errors:
        return (
            f"compute_score could not score {errors} sample(s) because of an error (first: {first_error}); "
            f"see the reward workers' log. Counts: {out_dir / REWARD_STATS_DIR}"
        )
    if scored and unverified / scored > max_share:
        return (
            f"{unverified} of {scored} samples ({unverified / scored:.1%}) could not be verified, above "
            f"reward.verifier.max_unverified_share={max_share:g}; is the judge up? Counts: {out_dir / REWARD_STATS_DIR}"
        )
    for path in sorted((out_dir / METRICS_ATTEMPTS_DIR).glob("metrics.*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:  # a line being written
                continue
            for key, value in record.get("data", {}).items():
                m = _VAL_EXTRA.match(key)
                if not m or value is None:
                    continue
                if (m["key"] == "error" and value > 0) or (m["key"] == "unverified" and value > max_share):
                    return (
                        f"verl's validation at step {record.get('step')} logged {key} = {value:g} "
                        f"(limit: {'0' if m['key'] == 'error' else f'{max_share:g}'}) in {path}"
                    )
    return None


def max_unverified_share(run: dict) -> float:
    """The run's limit on unverified samples: 0 for the rule verifier and with judge_on_failure=stop."""
    verifier = verifier_settings(run)
    if verifier["kind"] != "judge" or run["reward"].get("judge_on_failure", verifier.get("on_failure")) == "stop":
        return 0.0
    return float(verifier["max_unverified_share"])


def train(run: dict) -> None:
    """Train one run with verl and leave a Hugging Face model in `<out_dir>/model`.

    Writes the run's values and verl training file (rlev.values.write_values), validates the
    config and writes the launch files first, so a machine without GPUs still gets a checked,
    runnable script; then it stops with a clear error. While verl runs, the run is stopped
    when samples cannot be scored (unverified_problem); after it, the launches' metrics are
    merged into train/metrics.jsonl.
    """
    import pandas as pd

    from rlev.values import write_values

    out_dir = Path(run["out_dir"])
    warning = reward_scale_invariance_warning(run)
    if warning:
        print(f"WARNING: {warning}", file=sys.stderr)
    write_values(run, pd.read_parquet(run["dataset"]["train"]))
    script = write_launch(run, out_dir)

    import torch

    if not torch.cuda.is_available():
        raise RuntimeError(
            f"run {run['run_id']}: the verl back end needs CUDA GPUs and none is visible here. "
            f"The checked launch script is {script} (config: {out_dir / 'verl_config.yaml'}); "
            "run it on a GPU node, or submit the workflow with --profile profiles/slurm."
        )
    model = setup_settings(run).get("init_model") or run["scale"]["model"]
    if not Path(model).expanduser().exists():  # a Hub id: rlev's reward manager reads its stop ids from the cache
        from huggingface_hub import hf_hub_download

        hf_hub_download(model, "generation_config.json")
    log_path = out_dir / "verl_train.log"
    limit = max_unverified_share(run)
    check = lambda: unverified_problem(out_dir, limit)  # noqa: E731
    try:
        run_script(script, log_path, check=check)
    finally:
        merge_metrics(out_dir)
    problem = check()  # the last samples of the run
    if problem:
        raise RunStopped(f"run {run['run_id']}: {problem}")
    stream(merge_command(run), log_path)
    # Record which checkpoint became the model, beside it.
    record = {"run_id": run["run_id"], "checkpoint": str(last_checkpoint(out_dir / "checkpoints"))}
    (out_dir / "model" / "rlev_source.yaml").write_text(yaml.safe_dump(record, sort_keys=False))
