# Greedy evaluation on the held-out exams: per-sample records and the paper's metrics.


rule evaluate_run:
    input:
        model="results/runs/{dataset}/{scale}/{estimator}/{reward}/seed{seed}/model",
        test="results/data/{dataset}/test.parquet",
    output:
        samples="results/runs/{dataset}/{scale}/{estimator}/{reward}/seed{seed}/eval/samples.parquet",
        metrics="results/runs/{dataset}/{scale}/{estimator}/{reward}/seed{seed}/eval/metrics.json",
    log:
        "results/logs/evaluate/{dataset}/{scale}/{estimator}/{reward}/seed{seed}.log",
    params:
        spec=lambda wc: spec(get_scale(wc)),
    threads: lambda wc: get_scale(wc).get("threads", 1)
    resources:
        mem_mb=4000,
    shell:
        "rlev evaluate --spec {params.spec} --model {input.model} --test {input.test} "
        "--out $(dirname {output.metrics}) 2> {log}"


rule evaluate_init:
    input:
        model="results/models/{dataset}/{scale}/sft",
        test="results/data/{dataset}/test.parquet",
    output:
        samples="results/models/{dataset}/{scale}/sft_eval/samples.parquet",
        metrics="results/models/{dataset}/{scale}/sft_eval/metrics.json",
    log:
        "results/logs/evaluate/{dataset}/{scale}/sft.log",
    params:
        spec=lambda wc: spec(get_scale(wc)),
    threads: lambda wc: get_scale(wc).get("threads", 1)
    resources:
        mem_mb=4000,
    shell:
        "rlev evaluate --spec {params.spec} --model {input.model} --test {input.test} "
        "--out $(dirname {output.metrics}) 2> {log}"
