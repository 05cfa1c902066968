"""Code and workflow hygiene, as CI checks it: `ruff check`, `snakemake --lint` and `snakefmt --check` are clean."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO

BIN = Path(sys.executable).parent


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)


def test_snakemake_lint_is_clean(snakemake_cmd):
    # Lints the workflow as config.yaml plans it: every rule has log, conda env, resources.
    proc = snakemake_cmd("--lint", cwd=REPO, check=False)
    assert proc.returncode == 0, f"snakemake --lint found problems:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"


def test_ruff_check_is_clean():
    # pyproject.toml's [tool.ruff.lint]: pyflakes and import order over the Python code (`make lint`)
    ruff = shutil.which("ruff", path=str(BIN)) or "ruff"
    proc = run([ruff, "check", "rlev", "tests", "benchmarks"])
    assert proc.returncode == 0, f"ruff check found problems (`ruff check --fix` sorts imports):\n{proc.stdout[-6000:]}"


def test_snakefmt_check_is_clean():
    snakefmt = shutil.which("snakefmt", path=str(BIN)) or "snakefmt"
    proc = run([snakefmt, "--check", "Snakefile", "workflow/"])
    if proc.returncode != 0:
        diff = run([snakefmt, "--diff", "Snakefile", "workflow/"])
        raise AssertionError(
            f"snakefmt would reformat (run `snakefmt Snakefile workflow/`):\n{diff.stdout[-6000:]}"
            f"\n{proc.stderr[-2000:]}"
        )


def test_every_rule_declares_log_threads_and_memory():
    # snakemake --lint asks for log and an environment; the catalogue workflows also declare
    # threads and mem_mb on every rule (threads cannot be checked on the parsed workflow: an
    # undeclared rule silently gets 1), so read the rule files themselves.
    missing = []
    for path in [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]:
        blocks = re.split(r"^(?=(?:rule|checkpoint) \w+:)", path.read_text(), flags=re.M)
        for block in blocks:
            name = re.match(r"(?:rule|checkpoint) (\w+):", block)
            if not name or name.group(1) == "all":
                continue
            for directive, pattern in (
                ("log", r"^    log:"),
                ("threads", r"^    threads:"),
                ("mem_mb", r"^    resources:\n(?:        .*\n)*?        mem_mb="),
            ):
                if not re.search(pattern, block, flags=re.M):
                    missing.append(f"{path.name}:{name.group(1)} {directive}")
    assert not missing, "rules without declared log/threads/mem_mb: " + ", ".join(missing)
