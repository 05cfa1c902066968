# One RL run per (dataset, scale, estimator, reward, seed). The scale picks the back end:
# train_local (single process, CPU or one GPU) or train_verl (verl on a GPU node); each
# rule only matches the scales of its back end, so the run paths stay the same.


# The run's resolved configuration, saved first: every job of the run reads it (an input),
# so its outputs depend on exactly this run, and a change of any setting the run reads
# rewrites it (params: its fingerprint) and reruns the run's jobs after it. Written in
# Snakemake's own process (force-use-threads in profiles/default): no job start-up.
rule run_config:
    output:
        "results/runs/{dataset}/{scale}/{estimator}/{reward}/seed{seed}/config.yaml",
    log:
        "results/logs/run_config/{dataset}/{scale}/{estimator}/{reward}/seed{seed}.log",
    localrule: True
    threads: 1
    resources:
        mem_mb=500,
    params:
        digest=get_run_digest,
    run:
        write_run_config(config, get_run(wildcards), output[0], log[0])


# Each training job first writes the run's value variant (rlev.values.write_values): v and
# s(x) per training row in values.parquet, and on the verl back end verl's training file with
# them in extra_info (what compute_score reads). Not a job of its own: it reads nothing the
# training does not, and a job per run would be 78 more SLURM jobs in the paper's matrix.
#
# The local back end trains, then evaluates the final policy greedily on the test split
# and takes Figure 2's EOS probabilities, all in one process (torch is imported once per
# run, not three times).
rule train_local:
    input:
        config="results/runs/{dataset}/{scale}/{estimator}/{reward}/seed{seed}/config.yaml",
        # the dataset's training split; a `predicted` run's carries the predictor's labels
        train=get_run_train_data,
        init=get_policy_init,
        test="results/data/{dataset}/test.parquet",
    output:
        values="results/runs/{dataset}/{scale}/{estimator}/{reward}/seed{seed}/values.parquet",
        metrics="results/runs/{dataset}/{scale}/{estimator}/{reward}/seed{seed}/train/metrics.jsonl",
        model=directory("results/runs/{dataset}/{scale}/{estimator}/{reward}/seed{seed}/model"),
        samples="results/runs/{dataset}/{scale}/{estimator}/{reward}/seed{seed}/eval/samples.parquet",
        eval="results/runs/{dataset}/{scale}/{estimator}/{reward}/seed{seed}/eval/metrics.json",
        eos="results/runs/{dataset}/{scale}/{estimator}/{reward}/seed{seed}/eval/eos.parquet",
    log:
        "results/logs/train/{dataset}/{scale}/{estimator}/{reward}/seed{seed}.log",
    wildcard_constraints:
        scale=scales_of_backend("local"),
    conda:
        "../../envs/cpu.yaml"
    threads: lambda wc: get_scale(wc)["threads"]
    resources:
        mem_mb=4000,
    shell:
        "rlev train --spec {input.config} 2> {log}"


rule train_verl:
    input:
        config="results/runs/{dataset}/{scale}/{estimator}/{reward}/seed{seed}/config.yaml",
        train=get_run_train_data,
        verl_test="results/data/{dataset}/verl/test.parquet",
    output:
        values="results/runs/{dataset}/{scale}/{estimator}/{reward}/seed{seed}/values.parquet",
        # the run's own copy: extra_info carries each row's value and scale
        verl_train="results/runs/{dataset}/{scale}/{estimator}/{reward}/seed{seed}/verl_train.parquet",
        metrics="results/runs/{dataset}/{scale}/{estimator}/{reward}/seed{seed}/train/metrics.jsonl",
        model=directory("results/runs/{dataset}/{scale}/{estimator}/{reward}/seed{seed}/model"),
    log:
        "results/logs/train/{dataset}/{scale}/{estimator}/{reward}/seed{seed}.log",
    wildcard_constraints:
        scale=scales_of_backend("verl"),
    conda:
        "../../envs/verl.yaml"
    threads: 8
    resources:
        # verl's checkpoints (<run>/checkpoints) are not an output: a job that hits its
        # time limit is resubmitted and resumes from them (trainer.resume_mode=auto).
        # The policy's nodes plus a verl-served judge's, the same GPUs on each.
        nodes=get_nodes("train"),
        gres=get_gres("train"),
        mem_mb=lambda wc: get_scale(wc)["mem_mb"],
        runtime=2880,
    shell:
        "rlev train --spec {input.config} 2> {log}"
