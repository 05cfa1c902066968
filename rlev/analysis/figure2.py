"""Figure 2 (`rlev figure2`, rule figure2): P(eos) by absolute position, top- vs bottom-valued prompts.

Each run's measurements are its eval/eos.parquet (rlev.evaluate.eos). P(eos) is tiny (~1e-5)
while a response runs and ~1 at its stop slot, so averaging by RELATIVE position mixes the
two and the last bin reads about 1 / (positions in the bin): a difference in length alone. The figure instead
plots, at each ABSOLUTE position t, the mean P(eos) over the responses still running at t
(t < R; the stop slot excluded), with the number of such responses; and the stop slots on
their own (mean P(eos) at the stop slot, mean R). Per run the mean is over responses; runs
of one setting (seeds) are averaged with equal weight.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from rlev.report.runs import run_identity

MIN_RESPONSES = 3  # a position's mean is drawn while at least this many responses of a run still run


def run_profile(eos: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(running, stop) for one run.

    running: per extreme and absolute position t, mean P(eos) over the responses still
    running at t (t < tokens) and how many they are. stop: per extreme, mean P(eos) at the
    stop slot over the responses that stopped, how many stopped, of how many, and their
    mean length in tokens.
    """
    running = (
        eos[~eos["stop_slot"]]
        .groupby(["extreme", "position"], sort=False)
        .agg(p_eos=("p_eos", "mean"), responses=("id", "nunique"))
        .reset_index()
    )
    per_response = (
        eos.groupby(["extreme", "id"], sort=False)
        .agg(tokens=("tokens", "first"), stopped=("stop_slot", "any"))
        .reset_index()
    )
    slots = eos[eos["stop_slot"]].groupby("extreme", sort=False)["p_eos"].mean()
    stop = (
        per_response.groupby("extreme", sort=False)
        .agg(responses=("id", "size"), stopped=("stopped", "sum"), mean_tokens=("tokens", "mean"))
        .reset_index()
    )
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
    running = (
        pd.concat(running_parts, ignore_index=True)
        .groupby(setting + ["extreme", "position"], sort=False)
        .agg(p_eos=("p_eos", "mean"), responses=("responses", "sum"), seeds=("seed", "nunique"), runs=runs_col)
        .reset_index()
    )
    stop = (
        pd.concat(stop_parts, ignore_index=True)
        .groupby(setting + ["extreme"], sort=False)
        .agg(
            p_eos_at_stop=("p_eos_at_stop", "mean"),
            stopped=("stopped", "sum"),
            responses=("responses", "sum"),
            mean_tokens=("mean_tokens", "mean"),
            seeds=("seed", "nunique"),
            runs=runs_col,
        )
        .reset_index()
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    running.to_csv(out.with_suffix(".csv"), index=False)
    stop.to_csv(out.parent / f"{out.name}_stop.csv", index=False)

    estimators = list(dict.fromkeys(zip(stop["estimator"], stop["scale"])))
    arms = list(dict.fromkeys(zip(stop["reward"], stop["alpha"], stop["form"])))
    fig, axes = plt.subplots(
        len(estimators), len(arms) + 1, figsize=(3.8 * (len(arms) + 1), 3.2 * len(estimators)), squeeze=False
    )
    colours = {"top": "tab:red", "bottom": "tab:blue"}
    for r, (estimator, scale) in enumerate(estimators):
        for c, (reward, alpha, form) in enumerate(arms):
            ax = axes[r][c]
            if (r, c) != (0, 0):  # one y scale for every curve panel: rewards compare across panels
                ax.sharey(axes[0][0])
            sel = (
                (running["estimator"] == estimator)
                & (running["scale"] == scale)
                & (running["reward"] == reward)
                & (running["alpha"] == alpha)
                & (running["form"] == form)
            )
            for extreme, curve in running[sel].groupby("extreme", sort=False):
                ax.plot(
                    curve["position"],
                    curve["p_eos"],
                    "-",
                    marker=".",
                    color=colours.get(extreme),
                    label=f"{extreme}-valued",
                )
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
    fig.suptitle(
        f"EOS probability along the greedy response: {k} highest- (red) vs {k} lowest-valued (blue) test "
        "prompts per run"
    )
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=120)
    fig.savefig(out.with_suffix(".svg"))
    plt.close(fig)
    return running, stop
