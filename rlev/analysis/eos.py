"""Figure 2: end-of-sequence probability along each model's own greedy response.

The paper's mechanism: s(x) scales the gradient on the EOS logit, so an RLEV policy should
learn to stop sooner on low-value prompts and keep going on high-value ones. Figure 2
shows P(eos) along the generation for the 200 highest- and 200 lowest-valued test prompts,
baseline (correctness reward) vs RLEV (human-aligned).

Per run (`rlev eos`, rule `eos_run`):
  1. take the k = min(200, n // 2) highest- and lowest-valued test prompts (the same
     stable ordering as `rlev.metrics.value_extremes`);
  2. re-tokenise prompt (rendered by `rlev.model.render_prompt`, exactly as generation saw
     it) and the run's own greedy response (`eval/samples.parquet`), and run one
     teacher-forced forward pass;
  3. P(eos) at response position t = softmax(logits predicting token t)[eos], for
     t = 0 .. R where the model stopped (R response tokens, then the slot where it emitted
     eos), or t = 0 .. R-1 for a truncated response (it never stopped).
  Writes `eval/eos.parquet`, one row per (prompt, position).

Across runs (`rlev figure2`, rule `figure2`): responses differ in length, so positions are
averaged by RELATIVE position. Position t of a response with T positions covers
[t/T, (t+1)/T) and goes to the bin that holds its centre (t + 0.5) / T, one of `bins`
equal bins of [0, 1]. Each response is first averaged within each bin, then responses are
averaged with equal weight (a bin a short response does not reach is left out for it);
with several seeds, the per-seed curves are averaged.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from rlev.metrics import value_extremes

log = logging.getLogger(__name__)

PROMPTS_PER_EXTREME = 200  # the paper's 200 highest- and 200 lowest-valued test prompts
BINS = 20


def extreme_prompts(samples: pd.DataFrame, k: int = PROMPTS_PER_EXTREME) -> pd.DataFrame:
    """The k highest- ("top") and k lowest-valued ("bottom") rows, k capped at n // 2."""
    k = min(k, len(samples) // 2)
    if k < 1:
        raise ValueError(f"need at least 2 evaluated prompts for EOS trajectories, got {len(samples)}")
    samples = samples.reset_index(drop=True)
    top, bottom = value_extremes(samples["value"], share=k / len(samples))
    return pd.concat([samples[top].assign(extreme="top"), samples[bottom].assign(extreme="bottom")],
                     ignore_index=True)


def eos_trajectories(model, tokenizer, prompts: list[str], responses: list[str], stopped: list[bool],
                     batch_size: int = 64) -> list[np.ndarray]:
    """P(eos) at each response position, teacher-forced (see the module docstring).

    Prompt and response are tokenised separately, as generation saw them (the prompt was
    encoded alone, the response is the decoded generated tokens re-encoded). Sequences are
    right-padded, so positions need no correction.
    """
    import torch  # here, not at the top: the CLI imports this module's constants without torch

    eos = tokenizer.eos_token_id
    out: list[np.ndarray] = []
    for start in range(0, len(prompts), batch_size):
        batch_p = tokenizer(prompts[start : start + batch_size], add_special_tokens=False)["input_ids"]
        batch_r = tokenizer(responses[start : start + batch_size], add_special_tokens=False)["input_ids"]
        seqs = [p + r for p, r in zip(batch_p, batch_r)]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
        with torch.no_grad():
            logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits.float()
        p_eos = (logits[..., eos] - torch.logsumexp(logits, dim=-1)).exp().cpu().numpy()  # (B, width)
        for i, (p, r) in enumerate(zip(batch_p, batch_r)):
            # logits at index j predict token j + 1: response token t is predicted at len(p) - 1 + t.
            positions = len(r) + 1 if stopped[start + i] else len(r)
            out.append(p_eos[i, len(p) - 1 : len(p) - 1 + positions].copy())
    return out


def relative_bins(n_positions: int, bins: int = BINS) -> np.ndarray:
    """The relative-position bin of each of a response's positions (by its centre).

    >>> relative_bins(4, 2).tolist()
    [0, 0, 1, 1]
    >>> relative_bins(2, 4).tolist()
    [1, 3]
    """
    centres = (np.arange(n_positions) + 0.5) / n_positions
    return np.minimum((centres * bins).astype(int), bins - 1)


def binned_profile(trajectories: list[np.ndarray], bins: int = BINS) -> tuple[np.ndarray, np.ndarray]:
    """(mean P(eos) per relative-position bin, responses that reach each bin).

    Each response is averaged within a bin first, then responses count equally.
    """
    per_response = np.full((len(trajectories), bins), np.nan)
    for i, p in enumerate(trajectories):
        if len(p) == 0:
            continue
        b = relative_bins(len(p), bins)
        sums = np.bincount(b, weights=p, minlength=bins)
        counts = np.bincount(b, minlength=bins)
        per_response[i, counts > 0] = sums[counts > 0] / counts[counts > 0]
    reached = (~np.isnan(per_response)).sum(axis=0)
    with np.errstate(invalid="ignore"):
        mean = np.where(reached > 0, np.nansum(per_response, axis=0) / np.maximum(reached, 1), np.nan)
    return mean, reached


def run_eos(model_path: str, test_path: str, samples_path: str, out: Path, k: int = PROMPTS_PER_EXTREME,
            batch_size: int = 64, threads: int = 1, device: str = "auto", dtype: str = "float32") -> pd.DataFrame:
    """eval/eos.parquet for one run: id, value, extreme, position, positions, p_eos."""
    import torch

    from rlev.model import load_policy, render_prompt

    torch.set_num_threads(threads)
    samples = pd.read_parquet(samples_path)
    test = pd.read_parquet(test_path, columns=["id", "question", "system"])
    missing = set(samples["id"]) - set(test["id"])
    if missing:
        raise ValueError(f"{samples_path}: {len(missing)} prompt id(s) not in {test_path}, e.g. {sorted(missing)[0]!r}")
    chosen = extreme_prompts(samples, k).merge(test, on="id", how="left", validate="one_to_one")
    model, tokenizer = load_policy(model_path, device, dtype)
    model.eval()
    prompts = [render_prompt(tokenizer, q, s) for q, s in zip(chosen["question"], chosen["system"])]
    trajectories = eos_trajectories(model, tokenizer, prompts, chosen["response"].tolist(),
                                    (~chosen["truncated"].astype(bool)).tolist(), batch_size)
    rows = [
        {"id": row.id, "value": row.value, "extreme": row.extreme, "position": t, "positions": len(p),
         "p_eos": float(p[t])}
        for row, p in zip(chosen.itertuples(index=False), trajectories)
        for t in range(len(p))
    ]
    table = pd.DataFrame(rows, columns=["id", "value", "extreme", "position", "positions", "p_eos"])
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(out, index=False)
    log.info("%s: P(eos) over %d positions of %d responses (k=%d per extreme)", model_path, len(table),
             len(trajectories), len(chosen) // 2)
    return table


def run_profiles(eos: pd.DataFrame, bins: int = BINS) -> pd.DataFrame:
    """Per extreme ("top"/"bottom") and bin: mean P(eos), responses reaching the bin, prompts."""
    records = []
    for extreme, group in eos.groupby("extreme", sort=False):
        trajectories = [g.sort_values("position")["p_eos"].to_numpy() for _, g in group.groupby("id", sort=False)]
        mean, reached = binned_profile(trajectories, bins)
        for b in range(bins):
            records.append({"extreme": extreme, "bin": b, "p_eos": mean[b], "responses": int(reached[b]),
                            "prompts": len(trajectories)})
    return pd.DataFrame(records)


def figure2(eos_files: list[str], out: Path, bins: int = BINS) -> pd.DataFrame:
    """figure2.{png,svg,csv}: one panel per estimator, baseline vs RLEV, top vs bottom prompts.

    Each eos file sits at <run>/eval/eos.parquet; the run's config says what it is.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rlev.report import load_run

    per_run = []
    for path in eos_files:
        run = load_run(Path(path).parents[1])
        prof = run_profiles(pd.read_parquet(path), bins)
        per_run.append(prof.assign(estimator=run["estimator"], scale=run["scale"], reward=run["reward"],
                                   seed=run["seed"], run=run["run"]))
    runs = pd.concat(per_run, ignore_index=True)
    keys = ["estimator", "scale", "reward", "extreme", "bin"]
    data = (runs.groupby(keys, sort=False)
            .agg(p_eos=("p_eos", "mean"), responses=("responses", "sum"), seeds=("seed", "nunique"),
                 runs=("run", lambda r: ";".join(dict.fromkeys(r))))
            .reset_index())
    data.insert(data.columns.get_loc("bin") + 1, "relative_position", (data["bin"] + 0.5) / bins)
    out.parent.mkdir(parents=True, exist_ok=True)
    data.to_csv(out.with_suffix(".csv"), index=False)

    panels = list(dict.fromkeys(zip(data["estimator"], data["scale"])))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False, sharey=True)
    colours = {"correctness": "tab:blue", "human-aligned": "tab:red"}
    styles = {"top": "-", "bottom": "--"}
    for ax, (estimator, scale) in zip(axes[0], panels):
        panel = data[(data["estimator"] == estimator) & (data["scale"] == scale)]
        for (reward, extreme), curve in panel.groupby(["reward", "extreme"], sort=False):
            ax.plot(curve["relative_position"], curve["p_eos"], styles.get(extreme, ":"), marker=".",
                    color=colours.get(reward), label=f"{reward}, {extreme}-valued")
        ax.set_title(f"{estimator} ({scale})")
        ax.set_xlabel(f"relative position in response (t / length, {bins} bins)")
        ax.set_xlim(0, 1)
    axes[0][0].set_ylabel("mean P(eos)")
    axes[0][-1].legend(fontsize=8)
    k = int(runs["prompts"].max())
    fig.suptitle(f"EOS probability along the greedy response, {k} highest- vs {k} lowest-valued test prompts")
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=120)
    fig.savefig(out.with_suffix(".svg"))
    plt.close(fig)
    return data
