# One RL run per (dataset, scale, estimator, reward, seed); the back end follows the scale.


rule train:
    input:
        train="results/data/{dataset}/train.parquet",
        verl_train="results/data/{dataset}/verl/train.parquet",
        init=get_policy_init,
    output:
        config="results/runs/{dataset}/{scale}/{estimator}/{reward}/seed{seed}/config.yaml",
        metrics="results/runs/{dataset}/{scale}/{estimator}/{reward}/seed{seed}/train/metrics.jsonl",
        model=directory("results/runs/{dataset}/{scale}/{estimator}/{reward}/seed{seed}/model"),
    log:
        "results/logs/train/{dataset}/{scale}/{estimator}/{reward}/seed{seed}.log",
    params:
        run=get_run_spec,
    threads: lambda wc: get_scale(wc).get("threads", 1)
    resources:
        mem_mb=4000,
    shell:
        "rlev train --spec {params.run} 2> {log}"
