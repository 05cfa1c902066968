"""The RLEV reward: the s(x) formula, and verl's compute_score with the rule verifier and
with the LLM judge (against the loopback judge server of test_verify_judge)."""

import asyncio
import inspect
import time

import numpy as np
import pytest

from rlev import reward as R
from rlev.reward import compute_score, reward_scale
from rlev.verify import JudgeError
from test_verify_judge import FakeJudgeServer


@pytest.mark.parametrize(
    "variant, value, alpha, form, expected",
    [
        ("correctness", 0.5, 10, "additive_clipped", 1.0),
        ("human", 0.0, 10, "additive_clipped", 1.0),
        ("human", 0.02, 10, "additive_clipped", 1.2),  # the paper's mean v
        ("human", 0.1, 10, "additive_clipped", 2.0),  # alpha * v = 1: the clip starts
        ("human", 0.5, 10, "additive_clipped", 2.0),  # clipped
        ("human", 0.5, 1, "additive_clipped", 1.5),
        ("human", 0.5, 10, "multiplicative", 6.0),  # not clipped
        ("weak", 0.04, 10, "additive_clipped", 1.4),  # the variant's v goes in as is
    ],
)
def test_reward_scale(variant, value, alpha, form, expected):
    assert reward_scale(variant, value, alpha, form) == pytest.approx(expected)


def test_reward_scale_is_vectorised_and_bounded():
    v = np.linspace(0.001, 1, 50)
    s = reward_scale("human", v, 10, "additive_clipped")
    assert s.shape == v.shape and (s >= 1).all() and (s <= 2).all()
    assert (np.diff(s) >= 0).all()


def test_reward_scale_rejects_unknown_names():
    with pytest.raises(ValueError, match="variant"):
        reward_scale("humane", 0.1, 10, "additive_clipped")
    with pytest.raises(ValueError, match="form"):
        reward_scale("human", 0.1, 10, "additive")


def score(*args, **kwargs) -> dict:
    return asyncio.run(compute_score(*args, **kwargs))


OK = {"truncated": 0.0, "error": 0.0}  # the extras every scored sample carries besides its score


def fails(match, *args, **kwargs) -> None:
    """compute_score never raises (verl would drop the sample silently): the sample is an
    error that stops the run (rlev.train.verl.unverified_problem); the reason is the inner one."""
    out = score(*args, **kwargs)
    assert out["error"] == 1.0 and out["unverified"] == 1.0 and out["score"] == 0.0
    with pytest.raises(Exception, match=match):
        asyncio.run(R._compute_score(*args, **kwargs))


def test_compute_score_is_async_for_verl():
    # verl's reward loop awaits coroutine functions (inspect.iscoroutinefunction) in its event loop
    assert inspect.iscoroutinefunction(compute_score)


def test_compute_score_rule():
    extra = {"value": 0.05}
    right = score("synthetic", "3+4=7 #### 7", "7", extra, alpha=10, variant="human")
    assert right == {"score": 1.5, "correct": 1.0, "value": 0.05, "scale": 1.5, "unverified": 0.0, **OK}
    wrong = score("synthetic", "#### 8", "7", extra, alpha=10, variant="human")
    assert wrong == {"score": 0.0, "correct": 0.0, "value": 0.05, "scale": 1.5, "unverified": 0.0, **OK}
    # cut at the response budget (verl's reward manager sets the flag): wrong whatever it says
    cut = score("synthetic", "3+4=7 #### 7", "7", {**extra, "truncated": True}, alpha=10, variant="human")
    assert cut["score"] == 0.0 and cut["correct"] == 0.0 and cut["truncated"] == 1.0
    baseline = score("synthetic", "#### 7", "7", extra, variant="correctness")
    assert baseline["score"] == 1.0 and baseline["scale"] == 1.0
    multiplicative = score("synthetic", "#### 7", "7", {"value": 0.3}, alpha=10, form="multiplicative")
    assert multiplicative["score"] == pytest.approx(4.0)


def test_compute_score_takes_the_runs_scale_from_extra_info():
    # a row of a run's own verl file (rlev.values): its scale is used as is
    extra = {"id": "q1", "split": "train", "value": 0.01, "scale": 1.37}
    out = score("synthetic", "#### 7", "7", extra, variant="uniform")
    assert out["score"] == 1.37 and out["value"] == 0.01


def test_training_row_without_its_runs_scale_is_an_error():
    extra = {"id": "q1", "split": "train", "value": 0.01}
    for variant in ("uniform", "shuffled", "weak", "predicted"):
        fails(
            rf"training row 'q1' has no extra_info.scale.*{variant}", "synthetic", "#### 7", "7", extra, variant=variant
        )


def test_validation_rows_get_the_human_aligned_scale():
    extra = {"id": "t1", "split": "test", "value": 0.05}
    assert score("s", "#### 7", "7", extra, variant="shuffled")["score"] == 1.5
    assert score("s", "#### 7", "7", extra, variant="correctness")["score"] == 1.0


def test_compute_score_rejects_unknown_names():
    fails("verifier", "s", "#### 7", "7", {"value": 0.1}, verifier="oracle")
    fails("form", "s", "#### 7", "7", {"value": 0.1}, form="additive")
    fails("judge_model and judge_url", "s", "#### 7", "7", {"value": 0.1}, verifier="judge")


# --- the LLM judge --------------------------------------------------------------------


@pytest.fixture(scope="module")
def judge_server():
    srv = FakeJudgeServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def fresh(judge_server):
    judge_server.reset()
    R._JUDGES.clear()  # each test builds its own module-level judge
    yield judge_server
    R._JUDGES.clear()
    deadline = time.monotonic() + 3  # let a hung "timeout" reply finish before the next test / shutdown
    while judge_server.in_flight and time.monotonic() < deadline:
        time.sleep(0.02)


FAST = dict(judge_timeout_s=0.3, judge_max_retries=2, judge_backoff_s=0.01, judge_max_backoff_s=0.02)


def judged(server, response, gold="7", question="q", **kwargs) -> dict:
    extra = {"value": 0.05, "question": question}
    return score(
        "s",
        response,
        gold,
        extra,
        verifier="judge",
        judge_url=server.base_url,
        judge_model="judge-model",
        **{**FAST, **kwargs},
    )


def test_judge_verdicts_become_scores(fresh):
    assert judged(fresh, "#### 7") == {"score": 1.5, "correct": 1.0, "value": 0.05, "scale": 1.5, "unverified": 0.0,
                                       **OK}  # fmt: skip
    assert judged(fresh, "#### 8", question="q2")["score"] == 0.0
    assert fresh.requests == 2


def test_judge_failure_is_counted_not_silently_zero(fresh):
    fresh.always["broken"] = "500"
    out = judged(fresh, "#### 7", question="broken")
    assert out["unverified"] == 1.0 and out["score"] == 0.0 and out["correct"] == 0.0
    assert fresh.attempts["broken"] == 3  # the first attempt and 2 retries
    judge = R.judge_for(fresh.base_url, "judge-model", "unverified", **{k[6:]: v for k, v in FAST.items()})
    assert judge.stats.unverified == 1  # the module-level judge counts it too


def test_judge_recovers_from_a_timeout_and_a_malformed_reply(fresh):
    fresh.faults["flaky"] = ["timeout", "no_verdict"]
    out = judged(fresh, "#### 7", question="flaky")
    assert out["unverified"] == 0.0 and out["score"] == 1.5


def test_judge_failure_can_stop_the_run(fresh):
    fresh.always["broken"] = "not_json"
    out = judged(fresh, "#### 7", question="broken", judge_on_failure="stop")
    assert out["error"] == 1.0 and out["score"] == 0.0  # an error: the launcher stops the run
    with pytest.raises(JudgeError, match="after retries"):
        asyncio.run(R._compute_score("s", "#### 7", "7", {"value": 0.05, "question": "broken"}, verifier="judge",
                                     judge_url=fresh.base_url, judge_model="judge-model", judge_on_failure="stop",
                                     **FAST))  # fmt: skip


def test_judge_served_by_verl_is_reached_through_the_router_address(fresh):
    address = fresh.base_url.removeprefix("http://").removesuffix("/v1")  # verl passes host:port
    out = score(
        "s",
        "#### 7",
        "7",
        {"value": 0.05},
        verifier="judge",
        judge_model="judge-model",
        reward_router_address=address,
        **FAST,
    )
    assert out["correct"] == 1.0 and fresh.requests == 1


def test_one_module_level_judge_per_endpoint(fresh):
    async def many():
        return await asyncio.gather(*[
            compute_score("s", f"#### {i}", "3", {"value": 0.05, "question": f"q{i}"}, verifier="judge",
                          judge_url=fresh.base_url, judge_model="judge-model", **FAST)
            for i in range(6)
        ])  # fmt: skip

    outs = asyncio.run(many())
    assert [o["correct"] for o in outs] == [0.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    assert len(R._JUDGES) == 1
    (judge,) = R._JUDGES.values()
    assert judge.stats.verified == 6 and judge.stats.unverified == 0


def test_config_checks_the_judge_settings():
    import yaml

    from conftest import REPO
    from rlev.config import ConfigError, Run, run_config, validate

    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    raw["reward"]["verifier"] = {"kind": "judge"}
    with pytest.raises(ConfigError, match="reward.verifier.model"):
        validate(dict(raw))
    raw["reward"]["verifier"] = {"kind": "judge", "model": "judge-model"}
    with pytest.raises(ConfigError, match="reward.verifier.url: scale 'tiny' trains with the local back end"):
        validate(dict(raw))
    raw["reward"]["verifier"] = {"kind": "judge", "model": "judge-model", "url": "http://127.0.0.1:9/v1",
                                 "on_failure": "stop", "timeout_s": 5}  # fmt: skip
    config = validate(raw)
    reward = run_config(config, Run("synthetic", "tiny", "rloo", "human-a10-additive_clipped", 0))["reward"]
    # scalar judge_* keys reach verl's compute_score as reward kwargs (rlev.train.verl passes scalars)
    assert reward["verifier"]["kind"] == "judge" and reward["judge_on_failure"] == "stop"
    assert reward["judge_timeout_s"] == 5
