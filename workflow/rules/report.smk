# The report stage: every table, figure and page of the HTML report, read only from what the
# earlier stages wrote. The tables are listed once, in rlev.report.tables.TABLES; rule `table`
# writes each that reads runs. Every table job first checks each run directory's config.yaml
# against the current plan (results/plan.json) and refuses, naming the directory and the keys,
# a run trained under other settings.


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


# One job per table of the registry: its experiment's runs, the files its entry names, its settings.
rule table:
    input:
        unpack(get_table_input),
    output:
        **table_outputs("{table}"),
    log:
        "results/logs/report/{table}.log",
    wildcard_constraints:
        table="|".join(name for name, t in TABLES.items() if t.rule == "table"),
    conda:
        "../../envs/cpu.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc: TABLES[wc.table].mem_mb,
    params:
        runs=lambda wc: get_table_runs(TABLES[wc.table].experiment),
        args=get_table_args,
        caption=lambda wc: table_caption(wc.table),
    shell:
        "rlev report {wildcards.table} --plan {input.plan} --runs {params.runs} {params.args} "
        "--out results/tables/{wildcards.table} 2> {log}"


# The value table of every dataset, with Figures 3 and 4 (values of the main dataset).
rule value_stats:
    input:
        main=f"results/data/{config['dataset']}/train.parquet",
        others=expand("results/data/{dataset}/train.parquet", dataset=get_other_datasets()),
    output:
        **table_outputs("value_stats"),
        figure3=report(
            "results/figures/figure3.png", caption="../report/figure3.rst", category=TABLES["value_stats"].group
        ),
        figure3_svg="results/figures/figure3.svg",
        figure4=report(
            "results/figures/figure4.png", caption="../report/figure4.rst", category=TABLES["value_stats"].group
        ),
        figure4_svg="results/figures/figure4.svg",
    log:
        "results/logs/report/value_stats.log",
    conda:
        "../../envs/cpu.yaml"
    threads: 1
    resources:
        mem_mb=TABLES["value_stats"].mem_mb,
    params:
        dirs=lambda wc, input: [os.path.dirname(p) for p in [input.main, *input.others]],
        caption=lambda wc: table_caption("value_stats"),
    shell:
        "rlev report value_stats --datasets {params.dirs} --figures results/figures "
        "--out results/tables/value_stats 2> {log}"


# Figure 2: EOS probabilities along the main runs' answers, top- and bottom-valued prompts.
rule figure2:
    input:
        eos=lambda wc: expand("{run}/eval/eos.parquet", run=get_table_runs("main")),
        runs=lambda wc: get_run_files("main"),
        plan="results/plan.json",
    output:
        png=report("results/figures/figure2.png", caption="../report/figure2.rst", category=TABLES["table1"].group),
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


# Mean response length by value decile (the main runs, and the mechanism's).
rule length_by_value:
    input:
        runs=lambda wc: get_run_files(wc.experiment),
        plan="results/plan.json",
    output:
        png=report(
            "results/figures/length_by_value_{experiment}.png",
            caption="../report/length_by_value.rst",
            category=get_report_group,
        ),
        svg="results/figures/length_by_value_{experiment}.svg",
        csv="results/figures/length_by_value_{experiment}.csv",
    log:
        "results/logs/report/length_by_value_{experiment}.log",
    wildcard_constraints:
        experiment="main|mechanism",
    conda:
        "../../envs/cpu.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        runs=lambda wc: get_table_runs(wc.experiment),
    shell:
        "rlev length-by-value --plan {input.plan} --runs {params.runs} "
        "--out results/figures/length_by_value_{wildcards.experiment} 2> {log}"


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
