"""Correctness verifiers: the ``1[y correct]`` in the RLEV reward.

Two verifiers share one call signature,
``verifier(golds, responses, questions=None) -> list[bool | None]``:

- ``rule``: :class:`RuleVerifier` (option letters, numbers, normalised strings, LaTeX via
  math_verify); always decides.
- ``judge``: :class:`JudgeVerifier`, an LLM judge behind an OpenAI-compatible endpoint, as
  in the paper; ``None`` marks a sample the judge could not decide.

>>> build_verifier({"kind": "rule"})(["17"], ["#### 17"])
[True]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rlev.verify.rule import RuleVerifier, extract_final_answer, verify

if TYPE_CHECKING:
    from rlev.verify.judge import JudgeError, JudgeVerifier

__all__ = [
    "JUDGE_OPTIONS",
    "VERIFIER_KINDS",
    "JudgeError",
    "JudgeVerifier",
    "RuleVerifier",
    "build_verifier",
    "judge_options",
    "run_verifier",
    "extract_final_answer",
    "verify",
]

VERIFIER_KINDS = ("rule", "judge")
# Keys of a run's `reward.verifier` block (config schema) that are JudgeVerifier arguments of the same name.
JUDGE_OPTIONS = ("on_failure", "timeout_s", "max_retries", "concurrency", "cache_path", "max_tokens", "api_key_env")


def __getattr__(name: str):
    # The judge (and its HTTP client, aiohttp) loads on first use: rule-verified jobs never pay for it.
    if name in ("JudgeError", "JudgeVerifier"):
        from rlev.verify import judge

        return getattr(judge, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_verifier(cfg: dict[str, Any]) -> RuleVerifier | JudgeVerifier:
    """Build a verifier from a config mapping with a ``kind`` key.

    ``{"kind": "rule", **RuleVerifier args}`` or ``{"kind": "judge", base_url, model,
    ...}`` (see :class:`JudgeVerifier` for the judge's keys). An unknown kind or option
    raises ValueError listing the choices.

    >>> build_verifier({"kind": "oracle"})
    Traceback (most recent call last):
    ...
    ValueError: unknown verifier kind 'oracle'; choose one of ('rule', 'judge')
    """
    args = dict(cfg)
    kind = args.pop("kind", None)
    if kind == "rule":
        allowed = ("rel_tol", "abs_tol", "math_timeout_s")
        unknown = sorted(set(args) - set(allowed))
        if unknown:
            raise ValueError(f"unknown rule verifier option(s) {unknown}; allowed: {list(allowed)}")
        return RuleVerifier(**args)
    if kind == "judge":
        from rlev.verify.judge import JudgeVerifier

        return JudgeVerifier.from_config(args)
    raise ValueError(f"unknown verifier kind {kind!r}; choose one of {VERIFIER_KINDS}")


def judge_options(verifier: dict[str, Any]) -> dict[str, Any]:
    """JudgeVerifier arguments from a run's ``reward.verifier`` block: ``url`` -> ``base_url``,
    ``model``, and the JUDGE_OPTIONS it sets (unset ones keep JudgeVerifier's defaults).

    The local back end builds its judge from these (:func:`run_verifier`); for verl,
    ``rlev.config.run_config`` writes the same options as ``judge_<option>`` reward kwargs,
    which ``rlev.reward.compute_score`` hands to :func:`build_verifier` unchanged.

    >>> judge_options({"kind": "judge", "url": "http://h:8000/v1", "model": "m", "timeout_s": 5, "nodes": 1})
    {'base_url': 'http://h:8000/v1', 'model': 'm', 'timeout_s': 5}
    """
    out = {"base_url": verifier.get("url"), "model": verifier.get("model")}
    out.update({k: verifier[k] for k in JUDGE_OPTIONS if verifier.get(k) is not None})
    return out


def run_verifier(verifier: dict[str, Any] | None) -> RuleVerifier | JudgeVerifier:
    """The verifier a run's ``reward.verifier`` block describes (None: the rule verifier).

    >>> type(run_verifier(None)).__name__
    'RuleVerifier'
    """
    verifier = verifier or {"kind": "rule"}
    if verifier.get("kind", "rule") == "rule":
        return build_verifier({"kind": "rule"})
    return build_verifier({"kind": "judge", **judge_options(verifier)})
