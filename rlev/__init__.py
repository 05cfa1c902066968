"""rlev: Reinforcement Learning with Explicit Human Values, a reproducible pipeline."""
