"""The RLEV reward, shared by the local trainer and verl.

    r(x, y) = s(x) * 1[y correct]
    s(x)    = 1 + min(alpha * v(x), 1)     additive_clipped (the paper's RLEV reward)
            = 1 + alpha * v(x)             multiplicative   (the paper's Table 6 contrast)
            = 1                            correctness      (the RLVR baseline)

v(x) is the value the run's variant gives the question (see `rlev.values`: the human
value points / total, a shuffled or difficulty-based stand-in, a predicted value), and the
`uniform` variant gives every question the training mean s_bar. Per-row scales for a
whole training set come from `rlev.values.reward_scales`; `reward_scale` below is the
formula for one value.

verl calls `compute_score` once per response (configured through
`reward.custom_reward_function.{path,name}` with reward kwargs variant / alpha / form /
verifier, see `rlev.train.verl`). How the row's scale reaches it: the run's training job
first writes the run's own verl training file (rlev.values.write_values), whose `extra_info`
carries `value` (the variant's v) and `scale` (s(x)) for every row, computed by the same
`rlev.values.reward_scales` the local trainer calls; compute_score uses `extra_info.scale`
as is. Rows without a `scale` (verl's validation on the shared test file) are scored
with s(v) of their own human value (1 for correctness): validation reports the
human-aligned reward the paper evaluates. A training row of a uniform / shuffled / weak /
predicted run without a `scale` is an error (its scale needs the training set).

compute_score is a coroutine function, which verl's reward loop awaits (verl checks
`inspect.iscoroutinefunction`): the LLM judge's requests then run concurrently on the
reward worker's event loop, and rule verification runs in that loop's thread pool.

A value-independent cost (optional, `reward.cost`, off unless asked for) is subtracted
from the reward of every response, unscaled by s(x):

    r(x, y) = s(x) * 1[y correct] - cost(y)
    cost(y) = per_token * T                                    kind length
            = overlong_penalty * max(0, T - (L - overlong_buffer)) / overlong_buffer
                                                               kind overlong (DAPO's soft
                                                               overlong punishment)
T is the response's token count with its eos (verl's valid response length), L the
response budget (max_new_tokens / max_response_length). s(x) is constant within a prompt,
so without such a term the value cannot change which answer to a prompt is best; with it,
a high-value prompt pays relatively less for a long answer. `response_cost` is the one
formula; the local trainer calls it on its rollouts. On verl, compute_score never sees the
response's tokens, so the cost lives in verl's reward manager (rlev.train.verl_cost and
rlev.train.verl's `reward.reward_manager` overrides): DAPO's own manager for `overlong`,
rlev's LengthCostRewardManager for `length`; both call the same compute_score.

compute_score never raises. verl 0.9.1's trainer (trainer.use_v1) catches an exception
of the reward function, marks the prompt's group failed and pads it in the replay buffer:
the run would go on without those samples and without a word. So a sample that cannot be
scored (a judge that cannot decide after its retries, a row without its scale, any bug)
scores 0 with `unverified: 1` (and `error: 1` when an exception was caught), every result
carries the same keys so verl's extras stay aligned, and each reward worker process
writes its counts to `<stats_dir>/<host>-<pid>.json` (`stats_dir` is a reward kwarg set by
rlev.train.verl). The launcher (rlev.train.verl.unverified_problem) stops the run when an
error occurs or when the unverified share passes the configured limit (0 with
`judge_on_failure="stop"`).

A truncated response (no eos within the budget) scores 0 on every back end: the local
trainer and evaluation count it wrong, and on verl rlev's reward managers
(rlev.train.verl_reward_manager, under the cost managers too) tell compute_score through
`extra_info["truncated"]`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import socket
import threading
import time
from pathlib import Path

import numpy as np

FORMS = ("additive_clipped", "multiplicative")
# Every value variant of the paper (rlev.values documents each).
VARIANTS = ("correctness", "human", "uniform", "shuffled", "weak", "predicted")
# Variants whose scale depends on the whole training set, not on the row alone.
TRAINING_SET_VARIANTS = ("uniform", "shuffled", "weak", "predicted")
VERIFIERS = ("rule", "judge")
COST_KINDS = ("none", "length", "overlong")
# The settings each cost kind reads: the run's identity keeps only these.
COST_SETTINGS = {"none": (), "length": ("per_token",), "overlong": ("overlong_buffer", "overlong_penalty")}


def cost_settings(cost: dict | None) -> dict:
    """The cost block reduced to its kind and the settings that kind reads (kind none: {"kind": "none"}).

    >>> cost_settings({"kind": "length", "per_token": 0.01, "overlong_buffer": 8})
    {'kind': 'length', 'per_token': 0.01}
    """
    cost = dict(cost or {"kind": "none"})
    kind = cost.get("kind", "none")
    if kind not in COST_KINDS:
        raise ValueError(f"reward.cost.kind: unknown cost {kind!r}; choose one of {COST_KINDS}")
    missing = [k for k in COST_SETTINGS[kind] if cost.get(k) is None]
    if missing:
        raise ValueError(f"reward.cost: kind {kind!r} needs {missing}")
    return {"kind": kind, **{k: cost[k] for k in COST_SETTINGS[kind]}}


def response_cost(cost: dict | None, tokens, max_tokens: int | None = None):
    """The value-independent cost of responses of `tokens` tokens (eos included): >= 0, same shape.

    >>> response_cost({"kind": "length", "per_token": 0.01}, [10, 30]).tolist()
    [0.1, 0.3]
    >>> response_cost({"kind": "overlong", "overlong_buffer": 16, "overlong_penalty": 1.0}, [40, 56, 64], 64).tolist()
    [0.0, 0.5, 1.0]
    >>> response_cost(None, [10]).tolist()
    [0.0]
    """
    settings = cost_settings(cost)
    tokens = np.asarray(tokens, dtype=np.float64)
    if settings["kind"] == "length":
        return float(settings["per_token"]) * tokens
    if settings["kind"] == "overlong":
        buffer = int(settings["overlong_buffer"])
        if max_tokens is None or not 0 < buffer <= max_tokens:
            raise ValueError(f"reward.cost.overlong_buffer={buffer} must be in [1, the response budget {max_tokens}]")
        # verl's DAPORewardManager: min(-(T - (L - buffer)) / buffer * penalty_factor, 0), negated.
        exceed = tokens - (max_tokens - buffer)
        return np.maximum(exceed / buffer * float(settings["overlong_penalty"]), 0.0)
    return np.zeros_like(tokens)


def reward_scale(variant: str, value, alpha: float, form: str):
    """s(x) for one value or an array of values: the variant's v in, the scale out.

    >>> float(reward_scale("human", 0.05, 10, "additive_clipped"))
    1.5
    >>> float(reward_scale("human", 0.3, 10, "additive_clipped"))  # clipped at 2
    2.0
    >>> float(reward_scale("human", 0.3, 10, "multiplicative"))
    4.0
    >>> float(reward_scale("correctness", 0.3, 10, "additive_clipped"))
    1.0

    `value` must already be the variant's value (shuffled, weak or predicted v); the
    `uniform` variant has no per-row formula (its s_bar is a training-set mean), so it
    is refused here: use `rlev.values.reward_scales`.
    """
    value = np.asarray(value, dtype=np.float64)
    if variant not in VARIANTS:
        raise ValueError(f"unknown reward variant {variant!r}; choose one of {VARIANTS}")
    if variant == "correctness":
        return np.ones_like(value)
    if variant == "uniform":
        raise ValueError(
            "the uniform variant's scale s_bar is the mean s(x) over the training prompts; "
            "compute it with rlev.values.reward_scales(run, train_rows)"
        )
    if form == "additive_clipped":
        return 1.0 + np.minimum(alpha * value, 1.0)
    if form == "multiplicative":
        return 1.0 + alpha * value
    raise ValueError(f"unknown reward form {form!r}; choose one of {FORMS}")


# --- verl's reward function ----------------------------------------------------------

_JUDGES: dict = {}  # (base_url, model, on_failure) -> JudgeVerifier, built on first use
_JUDGES_LOCK = threading.Lock()


def judge_for(base_url: str, model: str, on_failure: str = "unverified", **options):
    """The module-level judge client for (url, model, on_failure), built once per process.

    One client per endpoint keeps its per-event-loop concurrency limit and its counts
    (`.stats`) across all compute_score calls of a reward worker.
    """
    from rlev.verify import build_verifier

    key = (base_url, model, on_failure, tuple(sorted(options.items())))
    with _JUDGES_LOCK:
        judge = _JUDGES.get(key)
        if judge is None:
            judge = _JUDGES[key] = build_verifier(
                {"kind": "judge", "base_url": base_url, "model": model, "on_failure": on_failure, **options}
            )
    return judge


def _row_scale(extra_info: dict, variant: str, alpha: float, form: str) -> tuple[float, float]:
    """(value, scale) of one row, from the run's values file or the row's own value."""
    value = float(extra_info.get("value", math.nan))
    scale = extra_info.get("scale")
    if scale is not None and not (isinstance(scale, float) and math.isnan(scale)):
        return value, float(scale)
    if variant in TRAINING_SET_VARIANTS and extra_info.get("split") == "train":
        raise ValueError(
            f"compute_score: training row {extra_info.get('id', '?')!r} has no extra_info.scale, but the "
            f"{variant!r} variant's scale needs the whole training set; train on the run's own verl file "
            "written when its training starts (rlev.values.write_values), not the prepare stage's"
        )
    if variant not in VARIANTS:
        raise ValueError(f"unknown reward variant {variant!r}; choose one of {VARIANTS}")
    if math.isnan(value):
        raise ValueError(f"compute_score: row {extra_info.get('id', '?')!r} has neither extra_info.scale nor value")
    # Outside the run's training file: the human-aligned scale (1 for correctness).
    return value, float(reward_scale("correctness" if variant == "correctness" else "human", value, alpha, form))


async def _compute_score(
    data_source,
    solution_str,
    ground_truth,
    extra_info=None,
    alpha: float = 10.0,
    variant: str = "human",
    form: str = "additive_clipped",
    verifier: str = "rule",
    judge_url: str | None = None,
    judge_model: str | None = None,
    judge_on_failure: str = "unverified",
    reward_router_address: str | None = None,
    **kwargs,
) -> dict:
    """The score of one sample (see compute_score, which calls this and never raises).

    Raises on what cannot be scored (unknown form or variant, a training row without its
    scale, a judge without an endpoint); a judge that cannot decide returns unverified.
    """
    extra_info = dict(extra_info or {})
    if form not in FORMS:
        raise ValueError(f"unknown reward form {form!r}; choose one of {FORMS}")
    value, scale = _row_scale(extra_info, variant, float(alpha), form)
    gold, response = str(ground_truth), str(solution_str)
    truncated = bool(extra_info.get("truncated", False))
    if truncated:  # wrong whatever it says, as on the local back end; no judge call
        verdict = False
    elif verifier == "rule":
        from rlev.verify import verify

        # Rule checks are CPU work: off the event loop, so responses are checked in parallel.
        verdict = await asyncio.get_running_loop().run_in_executor(None, verify, gold, response)
    elif verifier == "judge":
        if judge_url is None and reward_router_address:
            judge_url = f"http://{reward_router_address}/v1"
        if not judge_url or not judge_model:
            raise ValueError(
                "compute_score with verifier='judge' needs judge_model and judge_url (or verl's "
                "reward_router_address when verl serves the judge)"
            )
        # Other judge_* kwargs are JudgeVerifier options (judge_timeout_s -> timeout_s, ...).
        options = {k[len("judge_") :]: v for k, v in kwargs.items() if k.startswith("judge_")}
        judge = judge_for(judge_url, judge_model, judge_on_failure, **options)
        verdict = await judge.averify(gold, response, str(extra_info.get("question", "")))
    else:
        raise ValueError(f"unknown verifier {verifier!r}; choose one of {VERIFIERS}")
    unverified = verdict is None
    correct = bool(verdict)
    return {
        "score": scale * correct,
        "correct": float(correct),
        "value": value,
        "scale": scale,
        "unverified": float(unverified),
        "truncated": float(truncated),
        "error": 0.0,
    }


# --- never raise: count what could not be scored ---------------------------------------

log = logging.getLogger(__name__)
STATS_WRITE_EVERY_S = 5.0  # a reward worker rewrites its counts file at most this often (and at once on an error)
_STATS = {"scored": 0, "unverified": 0, "errors": 0, "first_error": None}
_STATS_WRITTEN = [0.0]
_STATS_LOCK = threading.Lock()


def _record(result: dict, stats_dir: str | None, error: str | None = None) -> None:
    """Count one scored sample in this process and (now and then) write the counts to stats_dir."""
    with _STATS_LOCK:
        _STATS["scored"] += 1
        _STATS["unverified"] += int(result["unverified"] > 0)
        if error is not None:
            _STATS["errors"] += 1
            _STATS["first_error"] = _STATS["first_error"] or error
        now = time.monotonic()
        if not stats_dir or (error is None and now - _STATS_WRITTEN[0] < STATS_WRITE_EVERY_S):
            return
        _STATS_WRITTEN[0] = now
        snapshot = dict(_STATS)
    path = Path(stats_dir) / f"{socket.gethostname()}-{os.getpid()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(snapshot))
    os.replace(tmp, path)  # a reader never sees half a file


async def compute_score(
    data_source, solution_str, ground_truth, extra_info=None, stats_dir: str | None = None, **kwargs
) -> dict:
    """verl's custom reward function: score = s(x) * correct, with its parts as logged extras.

    Returns {"score", "correct", "value", "scale", "unverified", "truncated", "error"}.
    `unverified` is 1 when the sample could not be scored (then score and correct are 0),
    `error` when that was an exception (logged with its message); it never raises (see
    the module docstring). `truncated` (from extra_info) makes the response wrong.
    Reward kwargs (set per run by rlev.train.verl): alpha, variant, form, verifier
    ("rule" | "judge"), judge_model, judge_url (an OpenAI-compatible endpoint; without it,
    verl's own judge router at `reward_router_address`, which verl passes when it serves
    the judge), judge_on_failure, stats_dir (where this process writes its counts); any
    other `judge_<option>` is passed to rlev.verify.JudgeVerifier as `<option>`
    (judge_timeout_s, judge_max_retries, judge_concurrency, ...). Other kwargs are ignored.
    """
    try:
        result = await _compute_score(data_source, solution_str, ground_truth, extra_info, **kwargs)
    except Exception as err:  # noqa: BLE001 - see the module docstring: raising would drop the samples silently
        row = (extra_info or {}).get("id", "?") if isinstance(extra_info, dict) else "?"
        message = f"compute_score failed on row {row!r}: {type(err).__name__}: {err}"
        log.error(message)
        value = (extra_info or {}).get("value", math.nan) if isinstance(extra_info, dict) else math.nan
        result = {
            "score": 0.0, "correct": 0.0, "value": float(value if value is not None else math.nan),
            "scale": math.nan, "unverified": 1.0,
            "truncated": float(bool((extra_info or {}).get("truncated", False))) if isinstance(extra_info, dict) else 0.0,
            "error": 1.0,
        }  # fmt: skip
        _record(result, stats_dir, message)
        return result
    _record(result, stats_dir)
    return result
