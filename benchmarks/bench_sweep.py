"""Where a sweep's time goes: start-up against work, per rule, and wall time against the machine's limit.

    .venv/bin/python benchmarks/bench_sweep.py                   # the smoke config (2-3 minutes on 2 cores)
    .venv/bin/python benchmarks/bench_sweep.py --sweep default   # the default config.yaml (about 10 minutes)
    .venv/bin/python benchmarks/bench_sweep.py --from DIR        # a sweep already run in DIR (e.g. after make run)
    .venv/bin/python benchmarks/bench_sweep.py --plan-only       # only the paper matrix's dry run (about a minute)

Runs the sweep with Snakemake in a fresh working directory (the config copied in, this
checkout's Snakefile) and reads two records of every job it ran:

- Snakemake's own metadata (.snakemake/metadata/): when the job started (its outputs
  marked incomplete) and ended (its newest output written): the job's seconds;
- the job's log, where `rlev` writes one line (rlev.timing.LINE) splitting the command's
  wall time into start-up (interpreter, CLI and every module loaded while it ran:
  torch, transformers, verl, pandas, ...) and work, and the same split in CPU seconds.

Local jobs are forked from rlev.jobserver, which loads those modules once per `snakemake`
call; its start-up (results/logs/jobserver.log) is a row of its own, "(jobserver)".

Wall-clock start-up grows with whatever else runs on the machine; the CPU columns do not,
so compare those between machines or busy runs.

Prints per rule: jobs, job-seconds, start-up seconds, work seconds and the rest (Snakemake's
job handling, the shell), then the sweep's wall time against its compute limit, the sum
of work seconds / cores (a perfect scheduler with no fixed cost per job), and the time to
plan the paper's matrix (`snakemake -n --profile profiles/slurm --config scale=7B dataset=rlev`),
beside the time Snakemake takes to plan as many trivial jobs with the same profile: what is left
between the two is this workflow's own (its Snakefile, input functions and larger jobs).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {"smoke": REPO / "tests" / "config_smoke" / "config.yaml", "default": REPO / "config.yaml"}
# rlev.timing.LINE, as written into a job's log (logs written before the CPU split lack it).
TIMING = re.compile(
    r"rlev (\S+): start-up (\S+) s \(interpreter and CLI (\S+) s, imports (\S+) s\), work (\S+) s"
    r"(?:; CPU: start-up (\S+) s, work (\S+) s)?"
)


def snakemake(*args: str, cwd: Path, snakefile: Path = REPO / "Snakefile") -> tuple[float, str]:
    """Run a workflow (by default this checkout's) in `cwd`; returns its wall seconds and its output
    (exits on failure). The output is captured, so a dry run's printing costs what it costs in a pipe."""
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [str(bindir / "snakemake"), "--snakefile", str(snakefile), *args]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed in {cwd}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return seconds, proc.stdout + proc.stderr


def job_records(workdir: Path) -> list[dict]:
    """One record per job Snakemake ran in `workdir`: rule, log, start, end (from its metadata)."""
    jobs: dict[tuple, dict] = {}
    meta_dir = workdir / ".snakemake" / "metadata"
    if not meta_dir.is_dir():
        sys.exit(f"{meta_dir} is missing: {workdir} holds no Snakemake run (run a sweep there first)")
    for path in meta_dir.rglob("*"):  # one file per output (long names are split into folders)
        if not path.is_file():
            continue
        record = json.loads(path.read_text())
        if record.get("starttime") is None or record.get("endtime") is None:
            continue
        # A job's outputs share its log (or, without a log, its start time).
        key = (record["rule"], tuple(record.get("log") or ()) or record["starttime"])
        job = jobs.setdefault(
            key,
            {
                "rule": record["rule"],
                "log": record.get("log") or [],
                "start": record["starttime"],
                "end": record["endtime"],
            },
        )
        job["start"] = min(job["start"], record["starttime"])
        job["end"] = max(job["end"], record["endtime"])
    return list(jobs.values())


def job_timing(workdir: Path, job: dict) -> dict | None:
    """The start-up / work split rlev wrote into the job's log; None without one."""
    for log in job["log"]:
        path = workdir / log
        if path.is_file():
            for line in reversed(path.read_text(errors="replace").splitlines()):
                if m := TIMING.search(line):
                    return {
                        "startup": float(m.group(2)),
                        "imports": float(m.group(4)),
                        "work": float(m.group(5)),
                        "startup_cpu": float(m.group(6) or 0),
                        "work_cpu": float(m.group(7) or 0),
                    }
    return None


def summarise(workdir: Path, wall: float | None, cores: int) -> dict:
    jobs = job_records(workdir)
    rows: dict[str, dict] = defaultdict(lambda: defaultdict(float))
    for job in jobs:
        row = rows[job["rule"]]
        seconds = max(job["end"] - job["start"], 0.0)
        timing = job_timing(workdir, job)
        row["jobs"] += 1
        row["job_s"] += seconds
        if timing is None:
            row["unmeasured"] += 1
            continue
        row["startup_s"] += timing["startup"]
        row["imports_s"] += timing["imports"]
        row["work_s"] += timing["work"]
        row["startup_cpu_s"] += timing["startup_cpu"]
        row["work_cpu_s"] += timing["work_cpu"]
        row["other_s"] += seconds - timing["startup"] - timing["work"]
    # The job server (rlev.jobserver) loads torch once per `snakemake` call for all local jobs:
    # its start-up is part of the sweep's, though no rule runs it.
    server_log = workdir / "results" / "logs" / "jobserver.log"
    if server_log.is_file():
        for m in TIMING.finditer(server_log.read_text(errors="replace")):
            row = rows["(jobserver)"]
            row["jobs"] += 1
            row["job_s"] += float(m.group(2))
            row["startup_s"] += float(m.group(2))
            row["imports_s"] += float(m.group(4))
            row["startup_cpu_s"] += float(m.group(6) or 0)
    if wall is None:  # a sweep run elsewhere: from its first job's start to its last job's end
        wall = max(j["end"] for j in jobs) - min(j["start"] for j in jobs)
    total = defaultdict(float)
    for row in rows.values():
        for key, value in row.items():
            total[key] += value
    return {"rows": dict(rows), "total": dict(total), "wall": wall, "cores": cores}


def print_table(summary: dict, title: str) -> None:
    rows, total = summary["rows"], summary["total"]
    print(f"\n{title}")
    header = (
        f"{'rule':<20} {'jobs':>5} {'job-s':>8} {'start-up s':>11} {'(imports)':>10} {'work s':>8} "
        f"{'other s':>8} {'start-up %':>10} {'CPU: start-up s':>15} {'work s':>8} {'start-up %':>10}"
    )
    print(header)
    print("-" * len(header))

    def line(name, row):
        share = 100 * row.get("startup_s", 0) / row["job_s"] if row.get("job_s") else 0.0
        cpu = row.get("startup_cpu_s", 0) + row.get("work_cpu_s", 0)
        cpu_share = 100 * row.get("startup_cpu_s", 0) / cpu if cpu else 0.0
        note = f"  ({int(row['unmeasured'])} without a timing line)" if row.get("unmeasured") else ""
        print(
            f"{name:<20} {int(row['jobs']):>5} {row['job_s']:>8.1f} {row.get('startup_s', 0):>11.1f} "
            f"{row.get('imports_s', 0):>10.1f} {row.get('work_s', 0):>8.1f} {row.get('other_s', 0):>8.1f} "
            f"{share:>9.1f}% {row.get('startup_cpu_s', 0):>15.1f} {row.get('work_cpu_s', 0):>8.1f} "
            f"{cpu_share:>9.1f}%{note}"
        )

    for name in sorted(rows, key=lambda r: -rows[r]["job_s"]):
        line(name, rows[name])
    print("-" * len(header))
    line("total", total)
    wall, cores = summary["wall"], summary["cores"]
    limit = total.get("work_s", 0) / cores
    print(
        f"\nwall time {wall:.1f} s on {cores} cores; compute limit (work seconds / cores) {limit:.1f} s; "
        f"wall / limit {wall / limit if limit else float('nan'):.2f}x"
    )
    print(
        f"job-seconds / cores {total['job_s'] / cores:.1f} s; start-up share of job-seconds "
        f"{100 * total.get('startup_s', 0) / total['job_s']:.1f}%"
    )
    cpu = total.get("startup_cpu_s", 0) + total.get("work_cpu_s", 0)
    if cpu:  # unaffected by other processes on the machine, unlike the wall-clock figures above
        print(
            f"CPU seconds of the commands {cpu:.1f}: start-up {total['startup_cpu_s']:.1f} "
            f"({100 * total['startup_cpu_s'] / cpu:.1f}%), work {total['work_cpu_s']:.1f}; "
            f"work CPU / cores {total['work_cpu_s'] / cores:.1f} s"
        )


SLURM_PROFILE = ("--profile", str(REPO / "profiles" / "slurm"))
PAPER_MATRIX = (*SLURM_PROFILE, "--config", "scale=7B", "dataset=rlev")
# Snakemake's own cost of planning: N jobs that each write one file, under the same profile.
TRIVIAL_WORKFLOW = """
rule all:
    input: expand("out/{i}.txt", i=range(config["jobs"] - 1))
rule one:
    output: "out/{i}.txt"
    log: "logs/{i}.log"
    threads: 1
    resources: mem_mb=1000
    shell: "touch {output} 2> {log}"
"""


def median_seconds(repeats: int, *args: str, cwd: Path, snakefile: Path = REPO / "Snakefile") -> tuple[float, str]:
    """The median wall seconds of `repeats` runs (a dry run is too short for one timing to say much)."""
    runs = [snakemake(*args, cwd=cwd, snakefile=snakefile) for _ in range(repeats)]
    return statistics.median(seconds for seconds, _ in runs), runs[-1][1]


def plan_timings(workdir: Path, repeats: int) -> dict:
    """Wall seconds of the dry run of the paper's matrix (SLURM profile, 7B, the rlev dataset),
    printing every job (what a user sees) and with --quiet, and of Snakemake alone planning as
    many trivial jobs with the same profile (the part of the time no workflow can remove)."""
    shutil.copy(REPO / "config.yaml", workdir / "config.yaml")
    printed, out = median_seconds(repeats, "-n", *PAPER_MATRIX, cwd=workdir)
    jobs = int(re.search(r"^total\s+(\d+)", out, re.MULTILINE).group(1))
    quiet, _ = median_seconds(repeats, "-n", "--quiet", *PAPER_MATRIX, cwd=workdir)
    trivial = workdir / "trivial"
    trivial.mkdir()
    (trivial / "Snakefile").write_text(TRIVIAL_WORKFLOW)
    floor = {
        n: median_seconds(repeats, "-n", *SLURM_PROFILE, "--config", f"jobs={n}", cwd=trivial,
                          snakefile=trivial / "Snakefile")[0]
        for n in (2, jobs)
    }  # fmt: skip
    return {"jobs": jobs, "printed_s": printed, "quiet_s": quiet, "snakemake_2_jobs_s": floor[2],
            "snakemake_same_jobs_s": floor[jobs]}  # fmt: skip


def print_plan(plan: dict, repeats: int) -> None:
    print(
        f"planning the paper matrix (snakemake -n, SLURM profile, scale=7B dataset=rlev; {plan['jobs']} jobs; "
        f"median of {repeats}): {plan['printed_s']:.2f} s printing every job, {plan['quiet_s']:.2f} s with --quiet"
    )
    print(
        f"Snakemake alone, same profile, trivial jobs: {plan['snakemake_2_jobs_s']:.2f} s for 2, "
        f"{plan['snakemake_same_jobs_s']:.2f} s for {plan['jobs']} (printing every job)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sweep", choices=sorted(CONFIGS), default="smoke", help="which config to run")
    parser.add_argument("--cores", type=int, default=os.cpu_count(), help="snakemake --cores (default: all)")
    parser.add_argument(
        "--from",
        dest="from_dir",
        type=Path,
        default=None,
        help="analyse the sweep already run in this directory instead of running one",
    )
    parser.add_argument("--keep", type=Path, default=None, help="run in this directory and keep it")
    parser.add_argument("--no-plan", action="store_true", help="skip timing the paper matrix's dry run")
    parser.add_argument("--plan-only", action="store_true", help="only time the paper matrix's dry run")
    parser.add_argument("--repeats", type=int, default=5, help="dry runs per timing (the median is printed)")
    parser.add_argument("--json", type=Path, default=None, help="also write the summary here")
    args = parser.parse_args()

    summary: dict = {}
    if args.from_dir:
        summary = summarise(args.from_dir, None, args.cores)
        print_table(summary, f"sweep in {args.from_dir} (wall = first job start to last job end)")
    elif not args.plan_only:
        workdir = args.keep or Path(tempfile.mkdtemp(prefix=f"bench_sweep_{args.sweep}_"))
        workdir.mkdir(parents=True, exist_ok=True)
        if (workdir / ".snakemake").exists() or (workdir / "results").exists():
            sys.exit(f"{workdir} holds an earlier sweep: pass an empty directory (or --from {workdir})")
        shutil.copy(CONFIGS[args.sweep], workdir / "config.yaml")
        wall, _ = snakemake("--cores", str(args.cores), cwd=workdir)
        summary = summarise(workdir, wall, args.cores)
        if not args.keep:
            shutil.rmtree(workdir)
        print_table(
            summary, f"{args.sweep} sweep ({CONFIGS[args.sweep].relative_to(REPO)}), snakemake --cores {args.cores}"
        )
    if not args.no_plan:
        with tempfile.TemporaryDirectory(prefix="bench_sweep_plan_") as tmp:
            summary["plan"] = plan_timings(Path(tmp), args.repeats)
        print_plan(summary["plan"], args.repeats)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
