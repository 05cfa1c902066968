# Table 8, Figure 2 and the paired bootstrap (all over the main experiment's runs).


# Teacher-forced EOS probabilities of a verl run's policy on one GPU. A local run gets its
# eval/eos.parquet from its training job (rule train_local).
rule eos_run:
    input:
        config="results/runs/{dataset}/{scale}/{estimator}/{reward}/seed{seed}/config.yaml",
        model="results/runs/{dataset}/{scale}/{estimator}/{reward}/seed{seed}/model",
        test="results/data/{dataset}/test.parquet",
        samples="results/runs/{dataset}/{scale}/{estimator}/{reward}/seed{seed}/eval/samples.parquet",
    output:
        "results/runs/{dataset}/{scale}/{estimator}/{reward}/seed{seed}/eval/eos.parquet",
    log:
        "results/logs/eos/{dataset}/{scale}/{estimator}/{reward}/seed{seed}.log",
    wildcard_constraints:
        scale=scales_of_backend("verl"),
    conda:
        "../../envs/verl.yaml"
    threads: lambda wc: get_scale(wc)["threads"]
    resources:
        mem_mb=4000,
        nodes=get_nodes("eos"),
        gres=get_gres("eos"),
    shell:
        "rlev eos --spec {input.config} --model {input.model} --test {input.test} "
        "--samples {input.samples} --out {output} 2> {log}"


rule figure2:
    input:
        eos=lambda wc: expand("{run}/eval/eos.parquet", run=get_table_runs("main")),
        runs=lambda wc: get_run_files("main"),
        plan="results/plan.json",
    output:
        png=report("results/figures/figure2.png", caption="../report/figure2.rst", category=REPORT_GROUPS["figure2"]),
        svg="results/figures/figure2.svg",
        csv="results/figures/figure2.csv",
        stop="results/figures/figure2_stop.csv",
    log:
        "results/logs/report/figure2.log",
    conda:
        "../../envs/cpu.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    shell:
        "rlev figure2 --plan {input.plan} --eos {input.eos} --out results/figures/figure2 2> {log}"


# Training curves per experiment (reward, accuracy, length, length by value quarter over steps).
rule curves:
    input:
        lambda wc: [
            f"{r.path}/{f}"
            for r in experiment_runs(config, wc.experiment)
            for f in ("config.yaml", "train/metrics.jsonl")
        ],
    output:
        png=report(
            "results/figures/curves_{experiment}.png",
            caption="../report/curves.rst",
            category=get_report_group,
            subcategory="Training curves",
        ),
        svg="results/figures/curves_{experiment}.svg",
        csv="results/figures/curves_{experiment}.csv",
    log:
        "results/logs/report/curves_{experiment}.log",
    wildcard_constraints:
        experiment=r"[A-Za-z0-9_]+",
    conda:
        "../../envs/cpu.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        runs=lambda wc: get_table_runs(wc.experiment),
        title=lambda wc: f"experiments.{wc.experiment}",
    shell:
        "rlev curves --runs {params.runs} --title {params.title:q} --out results/figures/curves_{wildcards.experiment} "
        "2> {log}"


rule table8:
    input:
        runs=lambda wc: get_run_files("main"),
        init=get_init_evaluations,
        plan="results/plan.json",
    output:
        **table_outputs("table8"),
    log:
        "results/logs/report/table8.log",
    conda:
        "../../envs/cpu.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        runs=lambda wc: get_table_runs("main"),
        caption=lambda wc: table_caption("table8"),
    shell:
        "rlev report table8 --plan {input.plan} --runs {params.runs} --init {input.init} "
        "--out results/tables/table8 2> {log}"


rule bootstrap:
    input:
        runs=lambda wc: get_run_files("main"),
        plan="results/plan.json",
    output:
        **table_outputs("bootstrap"),
    log:
        "results/logs/report/bootstrap.log",
    conda:
        "../../envs/cpu.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        runs=lambda wc: get_table_runs("main"),
        caption=lambda wc: table_caption("bootstrap"),
    shell:
        "rlev report bootstrap --plan {input.plan} --runs {params.runs} --out results/tables/bootstrap 2> {log}"
