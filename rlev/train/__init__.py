"""Training back ends: `local` (single process, CPU or one GPU) and `verl` (GPUs, Ray); `train_run`
is what `rlev train` (the rules `train_local` and `train_verl`) runs."""

from __future__ import annotations

from pathlib import Path

import yaml


def _under_runs_dir(path: Path) -> bool:
    from rlev.config import RUNS_DIR

    return Path(RUNS_DIR).resolve() in [path.resolve(), *path.resolve().parents]


def train_run(run: dict, spec_path: Path | None = None, out: str | None = None) -> None:
    """Train one run (its saved config.yaml, or a spec given inline or as a file) and, on the local
    back end, evaluate it in the same process.

    A workflow run directory only ever holds the run its own config.yaml describes, so a changed spec
    aimed at one is refused (its tables would cite a config they were not made with); `out` puts a
    hand-made run elsewhere.
    """
    from rlev.config import RUNS_DIR, ConfigError

    if out:
        if _under_runs_dir(Path(out)):
            raise ConfigError(
                f"--out {out}: {RUNS_DIR}/ holds the workflow's runs; put a hand-made run "
                "elsewhere (e.g. --out hand/run1)"
            )
        run["out_dir"] = out
    out_dir = Path(run["out_dir"])
    saved = out_dir / "config.yaml"
    own = spec_path is not None and saved.exists() and saved.samefile(spec_path)
    if not own and not out and _under_runs_dir(out_dir):
        where = spec_path if spec_path is not None else "(inline)"
        raise ConfigError(
            f"--spec {str(where)[:80]}: its out_dir {out_dir} is a workflow run directory and the spec is not that "
            f"run's own config.yaml; train a changed copy with --out DIR outside {RUNS_DIR}/, or change config.yaml "
            "and rerun snakemake"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    if not own:  # the run's full configuration beside its outputs, before anything else
        saved.write_text(yaml.safe_dump(run, sort_keys=False))
    if run["scale"]["backend"] == "local":
        from rlev.evaluate.in_domain import evaluate_local_run
        from rlev.train.local import train

        train(run)
        evaluate_local_run(run)
    else:
        from rlev.train.verl import train

        train(run)
