# The mechanism experiment (beyond the paper): does a question's value change how thoroughly
# the policy answers it, within one difficulty level? And length by value decile for the
# main experiment's runs and the mechanism's.


rule mechanism:
    input:
        runs=lambda wc: get_run_files("mechanism"),
        test=lambda wc: f"results/data/{get_mechanism_dataset()}/test.parquet",
        init=get_init_samples,
        plan="results/plan.json",
    output:
        **table_outputs("mechanism"),
    log:
        "results/logs/report/mechanism.log",
    conda:
        "../../envs/cpu.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        runs=lambda wc: get_table_runs("mechanism"),
        permutations=lambda wc: config["experiments"]["mechanism"]["permutations"],
        caption=lambda wc: table_caption("mechanism"),
    shell:
        "rlev mechanism --plan {input.plan} --runs {params.runs} --test {input.test} --init {input.init} "
        "--permutations {params.permutations} --out results/tables/mechanism 2> {log}"


rule length_by_value:
    input:
        runs=lambda wc: get_run_files(wc.experiment),
        plan="results/plan.json",
    output:
        png=report(
            "results/figures/length_by_value_{experiment}.png",
            caption="../report/length_by_value.rst",
            category=get_report_group,
        ),
        svg="results/figures/length_by_value_{experiment}.svg",
        csv="results/figures/length_by_value_{experiment}.csv",
    log:
        "results/logs/report/length_by_value_{experiment}.log",
    wildcard_constraints:
        experiment="main|mechanism",
    conda:
        "../../envs/cpu.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        runs=lambda wc: get_table_runs(wc.experiment),
    shell:
        "rlev length-by-value --plan {input.plan} --runs {params.runs} "
        "--out results/figures/length_by_value_{wildcards.experiment} 2> {log}"
