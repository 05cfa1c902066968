# Data: generate the synthetic exams, then load, validate, value and split a dataset.


rule synthetic_data:
    output:
        exams="data/{dataset}/exams.jsonl",
        demonstrations="data/{dataset}/demonstrations.jsonl",
    log:
        "results/logs/synthetic_data/{dataset}.log",
    conda:
        "../../envs/cpu.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        spec=lambda wc: spec(config["datasets"][wc.dataset]),
    shell:
        "rlev synth --spec {params.spec} --out {output.exams} --demos {output.demonstrations} 2> {log}"


rule prepare:
    input:
        get_prepare_input,
    output:
        train="results/data/{dataset}/train.parquet",
        test="results/data/{dataset}/test.parquet",
        verl_train="results/data/{dataset}/verl/train.parquet",
        verl_test="results/data/{dataset}/verl/test.parquet",
        rejects="results/data/{dataset}/rejects.csv",
        stats="results/data/{dataset}/stats.json",
    log:
        main="results/logs/prepare/{dataset}.log",
        # a copy of rejects.csv that survives a failed prepare (Snakemake deletes a failed job's outputs)
        rejects="results/logs/prepare/{dataset}.rejects.csv",
    conda:
        "../../envs/cpu.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        spec=lambda wc: spec({"source": get_dataset_source(wc), "data": config["data"]}),
    shell:
        "rlev prepare --spec {params.spec} --dataset {wildcards.dataset} "
        "--out results/data/{wildcards.dataset} --rejects-log {log.rejects} 2> {log.main}"


rule value_report:
    input:
        main=f"results/data/{config['dataset']}/train.parquet",
        others=expand("results/data/{dataset}/train.parquet", dataset=get_other_datasets()),
    output:
        **table_outputs("value_stats"),
        figure3=report(
            "results/figures/figure3.png", caption="../report/figure3.rst", category=REPORT_GROUPS["figure3"]
        ),
        figure3_svg="results/figures/figure3.svg",
        figure4=report(
            "results/figures/figure4.png", caption="../report/figure4.rst", category=REPORT_GROUPS["figure3"]
        ),
        figure4_svg="results/figures/figure4.svg",
    log:
        "results/logs/report/value_report.log",
    conda:
        "../../envs/cpu.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        dirs=lambda wc, input: [os.path.dirname(p) for p in [input.main, *input.others]],
        caption=lambda wc: table_caption("value_stats"),
    shell:
        "rlev values-report --datasets {params.dirs} --figures results/figures "
        "--table results/tables/value_stats 2> {log}"
