"""The registry of the report's tables, TABLES, and `report`, what `rlev report TABLE` runs.

Each table is written once here: the experiment whose runs it reads (the table is planned
when the config declares that experiment), the files it reads besides the runs (as
functions of the validated config), its settings, its category in the HTML report and its
builder. Everything else reads this: the Snakemake rule `table` (one rule, a `{table}`
wildcard constrained to these names), the choices of `rlev report`, the sweep's final
outputs and the report's captions (workflow/report/<name>.rst).

The module imports nothing heavy (the builders are named, not imported), so the Snakefile
and `rlev --help` read it without loading pandas.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

TABLES_DIR = "results/tables"
SUFFIXES = ("csv", "md", "html")  # every table job writes its CSV, Markdown and HTML (the report embeds the HTML)


def _nothing(config: dict) -> dict:
    return {}


def _no_files(config: dict) -> list:
    return []


# --- what the tables read besides their runs, as functions of the validated config -----------


def init_evaluation(config: dict, dataset: str, scale: str, file: str = "metrics.json") -> str:
    """A file of the starting policy's evaluation: the built model's (sft_eval), else the model id's (base_eval)."""
    from rlev.config import policy_init_path

    path = policy_init_path(config, dataset, scale)
    if path.startswith("results/"):
        return f"{path}_eval/{file}"
    return f"results/models/{dataset}/{scale}/base_eval/{file}"


def experiment_dataset(config: dict, experiment: str) -> str:
    """The dataset of an experiment's runs: its own `dataset`, or the main one."""
    return config["experiments"][experiment].get("dataset") or config["dataset"]


def main_start(config: dict) -> dict:
    """--init: the starting policy's evaluation on the main dataset (the tables' first row)."""
    return {"init": [init_evaluation(config, config["dataset"], config["scale"])]}


def noisy_inputs(config: dict) -> dict:
    """Table 3: the starting policy on the noisy-value dataset; the generated records (each prompt's
    true difficulty) when generated here; the score predictor's exam-test metrics and label
    statistics when a `predicted` run is planned."""
    from rlev.config import parse_reward_tag, plan_runs, predictor_dir

    dataset = experiment_dataset(config, "noisy")
    truth = [f"data/{dataset}/exams.jsonl"] if config["datasets"][dataset]["source"] == "synthetic" else []
    planned = [run for run in plan_runs(config) if parse_reward_tag(run.reward)["variant"] == "predicted"]
    predictor = []
    if planned:
        folder = predictor_dir(config, config["scale"])
        predictor = [f"{folder}/metrics.json"] + sorted(
            {f"{folder}/labels/{run.dataset}/label_stats.json" for run in planned}
        )
    return {"init": [init_evaluation(config, dataset, config["scale"])], "truth": truth, "predictor": predictor}


def ood_benchmarks(config: dict) -> list[str]:
    return config["experiments"].get("ood", {}).get("benchmarks", [])


def ood_base(config: dict) -> str:
    """Where the starting policy's OOD evaluations go (Table 2's base row)."""
    return f"results/ood/base/{config['dataset']}/{config['scale']}"


def ood_reads(config: dict) -> list[str]:
    """Table 2's cells: each run's and the starting policy's metrics.json per benchmark."""
    from rlev.config import experiment_runs

    folders = [f"{run.path}/ood" for run in experiment_runs(config, "ood")] + [ood_base(config)]
    return [f"{folder}/{b}/metrics.json" for folder in folders for b in ood_benchmarks(config)]


def ood_options(config: dict) -> dict:
    return {"base": [ood_base(config)], "benchmarks": ood_benchmarks(config)}


def mechanism_inputs(config: dict) -> dict:
    """The runs' test split (points and difficulty per prompt), and the starting policy's test answers
    (a row of its own) when the pipeline built it."""
    from rlev.config import policy_init_path

    dataset = experiment_dataset(config, "mechanism")
    start = policy_init_path(config, dataset, config["scale"])
    init = [f"{start}_eval/samples.parquet"] if start.startswith("results/") else []
    return {"test": [f"results/data/{dataset}/test.parquet"], "init": init}


def mechanism_options(config: dict) -> dict:
    return {"permutations": [config["experiments"]["mechanism"]["permutations"]]}


# --- the registry ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """One table: where its rows come from, what else it reads, how it is built and where the report shows it.

    `inputs(config)` and `options(config)` map `rlev report` flags to files (the job waits for
    them) and to settings; `reads(config)` lists further files the builder finds through its
    other arguments. `build` names the builder, "module:function"; `report` calls it with the
    flags as keyword arguments (runs, out, and the flags the entry declares).
    """

    build: str
    group: str  # the HTML report's category: the paper table it belongs to
    experiment: str | None = "main"  # whose runs the table reads; None: no runs (its own rule)
    inputs: Callable[[dict], dict] = _nothing
    reads: Callable[[dict], list] = _no_files
    options: Callable[[dict], dict] = _nothing
    rule: str = "table"  # the Snakemake rule that writes it
    mem_mb: int = 1000

    def builder(self) -> Callable:
        module, name = self.build.split(":")
        return getattr(importlib.import_module(module), name)


MAIN = "1. Table 1: main results"
ABLATIONS = "4. Tables 4-6: ablations"
BUILDERS = "rlev.report.builders"

TABLES: dict[str, Table] = {
    "table1": Table(f"{BUILDERS}:table1", MAIN, inputs=main_start),
    "table2": Table(
        f"{BUILDERS}:table2", "2. Table 2: out of distribution", "ood", reads=ood_reads, options=ood_options
    ),
    "table3": Table(f"{BUILDERS}:table3", "3. Table 3: noisy values", "noisy", inputs=noisy_inputs),
    "table4": Table(f"{BUILDERS}:table4", ABLATIONS, "ablation", inputs=main_start),
    "table5": Table(f"{BUILDERS}:table5", ABLATIONS, "alpha", inputs=main_start),
    "table6": Table(f"{BUILDERS}:table6", ABLATIONS, "form", inputs=main_start),
    "table8": Table(f"{BUILDERS}:table8", MAIN, inputs=main_start),
    "bootstrap": Table(f"{BUILDERS}:bootstrap", MAIN, mem_mb=2000),
    # Figures 3 and 4 come from the same job (rule value_stats): it reads the prepared datasets, not runs.
    "value_stats": Table(
        "rlev.analysis.value_stats:value_stats", "5. Values (Figures 3-4)", None, rule="value_stats", mem_mb=2000
    ),
    "mechanism": Table(
        "rlev.analysis.mechanism:mechanism",
        "7. Beyond the paper: mechanism",
        "mechanism",
        inputs=mechanism_inputs,
        options=mechanism_options,
        mem_mb=2000,
    ),
}
OTHER_GROUP = "6. Other"


def caption_path(name: str) -> str:
    """A table's report caption, relative to the repository (rendered through workflow/report/table.rst)."""
    return f"workflow/report/{name}.rst"


def planned_tables(config: dict) -> list[str]:
    """The tables the config plans: those reading no runs, and those whose experiment it declares."""
    return [name for name, t in TABLES.items() if t.experiment is None or t.experiment in config["experiments"]]


def table_files(name: str) -> list[str]:
    return [f"{TABLES_DIR}/{name}.{ext}" for ext in SUFFIXES]


def report(name: str, out: Path, runs: list[str] = (), plan: str | None = None, **given) -> None:
    """Build table `name` into out.{csv,md,html}; `given`: the flags its builder takes (None: not given).

    Runs are first checked against the plan (results/plan.json) when one is given. `init`
    names files of the starting policy's evaluation folder (the files the job waits for);
    the builders read the folder.
    """
    from rlev import InputError

    table = TABLES[name]
    build = table.builder()
    takes = inspect.signature(build).parameters
    given = {k: v for k, v in given.items() if v is not None}
    extra = sorted(set(given) - set(takes))
    if extra:
        raise InputError(f"{name} takes no --{', --'.join(extra)}")
    if table.experiment is None and runs:
        raise InputError(f"{name} reads no run directories: drop --runs")
    if table.experiment is not None:
        if not runs:
            raise InputError(f"{name} reads run directories: give --runs")
        if plan:
            import json

            from rlev.config import check_run_dirs

            check_run_dirs(json.loads(Path(plan).read_text()), runs)
        given["runs"] = list(runs)
    if "init" in given:
        given["init"] = [str(Path(f).parent) for f in given["init"]]
    build(out=Path(out), **given)
