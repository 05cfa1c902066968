import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture
def snakemake_cmd():
    """Run snakemake from this interpreter's environment, with `rlev` on PATH for the rules."""
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}

    def run(*args, cwd, check=True):
        cmd = [shutil.which("snakemake", path=bindir) or "snakemake", "--snakefile", str(REPO / "Snakefile"), *args]
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
        return proc

    return run


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
