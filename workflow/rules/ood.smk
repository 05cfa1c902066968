# Table 2: the starting policy and the main-table models on out-of-distribution multiple-choice
# benchmarks (rlev.data.ood): one prompt, one answer-extraction ladder, greedy decoding.


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


rule ood_run:
    input:
        config="results/runs/{dataset}/{scale}/{estimator}/{reward}/seed{seed}/config.yaml",
        model="results/runs/{dataset}/{scale}/{estimator}/{reward}/seed{seed}/model",
        rows="results/ood/data/{benchmark}.parquet",
    output:
        samples="results/runs/{dataset}/{scale}/{estimator}/{reward}/seed{seed}/ood/{benchmark}/samples.parquet",
        metrics="results/runs/{dataset}/{scale}/{estimator}/{reward}/seed{seed}/ood/{benchmark}/metrics.json",
    log:
        "results/logs/ood/{dataset}/{scale}/{estimator}/{reward}/seed{seed}/{benchmark}.log",
    conda:
        get_policy_env
    threads: lambda wc: get_scale(wc)["threads"]
    resources:
        mem_mb=4000,
        nodes=get_nodes("ood"),
        gres=get_gres("ood"),
    params:
        out=lambda wc, output: os.path.dirname(output.metrics),
    shell:
        "rlev ood --spec {input.config} --model {input.model} --data {input.rows} --out {params.out} 2> {log}"


# The starting policy of the runs ("base" in the paper): the warm-started tiny model, or the
# scale's base model by id.
rule ood_base:
    input:
        model=get_policy_init,
        rows="results/ood/data/{benchmark}.parquet",
    output:
        samples="results/ood/base/{dataset}/{scale}/{benchmark}/samples.parquet",
        metrics="results/ood/base/{dataset}/{scale}/{benchmark}/metrics.json",
    log:
        "results/logs/ood/base/{dataset}/{scale}/{benchmark}.log",
    conda:
        get_policy_env
    threads: lambda wc: get_scale(wc)["threads"]
    resources:
        mem_mb=4000,
        nodes=get_nodes("ood"),
        gres=get_gres("ood"),
    params:
        spec=lambda wc: spec(get_scale(wc)),
        model=lambda wc: policy_init_path(config, wc.dataset, wc.scale),
        out=lambda wc, output: os.path.dirname(output.metrics),
    shell:
        "rlev ood --spec {params.spec} --model {params.model} --data {input.rows} --out {params.out} 2> {log}"
