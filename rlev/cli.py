"""`rlev`: every pipeline stage as a command, so each can run without Snakemake.

Each stage takes a --spec: the resolved settings it needs, as a JSON string (what the
Snakemake rules pass) or a path to a YAML/JSON file (e.g. a run's saved config.yaml):

    rlev plan [--config mine.yaml] [--set k=v]  # the runs config.yaml plans, their directories, which are done
    rlev synth   --spec '{"train_exams": 400, ...}' --out data/synthetic/exams.jsonl --demos ...
    rlev prepare --spec '{"source": "table", ...}' --dataset synthetic --out results/data/synthetic
    rlev init-model --spec SCALE --train results/data/synthetic/train.parquet --demos ... --out DIR
    rlev sft     --spec SCALE --init DIR --train ... --demos ... --out DIR
    rlev values  --spec RUN        # the values the run trains with (`rlev train` writes them first), without training
    rlev train   --spec results/runs/<...>/config.yaml   # (local back end: then evaluates it, eval/)
    rlev train   --spec edited.yaml --out hand/run1      # a hand-made run, outside results/runs/
    rlev evaluate --spec SCALE|RUN/config.yaml --model DIR --test results/data/synthetic/test.parquet --out DIR
    rlev report table1 --plan results/plan.json --runs RUN_DIR... --init SFT_EVAL/metrics.json --out results/tables/table1
           (every table of rlev.report.tables.TABLES; each writes .csv, .md and .html)
    rlev predictor train|evaluate|label --spec PREDICTOR --data PARQUET [--model DIR] --out PATH
    rlev ood-data --spec BENCHMARK --out rows.parquet; rlev ood --spec SCALE --model M --data ... --out DIR
    rlev report table2 --runs RUN_DIR... --base OOD_BASE_DIR --benchmarks B... --out results/tables/table2
    rlev report table8|bootstrap --runs RUN_DIR... --out results/tables/table8
    rlev report table4|table5|table6 --runs RUN_DIR... --out results/tables/table4
    rlev eos     --spec SCALE --model RUN/model --test ... --samples RUN/eval/samples.parquet --out RUN/eval/eos.parquet
    rlev figure2 --eos RUN/eval/eos.parquet... --out results/figures/figure2
    rlev report mechanism --plan results/plan.json --runs RUN_DIR... --test TEST.parquet --init SFT_EVAL/samples.parquet --out results/tables/mechanism
    rlev report value_stats --datasets results/data/synthetic ... --figures results/figures --out results/tables/value_stats
    rlev length-by-value --plan results/plan.json --runs RUN_DIR... --out results/figures/length_by_value_main
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import yaml


def read_spec(spec: str) -> dict:
    """A JSON object given inline, or a YAML/JSON file."""
    text = spec.strip()
    if text.startswith("{"):
        return json.loads(text)
    return yaml.safe_load(Path(spec).read_text())


def run_status(config: dict, run) -> str:
    """done (evaluated, and its config.yaml is the planned one), stale (another config), or to do."""
    from rlev.config import ConfigError, check_run_dirs

    if not (Path(run.path) / "eval" / "metrics.json").is_file():
        return "to do"
    try:
        check_run_dirs(config, [run.path])
    except ConfigError:
        return "stale (its config.yaml is not the planned one: the workflow retrains it)"
    return "done"


def cmd_plan(args) -> None:
    from rlev.config import load_config, plan_runs

    config = load_config(args.base, _overrides(args.set), args.config or [])
    runs = plan_runs(config)
    status = {run: run_status(config, run) for run in runs}
    width = max(len(run.path) for run in runs)
    for run in runs:
        print(f"{run.path:<{width}}  {status[run]}")
    done = sum(s == "done" for s in status.values())
    print(f"{len(runs)} runs planned, {done} done, {len(runs) - done} to (re)train", file=sys.stderr)


def cmd_synth(args) -> None:
    from rlev.data.synthetic import write

    write(read_spec(args.spec), Path(args.out), Path(args.demos))


def cmd_prepare(args) -> None:
    from rlev.data.prepare import prepare

    spec = read_spec(args.spec)
    prepare(spec["source"], Path(args.out), args.dataset, **spec["data"], rejects_log=args.rejects_log)


def cmd_init_model(args) -> None:
    from rlev.sft import init_model

    init_model(read_spec(args.spec)["tiny"], Path(args.train), args.demos, Path(args.out))


def cmd_sft(args) -> None:
    import pandas as pd

    from rlev.sft import train_sft

    s = read_spec(args.spec)
    train_sft(
        Path(args.init),
        Path(args.out),
        pd.read_parquet(args.train),
        args.demos,
        s["sft_steps"],
        s["sft_batch"],
        s["sft_lr"],
        s["sft_threads"],
        seed=0,
        device=s["device"],
        dtype=s["dtype"],
        metrics_path=Path(args.metrics) if args.metrics else None,
    )


def cmd_values(args) -> None:
    import pandas as pd

    from rlev.values import write_values

    run = read_spec(args.spec)
    write_values(run, pd.read_parquet(run["dataset"]["train"]))


def cmd_train(args) -> None:
    from rlev.train import train_run

    train_run(
        read_spec(args.spec), spec_path=None if args.spec.lstrip().startswith("{") else Path(args.spec), out=args.out
    )


def cmd_evaluate(args) -> None:
    from rlev.evaluate.in_domain import evaluate

    evaluate(read_spec(args.spec), args.model, args.test, Path(args.out))


def cmd_report(args) -> None:
    from rlev.report.tables import report

    report(args.table, Path(args.out), plan=args.plan, **{name: getattr(args, name) for name in REPORT_FLAGS})


def cmd_predictor(args) -> None:
    """The score predictor's stages (rlev.predictor): train, evaluate, label."""
    import pandas as pd

    from rlev.predictor import train
    from rlev.predictor.predict import evaluate_predictor, label_dataset

    s = read_spec(args.spec)
    if args.action == "train":
        train(s, pd.read_parquet(args.data), Path(args.out), args.name)
    elif args.action == "evaluate":
        evaluate_predictor(args.model, args.data, Path(args.out), s)
    else:
        label_dataset(args.model, args.data, Path(args.out), s, total=s["label_total"])


def cmd_ood_data(args) -> None:
    from rlev.data.ood import ood_data

    ood_data(read_spec(args.spec), Path(args.out))


def cmd_ood(args) -> None:
    from rlev.evaluate.ood import ood

    ood(read_spec(args.spec), args.model, args.data, Path(args.out))


def cmd_eos(args) -> None:
    from rlev.evaluate.eos import eos

    eos(read_spec(args.spec), args.model, args.test, args.samples, Path(args.out), args.share, args.batch)


def cmd_figure2(args) -> None:
    from rlev.analysis.figure2 import MIN_RESPONSES, figure2
    from rlev.report.runs import check_plan

    check_plan(args.plan, [str(Path(p).parent.parent) for p in args.eos])  # <run>/eval/eos.parquet
    figure2(args.eos, Path(args.out), MIN_RESPONSES if args.min_responses is None else args.min_responses)


def cmd_curves(args) -> None:
    from rlev.analysis.curves import curves

    curves(args.runs, Path(args.out), args.title)


def cmd_landing(args) -> None:
    from rlev.report.landing import landing

    landing(args.runs, Path(args.table1), Path(args.bootstrap) if args.bootstrap else None, Path(args.out))


def cmd_length_by_value(args) -> None:
    from rlev.analysis.mechanism import length_by_value
    from rlev.report.runs import check_plan

    check_plan(args.plan, args.runs)
    length_by_value(args.runs, Path(args.out))


# The flags of `rlev report TABLE` beyond --plan and --out: each builder takes those it reads, and
# rlev.report.tables.report refuses the others.
REPORT_ARGUMENTS = [
    ("--runs", dict(nargs="+", help="the table's run directories")),
    (
        "--init",
        dict(
            nargs="*",
            help="a file of the starting policy's evaluation folder (its metrics.json, or for "
            "mechanism its samples.parquet)",
        ),
    ),
    ("--resamples", dict(type=int, help="bootstrap: prompt resamples (default rlev.stats.RESAMPLES)")),
    (
        "--seed",
        dict(
            type=int,
            help="bootstrap: numpy seed of the resampling (default rlev.stats.SEED); mechanism: "
            "of the permutations (default rlev.analysis.mechanism.SEED)",
        ),
    ),
    (
        "--cluster",
        dict(
            choices=["exam", "prompt"],
            help="bootstrap: resample whole exams (the split is by exam; the default) or single prompts",
        ),
    ),
    ("--truth", dict(default=None, help="table3: generated records with a true_difficulty per id")),
    ("--predictor", dict(nargs="*", help="table3: the score predictor's metrics.json and label_stats.json")),
    ("--base", dict(default=None, help="table2: the starting policy's OOD folder (<benchmark>/metrics.json)")),
    ("--benchmarks", dict(nargs="*", help="table2: benchmark names, in column order")),
    ("--test", dict(default=None, help="mechanism: the runs' test split (points and difficulty per prompt)")),
    (
        "--permutations",
        dict(type=int, help="mechanism: within-difficulty shuffles (default rlev.analysis.mechanism.PERMUTATIONS)"),
    ),
    ("--datasets", dict(nargs="+", help="value_stats: prepared dataset folders, the main one first")),
    ("--figures", dict(default=None, help="value_stats: the folder for Figures 3 and 4")),
]
REPORT_FLAGS = [flag[2:] for flag, _ in REPORT_ARGUMENTS]


def _overrides(pairs: list[str] | None) -> dict:
    out = {}
    for pair in pairs or []:
        key, _, value = pair.partition("=")
        out[key] = yaml.safe_load(value)
    return out


def main(argv: list[str] | None = None, as_process: bool | None = None) -> None:
    """The `rlev` command. argv: the arguments (default sys.argv[1:]); as_process: this process
    ends with the command (default: when argv is None)."""
    as_process = argv is None if as_process is None else as_process
    if argv is None:  # a sweep's job runs in a fork of the loaded job server, when there is one
        import time

        from rlev.jobclient import run_via_server
        from rlev.timing import process_age

        code = run_via_server(sys.argv, (process_age() or 0.0, time.process_time()))
        if code is not None:
            raise SystemExit(code)
    from rlev.report.tables import TABLES

    # Defaults that live in heavier modules (numpy, pandas) are filled in by the command
    # that uses them, so parsing (and `rlev --help`) imports nothing beyond the CLI.
    parser = argparse.ArgumentParser(
        prog="rlev", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name, fn, *arguments):
        p = sub.add_parser(name)
        for flag, kw in arguments:
            p.add_argument(flag, **kw)
        p.set_defaults(fn=fn)
        return p

    config_args = [
        ("--base", dict(default="config.yaml", help="the config the others merge into")),
        (
            "--config",
            dict(
                nargs="*", metavar="FILE", help="YAML files merged into --base key by key, like snakemake --configfile"
            ),
        ),
        ("--set", dict(nargs="*", help="top-level key=value overrides, like snakemake --config")),
    ]
    spec = ("--spec", dict(required=True, help="JSON object or YAML/JSON file"))
    add("plan", cmd_plan, *config_args)
    add("synth", cmd_synth, spec, ("--out", dict(required=True)), ("--demos", dict(required=True)))
    add(
        "prepare",
        cmd_prepare,
        spec,
        ("--dataset", dict(required=True)),
        ("--out", dict(required=True)),
        ("--rejects-log", dict(default=None, help="also copy rejects.csv here, where a failed run keeps it")),
    )
    add(
        "init-model",
        cmd_init_model,
        spec,
        ("--train", dict(required=True)),
        ("--demos", dict(default=None)),
        ("--out", dict(required=True)),
    )
    add(
        "sft",
        cmd_sft,
        spec,
        ("--init", dict(required=True)),
        ("--train", dict(required=True)),
        ("--demos", dict(default=None)),
        ("--out", dict(required=True)),
        ("--metrics", dict(default=None)),
    )
    add("values", cmd_values, spec)
    add(
        "train",
        cmd_train,
        spec,
        (
            "--out",
            dict(
                default=None,
                help="the run directory, overriding the spec's out_dir (a hand-made run: not under results/runs/)",
            ),
        ),
    )
    add(
        "evaluate",
        cmd_evaluate,
        spec,
        ("--model", dict(default=None, help="default: a run config's <out_dir>/model")),
        ("--test", dict(default=None, help="default: a run config's dataset.test")),
        ("--out", dict(required=True)),
    )
    add(
        "report",
        cmd_report,
        ("table", dict(choices=list(TABLES))),
        ("--plan", dict(default=None, help="the workflow's results/plan.json: refuse runs that do not match it")),
        ("--out", dict(required=True, help="path without suffix; .csv, .md and .html are written")),
        *REPORT_ARGUMENTS,
    )
    add(
        "predictor",
        cmd_predictor,
        ("action", dict(choices=["train", "evaluate", "label"])),
        spec,
        (
            "--data",
            dict(
                required=True,
                help="train: exam training split; evaluate: exam test split; label: the difficulty-only training split",
            ),
        ),
        ("--model", dict(default=None, help="evaluate/label: the predictor's model directory")),
        ("--name", dict(default="predictor", help="train: experiment name (verl)")),
        ("--out", dict(required=True, help="train/evaluate: a folder; label: the labelled parquet")),
    )
    add("ood-data", cmd_ood_data, spec, ("--out", dict(required=True, help="the benchmark's rows (parquet)")))
    add(
        "ood",
        cmd_ood,
        spec,
        ("--model", dict(required=True, help="model id or directory")),
        ("--data", dict(required=True, help="the benchmark's rows (parquet, from rlev ood-data)")),
        ("--out", dict(required=True, help="a folder: samples.parquet, metrics.json")),
    )
    add(
        "eos",
        cmd_eos,
        spec,
        ("--model", dict(required=True)),
        ("--test", dict(required=True)),
        ("--samples", dict(required=True, help="the run's eval/samples.parquet")),
        ("--out", dict(required=True, help="eos.parquet")),
        (
            "--share",
            dict(
                type=float,
                help="share of the test set in each of the top- and bottom-valued groups "
                "(default rlev.evaluate.eos.SHARE = 0.025, the paper's 200 of 8,000)",
            ),
        ),
        (
            "--batch",
            dict(type=int, help="prompts per teacher-forced forward pass (default rlev.evaluate.eos.EOS_BATCH)"),
        ),
    )
    add(
        "figure2",
        cmd_figure2,
        ("--eos", dict(nargs="+", required=True, help="<run>/eval/eos.parquet files")),
        ("--plan", dict(default=None, help="the workflow's results/plan.json: refuse runs that do not match it")),
        ("--out", dict(required=True, help="path without suffix; .png, .svg, .csv and _stop.csv are written")),
        (
            "--min-responses",
            dict(
                type=int,
                help="draw a position while at least this many responses of a run "
                "still run (default rlev.analysis.figure2.MIN_RESPONSES)",
            ),
        ),
    )
    add(
        "landing",
        cmd_landing,
        ("--runs", dict(nargs="+", required=True, help="every planned run directory")),
        ("--table1", dict(required=True, help="results/tables/table1.csv")),
        ("--bootstrap", dict(default=None, help="results/tables/bootstrap.csv")),
        ("--out", dict(required=True, help="the landing page (.rst)")),
    )
    add(
        "curves",
        cmd_curves,
        ("--runs", dict(nargs="+", required=True, help="run directories of one experiment")),
        ("--title", dict(default="runs", help="what the runs are, for the figure title")),
        ("--out", dict(required=True, help="path without suffix; .png, .svg and .csv are written")),
    )
    plan = ("--plan", dict(default=None, help="the workflow's results/plan.json: refuse runs that do not match it"))
    add(
        "length-by-value",
        cmd_length_by_value,
        plan,
        ("--runs", dict(nargs="+", required=True)),
        ("--out", dict(required=True, help="path without suffix; .png, .svg and .csv are written")),
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from rlev import InputError
    from rlev.timing import command_timer

    try:
        with command_timer(args.command):  # one line in the job's log: start-up against work
            args.fn(args)
    except InputError as err:  # the user's data or settings: the message says what to fix
        print(f"rlev {args.command}: error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    if as_process:  # the process is this command and ends with it
        import gc

        # Interpreter exit would spend over a CPU-second (torch + transformers + verl: ~4,000
        # modules) collecting cyclic garbage the OS reclaims anyway; frozen objects are skipped
        # (files and other objects are still finalised as their references go).
        gc.freeze()


if __name__ == "__main__":
    main()
