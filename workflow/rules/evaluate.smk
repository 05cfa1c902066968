# The evaluate stage (rlev.evaluate): greedy answers of trained and starting policies, scored.
#   evaluate_*  `rlev evaluate`: the held-out exams, the paper's metrics (Tables 1, 3-6, 8)
#   ood*        `rlev ood`: the out-of-distribution benchmarks (Table 2; their rows: rule ood_data)
#   eos         `rlev eos`: teacher-forced EOS probabilities (Figure 2, drawn in report.smk)
# A local run is evaluated by its training job (rule train_local: its eval/ folder, eos.parquet
# included); these rules evaluate the verl runs and the starting policy.


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


# Table 2: the main-table runs and the starting policy on each benchmark, greedy decoding, one
# prompt and one answer-extraction ladder for every multiple-choice benchmark (rlev.evaluate.ood).
rule ood:
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


# Teacher-forced EOS probabilities of a verl run's policy on one GPU. A local run gets its
# eval/eos.parquet from its training job (rule train_local).
rule eos:
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
