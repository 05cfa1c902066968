"""Value variants: the v(x) and the reward scale s(x) each training prompt gets in one run.

One variant per run (`run["reward"]["variant"]`), with the run's alpha and reward form
(`rlev.reward.reward_scale`):

    correctness  s = 1                                  the RLVR baseline
    human        v = score / total (the `value` column) RLEV, the paper's method
    uniform      s = s_bar for every prompt: the mean of s(v) over the training prompts,
                 with the run's alpha and form           Table 4 "uniform scaling"
    shuffled     v permuted across the training set: the same multiset of values, no
                 alignment with the questions; the permutation is drawn from
                 numpy.random.default_rng([reward.shuffle_seed, run seed]), both
                 recorded in the run's config.yaml      Table 4 "random weights"
    weak         v = points of the row's difficulty category / 100 (`reward.weak_points`;
                 default the paper's primary 1, junior 2, senior 4, university 6, phd 8)
                                                         Table 3 "weak (difficulty)"
    predicted    v = the `predicted_value` column the score predictor writes
                                                         Table 3 "predicted"

`reward_scales(run, train_rows)` is the one function that gives every training row its
reward scale s(x). `write_values` writes beside the run, when its training starts (each back
end's `train` calls it first, so the rules train_local and train_verl have these as outputs,
and a hand-made run records them too)

    values.parquet        id, value (the variant's v), scale (s(x)) per training row
    verl_train.parquet    (verl scales) verl's training file of the rows, as the prepare stage
                          writes it, with extra_info.value set to the variant's v and
                          extra_info.scale added
    rejects.csv           (verl scales) training prompts longer than the scale's
                          max_prompt_length, which verl drops without naming them
                          (rlev.data.validate.overlong_prompts)

and verl trains on that file (`run_verl_train`: in the run's directory, so a run moved with
`rlev train --out` takes it along): verl's compute_score reads each row's s(x) from
extra_info; the local trainer uses the table it wrote. Both back ends train with the same
numbers. (Computed in the training job, not a job of their own: that job would read nothing
the training does not, and would be one more cluster job per run.)

Naming: "scale" alone is the config's model-size block (`run["scale"]`, the `{scale}`
wildcard); the paper's s(x) is a "reward scale" in code (`reward_scale`, `reward_scales`). Only
the on-disk names keep the short form: the `scale` column of values.parquet and
`extra_info.scale` of verl's training file.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from rlev.reward import FORMS, VARIANTS, reward_scale

log = logging.getLogger(__name__)

WEAK_DIVISOR = 100.0  # the paper divides the category's points by 100 (WebInstruct: total = 100)
PREDICTED_COLUMN = "predicted_value"
VALUES_FILE = "values.parquet"  # <run dir>/values.parquet: id, value (v), scale (s(x)) per training row
VERL_TRAIN_FILE = "verl_train.parquet"  # <run dir>/verl_train.parquet: verl's training file of a verl run


def _row_name(rows: pd.DataFrame, i: int) -> str:
    rid = rows["id"].iloc[i] if "id" in rows.columns else i
    return f"row {i} (id {rid!r})"


def _weak_values(rows: pd.DataFrame, points: dict) -> np.ndarray:
    if "difficulty" not in rows.columns:
        raise ValueError("the weak variant needs a `difficulty` column in the training data; it has none")
    lookup = {str(k).strip().casefold(): float(v) for k, v in points.items()}
    out = np.empty(len(rows))
    for i, label in enumerate(rows["difficulty"].tolist()):
        key = "" if label is None or (isinstance(label, float) and np.isnan(label)) else str(label).strip().casefold()
        if key not in lookup:
            shown = "missing" if not key else f"{label!r}"
            raise ValueError(
                f"weak values: {_row_name(rows, i)} has difficulty {shown}, not one of {sorted(points)}; "
                "fix the data or add the category to reward.weak_points"
            )
        out[i] = lookup[key] / WEAK_DIVISOR
    return out


def _predicted_values(rows: pd.DataFrame) -> np.ndarray:
    if PREDICTED_COLUMN not in rows.columns:
        raise ValueError(
            f"the predicted variant needs a `{PREDICTED_COLUMN}` column (written by the score predictor) "
            f"in the training data; it has only {sorted(rows.columns)}"
        )
    values = pd.to_numeric(rows[PREDICTED_COLUMN], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values) | (values < 0))
    if len(bad):
        raise ValueError(
            f"predicted values: {_row_name(rows, int(bad[0]))} has {PREDICTED_COLUMN}="
            f"{rows[PREDICTED_COLUMN].iloc[bad[0]]!r} ({len(bad)} such rows); need a number >= 0"
        )
    return values


def variant_values(reward: dict, rows: pd.DataFrame, seed: int) -> np.ndarray:
    """The v each row's reward uses under the run's variant (correctness/uniform: the human v)."""
    variant = reward["variant"]
    if variant not in VARIANTS:
        raise ValueError(f"unknown reward variant {variant!r}; choose one of {VARIANTS}")
    if variant == "weak":
        return _weak_values(rows, reward["weak_points"])
    if variant == "predicted":
        return _predicted_values(rows)
    human = rows["value"].to_numpy(dtype=np.float64)
    if variant == "shuffled":
        rng = np.random.default_rng([int(reward.get("shuffle_seed", 0)), int(seed)])
        return human[rng.permutation(len(human))]
    return human


def reward_scales(run: dict, rows: pd.DataFrame) -> np.ndarray:
    """s(x) for every training row of `run` (a run config: reward block and seed).

    >>> rows = pd.DataFrame({"value": [0.0, 0.05, 0.2]})
    >>> reward_scales({"reward": {"variant": "human", "alpha": 10, "form": "additive_clipped"}}, rows)
    array([1. , 1.5, 2. ])
    >>> reward_scales({"reward": {"variant": "uniform", "alpha": 10, "form": "additive_clipped"}}, rows)
    array([1.5, 1.5, 1.5])
    """
    reward = run["reward"]
    if reward["form"] not in FORMS:
        raise ValueError(f"unknown reward form {reward['form']!r}; choose one of {FORMS}")
    if len(rows) == 0:
        raise ValueError("no training rows to compute reward scales for")
    values = variant_values(reward, rows, run.get("seed", 0))
    if reward["variant"] == "uniform":
        # s_bar: the mean human-aligned scale over the training prompts, given to every prompt.
        s_bar = float(reward_scale("human", values, reward["alpha"], reward["form"]).mean())
        return np.full(len(rows), s_bar)
    return reward_scale(reward["variant"], values, reward["alpha"], reward["form"])


def value_table(run: dict, rows: pd.DataFrame) -> pd.DataFrame:
    """id, value (the variant's v) and scale (the reward scale s(x)) of every training row, in row order."""
    return pd.DataFrame(
        {
            "id": rows["id"].astype(str).to_numpy(),
            "value": variant_values(run["reward"], rows, run.get("seed", 0)),
            "scale": reward_scales(run, rows),
        }
    )


def write_value_table(run: dict, rows: pd.DataFrame, out_dir: Path) -> pd.DataFrame:
    """value_table of `rows`, written to `<out_dir>/values.parquet`; returns it."""
    table = value_table(run, rows)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_parquet(out_dir / VALUES_FILE, index=False)
    return table


def verl_values_file(table: pd.DataFrame, rows: pd.DataFrame, data_source: str, verl_out: Path) -> None:
    """verl's training file of `rows` (rlev.data.verl_export, the prepare stage's format) with
    extra_info.value set to the variant's v and extra_info.scale added; `table` is
    value_table(run, rows), in the same row order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from rlev.data.verl_export import VERL_SCHEMA, to_verl_frame

    frame = to_verl_frame(rows.assign(value=table["value"].to_numpy()), data_source)
    data = pa.Table.from_pandas(frame, schema=VERL_SCHEMA, preserve_index=False)
    extra = data.column("extra_info").combine_chunks()
    fields = {f.name: extra.field(i) for i, f in enumerate(extra.type)}
    fields["scale"] = pa.array(table["scale"].to_numpy(), pa.float64())
    struct = pa.StructArray.from_arrays(list(fields.values()), names=list(fields))
    data = data.set_column(data.schema.get_field_index("extra_info"), "extra_info", struct)
    verl_out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(data, verl_out)


def run_verl_train(run: dict) -> Path:
    """The verl training file of `run`, with its rows' values and scales: in the run's directory."""
    return Path(run["out_dir"]) / VERL_TRAIN_FILE


def write_values(run: dict, rows: pd.DataFrame) -> pd.DataFrame:
    """The values of one run (its training rows `rows`), where the run config says: values.parquet in
    its `out_dir`, and on the verl back end its own verl training file (run_verl_train) and
    rejects.csv; returns the table."""
    out_dir = Path(run["out_dir"])
    table = write_value_table(run, rows, out_dir)
    if run.get("scale", {}).get("backend") == "verl":
        verl_values_file(table, rows, run["dataset"]["name"], run_verl_train(run))
        # verl drops prompts over its budget without naming them
        from rlev.data.validate import load_tokenizer, overlong_prompts, write_rejects

        setup = run["scale"]
        over = overlong_prompts(
            rows,
            setup["max_prompt_length"],
            load_tokenizer(setup["model"]),
            setup["model"],
            setup.get("filter_overlong_prompts", True),
        )
        write_rejects(over, out_dir / "rejects.csv")
        if len(over):
            log.warning(
                "%s: %d of %d training prompts may be longer than max_prompt_length %d; listed in %s",
                run.get("run_id", "?"),
                len(over),
                len(rows),
                setup["max_prompt_length"],
                out_dir / "rejects.csv",
            )
    log.info(
        "%s: %s values for %d rows, reward scale mean %.4f (min %.4f, max %.4f)",
        run.get("run_id", "?"), run["reward"]["variant"], len(table),
        table["scale"].mean(), table["scale"].min(), table["scale"].max(),
    )  # fmt: skip
    return table
