import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def run_snakemake(*args, cwd, check=True) -> subprocess.CompletedProcess:
    """Run snakemake from this interpreter's environment, with `rlev` on PATH for the rules."""
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
    cmd = [shutil.which("snakemake", path=bindir) or "snakemake", "--snakefile", str(REPO / "Snakefile"), *args]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture
def snakemake_cmd():
    return run_snakemake


FIXTURES = Path(__file__).resolve().parent / "fixtures"
# A hand-made CSV in a user's own layout with one broken row per validation rule.
BAD_CSV = FIXTURES / "bad_exams.csv"
BAD_CSV_COLUMNS = {
    "id": "qid",
    "exam_id": "paper",
    "question": "prompt",
    "answer": "reference",
    "score": "points",
    "total": "paper_total",
    "difficulty": "level",
    "split": "fold",
}
