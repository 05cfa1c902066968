"""Optional Weights & Biases mirror of a run's metrics.jsonl.

metrics.jsonl is the record every table and figure reads; wandb is a convenience view of
the same numbers and is never required. It runs offline by default (files under
`<out_dir>/train/wandb`, upload later with `wandb sync`), so no account or key is
needed; online mode reads the key the way wandb always does (WANDB_API_KEY or
~/.netrc) and rlev never reads, logs or stores it. Config keys whose names look like
credentials are dropped before the run's config is sent.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

_SECRET_WORDS = ("key", "token", "secret", "password")


def redact(config):
    """A copy of `config` without entries whose names look like credentials.

    >>> redact({"a": 1, "judge": {"api_key": "x", "api_key_env": "JUDGE_KEY", "model": "m"}})
    {'a': 1, 'judge': {'model': 'm'}}
    """
    if isinstance(config, dict):
        return {k: redact(v) for k, v in config.items() if not any(w in str(k).lower() for w in _SECRET_WORDS)}
    if isinstance(config, list):
        return [redact(v) for v in config]
    return config


def start_wandb(settings: dict | None, run: dict, out_dir: Path):
    """A wandb run mirroring this training run, or None when disabled or wandb is missing.

    settings: the scale's `wandb` block ({enabled, mode, project}). The wandb run id is
    derived from the run id, so a resumed training run continues the same wandb run.
    """
    if not settings or not settings.get("enabled", False):
        return None
    try:
        import wandb
    except ImportError:
        log.warning("wandb.enabled is set but wandb is not installed; metrics go to metrics.jsonl only")
        return None
    os.environ.setdefault("WANDB_SILENT", "true")
    wandb_dir = Path(out_dir) / "train"
    wandb_dir.mkdir(parents=True, exist_ok=True)
    run_hash = hashlib.sha1(run["run_id"].encode()).hexdigest()[:16]
    return wandb.init(
        project=settings.get("project", "rlev"),
        mode=settings.get("mode", "offline"),
        dir=str(wandb_dir),
        name=run["run_id"],
        id=run_hash,
        resume="allow",
        config=redact(run),
        settings=wandb.Settings(console="off", save_code=False),
    )
