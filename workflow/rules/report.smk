# Paper-numbered tables, each cell read from a run directory.


rule table1:
    input:
        runs=lambda wc: expand("{run}/eval/metrics.json", run=get_table_runs("main")),
        init=get_init_evaluations,
    output:
        csv=report("results/tables/table1.csv", caption="../report/table1.rst", category="Tables"),
        md="results/tables/table1.md",
    log:
        "results/logs/report/table1.log",
    conda:
        "../../envs/cpu.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        runs=lambda wc: get_table_runs("main"),
    shell:
        "rlev report table1 --runs {params.runs} --init {input.init} --out results/tables/table1 2> {log}"


# Tables 4-6: the reward ablations; a run several tables share is trained once.
rule table4:
    input:
        lambda wc: expand("{run}/eval/metrics.json", run=get_table_runs("ablation")),
    output:
        csv=report("results/tables/table4.csv", caption="../report/table4.rst", category="Tables"),
        md="results/tables/table4.md",
    log:
        "results/logs/report/table4.log",
    conda:
        "../../envs/cpu.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        runs=lambda wc: get_table_runs("ablation"),
    shell:
        "rlev report table4 --runs {params.runs} --out results/tables/table4 2> {log}"


rule table5:
    input:
        lambda wc: expand("{run}/eval/metrics.json", run=get_table_runs("alpha")),
    output:
        csv=report("results/tables/table5.csv", caption="../report/table5.rst", category="Tables"),
        md="results/tables/table5.md",
    log:
        "results/logs/report/table5.log",
    conda:
        "../../envs/cpu.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        runs=lambda wc: get_table_runs("alpha"),
    shell:
        "rlev report table5 --runs {params.runs} --out results/tables/table5 2> {log}"


rule table6:
    input:
        lambda wc: expand("{run}/eval/metrics.json", run=get_table_runs("form")),
    output:
        csv=report("results/tables/table6.csv", caption="../report/table6.rst", category="Tables"),
        md="results/tables/table6.md",
    log:
        "results/logs/report/table6.log",
    conda:
        "../../envs/cpu.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        runs=lambda wc: get_table_runs("form"),
    shell:
        "rlev report table6 --runs {params.runs} --out results/tables/table6 2> {log}"
