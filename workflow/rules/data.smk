# Data: generate the synthetic exams, then load, validate, value and split a dataset; the rows
# of the out-of-distribution benchmarks (Table 2, rlev.data.ood).


rule synthetic_data:
    output:
        exams="data/{dataset}/exams.jsonl",
        demonstrations="data/{dataset}/demonstrations.jsonl",
    log:
        "results/logs/synthetic_data/{dataset}.log",
    priority: FIRST
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
    priority: FIRST
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


wildcard_constraints:
    benchmark=r"[A-Za-z0-9_.-]+",


rule ood_data:
    output:
        "results/ood/data/{benchmark}.parquet",
    log:
        "results/logs/ood/data/{benchmark}.log",
    conda:
        "../../envs/cpu.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        spec=lambda wc: spec(config["benchmarks"][wc.benchmark]),
    shell:
        "rlev ood-data --spec {params.spec} --out {output} 2> {log}"
