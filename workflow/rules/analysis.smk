# Table 8, Figure 2, the paired bootstrap, and every table rendered to HTML for the report.


rule eos_run:
    input:
        model="results/runs/{dataset}/{scale}/{estimator}/{reward}/seed{seed}/model",
        test="results/data/{dataset}/test.parquet",
        samples="results/runs/{dataset}/{scale}/{estimator}/{reward}/seed{seed}/eval/samples.parquet",
    output:
        "results/runs/{dataset}/{scale}/{estimator}/{reward}/seed{seed}/eval/eos.parquet",
    log:
        "results/logs/eos/{dataset}/{scale}/{estimator}/{reward}/seed{seed}.log",
    conda:
        get_policy_env
    threads: lambda wc: get_scale(wc)["threads"]
    resources:
        mem_mb=4000,
        gpu=get_eval_gpus,
    params:
        spec=lambda wc: spec(get_scale(wc)),
    shell:
        "rlev eos --spec {params.spec} --model {input.model} --test {input.test} "
        "--samples {input.samples} --out {output} 2> {log}"


rule figure2:
    input:
        lambda wc: expand("{run}/eval/eos.parquet", run=get_table_runs("main")),
    output:
        png=report("results/figures/figure2.png", caption="../report/figure2.rst", category="Figures"),
        svg="results/figures/figure2.svg",
        csv="results/figures/figure2.csv",
    log:
        "results/logs/report/figure2.log",
    conda:
        "../../envs/cpu.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    shell:
        "rlev figure2 --eos {input} --out results/figures/figure2 2> {log}"


rule table8:
    input:
        lambda wc: expand("{run}/eval/metrics.json", run=get_table_runs("main")),
    output:
        csv="results/tables/table8.csv",
        md="results/tables/table8.md",
    log:
        "results/logs/report/table8.log",
    conda:
        "../../envs/cpu.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        runs=lambda wc: get_table_runs("main"),
    shell:
        "rlev report table8 --runs {params.runs} --out results/tables/table8 2> {log}"


rule bootstrap:
    input:
        lambda wc: expand("{run}/eval/samples.parquet", run=get_table_runs("main")),
    output:
        csv="results/tables/bootstrap.csv",
        md="results/tables/bootstrap.md",
    log:
        "results/logs/report/bootstrap.log",
    conda:
        "../../envs/cpu.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        runs=lambda wc: get_table_runs("main"),
    shell:
        "rlev report bootstrap --runs {params.runs} --out results/tables/bootstrap 2> {log}"


# The report embeds HTML, not Markdown: each table's .md becomes .html, captioned with
# workflow/report/<table>.rst (read through params, since a caption path has no wildcards).
rule table_html:
    input:
        md="results/tables/{table}.md",
        csv="results/tables/{table}.csv",
    output:
        report("results/tables/{table}.html", caption="../report/table.rst", category="Tables"),
    log:
        "results/logs/report/{table}_html.log",
    conda:
        "../../envs/cpu.yaml"
    threads: 1
    resources:
        mem_mb=500,
    params:
        caption=get_table_caption,
    shell:
        "rlev table-html --md {input.md} --csv {input.csv} --out {output} 2> {log}"
