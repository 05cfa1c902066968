"""The RLEV reward, shared by the local trainer and verl.

    r(x, y) = s(x) * 1[y correct]
    s(x)    = 1 + min(alpha * v(x), 1)     additive_clipped (the paper's RLEV reward)
            = 1 + alpha * v(x)             multiplicative   (the paper's Table 6 contrast)
            = 1                            correctness      (the RLVR baseline)

v(x) = points of the question / total points of its exam, in (0, 1].

verl calls `compute_score` once per response (configured through
`reward.custom_reward_function.{path,name}` and `reward_kwargs` alpha / variant / form);
the local trainer calls `reward_scale` once per training row and multiplies by the
verifier's verdict, so both back ends compute the same number.
"""

from __future__ import annotations

import numpy as np

FORMS = ("additive_clipped", "multiplicative")
VARIANTS = ("correctness", "human")


def reward_scale(variant: str, value, alpha: float, form: str):
    """s(x) for one value or an array of values.

    >>> float(reward_scale("human", 0.05, 10, "additive_clipped"))
    1.5
    >>> float(reward_scale("human", 0.3, 10, "additive_clipped"))  # clipped at 2
    2.0
    >>> float(reward_scale("human", 0.3, 10, "multiplicative"))
    4.0
    >>> float(reward_scale("correctness", 0.3, 10, "additive_clipped"))
    1.0
    """
    value = np.asarray(value, dtype=np.float64)
    if variant == "correctness":
        return np.ones_like(value)
    if variant not in VARIANTS:
        raise ValueError(f"unknown reward variant {variant!r}; choose one of {VARIANTS}")
    if form == "additive_clipped":
        return 1.0 + np.minimum(alpha * value, 1.0)
    if form == "multiplicative":
        return 1.0 + alpha * value
    raise ValueError(f"unknown reward form {form!r}; choose one of {FORMS}")


def compute_score(data_source, solution_str, ground_truth, extra_info=None, alpha: float = 10.0,
                  variant: str = "human", form: str = "additive_clipped", **kwargs) -> dict:
    """verl's custom reward function: score = s(x) * correct, with the parts as logged extras."""
    from rlev.verify import verify

    correct = bool(verify(str(ground_truth), solution_str))
    value = float((extra_info or {}).get("value", 0.0))
    scale = float(reward_scale(variant, value, alpha, form))
    return {"score": scale * correct, "correct": float(correct), "value": value, "scale": scale}
