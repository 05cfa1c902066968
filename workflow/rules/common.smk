# Validation of the config (schema + defaults) and every input function of the workflow.
import json
import os
import re
import shlex
from pathlib import Path

from rlev import InputError
from rlev.config import (
    NAME_PATTERN,
    Run,
    config_digest,
    experiment_runs,
    plan_runs,
    policy_init_path,
    run_config,
    validate,
    write_plan,
    write_run_config,
)

try:
    validate(config)
except InputError as err:  # the user's settings: the message, without rlev's frames
    raise WorkflowError(str(err)) from None

# envs/*.yaml install this checkout into their conda env from ${RLEV_ROOT}.
os.environ.setdefault("RLEV_ROOT", workflow.basedir)


# rlev.config validates every dataset, scale and estimator name against NAME_PATTERN, so a
# configured name always matches its wildcard (or the config is refused, naming it).
wildcard_constraints:
    dataset=NAME_PATTERN,
    scale=NAME_PATTERN,
    estimator=NAME_PATTERN,
    reward=r"[A-Za-z0-9_.+-]+",
    seed=r"\d+",


def spec(obj):
    """A dict as one shell-quoted JSON word: how rules hand settings to `rlev`."""
    return shlex.quote(json.dumps(obj, sort_keys=True))


def scales_of_backend(backend):
    """A wildcard regex matching the scales that train with `backend` (never empty)."""
    names = [re.escape(n) for n, s in config["scales"].items() if s["backend"] == backend]
    return "|".join(names) if names else "(?!)"


def get_run(wildcards):
    return Run(wildcards.dataset, wildcards.scale, wildcards.estimator, wildcards.reward, int(wildcards.seed))


def get_run_digest(wildcards):
    """A fingerprint of the run's resolved config: a change reruns rule run_config, then everything after it."""
    return config_digest(run_config(config, get_run(wildcards)))


def get_run_files(experiment, *files):
    """What every run of `experiment` must hold for a table: its config, training record,
    model and evaluation (plus `files`). Asking for all of them makes a plain rerun rebuild
    a run whose training failed or was killed, even when other files of it survived."""
    have = ("config.yaml", "train/metrics.jsonl", "model", "eval/metrics.json", "eval/samples.parquet")
    return [f"{run.path}/{f}" for run in experiment_runs(config, experiment) for f in (*have, *files)]


def get_scale(wildcards):
    return config["scales"][wildcards.scale]


# The scale settings each shared stage reads (rlev/cli.py): its params hold only these, so
# another RL setting (rl_steps, lr, n, ...) leaves the tiny model, its SFT and its evaluation as they are.
STAGE_SCALE_KEYS = {
    "init_model": ("tiny",),
    "sft": ("sft_steps", "sft_batch", "sft_lr", "sft_threads", "device", "dtype"),
    "evaluate": ("backend", "max_new_tokens", "eval_batch", "threads", "device", "dtype", "tensor_parallel"),
}


def get_stage_spec(stage):
    """A params function: the scale settings `stage` reads, as rlev's --spec."""

    def stage_spec(wildcards):
        scale = get_scale(wildcards)
        return spec({k: scale[k] for k in STAGE_SCALE_KEYS[stage] if k in scale})

    return stage_spec


def get_dataset_source(wildcards):
    """The source config prepare loads; synthetic data is read back as a canonical table."""
    ds = config["datasets"][wildcards.dataset]
    if ds["source"] == "synthetic":
        return {"source": "table", "path": f"data/{wildcards.dataset}/exams.jsonl"}
    return ds


def get_prepare_input(wildcards):
    """The data prepare reads, as files: editing the user's own data file reruns prepare and
    everything after it. A local folder (a GAOKAO-Bench checkout, a saved Hub dataset) counts
    file by file, since a folder's time stamp does not change when a file in it is edited."""
    ds = config["datasets"][wildcards.dataset]
    if ds["source"] == "synthetic":
        return [f"data/{wildcards.dataset}/exams.jsonl"]
    path = ds.get("path")
    if not path:
        return []  # a Hugging Face id: read at run time
    if isinstance(path, dict):  # {train: file, test: file}
        return list(path.values())
    if Path(path).is_dir():
        return sorted(str(p) for p in Path(path).rglob("*") if p.is_file() and not p.name.startswith("."))
    return [path]  # a missing file stops the dry run, naming it


def get_demonstrations(wildcards):
    """SFT demonstrations exist for generated datasets only; others use the reference answer."""
    if config["datasets"][wildcards.dataset]["source"] == "synthetic":
        return f"data/{wildcards.dataset}/demonstrations.jsonl"
    return []


def get_policy_init(wildcards):
    """The run's starting model as a file dependency when the pipeline builds it."""
    path = policy_init_path(config, wildcards.dataset, wildcards.scale)
    return [path] if path.startswith("results/") else []


def get_table_runs(experiment):
    return [run.path for run in experiment_runs(config, experiment)]


def init_evaluation(dataset, scale):
    """The starting policy's evaluation: the built model's (sft_eval), else the model id's (base_eval)."""
    path = policy_init_path(config, dataset, scale)
    if path.startswith("results/"):
        return f"{path}_eval/metrics.json"
    return f"results/models/{dataset}/{scale}/base_eval/metrics.json"


def get_init_evaluations(wildcards=None):
    return [init_evaluation(config["dataset"], config["scale"])]


def get_eval_spec(wildcards):
    """The evaluation settings: the scale's that evaluation reads, and the verifier the runs were
    trained with (reward.verifier)."""
    scale = get_scale(wildcards)
    used = {k: scale[k] for k in STAGE_SCALE_KEYS["evaluate"] if k in scale}
    return spec({**used, "verifier": config["reward"]["verifier"]})


def get_gpu_layout(wildcards, stage):
    """(nodes, GPUs per node) of a GPU job (rlev.train.verl.gpu_layout); (1, 0) at a local scale."""
    from rlev.train.verl import gpu_layout

    run = run_config(config, get_run(wildcards)) if stage == "train" else None
    return gpu_layout(config, stage, wildcards.scale, run)


def get_nodes(stage):
    """The `nodes` resource of a GPU rule: SLURM's --nodes."""
    return lambda wildcards: get_gpu_layout(wildcards, stage)[0]


def get_gres(stage):
    """The `gres` resource of a GPU rule: GPUs per node (SLURM's --gres=gpu:N), empty at a local scale."""

    def gres(wildcards):
        gpus = get_gpu_layout(wildcards, stage)[1]
        return f"gpu:{gpus}" if gpus else ""

    return gres


def get_policy_env(wildcards):
    """The conda env of a job that runs a trained policy: CPU torch locally, the GPU stack at verl scales."""
    return "../../envs/cpu.yaml" if get_scale(wildcards)["backend"] == "local" else "../../envs/verl.yaml"


def table_caption(table):
    """A table's report caption, workflow/report/<table>.rst (rendered through report/table.rst)."""
    path = Path(workflow.basedir) / "workflow" / "report" / f"{table}.rst"
    if not path.is_file():
        raise WorkflowError(f"results/tables/{table}.md goes into the report but has no caption: write {path}")
    return path.read_text().strip()


# The HTML report groups its items by the paper table they belong to.
REPORT_GROUPS = {
    "table1": "1. Table 1: main results",
    "table8": "1. Table 1: main results",
    "bootstrap": "1. Table 1: main results",
    "figure2": "1. Table 1: main results",
    "table2": "2. Table 2: out of distribution",
    "table3": "3. Table 3: noisy values",
    "table4": "4. Tables 4-6: ablations",
    "table5": "4. Tables 4-6: ablations",
    "table6": "4. Tables 4-6: ablations",
    "value_stats": "5. Values (Figures 3-4)",
    "figure3": "5. Values (Figures 3-4)",
    "mechanism": "7. Beyond the paper: mechanism",
}
EXPERIMENT_GROUPS = {
    "main": "table1",
    "ood": "table2",
    "noisy": "table3",
    "ablation": "table4",
    "alpha": "table5",
    "form": "table6",
    "mechanism": "mechanism",
}


def get_report_group(wildcards):
    """The report category of an experiment's training curves (wildcard `experiment`)."""
    return REPORT_GROUPS.get(EXPERIMENT_GROUPS.get(wildcards.experiment, ""), "6. Other")


def get_curves_output():
    """Training curves of every experiment that trains runs (the OOD experiment reuses Table 1's)."""
    names = [e for e in config["experiments"] if e != "ood"]
    return [f"results/figures/curves_{e}.{ext}" for e in names for ext in ("png", "svg", "csv")]


LANDING_PAGE = "results/report/landing.rst"


def get_report_text():
    """The report's first page: the generated landing page once the sweep wrote it, else the static one."""
    landing = Path(LANDING_PAGE).resolve()
    return str(landing) if landing.is_file() else "workflow/report/workflow.rst"


def get_noisy_truth(wildcards=None):
    """The generated records of the noisy-value dataset (each prompt's true difficulty), when generated here."""
    dataset = config["experiments"]["noisy"].get("dataset") or config["dataset"]
    if config["datasets"][dataset]["source"] == "synthetic":
        return [f"data/{dataset}/exams.jsonl"]
    return []


def get_predictor_reports(wildcards=None):
    """The score predictor's exam-test metrics and label statistics, when a `predicted` run is planned."""
    from rlev.config import parse_reward_tag, predictor_dir

    planned = [run for run in plan_runs(config) if parse_reward_tag(run.reward)["variant"] == "predicted"]
    if not planned:
        return []
    folder = predictor_dir(config, config["scale"])
    return [f"{folder}/metrics.json"] + sorted({f"{folder}/labels/{run.dataset}/label_stats.json" for run in planned})


def table_outputs(table, in_report=True):
    """A table's CSV and Markdown, and its HTML (written by the same job) for the report."""
    html = f"results/tables/{table}.html"
    group = REPORT_GROUPS.get(table, "6. Other")  # the report's category: the paper table it belongs to
    in_html = report(html, caption="../report/table.rst", category=group) if in_report else html
    return {"csv": f"results/tables/{table}.csv", "md": f"results/tables/{table}.md", "html": in_html}


def get_analysis_output():
    """Table 8, the paired bootstrap and Figure 2 (all over the main experiment's runs)."""
    tables = [f"results/tables/{t}.{ext}" for t in ("table8", "bootstrap") for ext in ("csv", "md")]
    figures = [f"results/figures/figure2.{ext}" for ext in ("png", "svg", "csv")] + ["results/figures/figure2_stop.csv"]
    return tables + figures


ABLATION_TABLES = {"ablation": "table4", "alpha": "table5", "form": "table6"}


def get_ablation_output():
    """Tables 4-6, each for its experiment when the config declares it."""
    tables = [table for exp, table in ABLATION_TABLES.items() if exp in config["experiments"]]
    return [f"results/tables/{t}.{ext}" for t in tables for ext in ("csv", "md")]


def get_other_datasets():
    """Every dataset the planned runs use besides the main one."""
    return sorted({run.dataset for run in plan_runs(config)} - {config["dataset"]})


def get_value_output():
    """Figures 3 and 4 (values of the main dataset) and the value table of every dataset."""
    figures = [f"results/figures/figure{n}.{ext}" for n in (3, 4) for ext in ("png", "svg")]
    return figures + [f"results/tables/value_stats.{ext}" for ext in ("csv", "md")]


def get_predictor_spec(wildcards):
    """The score predictor's settings at the job's scale (rlev.predictor.predictor_spec)."""
    from rlev.predictor import predictor_spec

    return predictor_spec(config, wildcards.scale)


def get_run_train_data(wildcards):
    """The training split a run reads: the predictor's labelled copy for `predicted` runs."""
    return run_config(config, get_run(wildcards))["dataset"]["train"]


def get_noisy_init_evaluations(wildcards=None):
    """The starting policy's evaluation on the noisy-value dataset (Table 3's base row), when built here."""
    dataset = config["experiments"]["noisy"].get("dataset") or config["dataset"]
    return [init_evaluation(dataset, config["scale"])]


def get_ood_benchmarks():
    return config["experiments"].get("ood", {}).get("benchmarks", [])


def get_ood_base():
    """Where the starting policy's OOD evaluations go (Table 2's base row)."""
    return f"results/ood/base/{config['dataset']}/{config['scale']}"


def get_noisy_output():
    """Table 3 and the score predictor's metrics, when the config plans them."""
    from rlev.config import parse_reward_tag, predictor_dir

    outputs = [f"results/tables/table3.{ext}" for ext in ("csv", "md")] if "noisy" in config["experiments"] else []
    if any(parse_reward_tag(run.reward)["variant"] == "predicted" for run in plan_runs(config)):
        outputs.append(f"{predictor_dir(config, config['scale'])}/metrics.json")
    return outputs


def get_ood_output():
    """Table 2, when the config declares the OOD experiment."""
    return [f"results/tables/table2.{ext}" for ext in ("csv", "md")] if "ood" in config["experiments"] else []


def get_mechanism_dataset():
    """The dataset of the mechanism experiment's runs (its own `dataset`, or the main one)."""
    return config["experiments"]["mechanism"].get("dataset") or config["dataset"]


def get_init_samples(wildcards=None):
    """The starting policy's test answers on the mechanism's dataset (its table's first row), when built here."""
    path = policy_init_path(config, get_mechanism_dataset(), config["scale"])
    return [f"{path}_eval/samples.parquet"] if path.startswith("results/") else []


def get_mechanism_output():
    """Length by value decile for the main runs, and the mechanism table and figure when declared."""
    experiments = ["main"] + (["mechanism"] if "mechanism" in config["experiments"] else [])
    outputs = [f"results/figures/length_by_value_{e}.{ext}" for e in experiments for ext in ("png", "svg", "csv")]
    if "mechanism" in config["experiments"]:
        outputs += [f"results/tables/mechanism.{ext}" for ext in ("csv", "md")]
    return outputs


def get_final_output():
    outputs = ["results/tables/table1.csv", "results/tables/table1.md"]
    outputs += get_ood_output()
    outputs += get_noisy_output()
    outputs += get_value_output()
    outputs += get_analysis_output()
    outputs += get_ablation_output()
    outputs += get_mechanism_output()
    # Every planned run's files too: Snakemake reruns a job whose outputs are missing only when
    # something downstream needs to run or asks for them directly, so a run whose training was
    # killed (its model and metrics removed, its evaluation or the tables left from before) is
    # rebuilt only because the default target asks for its files.
    outputs += list(dict.fromkeys(f for name in config["experiments"] for f in get_run_files(name)))
    outputs += get_curves_output()
    outputs.append(LANDING_PAGE)
    # each table job writes its .html (the report's rendering) beside its .csv and .md
    return outputs + [
        p[: -len(".md")] + ".html" for p in outputs if p.startswith("results/tables/") and p.endswith(".md")
    ]


def check_placeholders():
    """Stop before the first job while a job would be submitted with a profile's CHANGE_ME placeholder."""
    for job in workflow.dag.needrun_jobs():
        for name, value in dict(job.resources).items():
            if isinstance(value, str) and "CHANGE_ME" in value:
                raise WorkflowError(
                    f"resource {name}={value} of {job.rule.name} is a placeholder of profiles/slurm/config.yaml: "
                    "set your account and partitions there (every CHANGE_ME) before submitting"
                )
