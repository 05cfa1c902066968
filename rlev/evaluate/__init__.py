"""The evaluate stage: a policy's greedy answers, scored. One module per job:

    generate.py   greedy_generate, the one greedy generation of every stage: rlev's decoding
                  loop (CPU or one GPU) or vLLM (over a verl scale's tensor-parallel GPUs)
    in_domain.py  `rlev evaluate` (rules evaluate_verl, evaluate_init, evaluate_base): the
                  test split, the run's verifier, the paper's metrics
    ood.py        `rlev ood` (rules ood, ood_base): Table 2's out-of-distribution benchmarks
                  (their rows: rlev.data.ood)
    eos.py        `rlev eos` (rule eos): Figure 2's teacher-forced end-of-sequence
                  probabilities (the figure: rlev.report.figure2)

A local run is evaluated by its training job right after training
(`rlev.evaluate.in_domain.evaluate_local_run`: evaluate, then eos).

Each command's function takes the job's --spec: a scale block (plus `verifier` for
`rlev evaluate`), or a run's config.yaml, whose `scale` block is used (`scale_of`).
"""

from __future__ import annotations


def correct(verdicts, truncated) -> list[bool]:
    """Whether each response counts as correct, in every evaluation (in-domain and OOD).

    A response is correct when its verdict is true (the verifier said the answer is right,
    or a multiple-choice reply chose the gold letter) and it is not truncated (it reached
    a stop token within the budget). A truncated response is wrong whatever it says, as
    in training's reward; a verdict of None (a judge that could not decide) is wrong too.

    >>> correct([True, True, False, None], [False, True, False, False])
    [True, False, False, False]
    """
    return [bool(v) and not bool(t) for v, t in zip(verdicts, truncated)]


def scale_of(spec: dict) -> dict:
    """The scale settings in a --spec: a scale block itself, or a run's config (its `scale`)."""
    return spec["scale"] if isinstance(spec.get("scale"), dict) else spec
