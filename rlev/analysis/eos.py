"""Figure 2: end-of-sequence probability along each model's own greedy response.

The paper's mechanism: s(x) scales the gradient on the EOS logit, so an RLEV policy should
learn to stop sooner on low-value prompts and keep going on high-value ones. Figure 2
shows P(eos) along the generation for the 200 highest- and 200 lowest-valued of 8,000
test prompts (2.5% each), baseline (correctness reward) vs RLEV (human-aligned).

Per run (`rlev eos`, rule `eos_run`):
  1. take the `share` highest- and lowest-valued test prompts (default 2.5%, the paper's
     200 of 8,000; at least one each, at most n // 2; the stable ordering of
     `rlev.metrics.value_extremes`);
  2. re-tokenise prompt (rendered by `rlev.model.render_prompt`, exactly as generation saw
     it) and the run's own greedy response (`eval/samples.parquet`), and run one
     teacher-forced forward pass;
  3. P(eos) at response position t = P(next token is a stop token | prompt, response tokens
     before t), for t = 0 .. R where the model stopped (R response tokens, then the "stop
     slot" where it emitted eos), or t = 0 .. R-1 for a truncated response (no stop slot).
     Stop tokens are the tokenizer's eos and the generation config's eos ids (what
     generation stops on). Only these log-probabilities are computed: the decoder's hidden
     states at the response positions, then logsumexp over the vocabulary in chunks
     (`stop_log_probs`), so no (batch x length x vocabulary) logits tensor is ever built
     (at 7B: 64 x 1,024 x 152k floats, ~40 GB in float32).
  Writes `eval/eos.parquet`, one row per (prompt, position), with `tokens` = R and
  `stop_slot` = whether the position is the slot where the model stopped.

Across runs (`rlev figure2`, rule `figure2`): P(eos) is tiny (~1e-5) while a response runs
and ~1 at its stop slot, so averaging by RELATIVE position mixes the two and the last bin
reads about 1 / (positions in the bin): a difference in length alone. The figure instead
plots, at each ABSOLUTE position t, the mean P(eos) over the responses still running at t
(t < R; the stop slot excluded), with the number of such responses; and the stop slots on
their own (mean P(eos) at the stop slot, mean R). Per run the mean is over responses; runs
of one setting (seeds) are averaged with equal weight.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

# figure2 is a report-stage figure: it labels runs as the tables do (report imports nothing of analysis)
from rlev.report.runs import run_identity

log = logging.getLogger(__name__)

SHARE = 0.025  # the paper's 200 highest- and 200 lowest-valued of 8,000 test prompts
MIN_RESPONSES = 3  # a position's mean is drawn while at least this many responses of a run still run
VOCAB_CHUNK = 16384
EOS_BATCH = 16  # prompts per teacher-forced forward pass: hidden states only, so small batches suffice


def extreme_prompts(samples: pd.DataFrame, share: float = SHARE) -> pd.DataFrame:
    """The `share` highest- ("top") and lowest-valued ("bottom") rows: k = round(share * n), 1 <= k <= n // 2."""
    if not 0 < share <= 0.5:
        raise ValueError(f"the top/bottom share must be in (0, 0.5], got {share}")
    if len(samples) < 2:
        raise ValueError(f"need at least 2 evaluated prompts for EOS trajectories, got {len(samples)}")
    k = min(max(1, int(round(share * len(samples)))), len(samples) // 2)
    samples = samples.reset_index(drop=True)
    order = np.argsort(samples["value"].to_numpy(), kind="stable")
    top, bottom = samples.iloc[order[-k:]], samples.iloc[order[:k]]
    return pd.concat([top.assign(extreme="top"), bottom.assign(extreme="bottom")], ignore_index=True)


def stop_token_ids(model, tokenizer) -> list[int]:
    """The tokens generation stops on: the tokenizer's eos and the generation config's eos id(s)."""
    ids = {tokenizer.eos_token_id}
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if config_eos is not None:
        ids.update(config_eos if isinstance(config_eos, (list, tuple)) else [config_eos])
    return sorted(i for i in ids if i is not None)


def stop_log_probs(hidden, lm_head, stop_ids: list[int], chunk: int = VOCAB_CHUNK):
    """log P(stop) for each row of `hidden` (M, H): logsumexp of the stop logits minus logsumexp of all.

    The vocabulary is walked in chunks of `chunk` rows of the output matrix, so memory is
    M x chunk floats, never M x vocabulary.
    """
    import torch

    weight = lm_head.weight
    bias = getattr(lm_head, "bias", None)
    h = hidden.float()
    total = torch.full((h.shape[0],), -float("inf"), device=h.device)
    for start in range(0, weight.shape[0], chunk):
        logits = h @ weight[start : start + chunk].float().T
        if bias is not None:
            logits = logits + bias[start : start + chunk].float()
        total = torch.logaddexp(total, torch.logsumexp(logits, dim=-1))
    stop = h @ weight[stop_ids].float().T
    if bias is not None:
        stop = stop + bias[stop_ids].float()
    return torch.logsumexp(stop, dim=-1) - total


def _decoder_and_head(model):
    """The decoder that yields final hidden states, and the output projection, of a causal LM."""
    head = model.get_output_embeddings()
    decoder = getattr(model, model.base_model_prefix, None)
    if head is None or decoder is None or getattr(model.config, "final_logit_softcapping", None):
        raise ValueError(f"{type(model).__name__}: P(eos) needs a plain linear output head over the decoder's "
                         "hidden states (no logit soft-capping)")
    return decoder, head


def eos_trajectories(model, tokenizer, prompts: list[str], responses: list[str], stopped: list[bool],
                     batch_size: int = EOS_BATCH, chunk: int = VOCAB_CHUNK) -> list[np.ndarray]:
    """P(stop) at each response position, teacher-forced (see the module docstring).

    Prompt and response are tokenised separately, as generation saw them (the prompt was
    encoded alone, the response is the decoded generated tokens re-encoded). Sequences are
    right-padded, so positions need no correction.
    """
    import torch  # here, not at the top: the CLI imports this module's constants without torch

    decoder, head = _decoder_and_head(model)
    stop_ids = stop_token_ids(model, tokenizer)
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
        # the hidden state at index j predicts token j + 1: response token t is predicted at len(p) - 1 + t
        spans = []
        for i, (p, r) in enumerate(zip(batch_p, batch_r)):
            positions = len(r) + 1 if stopped[start + i] else len(r)
            spans.append((i, len(p) - 1, positions))
        with torch.no_grad():
            hidden = decoder(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).last_hidden_state
            rows = torch.cat([hidden[i, first : first + n] for i, first, n in spans])
            logp = stop_log_probs(rows, head, stop_ids, chunk).exp().cpu().numpy()
        offset = 0
        for _, _, n in spans:
            out.append(logp[offset : offset + n].copy())
            offset += n
    return out


def run_eos(model_path: str, test_path: str, samples_path: str, out: Path, share: float = SHARE,
            batch_size: int = EOS_BATCH, threads: int = 1, device: str = "auto", dtype: str = "float32") -> pd.DataFrame:
    """eval/eos.parquet for one run: id, value, extreme, position, tokens, stop_slot, p_eos."""
    import torch

    from rlev.model import load_policy, render_prompt

    torch.set_num_threads(threads)
    samples = pd.read_parquet(samples_path)
    test = pd.read_parquet(test_path, columns=["id", "question", "system"])
    missing = set(samples["id"]) - set(test["id"])
    if missing:
        raise ValueError(f"{samples_path}: {len(missing)} prompt id(s) not in {test_path}, e.g. {sorted(missing)[0]!r}")
    chosen = extreme_prompts(samples, share).merge(test, on="id", how="left", validate="one_to_one")
    model, tokenizer = load_policy(model_path, device, dtype)
    model.eval()
    prompts = [render_prompt(tokenizer, q, s) for q, s in zip(chosen["question"], chosen["system"])]
    stopped = (~chosen["truncated"].astype(bool)).tolist()
    trajectories = eos_trajectories(model, tokenizer, prompts, chosen["response"].tolist(), stopped, batch_size)
    rows = []
    for row, p, stop in zip(chosen.itertuples(index=False), trajectories, stopped):
        tokens = len(p) - 1 if stop else len(p)
        rows += [{"id": row.id, "value": row.value, "extreme": row.extreme, "position": t, "tokens": tokens,
                  "stop_slot": stop and t == tokens, "p_eos": float(p[t])} for t in range(len(p))]
    table = pd.DataFrame(rows, columns=["id", "value", "extreme", "position", "tokens", "stop_slot", "p_eos"])
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(out, index=False)
    log.info("%s: P(eos) over %d positions of %d responses (%d per extreme, share %g)", model_path, len(table),
             len(trajectories), len(chosen) // 2, share)
    return table


def run_profile(eos: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(running, stop) for one run.

    running: per extreme and absolute position t, mean P(eos) over the responses still
    running at t (t < tokens) and how many they are. stop: per extreme, mean P(eos) at the
    stop slot over the responses that stopped, how many stopped, of how many, and their
    mean length in tokens.
    """
    running = (eos[~eos["stop_slot"]].groupby(["extreme", "position"], sort=False)
               .agg(p_eos=("p_eos", "mean"), responses=("id", "nunique")).reset_index())
    per_response = eos.groupby(["extreme", "id"], sort=False).agg(tokens=("tokens", "first"),
                                                                   stopped=("stop_slot", "any")).reset_index()
    slots = eos[eos["stop_slot"]].groupby("extreme", sort=False)["p_eos"].mean()
    stop = (per_response.groupby("extreme", sort=False)
            .agg(responses=("id", "size"), stopped=("stopped", "sum"), mean_tokens=("tokens", "mean")).reset_index())
    stop["p_eos_at_stop"] = stop["extreme"].map(slots)
    return running, stop


def _run_label(path: str) -> dict:
    run = run_identity(Path(path).parents[1])
    return {k: run[k] for k in ("estimator", "scale", "reward", "alpha", "form", "seed", "run")}


def figure2(eos_files: list[str], out: Path, min_responses: int = MIN_RESPONSES) -> tuple[pd.DataFrame, pd.DataFrame]:
    """figure2.{png,svg,csv} and figure2_stop.csv: P(eos) by absolute position, top vs bottom valued prompts.

    One row of panels per estimator; one panel per reward (correctness, RLEV, ...) so no
    curve hides another; a last panel per row with the stop slots. A run contributes a
    position while at least `min_responses` of its responses of that group still run.
    Each eos file sits at <run>/eval/eos.parquet; the run's config says what it is.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    running_parts, stop_parts = [], []
    for path in eos_files:
        label = _run_label(path)
        running, stop = run_profile(pd.read_parquet(path))
        running_parts.append(running[running["responses"] >= min_responses].assign(**label))
        stop_parts.append(stop.assign(**label))
    setting = ["estimator", "scale", "reward", "alpha", "form"]
    runs_col = ("run", lambda r: ";".join(dict.fromkeys(r)))
    running = (pd.concat(running_parts, ignore_index=True).groupby(setting + ["extreme", "position"], sort=False)
               .agg(p_eos=("p_eos", "mean"), responses=("responses", "sum"), seeds=("seed", "nunique"), runs=runs_col)
               .reset_index())
    stop = (pd.concat(stop_parts, ignore_index=True).groupby(setting + ["extreme"], sort=False)
            .agg(p_eos_at_stop=("p_eos_at_stop", "mean"), stopped=("stopped", "sum"), responses=("responses", "sum"),
                 mean_tokens=("mean_tokens", "mean"), seeds=("seed", "nunique"), runs=runs_col)
            .reset_index())
    out.parent.mkdir(parents=True, exist_ok=True)
    running.to_csv(out.with_suffix(".csv"), index=False)
    stop.to_csv(out.parent / f"{out.name}_stop.csv", index=False)

    estimators = list(dict.fromkeys(zip(stop["estimator"], stop["scale"])))
    arms = list(dict.fromkeys(zip(stop["reward"], stop["alpha"], stop["form"])))
    fig, axes = plt.subplots(len(estimators), len(arms) + 1, figsize=(3.8 * (len(arms) + 1), 3.2 * len(estimators)),
                             squeeze=False)
    colours = {"top": "tab:red", "bottom": "tab:blue"}
    for r, (estimator, scale) in enumerate(estimators):
        for c, (reward, alpha, form) in enumerate(arms):
            ax = axes[r][c]
            if (r, c) != (0, 0):  # one y scale for every curve panel: rewards compare across panels
                ax.sharey(axes[0][0])
            sel = ((running["estimator"] == estimator) & (running["scale"] == scale) & (running["reward"] == reward)
                   & (running["alpha"] == alpha) & (running["form"] == form))
            for extreme, curve in running[sel].groupby("extreme", sort=False):
                ax.plot(curve["position"], curve["p_eos"], "-", marker=".", color=colours.get(extreme),
                        label=f"{extreme}-valued")
            if sel.any():
                ax.set_yscale("log")
                ax.legend(fontsize=7)
            arm = reward if alpha == "-" else f"{reward} (alpha {alpha})"
            ax.set_title(f"{estimator} ({scale}): {arm}", fontsize=9)
            ax.set_xlabel("response token position t")
            if c == 0:
                ax.set_ylabel("mean P(eos) over responses\nstill running at t")
        ax = axes[r][-1]  # the stop slots, every arm side by side
        sel = stop[(stop["estimator"] == estimator) & (stop["scale"] == scale)]
        labels, heights, colors = [], [], []
        for _, row in sel.iterrows():
            arm = row["reward"] if row["alpha"] == "-" else f"{row['reward']} a{row['alpha']}"
            labels.append(f"{arm}\n{row['extreme']} ({row['mean_tokens']:.0f} tok)")
            heights.append(row["p_eos_at_stop"])
            colors.append(colours.get(row["extreme"]))
        ax.bar(range(len(heights)), heights, color=colors)
        ax.set_xticks(range(len(heights)), labels, fontsize=6, rotation=60, ha="right")
        ax.set_ylim(0, 1.05)
        ax.set_title("P(eos) at the stop slot", fontsize=9)
    k = int(stop["responses"].max() / max(stop["seeds"].max(), 1))
    fig.suptitle(f"EOS probability along the greedy response: {k} highest- (red) vs {k} lowest-valued (blue) test "
                 "prompts per run")
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=120)
    fig.savefig(out.with_suffix(".svg"))
    plt.close(fig)
    return running, stop
