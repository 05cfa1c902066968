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
    params:
        runs=lambda wc: get_table_runs("main"),
    threads: 1
    resources:
        mem_mb=1000,
    shell:
        "rlev report table1 --runs {params.runs} --init {input.init} --out results/tables/table1 2> {log}"
