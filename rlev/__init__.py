"""rlev: Reinforcement Learning with Explicit Human Values, a reproducible pipeline."""

import math


class InputError(ValueError):
    """Something in the user's data or settings that the user fixes; the message says what and how.

    The `rlev` command prints these as its own one-line error (no traceback); any other
    exception is a bug in rlev and keeps its traceback.
    """


def nan_to_null(obj):
    """`obj` with every non-finite float (an undefined Pearson r, a diverged loss) as None, nested
    dicts and lists included: JSON has no NaN, and strict readers reject Python's.

    >>> nan_to_null({"r": float("nan"), "losses": [0.5, float("inf")], "n": 3})
    {'r': None, 'losses': [0.5, None], 'n': 3}
    """
    if isinstance(obj, dict):
        return {k: nan_to_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [nan_to_null(v) for v in obj]
    return None if isinstance(obj, float) and not math.isfinite(obj) else obj
