"""The local back end: every estimator and KL mode, overfitting a fixed batch, seeds, kill and
resume, another model architecture, wandb offline.

The policy is a tiny Qwen2 (hidden 32, one layer) warm-started for a few seconds on exams
whose questions are a+b with a, b in {0, 1, 2}: after that about two thirds of its
sampled answers are right, so rewards and advantages are not all zero.
"""

import copy
import json
import logging
import re
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from transformers import AutoTokenizer, GPT2LMHeadModel

import rlev.train.local as local
from conftest import REPO, save_gpt2
from rlev.config import Run, reward_tag, run_config, validate
from rlev.model import load_policy, render_prompt
from rlev.rollout import generate
from rlev.train.lock import RunLockedError

ESTIMATORS = {
    "rloo": {"adv_estimator": "rloo"},
    "reinforce_plus_plus": {"adv_estimator": "reinforce_plus_plus"},
    "reinforce_plus_plus_baseline": {"adv_estimator": "reinforce_plus_plus_baseline"},
    "grpo_mean_centred": {"adv_estimator": "grpo", "norm_adv_by_std_in_grpo": False},
    "grpo_std": {"adv_estimator": "grpo", "norm_adv_by_std_in_grpo": True},
    "rloo_kl_loss": {"adv_estimator": "rloo", "use_kl_loss": True, "kl_loss_coef": 0.1, "kl_loss_type": "low_var_kl"},
    "grpo_kl_loss_k3plus": {
        "adv_estimator": "grpo",
        "norm_adv_by_std_in_grpo": False,
        "use_kl_loss": True,
        "kl_loss_coef": 0.1,
        "kl_loss_type": "k3+",
    },
    "reinforce_plus_plus_kl_in_reward": {
        "adv_estimator": "reinforce_plus_plus",
        "use_kl_in_reward": True,
        "kl_coef": 0.1,
    },
    "rloo_kl_in_reward_k3": {
        "adv_estimator": "rloo",
        "use_kl_in_reward": True,
        "kl_coef": 0.1,
        "kl_penalty": "low_var_kl",
    },
    "grpo_entropy_seq_norm": {
        "adv_estimator": "grpo",
        "norm_adv_by_std_in_grpo": False,
        "entropy_coeff": 0.01,
        "loss_agg_mode": "seq-mean-token-sum-norm",
    },
}


def make_run(toy, out_dir, estimator, variant="human", seed=0, model=None, **scale):
    """A run config as the workflow resolves it (schema defaults filled), pointed at the toy task."""
    config = yaml.safe_load((REPO / "tests" / "config_smoke" / "config.yaml").read_text())
    config["estimators"] = {"est": estimator}
    config["experiments"] = {"main": {"estimators": ["est"], "rewards": [variant]}}
    config["scales"]["tiny"].update(
        rl_steps=2, prompts_per_step=4, n=4, max_new_tokens=12, lr=1e-3, threads=1, device="cpu", checkpoint_every=0
    )
    config["scales"]["tiny"].update(scale)
    validate(config)
    tag = reward_tag(variant, config["reward"]["alpha"], config["reward"]["form"])
    run = run_config(config, Run("synthetic", "tiny", "est", tag, seed))
    run["dataset"]["train"] = str(toy["train"])
    run["scale"]["init_model"] = str(model or toy["sft"])
    run["out_dir"] = str(out_dir)
    return run


def read_metrics(out_dir):
    return [json.loads(line) for line in (out_dir / "train" / "metrics.jsonl").read_text().splitlines()]


def without_timing(records):
    return [{k: v for k, v in r.items() if k not in local.TIMING_METRICS} for r in records]


def weights(model_dir):
    model, _ = load_policy(model_dir, "cpu")
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_every_estimator_and_kl_mode_trains(name, toy, tmp_path):
    estimator = ESTIMATORS[name]
    # std-normalised GRPO cancels the value scale (the config refuses it with human rewards)
    variant = "correctness" if name == "grpo_std" else "human"
    run = make_run(toy, tmp_path, estimator, variant)
    local.train(run)
    records = read_metrics(tmp_path)
    assert [r["step"] for r in records] == [0, 1]
    for r in records:
        assert set(r) == set(local.STEP_METRICS)  # every logged name is documented, every documented one logged
        assert 0 < r["acc"] < 1 and r["reward"] > 0 and np.isfinite(r["loss"]) and r["grad_norm"] > 0
        assert (r["kl_ref"] is not None) == (
            estimator.get("use_kl_loss", False) or estimator.get("use_kl_in_reward", False)
        )
        assert (r["kl_loss"] is not None) == estimator.get("use_kl_loss", False)
        assert (r["reward_kl_penalty"] is not None) == estimator.get("use_kl_in_reward", False)
    # the policy moved away from the reference after the first update
    if records[1]["kl_ref"] is not None:
        assert records[0]["kl_ref"] == pytest.approx(0, abs=1e-6) and records[1]["kl_ref"] > 0
    assert (tmp_path / "model" / "config.json").exists()
    assert weights(tmp_path / "model").keys() == weights(toy["sft"]).keys()


def fixed_batch(toy, run, model, tokenizer):
    """One rollout of the toy task and its advantages, computed once (as update_policy sees them)."""
    s, est = run["scale"], run["estimator"]
    train = pd.read_parquet(toy["train"])
    prompts = [render_prompt(tokenizer, q, sys_) for q, sys_ in zip(train["question"][:4], train["system"][:4])]
    torch.manual_seed(0)
    ro = generate(model, tokenizer, prompts, n=s["n"], max_new_tokens=s["max_new_tokens"])
    # fixed outcomes with right and wrong answers in every group, scaled like RLEV rewards
    correct = torch.tensor([1.0, 0.0, 1.0, 0.0] * 4)
    scores = correct * torch.tensor([1.2, 1.2, 1.2, 1.2, 2.0, 2.0, 2.0, 2.0, 1.5, 1.5, 1.5, 1.5, 1.0, 1.0, 1.0, 1.0])
    reference = copy.deepcopy(model).requires_grad_(False)
    old_logp = local.batch_logprobs(model, ro, s["temperature"], 0)
    ref_logp = local.batch_logprobs(reference, ro, s["temperature"], 0)
    token_rewards = local.outcome_token_rewards(scores, ro.response_mask)
    if est["use_kl_in_reward"]:
        token_rewards, _ = local.kl_in_reward(token_rewards, old_logp, ref_logp, ro.response_mask, est)
    advantages = local.estimator_advantages(est, token_rewards, ro.response_mask, np.repeat(np.arange(4), 4))
    assert advantages.abs().max() > 0
    use_ref = est["use_kl_loss"] or est["use_kl_in_reward"]
    return local.Batch(ro, advantages, old_logp, ref_logp if use_ref else None)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_the_loss_decreases_on_a_fixed_batch(name, toy, tmp_path):
    run = make_run(toy, tmp_path, ESTIMATORS[name], "correctness" if name == "grpo_std" else "human", lr=1e-4)
    s, est = run["scale"], run["estimator"]
    model, tokenizer = load_policy(toy["sft"], "cpu")
    model.eval()
    batch = fixed_batch(toy, run, model, tokenizer)
    optimizer = torch.optim.AdamW(model.parameters(), lr=s["lr"])
    actor = local.actor_config(est, s)
    losses = [local.update_policy(model, optimizer, batch, est, s, actor)["loss"] for _ in range(8)]
    assert losses[-1] < losses[0] - 1e-3, losses


def test_several_updates_per_batch_make_the_clip_act(toy, tmp_path):
    run = make_run(toy, tmp_path, ESTIMATORS["rloo"], ppo_epochs=4, ppo_mini_batch=2, lr=1e-2)
    s, est = run["scale"], run["estimator"]
    assert local.needs_old_logprobs(est, s)
    model, tokenizer = load_policy(toy["sft"], "cpu")
    model.eval()
    batch = fixed_batch(toy, run, model, tokenizer)
    optimizer = torch.optim.AdamW(model.parameters(), lr=s["lr"])
    out = local.update_policy(model, optimizer, batch, est, s, local.actor_config(est, s))
    assert out["pg_clipfrac"] > 0 and out["ppo_kl"] != 0


def test_micro_batches_give_the_same_update(toy, tmp_path):
    """Cutting the batch into length buckets changes memory and speed, not the gradient."""
    run = make_run(toy, tmp_path, ESTIMATORS["rloo_kl_loss"])
    s, est = run["scale"], run["estimator"]
    grads = []
    for budget in (0, 40):
        model, tokenizer = load_policy(toy["sft"], "cpu")
        model.eval()
        batch = fixed_batch(toy, run, model, tokenizer)
        captured = {}

        class Capture(torch.optim.SGD):
            def step(self, closure=None):
                captured.update({n: p.grad.clone() for n, p in model.named_parameters()})

        settings = {**s, "micro_batch_tokens": budget}
        local.update_policy(
            model, Capture(model.parameters(), lr=0.0), batch, est, settings, local.actor_config(est, settings)
        )
        grads.append(captured)
    assert len(local.length_buckets(batch.rollout, 40)) > 2
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-6), name


def test_same_seed_same_metrics(toy, tmp_path):
    runs = {}
    for label, seed in (("a", 0), ("b", 0), ("c", 1)):
        run = make_run(toy, tmp_path / label, ESTIMATORS["rloo"], seed=seed)
        local.train(run)
        runs[label] = without_timing(read_metrics(tmp_path / label))
    assert runs["a"] == runs["b"]
    assert runs["a"] != runs["c"]
    wa, wb = weights(tmp_path / "a" / "model"), weights(tmp_path / "b" / "model")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_batches_follow_a_seeded_permutation_per_epoch():
    epoch0 = np.concatenate([local.batch_rows(7, 12, step, 4) for step in range(3)])
    epoch1 = np.concatenate([local.batch_rows(7, 12, step, 4) for step in range(3, 6)])
    assert sorted(epoch0) == sorted(epoch1) == list(range(12))
    assert list(epoch0) != list(epoch1)
    assert list(local.batch_rows(7, 12, 4, 4)) == list(epoch1[4:8])
    assert list(local.batch_rows(8, 12, 0, 4)) != list(epoch0[:4])


KILLING_TRAINER = """
import json, os, signal, sys
import rlev.train.local as local
real_generate = local.generate
calls = 0
def generate_then_die(*args, **kwargs):
    global calls
    calls += 1
    if calls == int(sys.argv[2]):  # SIGKILL mid-run: no cleanup, no final save
        os.kill(os.getpid(), signal.SIGKILL)
    return real_generate(*args, **kwargs)
local.generate = generate_then_die
local.train(json.load(open(sys.argv[1])))
"""


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_result(toy, tmp_path):
    estimator = ESTIMATORS["rloo_kl_loss"]
    straight = make_run(toy, tmp_path / "straight", estimator, rl_steps=5, checkpoint_every=2)
    local.train(straight)

    killed = make_run(toy, tmp_path / "killed", estimator, rl_steps=5, checkpoint_every=2)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(killed))
    # killed while generating step 3: checkpoint step_000002 is on disk, step 2 is logged after it
    proc = subprocess.run(
        [sys.executable, "-c", KILLING_TRAINER, str(spec), "4"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    out = tmp_path / "killed"
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step_000002.pt"]
    assert len(read_metrics(out)) == 3 and not (out / "model").exists()

    local.train(killed)  # started again: resumes from step 2
    assert without_timing(read_metrics(out)) == without_timing(read_metrics(tmp_path / "straight"))
    a, b = weights(out / "model"), weights(tmp_path / "straight" / "model")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not (out / "checkpoints").exists()  # a finished run keeps its outputs only


def test_a_checkpoint_of_another_configuration_is_not_resumed(toy, tmp_path):
    run = make_run(toy, tmp_path, ESTIMATORS["rloo"])
    model, _ = load_policy(toy["sft"], "cpu")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    local.save_checkpoint(tmp_path / "checkpoints", 1, model, optimizer, [{"step": 0}], run, 4)
    assert local.load_checkpoint(tmp_path / "checkpoints", run, model, optimizer) == (1, [{"step": 0}])
    assert (
        local.load_checkpoint(
            tmp_path / "checkpoints", {**run, "scale": {**run["scale"], "threads": 2}}, model, optimizer
        )[0]
        == 1
    )  # how a run executes does not matter
    changed = {**run, "scale": {**run["scale"], "lr": 5e-4}}
    assert local.load_checkpoint(tmp_path / "checkpoints", changed, model, optimizer) == (0, [])


def test_a_gpt2_model_directory_trains(toy, tmp_path):
    """Any Hugging Face causal LM directory, here GPT-2 blocks of another shape and the toy tokenizer."""
    model_dir = save_gpt2(AutoTokenizer.from_pretrained(toy["sft"]), tmp_path / "gpt2", n_positions=64, seed=0)
    # an entropy bonus gives a gradient even though the untrained model is never right
    run = make_run(toy, tmp_path / "run", {"adv_estimator": "rloo", "entropy_coeff": 0.01}, model=model_dir)
    local.train(run)
    assert [r["step"] for r in read_metrics(tmp_path / "run")] == [0, 1]
    trained, _ = load_policy(tmp_path / "run" / "model", "cpu")
    assert isinstance(trained, GPT2LMHeadModel)
    before, after = weights(model_dir), weights(tmp_path / "run" / "model")
    assert any(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.slow
def test_wandb_offline_mirror(toy, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)  # a key in the environment never reaches a file
    run = make_run(toy, tmp_path, ESTIMATORS["rloo"], rl_steps=1, wandb={"enabled": True, "mode": "offline"})
    local.train(run)
    runs = list((tmp_path / "train" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    for path in (tmp_path / "train" / "wandb").rglob("*"):
        if path.is_file():
            assert b"x" * 40 not in path.read_bytes(), path


# --- faults: step budget, checkpoints, the run lock, the judge, updates that never apply ---------


class Stop(Exception):
    """Stands in for a kill: raised from generate, it ends a run before its final save."""


def train_until(run, monkeypatch, calls):
    """local.train(run), stopped while generating step `calls - 1` (its checkpoints stay)."""
    real, count = local.generate, {"n": 0}

    def generate_then_stop(*args, **kwargs):
        count["n"] += 1
        if count["n"] == calls:
            raise Stop
        return real(*args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(local, "generate", generate_then_stop)
        with pytest.raises(Stop):
            local.train(run)


def checkpoint_names(out):
    return sorted(p.name for p in (out / "checkpoints").iterdir())


def same_run(out_a, out_b):
    assert without_timing(read_metrics(out_a)) == without_timing(read_metrics(out_b))
    a, b = weights(out_a / "model"), weights(out_b / "model")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_lowered_step_budget_resumes_from_a_checkpoint_within_it(toy, tmp_path, monkeypatch, caplog):
    estimator = ESTIMATORS["rloo"]
    for steps in (3, 1):
        local.train(make_run(toy, tmp_path / f"straight{steps}", estimator, rl_steps=steps))
    out = tmp_path / "lowered"
    # stopped at step 5 of 6: checkpoints after steps 2 and 4 (the newest two) are on disk
    train_until(make_run(toy, out, estimator, rl_steps=6, checkpoint_every=2), monkeypatch, calls=5)
    assert checkpoint_names(out) == ["step_000002.pt", "step_000004.pt"] and len(read_metrics(out)) == 4

    with caplog.at_level(logging.WARNING, logger=local.__name__):
        local.train(make_run(toy, out, estimator, rl_steps=3, checkpoint_every=2))  # resumes from step 2, not 4
    assert "step_000004.pt is past this run's rl_steps (3)" in caplog.text
    assert [r["step"] for r in read_metrics(out)] == [0, 1, 2]
    same_run(out, tmp_path / "straight3")

    # no checkpoint within the budget: the run starts over
    train_until(make_run(toy, out, estimator, rl_steps=6, checkpoint_every=2), monkeypatch, calls=5)
    local.train(make_run(toy, out, estimator, rl_steps=1, checkpoint_every=2))
    same_run(out, tmp_path / "straight1")


def test_an_unreadable_checkpoint_falls_back_to_the_older_one(toy, tmp_path, monkeypatch, caplog):
    estimator = ESTIMATORS["rloo"]
    local.train(make_run(toy, tmp_path / "straight", estimator, rl_steps=5))
    out = tmp_path / "broken"
    run = make_run(toy, out, estimator, rl_steps=5, checkpoint_every=2)
    train_until(run, monkeypatch, calls=5)
    newest = out / "checkpoints" / "step_000004.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated, as by a failing disk
    (out / "checkpoints" / "step_000006.pt.tmp").write_bytes(b"half a write")  # a save killed midway
    with caplog.at_level(logging.WARNING, logger=local.__name__):
        local.train(run)
    assert f"{newest} cannot be read" in caplog.text
    same_run(out, tmp_path / "straight")  # resumed from step 2

    # nothing readable left: a clear stop naming the files, not a torch traceback
    train_until(run, monkeypatch, calls=5)
    for path in (out / "checkpoints").iterdir():
        path.write_bytes(b"")
    with pytest.raises(local.CheckpointError, match=r"step_000004\.pt, .*step_000002\.pt: unreadable .*delete"):
        local.train(run)


def test_a_checkpoint_write_that_fails_leaves_the_previous_one(toy, tmp_path, monkeypatch):
    run = make_run(toy, tmp_path, ESTIMATORS["rloo"])
    model, _ = load_policy(toy["sft"], "cpu")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ckpt = tmp_path / "checkpoints"
    for steps in (1, 2, 3):
        local.save_checkpoint(ckpt, steps, model, optimizer, [{"step": k} for k in range(steps)], run, 4)
    assert checkpoint_names(tmp_path) == ["step_000002.pt", "step_000003.pt"]  # the newest two

    def disk_full(obj, f):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(local.torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        local.save_checkpoint(ckpt, 4, model, optimizer, [{"step": k} for k in range(4)], run, 4)
    assert checkpoint_names(tmp_path) == ["step_000002.pt", "step_000003.pt"]  # no .tmp, nothing lost
    monkeypatch.undo()
    assert local.load_checkpoint(ckpt, run, model, optimizer)[0] == 2  # rl_steps is 2


LOCK_HOLDER = """
import sys, time
from rlev.train.lock import run_lock
with run_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_trainer_on_one_run_directory_stops_at_once(toy, tmp_path):
    run = make_run(toy, tmp_path, ESTIMATORS["rloo"])
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        message = rf"{re.escape(str(tmp_path))} is being trained by another process \(pid {holder.pid} "
        with pytest.raises(RunLockedError, match=message):
            local.train(run)
        assert not (tmp_path / "train" / "metrics.jsonl").exists()
    finally:
        holder.kill()  # SIGKILL: the kernel drops the lock with the process
        holder.wait(10)
    local.train(run)  # no stale lock to clean up
    assert len(read_metrics(tmp_path)) == 2


def test_all_updates_skipped_or_non_finite_weights_fail_the_run(toy, tmp_path, monkeypatch):
    run = make_run(toy, tmp_path / "nan", ESTIMATORS["rloo"])
    real = local.verified_advantages
    monkeypatch.setattr(local, "verified_advantages", lambda *a: real(*a) * float("nan"))  # a NaN loss every step
    with pytest.raises(local.NoUpdateError, match=r"all 2 updates of 2 steps were skipped"):
        local.train(run)
    assert not (tmp_path / "nan" / "model").exists()
    assert [r["skipped_updates"] for r in read_metrics(tmp_path / "nan")] == [1, 1]
    monkeypatch.undo()

    def update_to_inf(model, *args):
        out = real_update(model, *args)
        next(model.parameters()).data.view(-1)[0] = float("inf")  # an update that overflowed
        return out

    real_update = local.update_policy
    monkeypatch.setattr(local, "update_policy", update_to_inf)
    with pytest.raises(local.NoUpdateError, match=r"non-finite weights in \['model\.embed_tokens\.weight'\]"):
        local.train(make_run(toy, tmp_path / "inf", ESTIMATORS["rloo"], rl_steps=1))
    assert not (tmp_path / "inf" / "model").exists()


@pytest.fixture
def judge_server():
    from test_verify_judge import FakeJudgeServer

    server = FakeJudgeServer().start()
    yield server
    server.stop()


def judge_run(toy, out_dir, server, **verifier):
    run = make_run(toy, out_dir, ESTIMATORS["rloo"])
    run["reward"]["verifier"] = {
        "kind": "judge",
        "url": server.base_url,
        "model": "judge-model",
        "on_failure": "unverified",
        "max_unverified_share": 0.1,
        **verifier,
    }
    return run


def test_undecided_samples_are_left_out_of_the_update_and_counted(toy, tmp_path, monkeypatch, judge_server):
    """A loopback judge that fails every request about one question: its responses are neither right
    nor wrong, so they leave acc, h_acc, reward, advantages and loss alone, and are counted."""
    train = pd.read_parquet(toy["train"])
    failing = train["question"][local.batch_rows(0, len(train), 0, 4)[0]]  # a question of step 0
    judge_server.always = {failing: "500"}
    run = judge_run(
        toy,
        tmp_path,
        judge_server,
        max_unverified_share=1.0,
        timeout_s=5,
        max_retries=1,
        concurrency=3,
        cache_path=str(tmp_path / "verdicts.sqlite"),
    )
    seen, real_update = [], local.update_policy
    real_verifier = local.run_verifier

    def spy_verifier(cfg):
        judge = real_verifier(cfg)
        seen.append({"judge": judge})

        def call(golds, responses, questions):
            verdicts = judge(golds, responses, questions)
            seen.append({"verdicts": verdicts, "questions": questions})
            return verdicts

        return call

    def spy_update(model, optimizer, batch, *args):
        seen[-1].update(batch=batch)
        return real_update(model, optimizer, batch, *args)

    monkeypatch.setattr(local, "run_verifier", spy_verifier)
    monkeypatch.setattr(local, "update_policy", spy_update)
    local.train(run)

    judge = seen[0]["judge"]  # built from reward.verifier, not from constants of the back end
    assert (judge.timeout_s, judge.max_retries, judge.concurrency) == (5.0, 1, 3)
    assert judge.cache_path == tmp_path / "verdicts.sqlite" and len(judge._cache) > 0
    assert judge_server.max_in_flight <= 3
    records = read_metrics(tmp_path)
    steps = seen[1:]
    assert [r["unverified"] for r in records] == [
        sum(v is None and not t for v, t in zip(s["verdicts"], s["batch"].rollout.truncated)) for s in steps
    ]
    assert records[0]["unverified"] > 0
    undecided = sum(v is None for step in steps for v in step["verdicts"])
    assert judge_server.attempts[failing] == (1 + 1) * undecided  # the configured max_retries: 1
    values = train["value"].to_numpy()
    for record, step in zip(records, steps):
        batch = step["batch"]
        decided = np.array([v is not None for v in step["verdicts"]]) | batch.rollout.truncated.numpy()
        correct = np.array([bool(v) for v in step["verdicts"]]) & ~batch.rollout.truncated.numpy()
        rows = np.repeat(local.batch_rows(0, len(train), record["step"], 4), 4)
        assert record["acc"] == pytest.approx(correct[decided].mean())
        assert record["h_acc"] == pytest.approx((values[rows] * correct)[decided].sum() / values[rows][decided].sum())
        if not decided.all():
            assert record["acc"] != pytest.approx(correct.mean())  # not counted as wrong
            # no advantage and no loss for an undecided response
            assert (batch.advantages[~torch.from_numpy(decided)] == 0).all()
            assert torch.equal(batch.verified, torch.from_numpy(decided))
    before, after = weights(toy["sft"]), weights(tmp_path / "model")
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the decided responses trained it


def test_undecided_samples_do_not_move_the_baseline_nor_the_loss(toy, tmp_path):
    run = make_run(toy, tmp_path, ESTIMATORS["rloo"])
    s, est = run["scale"], run["estimator"]
    model, tokenizer = load_policy(toy["sft"], "cpu")
    model.eval()
    batch = fixed_batch(toy, run, model, tokenizer)
    verified = torch.ones(16, dtype=torch.bool)
    verified[[1, 6]] = False  # a wrong and a right answer the judge could not decide
    scores = torch.tensor([1.0, 0.0, 1.0, 0.0] * 4)
    rewards = local.outcome_token_rewards(scores, batch.rollout.response_mask)
    group = np.repeat(np.arange(4), 4)
    adv = local.verified_advantages(est, rewards, batch.rollout.response_mask, group, verified)
    keep = verified.nonzero().squeeze(1)
    alone = local.estimator_advantages(est, rewards[keep], batch.rollout.response_mask[keep], group[keep.numpy()])
    assert torch.equal(adv[keep], alone) and (adv[~verified] == 0).all()
    assert not torch.equal(adv, local.estimator_advantages(est, rewards, batch.rollout.response_mask, group))

    def gradient(advantages):
        m = copy.deepcopy(model)
        captured = {}

        class Capture(torch.optim.SGD):
            def step(self, closure=None):
                captured.update({n: p.grad.clone() for n, p in m.named_parameters()})

        b = local.Batch(batch.rollout, advantages, None, None, verified)
        local.update_policy(m, Capture(m.parameters(), lr=0.0), b, est, s, local.actor_config(est, s))
        return captured

    other = adv.clone()
    other[~verified] = 5.0  # whatever an undecided row carries, the update ignores it
    g1, g2 = gradient(adv), gradient(other)
    assert all(torch.equal(g1[k], g2[k]) for k in g1) and any(g1[k].abs().sum() > 0 for k in g1)


def test_a_judge_that_fails_too_often_stops_the_run(toy, tmp_path, judge_server):
    train = pd.read_parquet(toy["train"])
    judge_server.always = {q: "500" for q in train["question"]}
    run = judge_run(toy, tmp_path, judge_server, max_retries=0)
    with pytest.raises(
        local.UnverifiedError,
        match=r"step 0: the judge left \d+ of 16 responses undecided, more "
        r"than reward.verifier.max_unverified_share \(0.1\)",
    ):
        local.train(run)
    assert not (tmp_path / "model").exists()
