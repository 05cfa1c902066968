"""rlev: Reinforcement Learning with Explicit Human Values, a reproducible pipeline."""


class InputError(ValueError):
    """Something in the user's data or settings that the user fixes; the message says what and how.

    The `rlev` command prints these as its own one-line error (no traceback); any other
    exception is a bug in rlev and keeps its traceback.
    """
