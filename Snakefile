# rlev: Reinforcement Learning with Explicit Human Values, as a reproducible pipeline.
#   snakemake --cores all                                   # the CPU default (minutes)
#   snakemake --profile profiles/slurm --config scale=7B dataset=rlev   # the paper's run
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


# The stages in pipeline order (common.smk: the config's validation and the input functions).
include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/predictor.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


report: get_report_text()


rule all:
    default_target: True
    input:
        get_final_output(),


# Before any job starts (never in a dry run): a SLURM profile with its placeholders left
# in would submit every job to a partition and account that do not exist. Local jobs are
# then forked from one process that has loaded torch once (rlev.jobserver).
onstart:
    check_placeholders()
    start_jobserver()


onsuccess:
    stop_jobserver()


onerror:
    stop_jobserver()
