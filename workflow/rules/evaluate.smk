# Greedy evaluation on the held-out exams: per-sample records and the paper's metrics. A
# local run is evaluated by its training job (rule train_local); these rules evaluate the
# verl runs and the starting policy.


# Greedy generation with vLLM on GPUs (the verl scales).
rule evaluate_verl:
    input:
        config="results/runs/{dataset}/{scale}/{estimator}/{reward}/seed{seed}/config.yaml",
        model="results/runs/{dataset}/{scale}/{estimator}/{reward}/seed{seed}/model",
        test="results/data/{dataset}/test.parquet",
    output:
        samples="results/runs/{dataset}/{scale}/{estimator}/{reward}/seed{seed}/eval/samples.parquet",
        metrics="results/runs/{dataset}/{scale}/{estimator}/{reward}/seed{seed}/eval/metrics.json",
    log:
        "results/logs/evaluate/{dataset}/{scale}/{estimator}/{reward}/seed{seed}.log",
    wildcard_constraints:
        scale=scales_of_backend("verl"),
    conda:
        "../../envs/verl.yaml"
    threads: 8
    resources:
        mem_mb=128000,
        runtime=240,
        # vLLM shards the policy over tensor_parallel GPUs (and serves a verl-served judge).
        nodes=get_nodes("evaluate"),
        gres=get_gres("evaluate"),
    params:
        out=lambda wc, output: os.path.dirname(output.metrics),
    shell:
        "rlev evaluate --spec {input.config} --model {input.model} --test {input.test} --out {params.out} 2> {log}"


rule evaluate_init:
    input:
        model="results/models/{dataset}/{scale}/sft",
        test="results/data/{dataset}/test.parquet",
    output:
        samples="results/models/{dataset}/{scale}/sft_eval/samples.parquet",
        metrics="results/models/{dataset}/{scale}/sft_eval/metrics.json",
    log:
        "results/logs/evaluate/{dataset}/{scale}/sft.log",
    conda:
        "../../envs/cpu.yaml"
    threads: lambda wc: get_scale(wc)["threads"]
    resources:
        mem_mb=4000,
    params:
        spec=get_eval_spec,
        out=lambda wc, output: os.path.dirname(output.metrics),
    shell:
        "rlev evaluate --spec {params.spec} --model {input.model} --test {input.test} --out {params.out} 2> {log}"


# The starting model itself when the pipeline does not build it (a Hugging Face id or a path
# outside results/, e.g. Qwen/Qwen2.5-7B): the base rows of Tables 1 and 3, with vLLM at the
# verl scales.
rule evaluate_base:
    input:
        test="results/data/{dataset}/test.parquet",
    output:
        samples="results/models/{dataset}/{scale}/base_eval/samples.parquet",
        metrics="results/models/{dataset}/{scale}/base_eval/metrics.json",
    log:
        "results/logs/evaluate/{dataset}/{scale}/base.log",
    conda:
        get_policy_env
    threads: lambda wc: get_scale(wc)["threads"]
    resources:
        mem_mb=lambda wc: 4000 if get_scale(wc)["backend"] == "local" else 128000,
        nodes=get_nodes("evaluate"),
        gres=get_gres("evaluate"),
    params:
        spec=get_eval_spec,
        model=lambda wc: policy_init_path(config, wc.dataset, wc.scale),
        out=lambda wc, output: os.path.dirname(output.metrics),
    shell:
        "rlev evaluate --spec {params.spec} --model {params.model} --test {input.test} --out {params.out} 2> {log}"
