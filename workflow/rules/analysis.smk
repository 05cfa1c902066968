# Figure 2's measurements (the figure itself is in report.smk).


# Teacher-forced EOS probabilities of a verl run's policy on one GPU. A local run gets its
# eval/eos.parquet from its training job (rule train_local).
rule eos_run:
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
