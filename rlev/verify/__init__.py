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

from typing import Any

from rlev.verify.judge import JudgeError, JudgeVerifier
from rlev.verify.rule import RuleVerifier, extract_final_answer, verify

__all__ = [
    "VERIFIER_KINDS",
    "JudgeError",
    "JudgeVerifier",
    "RuleVerifier",
    "build_verifier",
    "extract_final_answer",
    "verify",
]

VERIFIER_KINDS = ("rule", "judge")


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
        return JudgeVerifier.from_config(args)
    raise ValueError(f"unknown verifier kind {kind!r}; choose one of {VERIFIER_KINDS}")
