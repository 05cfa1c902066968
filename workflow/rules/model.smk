# The starting policy of the local back end: a tiny model built from the training text,
# warm-started by SFT once per dataset and scale, and evaluated (the "before RL" row).


rule init_model:
    input:
        train="results/data/{dataset}/train.parquet",
        demonstrations=get_demonstrations,
    output:
        directory("results/models/{dataset}/{scale}/init"),
    log:
        "results/logs/init_model/{dataset}/{scale}.log",
    priority: FIRST
    conda:
        "../../envs/cpu.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        spec=get_stage_spec("init_model"),
        demos=lambda wc, input: f"--demos {input.demonstrations}" if input.demonstrations else "",
    shell:
        "rlev init-model --spec {params.spec} --train {input.train} {params.demos} --out {output} 2> {log}"


rule sft:
    input:
        init="results/models/{dataset}/{scale}/init",
        train="results/data/{dataset}/train.parquet",
        demonstrations=get_demonstrations,
    output:
        model=directory("results/models/{dataset}/{scale}/sft"),
        metrics="results/models/{dataset}/{scale}/sft_metrics.jsonl",
    log:
        "results/logs/sft/{dataset}/{scale}.log",
    priority: FIRST
    conda:
        "../../envs/cpu.yaml"
    threads: lambda wc: get_scale(wc)["sft_threads"]
    resources:
        mem_mb=4000,
    params:
        spec=get_stage_spec("sft"),
        demos=lambda wc, input: f"--demos {input.demonstrations}" if input.demonstrations else "",
    shell:
        "rlev sft --spec {params.spec} --init {input.init} --train {input.train} {params.demos} "
        "--out {output.model} --metrics {output.metrics} 2> {log}"
