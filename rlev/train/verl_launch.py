"""What the two verl launchers share: the RL run (rlev.train.verl, `verl.trainer.main_ppo`) and
the score predictor's SFT (rlev.predictor.verl, `verl.trainer.sft_trainer`).

Each launcher turns its settings into (key, value) pairs and then, through this module:

    hydra_overrides(pairs)    dotted Hydra overrides, each value written in Hydra's grammar
                              (hydra_value: quoted where Hydra would misread it)
    compose(name, overrides)  verl's shipped config `name` composed offline with them: an
                              unknown key or a malformed value is a VerlConfigError naming
                              the override, here rather than on the cluster
    command_lines(...)        the launch command, one shell-quoted override per line, extra
                              overrides passed through "$@"
    write_launch_files(...)   the composed config (YAML) and the executable script, side by side
    run_script(...)           bash <script>, its output copied to stdout and a log, stopped when
                              a check gives a reason

The checks of the composed config differ by trainer (verl's validate_config for main_ppo;
the dataclasses sft_trainer builds for the SFT) and stay with each launcher.
"""

from __future__ import annotations

import importlib.resources
import re
import shlex
import string
import subprocess
import sys
from pathlib import Path

VERL_VERSION = "0.9.1"  # the verl whose config tree and keys the launchers are written against


class VerlConfigError(ValueError):
    """The settings do not make a verl 0.9.1 config that verl would accept."""


class RunStopped(RuntimeError):
    """The launcher stopped a verl run (its check gave a reason)."""


# --- settings -> overrides ------------------------------------------------------------------


def hydra_value(value) -> str:
    """Write a Python value in Hydra's override grammar (so it parses back to the same type).

    >>> [hydra_value(v) for v in (True, None, 3, 1e-05, [1, "a"], "Qwen/Qwen2.5-7B", "1.0", "a b")]
    ['true', 'null', '3', '1e-05', '[1,a]', 'Qwen/Qwen2.5-7B', "'1.0'", "'a b'"]
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, str):
        if re.fullmatch(r"[A-Za-z0-9_./:~@+-]+", value) and not _looks_typed(value):
            return value
        # Quoted: a string with spaces or grammar characters, or one Hydra would read
        # as a number/bool/null.
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    raise VerlConfigError(f"cannot write {value!r} ({type(value).__name__}) as a Hydra override value")


def _looks_typed(text: str) -> bool:
    if text.lower() in {"true", "false", "null", "nan", "inf", "+inf", "-inf"}:
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def hydra_overrides(pairs: list[tuple[str, object]]) -> list[str]:
    """`key=value` overrides of (key, value) pairs, values in Hydra's grammar."""
    return [f"{key}={hydra_value(value)}" for key, value in pairs]


# --- compose --------------------------------------------------------------------------------


def verl_config_dir() -> Path:
    """The `trainer/config` directory of the installed verl package."""
    import verl

    return Path(verl.__file__).resolve().parent / "trainer" / "config"


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def compose(config_name: str, overrides: list[str]):
    """Compose verl's config `config_name` (ppo_trainer, sft_trainer_engine) with `overrides`, offline,
    as verl's own entry point would.

    Unknown keys (without a leading `+`) and malformed values raise VerlConfigError naming
    the offending override.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    for override in overrides:
        try:
            parser.parse_override(override)
        except HydraException as err:
            raise VerlConfigError(f"malformed override {override!r}: {err}") from err
    try:
        with initialize_config_dir(config_dir=str(verl_config_dir()), version_base=None):
            return hydra_compose(config_name=config_name, overrides=list(overrides))
    except HydraException as err:
        quoted = set(re.findall(r"'([^']+)'", str(err)))
        culprits = [o for o in overrides if _override_key(o) in quoted] or ["(see the message)"]
        raise VerlConfigError(f"verl {VERL_VERSION} rejects override {', '.join(culprits)}: {err}".rstrip()) from err


# --- launch files ---------------------------------------------------------------------------


def command_lines(command: str, overrides: list[str], raw: tuple[str, ...] = ()) -> list[str]:
    """`command` continued over lines: one shell-quoted override each, then `raw` lines as written
    (for a shell variable), then "$@" (the extra overrides the script is called with)."""
    return [
        f"{command} \\",
        *[f"    {shlex.quote(o)} \\" for o in overrides],
        *[f"    {r} \\" for r in raw],
        '    "$@"',
    ]


class _LaunchTemplate(string.Template):
    """A shell template in rlev/train/templates/: `@name@` is a field; bash's own `$`, `${...}` stay as written."""

    delimiter = "@"
    pattern = r"@(?:(?P<named>[a-z_]+)@|(?P<escaped>(?!))|(?P<braced>(?!))|(?P<invalid>(?!)))"


def render_template(name: str, **fields) -> str:
    """The package's template `rlev/train/templates/<name>` with its `@field@`s filled (a missing one
    is a KeyError)."""
    text = importlib.resources.files("rlev.train").joinpath("templates", name).read_text()
    return _LaunchTemplate(text).substitute({k: str(v) for k, v in fields.items()})


def write_launch_files(run_dir: Path, script_name: str, script_text: str, config_name: str, cfg) -> Path:
    """The composed config as `<run_dir>/<config_name>` and the executable `<run_dir>/<script_name>`;
    returns the script's path."""
    from omegaconf import OmegaConf

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / config_name).write_text(OmegaConf.to_yaml(cfg))
    script = run_dir / script_name
    script.write_text(script_text)
    script.chmod(0o755)
    return script


# --- running --------------------------------------------------------------------------------


def stream(cmd: list[str], log_path: Path, check=None, check_every_s: float = 30.0) -> None:
    """Run `cmd`, copying its output line by line to stdout and to `log_path`.

    With `check` (a function returning None or a reason), the run is stopped (its whole
    process group) as soon as `check` gives a reason, checked every `check_every_s`: RunStopped.
    A failed command is a RuntimeError naming its exit code and the log.
    """
    import os
    import signal
    import threading

    reason: list[str] = []
    with (
        open(log_path, "a") as log,
        subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, start_new_session=True
        ) as proc,
    ):
        log.write(f"$ {shlex.join(cmd)}\n")
        done = threading.Event()

        def watch():
            while not done.wait(check_every_s):
                problem = check()
                if problem:
                    reason.append(problem)
                    os.killpg(proc.pid, signal.SIGTERM)
                    if not done.wait(60):
                        os.killpg(proc.pid, signal.SIGKILL)
                    return

        watcher = threading.Thread(target=watch, daemon=True) if check else None
        if watcher:
            watcher.start()
        for line in proc.stdout:
            sys.stdout.write(line)
            log.write(line)
        code = proc.wait()
        done.set()
    if reason:
        raise RunStopped(f"stopped the run: {reason[0]} (log: {log_path})")
    if code:
        raise RuntimeError(f"command failed with exit code {code} (log: {log_path}): {shlex.join(cmd)}")


def run_script(script: Path, log_path: Path, check=None) -> None:
    """`bash <script>` through stream (output to stdout and `log_path`, stopped by `check`)."""
    stream(["bash", str(script)], Path(log_path), check=check)
