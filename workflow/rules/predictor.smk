# The score predictor behind Table 3's `predicted` values (rlev.predictor): SFT of an LM to emit a
# question's points from the exam training split, exact match and Pearson r on its test split,
# then a labelled copy of the noisy-value dataset's training split (total 100 per prompt).


rule predictor_train:
    input:
        train="results/data/{dataset}/train.parquet",
    output:
        model=directory("results/predictor/{dataset}/{scale}/model"),
    log:
        "results/logs/predictor/train/{dataset}/{scale}.log",
    priority: SOON
    conda:
        get_policy_env
    threads: lambda wc: get_predictor_spec(wc)["threads"]
    resources:
        mem_mb=4000,
        nodes=get_nodes("predictor_train"),
        gres=get_gres("predictor_train"),
    params:
        spec=lambda wc: spec(get_predictor_spec(wc)),
        out=lambda wc, output: os.path.dirname(output.model),
    shell:
        "rlev predictor train --spec {params.spec} --data {input.train} "
        "--name predictor-{wildcards.dataset}-{wildcards.scale} --out {params.out} 2> {log}"


rule predictor_evaluate:
    input:
        model="results/predictor/{dataset}/{scale}/model",
        test="results/data/{dataset}/test.parquet",
    output:
        metrics="results/predictor/{dataset}/{scale}/metrics.json",
        predictions="results/predictor/{dataset}/{scale}/predictions.parquet",
    log:
        "results/logs/predictor/evaluate/{dataset}/{scale}.log",
    priority: SOON
    conda:
        get_policy_env
    threads: lambda wc: get_predictor_spec(wc)["threads"]
    resources:
        mem_mb=4000,
        nodes=get_nodes("predictor_generate"),
        gres=get_gres("predictor_generate"),
    params:
        spec=lambda wc: spec(get_predictor_spec(wc)),
        out=lambda wc, output: os.path.dirname(output.metrics),
    shell:
        "rlev predictor evaluate --spec {params.spec} --model {input.model} --data {input.test} "
        "--out {params.out} 2> {log}"


rule predictor_label:
    input:
        model="results/predictor/{exams}/{scale}/model",
        train="results/data/{dataset}/train.parquet",
    output:
        labelled="results/predictor/{exams}/{scale}/labels/{dataset}/train.parquet",
        stats="results/predictor/{exams}/{scale}/labels/{dataset}/label_stats.json",
    log:
        "results/logs/predictor/label/{exams}/{scale}/{dataset}.log",
    wildcard_constraints:
        exams=r"[A-Za-z0-9_.-]+",
    priority: SOON
    conda:
        get_policy_env
    threads: lambda wc: get_predictor_spec(wc)["threads"]
    resources:
        mem_mb=4000,
        nodes=get_nodes("predictor_generate"),
        gres=get_gres("predictor_generate"),
    params:
        spec=lambda wc: spec(get_predictor_spec(wc)),
    shell:
        "rlev predictor label --spec {params.spec} --model {input.model} --data {input.train} "
        "--out {output.labelled} 2> {log}"
