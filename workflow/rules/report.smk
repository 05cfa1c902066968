# Paper-numbered tables, each cell read from a run directory. Every table job first checks
# each run directory's config.yaml against the current plan (results/plan.json) and
# refuses, naming the directory and the keys, a run trained under other settings.


# The validated config (defaults filled): the plan the tables check run directories against.
rule plan:
    output:
        "results/plan.json",
    log:
        "results/logs/report/plan.log",
    localrule: True
    threads: 1
    resources:
        mem_mb=500,
    params:
        digest=lambda wc: config_digest(config),
    run:
        write_plan(config, output[0], log[0])


rule table1:
    input:
        runs=lambda wc: get_run_files("main"),
        init=get_init_evaluations,
        plan="results/plan.json",
    output:
        **table_outputs("table1"),
    log:
        "results/logs/report/table1.log",
    conda:
        "../../envs/cpu.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        runs=lambda wc: get_table_runs("main"),
        caption=lambda wc: table_caption("table1"),
    shell:
        "rlev report table1 --plan {input.plan} --runs {params.runs} --init {input.init} "
        "--out results/tables/table1 2> {log}"


# Tables 4-6: the reward ablations; a run several tables share is trained once.
rule table4:
    input:
        runs=lambda wc: get_run_files("ablation"),
        init=get_init_evaluations,
        plan="results/plan.json",
    output:
        **table_outputs("table4"),
    log:
        "results/logs/report/table4.log",
    conda:
        "../../envs/cpu.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        runs=lambda wc: get_table_runs("ablation"),
        caption=lambda wc: table_caption("table4"),
    shell:
        "rlev report table4 --plan {input.plan} --runs {params.runs} --init {input.init} "
        "--out results/tables/table4 2> {log}"


rule table5:
    input:
        runs=lambda wc: get_run_files("alpha"),
        init=get_init_evaluations,
        plan="results/plan.json",
    output:
        **table_outputs("table5"),
    log:
        "results/logs/report/table5.log",
    conda:
        "../../envs/cpu.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        runs=lambda wc: get_table_runs("alpha"),
        caption=lambda wc: table_caption("table5"),
    shell:
        "rlev report table5 --plan {input.plan} --runs {params.runs} --init {input.init} "
        "--out results/tables/table5 2> {log}"


rule table6:
    input:
        runs=lambda wc: get_run_files("form"),
        init=get_init_evaluations,
        plan="results/plan.json",
    output:
        **table_outputs("table6"),
    log:
        "results/logs/report/table6.log",
    conda:
        "../../envs/cpu.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        runs=lambda wc: get_table_runs("form"),
        caption=lambda wc: table_caption("table6"),
    shell:
        "rlev report table6 --plan {input.plan} --runs {params.runs} --init {input.init} "
        "--out results/tables/table6 2> {log}"


# The HTML report's landing page: what ran (from the run directories) and the headline result.
rule landing:
    input:
        runs=lambda wc: [f"{r.path}/{f}" for r in plan_runs(config) for f in ("config.yaml", "train/metrics.jsonl")],
        table1="results/tables/table1.csv",
        bootstrap="results/tables/bootstrap.csv",
    output:
        "results/report/landing.rst",
    log:
        "results/logs/report/landing.log",
    conda:
        "../../envs/cpu.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        runs=lambda wc: [r.path for r in plan_runs(config)],
    shell:
        "rlev landing --runs {params.runs} --table1 {input.table1} --bootstrap {input.bootstrap} --out {output} "
        "2> {log}"
