"""The experiment configuration: validation against the JSON schema, and the run matrix.

`config.yaml` describes experiments (one per paper table); each names estimators and
reward variants. A *run* is one training job, identified by its parameters only
(dataset, scale, estimator, reward tag, seed), so a run that several tables need is
planned once. Its directory is readable by a person:

    results/runs/<dataset>/<scale>/<estimator>/<reward tag>/seed<k>/

and the reward tag spells the reward: `correctness`, or `<variant>-a<alpha>-<form>`
(e.g. `human-a10-additive_clipped`).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"
RUNS_DIR = "results/runs"


class ConfigError(ValueError):
    """A configuration that does not fit the schema or names something undefined."""


def _validator_filling_defaults():
    """Draft 2020-12 validator that writes each property's `default` into the instance.

    This is the recipe from the jsonschema FAQ: defaults are set while `properties` is
    validated, so they reach every depth the schema visits (including $ref, if/then and
    additionalProperties sub-schemas).
    """
    base = jsonschema.Draft202012Validator
    validate_properties = base.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(base, {"properties": set_defaults})


def load_schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def validate(config: dict) -> dict:
    """Validate `config` in place against the schema, fill defaults, check cross-references.

    Raises ConfigError naming the offending key path, e.g. `scales.tiny.rl_steps`.
    """
    validator = _validator_filling_defaults()(load_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for e in errors[:10]:
            where = ".".join(str(p) for p in e.absolute_path) or "<top level>"
            lines.append(f"  {where}: {e.message}")
        raise ConfigError("config does not fit workflow/schemas/config.schema.yaml:\n" + "\n".join(lines))
    _check_references(config)
    return config


def _check_references(config: dict) -> None:
    for key, table in (("scale", "scales"), ("dataset", "datasets")):
        if config[key] not in config[table]:
            raise ConfigError(f"{key}: {config[key]!r} is not defined under `{table}` (defined: {sorted(config[table])})")
    for name, exp in config["experiments"].items():
        for est in exp["estimators"]:
            if est not in config["estimators"]:
                raise ConfigError(
                    f"experiments.{name}.estimators: {est!r} is not defined under `estimators` "
                    f"(defined: {sorted(config['estimators'])})"
                )


def load_config(path: str | Path = REPO_ROOT / "config.yaml", overrides: dict | None = None) -> dict:
    """Read a YAML config, apply top-level overrides (like `snakemake --config k=v`), validate."""
    config = yaml.safe_load(Path(path).read_text())
    config.update(overrides or {})
    return validate(config)


# --- the run matrix -------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Run:
    dataset: str
    scale: str
    estimator: str
    reward: str  # the reward tag, see reward_tag()
    seed: int

    @property
    def path(self) -> str:
        return f"{RUNS_DIR}/{self.dataset}/{self.scale}/{self.estimator}/{self.reward}/seed{self.seed}"

    @property
    def run_id(self) -> str:
        return f"{self.dataset}/{self.scale}/{self.estimator}/{self.reward}/seed{self.seed}"


def _number(x: float) -> str:
    return f"{x:g}"


def reward_tag(variant: str, alpha: float, form: str) -> str:
    """The directory name of a reward; correctness ignores alpha and form, so it has one."""
    if variant == "correctness":
        return "correctness"
    return f"{variant}-a{_number(alpha)}-{form}"


_TAG = re.compile(r"^(?P<variant>[a-z_]+)-a(?P<alpha>[0-9.eE+-]+)-(?P<form>[a-z_]+)$")


def parse_reward_tag(tag: str) -> dict:
    """Inverse of reward_tag: {'variant', 'alpha', 'form'} (alpha/form None for correctness)."""
    if tag == "correctness":
        return {"variant": "correctness", "alpha": None, "form": None}
    m = _TAG.match(tag)
    if not m:
        raise ConfigError(f"not a reward tag: {tag!r} (expected 'correctness' or '<variant>-a<alpha>-<form>')")
    return {"variant": m["variant"], "alpha": float(m["alpha"]), "form": m["form"]}


def experiment_runs(config: dict, name: str) -> list[Run]:
    """The runs behind one experiment (one paper table), in table order."""
    exp = config["experiments"][name]
    alpha, form = config["reward"]["alpha"], config["reward"]["form"]
    return [
        Run(config["dataset"], config["scale"], est, reward_tag(variant, alpha, form), seed)
        for est in exp["estimators"]
        for variant in exp["rewards"]
        for seed in config["seeds"]
    ]


def plan_runs(config: dict) -> list[Run]:
    """Every run of every experiment, each once."""
    return sorted({run for name in config["experiments"] for run in experiment_runs(config, name)})


def run_config(config: dict, run: Run) -> dict:
    """The fully resolved configuration of one run: everything its training and evaluation read.

    Saved beside the run's outputs, so a run directory says exactly how it was made.
    """
    reward = parse_reward_tag(run.reward)
    scale = copy.deepcopy(config["scales"][run.scale])
    dataset = copy.deepcopy(config["datasets"][run.dataset])
    data_dir = f"results/data/{run.dataset}"
    dataset.update(
        name=run.dataset,
        train=f"{data_dir}/train.parquet",
        test=f"{data_dir}/test.parquet",
        verl_train=f"{data_dir}/verl/train.parquet",
        verl_test=f"{data_dir}/verl/test.parquet",
    )
    scale.update(name=run.scale, init_model=policy_init_path(config, run.dataset, run.scale))
    estimator = copy.deepcopy(config["estimators"][run.estimator])
    estimator["name"] = run.estimator
    return {
        "run_id": run.run_id,
        "out_dir": run.path,
        "seed": run.seed,
        "dataset": dataset,
        "scale": scale,
        "estimator": estimator,
        "reward": {
            "variant": reward["variant"],
            "alpha": reward["alpha"] if reward["alpha"] is not None else config["reward"]["alpha"],
            "form": reward["form"] or config["reward"]["form"],
        },
    }


def policy_init_path(config: dict, dataset: str, scale: str) -> str:
    """Where RL starts from: the warm-started tiny model, or the configured model id/path."""
    s = config["scales"][scale]
    if s["backend"] == "local" and (s["model"] == "tiny" or s.get("sft_steps", 0) > 0):
        return f"results/models/{dataset}/{scale}/sft"
    return s["model"]
