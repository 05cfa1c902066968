# Validation of the config (schema + defaults) and every input function of the workflow.
import json
import os
import re
import shlex
from pathlib import Path

from rlev import InputError
from rlev.report.tables import OTHER_GROUP, TABLES, caption_path, planned_tables, table_files
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


# Scheduling: the chain every run waits for (data, validation, the tiny model, its SFT) runs
# first, then the score predictor's (the `predicted` runs wait for it). Left to itself
# Snakemake picks ready jobs by input size and ran the 108 small per-run jobs and the
# predictor before the main SFT: it started at 218 s of a sweep whose data was ready at 62 s.
FIRST = 10
SOON = 5


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
    path = Path(workflow.basedir) / caption_path(table)
    if not path.is_file():
        raise WorkflowError(f"results/tables/{table}.md goes into the report but has no caption: write {path}")
    return path.read_text().strip()


def get_report_group(wildcards):
    """The report category of an experiment's figures (wildcard `experiment`): that of the first table of its runs."""
    groups = [t.group for t in TABLES.values() if t.experiment == wildcards.experiment]
    return groups[0] if groups else OTHER_GROUP


def get_curves_output():
    """Training curves of every experiment that trains runs (the OOD experiment reuses Table 1's)."""
    names = [e for e in config["experiments"] if e != "ood"]
    return [f"results/figures/curves_{e}.{ext}" for e in names for ext in ("png", "svg", "csv")]


LANDING_PAGE = "results/report/landing.rst"


def get_report_text():
    """The report's first page: the generated landing page once the sweep wrote it, else the static one."""
    landing = Path(LANDING_PAGE).resolve()
    return str(landing) if landing.is_file() else "workflow/report/workflow.rst"


def table_outputs(table):
    """A table's CSV and Markdown, and its HTML (written by the same job) for the report, in its category."""
    csv, md, html = table_files(table)
    group = (lambda wc: TABLES[wc.table].group) if table == "{table}" else TABLES[table].group
    return {"csv": csv, "md": md, "html": report(html, caption="../report/table.rst", category=group)}


def get_table(wildcards):
    return TABLES[wildcards.table]


def get_table_input(wildcards):
    """What the table job reads: its experiment's run files, the plan, and the registry's inputs and reads."""
    table = get_table(wildcards)
    return {
        "runs": get_run_files(table.experiment),
        "plan": "results/plan.json",
        **table.inputs(config),
        "reads": table.reads(config),
    }


def get_table_args(wildcards, input):
    """The registry's inputs and options of the table as `rlev report` flags (an empty input: no flag)."""
    table = get_table(wildcards)
    flags = {name: getattr(input, name) for name in table.inputs(config)}
    flags.update(table.options(config))
    return " ".join(
        f"--{name} " + " ".join(shlex.quote(str(v)) for v in values) for name, values in flags.items() if values
    )


def get_other_datasets():
    """Every dataset the planned runs use besides the main one."""
    return sorted({run.dataset for run in plan_runs(config)} - {config["dataset"]})


def get_value_output():
    """Figures 3 and 4 (values of the main dataset), written with the value_stats table."""
    return [f"results/figures/figure{n}.{ext}" for n in (3, 4) for ext in ("png", "svg")]


def get_predictor_spec(wildcards):
    """The score predictor's settings at the job's scale (rlev.predictor.predictor_spec)."""
    from rlev.predictor import predictor_spec

    return predictor_spec(config, wildcards.scale)


def get_run_train_data(wildcards):
    """The training split a run reads: the predictor's labelled copy for `predicted` runs."""
    return run_config(config, get_run(wildcards))["dataset"]["train"]


def get_predictor_output():
    """The score predictor's metrics, when a `predicted` run is planned."""
    from rlev.config import parse_reward_tag, predictor_dir

    if any(parse_reward_tag(run.reward)["variant"] == "predicted" for run in plan_runs(config)):
        return [f"{predictor_dir(config, config['scale'])}/metrics.json"]
    return []


def get_figure_output():
    """Figure 2 and length by value decile (the main runs, and the mechanism's when declared)."""
    outputs = [f"results/figures/figure2.{ext}" for ext in ("png", "svg", "csv")] + ["results/figures/figure2_stop.csv"]
    experiments = ["main"] + (["mechanism"] if "mechanism" in config["experiments"] else [])
    outputs += [f"results/figures/length_by_value_{e}.{ext}" for e in experiments for ext in ("png", "svg", "csv")]
    return outputs


def get_final_output():
    outputs = [f for table in planned_tables(config) for f in table_files(table)]  # each table's .csv, .md, .html
    outputs += get_predictor_output()
    outputs += get_value_output()
    outputs += get_figure_output()
    # Every planned run's files too: Snakemake reruns a job whose outputs are missing only when
    # something downstream needs to run or asks for them directly, so a run whose training was
    # killed (its model and metrics removed, its evaluation or the tables left from before) is
    # rebuilt only because the default target asks for its files.
    outputs += list(dict.fromkeys(f for name in config["experiments"] for f in get_run_files(name)))
    outputs += get_curves_output()
    outputs.append(LANDING_PAGE)
    return outputs


JOBSERVER = []  # the running server's (process, socket), while this Snakemake process runs jobs


def start_jobserver():
    """Fork this sweep's local `rlev` jobs from one loaded process (rlev.jobserver): only when they run
    here in this environment (not on a cluster, not in conda or container envs), unless RLEV_NO_JOBSERVER=1."""
    from rlev import jobserver

    if not workflow.local_exec or workflow.deployment_settings.deployment_method:
        return
    if os.environ.get(jobserver.OFF_ENV) == "1" or os.environ.get(jobserver.ENV):
        return
    JOBSERVER.append(jobserver.start(Path("results/logs/jobserver.log")))


def stop_jobserver():
    from rlev import jobserver

    while JOBSERVER:
        jobserver.stop(*JOBSERVER.pop())


def check_placeholders():
    """Stop before the first job while a job would be submitted with a profile's CHANGE_ME placeholder."""
    for job in workflow.dag.needrun_jobs():
        for name, value in dict(job.resources).items():
            if isinstance(value, str) and "CHANGE_ME" in value:
                raise WorkflowError(
                    f"resource {name}={value} of {job.rule.name} is a placeholder of profiles/slurm/config.yaml: "
                    "set your account and partitions there (every CHANGE_ME) before submitting"
                )
