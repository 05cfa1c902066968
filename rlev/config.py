"""The experiment configuration: validation against the JSON schema, and the run matrix.

`config.yaml` describes experiments (one per paper table); each names estimators and
reward variants. A *run* is one training job, identified by its parameters only
(dataset, scale, estimator, reward tag, seed), so a run that several tables need is
planned once. Its directory is readable by a person:

    results/runs/<dataset>/<scale>/<estimator>/<reward tag>/seed<k>/

and the reward tag spells the reward: `correctness`, or `<variant>-a<alpha>-<form>`
(e.g. `human-a10-additive_clipped`), followed by the value-independent cost when there is
one (`-len0.005`, `-overlong16x1`; see reward_tag).
"""

from __future__ import annotations

import copy
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import yaml

from rlev import InputError

REPO_ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"
RUNS_DIR = "results/runs"
# A name that becomes one directory of a run's path (datasets, scales, estimators,
# benchmarks): the Snakemake wildcards of those path segments accept exactly these.
NAME_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_.+-]*"


class ConfigError(InputError):
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
    # libyaml's loader when present: the pure-Python one takes ~0.2 s for the schema, on every dry run
    return yaml.load(SCHEMA_PATH.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def fill_defaults(instance: dict, definition: str) -> dict:
    """A copy of `instance` with the schema's defaults of `$defs.<definition>` filled in (e.g. a
    `dataset` entry): the defaults a library caller gets, the same `validate` fills.

    Fills only; `validate` is what checks a config (a loader still refuses what it cannot read).

    >>> fill_defaults({"source": "webinstruct"}, "dataset")["train_per_category"]
    2000
    """
    schema = load_schema()
    out = copy.deepcopy(instance)
    validator = _validator_filling_defaults()({"$ref": f"#/$defs/{definition}", "$defs": schema["$defs"]})
    for _ in validator.iter_errors(out):
        pass
    return out


def validate(config: dict) -> dict:
    """Validate `config` in place against the schema, fill defaults, check cross-references.

    Raises ConfigError naming the offending key path, e.g. `scales.tiny.rl_steps`.
    """
    _coerce_command_line_seeds(config)
    _check_finite(config)
    _apply_scale_experiments(config)
    validator = _validator_filling_defaults()(load_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for e in errors[:10]:
            where = ".".join(str(p) for p in e.absolute_path) or "<top level>"
            lines.append(f"  {where}: {e.message}")
        raise ConfigError("config does not fit workflow/schemas/config.schema.yaml:\n" + "\n".join(lines))
    for line in _resolve_companions(config):
        print(line, file=sys.stderr)
    _check_references(config)
    _check_data(config)
    _check_scale_invariance(config)
    _check_verifier(config)
    _check_costs(config)
    return config


def _apply_scale_experiments(config: dict) -> None:
    """The chosen scale's trims of the experiment matrix: `scales.<scale>.experiments`.

    Each entry replaces keys of one experiment at that scale only (e.g. fewer alphas on a
    laptop), or switches it off with null, so the paper's scales keep the paper's matrix.
    Applied before the schema check, which then validates the merged experiments; the
    trims leave the scale's own entry, so they are part of no run's configuration.
    """
    scale = (config.get("scales") or {}).get(config.get("scale"))
    # Popped: a run, the SFT and every other job read the scale, and must not change when only the matrix does.
    trims = scale.pop("experiments", None) if isinstance(scale, dict) else None
    if not trims:
        return
    if not isinstance(trims, dict):
        raise ConfigError(f"scales.{config['scale']}.experiments: give experiment name -> keys, not {trims!r}")
    experiments = config.setdefault("experiments", {})
    for name, keys in trims.items():
        where = f"scales.{config['scale']}.experiments.{name}"
        if name not in experiments:
            raise ConfigError(f"{where}: there is no experiments.{name} to change (defined: {sorted(experiments)})")
        if keys is None or experiments[name] is None:
            experiments[name] = None
        elif isinstance(keys, dict):
            experiments[name] = {**experiments[name], **copy.deepcopy(keys)}
        else:
            raise ConfigError(f"{where}: give the experiment's keys to replace (a mapping) or null, not {keys!r}")


def _check_finite(node, path: str = "") -> None:
    """Refuse NaN and infinity anywhere (YAML's .nan / .inf): the schema's bounds cannot, since
    every comparison with NaN is false, and a NaN setting trains silently to nothing."""
    if isinstance(node, float) and not math.isfinite(node):
        raise ConfigError(f"{path or '<top level>'}: {node} is not a finite number; give a real value")
    if isinstance(node, dict):
        for key, value in node.items():
            _check_finite(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _check_finite(value, f"{path}[{i}]")


def _coerce_command_line_seeds(config: dict) -> None:
    """`snakemake --config 'seeds=[0,1,2]'` gives the list's items as strings ('0'); read them as integers."""
    seeds = config.get("seeds")
    if isinstance(seeds, str):  # `--config seeds=0`, or a list Snakemake did not parse
        seeds = yaml.safe_load(seeds)
        seeds = seeds if isinstance(seeds, list) else [seeds]
    if isinstance(seeds, list):
        config["seeds"] = [int(x) if isinstance(x, str) and x.strip().isdigit() else x for x in seeds]


def _check_costs(config: dict) -> None:
    """Every cost must survive its run name exactly (the run reads it back from the name)."""
    from rlev.reward import cost_settings

    places = [("reward.cost", config["reward"]["cost"])]
    places += [
        (f"experiments.{name}.costs[{i}]", cost)
        for name, exp in config["experiments"].items()
        for i, cost in enumerate(exp.get("costs") or [])
    ]
    for where, cost in places:
        settings = cost_settings(cost)
        if parse_reward_tag(reward_tag("correctness", 1, "additive_clipped", settings))["cost"] != settings:
            raise ConfigError(
                f"{where}: {settings} does not survive the run name {reward_tag('correctness', 1, '', settings)!r}; "
                "give per_token and overlong_penalty with at most 6 significant digits"
            )


def _resolve_companions(config: dict) -> list[str]:
    """Settle which experiments run: drop the switched-off ones, fill or skip the companion ones.

    An experiment set to null (e.g. `experiments: {noisy: null}` in a --configfile) is
    switched off. The main dataset names its companions (`noisy`: the difficulty-only
    dataset of Table 3, `benchmarks`: the OOD set of Table 2), so switching `dataset`
    switches them too: the synthetic default pairs with synthetic stand-ins, `rlev` with
    WebInstruct and the four real benchmarks. A dataset without a companion (a user's own
    exams) still runs on its own: the experiment that needs the companion is dropped and
    the returned line says why; every other table is still built.
    """
    experiments = config["experiments"]
    for name in [n for n, exp in experiments.items() if exp is None]:
        del experiments[name]
    if config["dataset"] not in config["datasets"]:
        return []  # _check_references names the missing dataset
    main = config["datasets"][config["dataset"]]
    skipped = []
    for name, key, companion, table, what in (
        ("noisy", "dataset", "noisy", "Table 3", "difficulty-only dataset"),
        ("ood", "benchmarks", "benchmarks", "Table 2", "OOD benchmarks"),
    ):
        exp = experiments.get(name)
        if exp is None or exp.get(key):
            continue
        if main.get(companion):
            exp[key] = copy.deepcopy(main[companion])
            continue
        del experiments[name]
        skipped.append(
            f"rlev: skipping experiments.{name} ({table}): datasets.{config['dataset']} names no {what} "
            f"(`{companion}:`) and experiments.{name}.{key} is not set; set one of them to build {table}, "
            f"or switch it off with `experiments: {{{name}: null}}`"
        )
    return skipped


def _check_names(config: dict) -> None:
    """Names that become path segments must match NAME_PATTERN, or Snakemake would plan no job for them."""
    for table in ("datasets", "scales", "estimators", "benchmarks"):
        for name in config.get(table) or {}:
            if not re.fullmatch(NAME_PATTERN, str(name)):
                raise ConfigError(
                    f"{table}: {name!r} cannot name a directory of a run: use letters, digits and _ . + - "
                    f"(not starting with . + or -), e.g. {re.sub(r'[^A-Za-z0-9_.+-]+', '_', str(name)).lstrip('.+-')!r}"
                )


def _check_references(config: dict) -> None:
    _check_names(config)
    for key, table in (("scale", "scales"), ("dataset", "datasets")):
        if config[key] not in config[table]:
            raise ConfigError(
                f"{key}: {config[key]!r} is not defined under `{table}` (defined: {sorted(config[table])})"
            )
    for name, exp in config["experiments"].items():
        for est in exp["estimators"]:
            if est not in config["estimators"]:
                raise ConfigError(
                    f"experiments.{name}.estimators: {est!r} is not defined under `estimators` "
                    f"(defined: {sorted(config['estimators'])})"
                )
        if exp.get("dataset") is not None and exp["dataset"] not in config["datasets"]:
            raise ConfigError(
                f"experiments.{name}.dataset: {exp['dataset']!r} is not defined under `datasets` "
                f"(defined: {sorted(config['datasets'])})"
            )
    for name in config.get("experiments", {}).get("ood", {}).get("benchmarks", []):
        if name not in config["benchmarks"]:
            raise ConfigError(
                f"experiments.ood.benchmarks: {name!r} is not defined under `benchmarks` "
                f"(defined: {sorted(config['benchmarks'])})"
            )


def used_datasets(config: dict) -> list[str]:
    """The datasets the planned experiments read: the main one, experiments' own, the predictor's."""
    names = [config["dataset"]] + [exp["dataset"] for exp in config["experiments"].values() if exp.get("dataset")]
    if any("predicted" in exp["rewards"] for exp in config["experiments"].values()):
        names.append(config.get("predictor", {}).get("dataset") or config["dataset"])
    return list(dict.fromkeys(names))


def _check_data(config: dict) -> None:
    """What can be known about the data before anything runs: local paths exist, `weak` has categories.

    Relative paths are taken from the working directory, as the prepare job will take them.
    """
    for name in used_datasets(config):
        ds = config["datasets"].get(name, {})
        paths = ds.get("path")
        for path in paths.values() if isinstance(paths, dict) else [paths] if paths else []:
            if not Path(path).expanduser().exists():
                raise ConfigError(
                    f"datasets.{name}.path: {path} does not exist (looked in {Path.cwd()}); "
                    "fix the path or put the file there"
                )
    noisy = config["experiments"].get("noisy")
    if noisy and "weak" in noisy["rewards"]:
        ds = config["datasets"].get(noisy.get("dataset") or config["dataset"], {})
        if ds.get("source") == "table" and ds.get("columns") and "difficulty" not in ds["columns"]:
            raise ConfigError(
                f"experiments.noisy.rewards: `weak` values come from difficulty categories, but "
                f"datasets.{noisy.get('dataset') or config['dataset']}.columns maps no `difficulty`; "
                "map one, or drop `weak` from experiments.noisy.rewards"
            )


WHITENING_ESTIMATORS = ("reinforce_plus_plus", "reinforce_plus_plus_baseline")  # whiten over the batch


def value_scale_invariance(estimator: dict, variant: str = "human", cost: dict | None = None) -> str | None:
    """Why the value variant's reward scale cannot change the policy update, or None when it can.

    s(x) is constant within a prompt's group of samples.
    - "std_grpo": std-normalised GRPO computes (r - mean) / std per group, so any per-prompt
      s(x) cancels exactly and a value run equals its correctness baseline.
    - "whitening": the `uniform` variant scales every prompt by the same s_bar, which batch
      whitening (REINFORCE++ and REINFORCE++-baseline in verl) divides out exactly.
    - "adam": with any other estimator, `uniform` multiplies every advantage, and so the
      policy-gradient loss and its gradient, by the one constant s_bar. Both back ends
      optimise with AdamW, whose step m / (sqrt(v) + eps) does not change when every gradient
      is multiplied by a constant (up to floating point and eps; a gradient-norm clip that
      binds on some steps of one run and not the other also breaks the tie). Unless the loss
      has a term s_bar does not scale (entropy_coeff, use_kl_loss), uniform trains like
      correctness.
    A term in the reward that s(x) does not scale (a value-independent `cost`, reward.cost,
    or verl's algorithm.use_kl_in_reward) breaks all three.
    tests/test_guard.py measures the first two with verl's estimators and the third with
    torch's AdamW.
    """
    if variant == "correctness" or estimator.get("use_kl_in_reward", False):
        return None
    if (cost or {}).get("kind", "none") != "none":
        return None
    if estimator["adv_estimator"] == "grpo" and estimator.get("norm_adv_by_std_in_grpo", True):
        return "std_grpo"
    if variant != "uniform":
        return None
    if estimator["adv_estimator"] in WHITENING_ESTIMATORS:
        return "whitening"
    if not estimator.get("entropy_coeff", 0) and not estimator.get("use_kl_loss", False):
        return "adam"
    return None


def cancels_value_scale(estimator: dict, variant: str = "human") -> bool:
    """True when `estimator` divides the value variant's reward scale out of its advantages
    exactly (value_scale_invariance's "std_grpo" and "whitening"; the "adam" case only warns)."""
    return value_scale_invariance(estimator, variant) in ("std_grpo", "whitening")


def scale_invariance_message(where: str, estimator: str, settings: dict, variants: list[str], reason: str) -> str:
    """The one message for every place that finds a no-op comparison (config validation, the verl launcher).

    `where` names the experiment (`experiments.<name>`) or the run.
    """
    if reason == "std_grpo":
        why = (
            "is GRPO with norm_adv_by_std_in_grpo: true and no KL in the reward; dividing each group's "
            "rewards by their std cancels the per-prompt value scale"
        )
        fix = (
            f"set norm_adv_by_std_in_grpo: false under estimators.{estimator} (mean-centred GRPO, Dr.GRPO), "
            "or use rloo / reinforce_plus_plus"
        )
        outcome = "would train exactly like the correctness baseline (a no-op comparison)"
    elif reason == "whitening":
        why = (
            f"is {settings['adv_estimator']}, which whitens advantages over the batch and so cancels the one "
            "scale s_bar the uniform variant gives every prompt"
        )
        fix = "use rloo or mean-centred GRPO (grpo with norm_adv_by_std_in_grpo: false) for the uniform ablation"
        outcome = "would train exactly like the correctness baseline (a no-op comparison)"
    else:  # "adam"
        why = (
            f"(adv_estimator {settings['adv_estimator']}) passes the one scale s_bar of the uniform variant into "
            "every advantage, and AdamW's step does not change when every gradient is multiplied by a constant; the "
            "loss has no term s_bar leaves unscaled (entropy_coeff 0, no KL)"
        )
        fix = (
            "read uniform as a check that equals correctness, or give the reward or loss a value-independent "
            "term (a length cost, use_kl_in_reward, use_kl_loss or entropy_coeff) so the mean scale matters"
        )
        outcome = (
            "trains like the correctness baseline up to floating point (Adam's eps, and gradient-norm clips "
            "that bind on different steps)"
        )
    return f"{where}: estimator {estimator!r} {why}, so its {'/'.join(variants)} run(s) {outcome}. Fix: {fix}" + (
        f"; or set {where}.allow_scale_invariant: true to run it anyway." if reason != "adam" else "."
    )


def _check_scale_invariance(config: dict) -> None:
    """The guard against no-op comparisons: refuse (or, when opted in, warn about) value runs
    whose estimator cancels their reward scale exactly; warn about those that AdamW makes a
    no-op up to floating point. See value_scale_invariance."""
    import warnings

    for name, exp in config["experiments"].items():
        for est in exp["estimators"]:
            settings = config["estimators"][est]
            by_reason: dict[str, list[str]] = {}
            costs = exp.get("costs") or [config["reward"].get("cost")]
            noop_costs: set[str] = set()
            for v in exp["rewards"]:
                # a run with a value-independent cost is never a no-op; the experiment's runs without one may be
                found = [(r, c) for c in costs if (r := value_scale_invariance(settings, v, c))]
                if found:
                    by_reason.setdefault(found[0][0], []).append(v)
                    noop_costs |= {(c or {}).get("kind", "none") for _, c in found}
            where = f"experiments.{name}"
            if len(costs) > 1 and len(noop_costs) < len(costs):  # say which of its runs, not all of them
                where += f" (its runs with cost {', '.join(sorted(noop_costs))})"
            for reason, variants in by_reason.items():
                message = scale_invariance_message(where, est, settings, variants, reason)
                if reason != "adam" and not exp.get("allow_scale_invariant", False):
                    raise ConfigError(message)
                prefix = "" if reason == "adam" else "(allowed by allow_scale_invariant) "
                warnings.warn("WARNING " + prefix + message, stacklevel=2)


def _check_verifier(config: dict) -> None:
    verifier = config["reward"]["verifier"]
    if verifier["kind"] != "judge":
        return
    if not verifier.get("model"):
        raise ConfigError("reward.verifier.model: a judge needs the model name its endpoint serves")
    if config["scales"][config["scale"]]["backend"] == "local" and not verifier.get("url"):
        raise ConfigError(
            f"reward.verifier.url: scale {config['scale']!r} trains with the local back end, which asks a judge "
            "at a URL you serve (e.g. `vllm serve ...`: http://host:8000/v1); only verl serves a judge itself"
        )


def merge_config(base: dict, extra: dict) -> dict:
    """`extra` merged into `base` key by key at every depth, as `snakemake --configfile` merges files."""
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge_config(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def load_config(
    path: str | Path = REPO_ROOT / "config.yaml", overrides: dict | None = None, configfiles: list[str | Path] = ()
) -> dict:
    """Read a YAML config, merge `configfiles` into it (like `snakemake --configfile`), apply
    top-level overrides (like `snakemake --config k=v`), validate."""
    config = yaml.safe_load(Path(path).read_text())
    for extra in configfiles:
        loaded = yaml.safe_load(Path(extra).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{extra}: a config file must hold a YAML mapping of keys, not {type(loaded).__name__}")
        merge_config(config, loaded)
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


def _cost_suffix(cost: dict | None) -> str:
    """The tag suffix of a value-independent cost: '' (none), -len<per_token>, -overlong<buffer>x<penalty>."""
    from rlev.reward import cost_settings

    c = cost_settings(cost)
    if c["kind"] == "length":
        return f"-len{_number(c['per_token'])}"
    if c["kind"] == "overlong":
        return f"-overlong{int(c['overlong_buffer'])}x{_number(c['overlong_penalty'])}"
    return ""


def reward_tag(variant: str, alpha: float, form: str, cost: dict | None = None) -> str:
    """The directory name of a reward; correctness ignores alpha and form, so it has one.

    A value-independent cost (rlev.reward.response_cost) adds a suffix that spells only the
    settings its kind reads, so runs with different costs never share a directory and a
    run without a cost keeps its name whatever the cost settings say.

    >>> reward_tag("human", 10, "additive_clipped", {"kind": "length", "per_token": 0.005})
    'human-a10-additive_clipped-len0.005'
    >>> reward_tag("correctness", 10, "additive_clipped", {"kind": "overlong", "overlong_buffer": 16, "overlong_penalty": 1})
    'correctness-overlong16x1'
    """
    base = "correctness" if variant == "correctness" else f"{variant}-a{_number(alpha)}-{form}"
    return base + _cost_suffix(cost)


_TAG = re.compile(
    r"^(?P<variant>[a-z_]+)(?:-a(?P<alpha>[0-9.eE+-]+?)-(?P<form>[a-z_]+))?"
    r"(?:-len(?P<per_token>[0-9.eE+-]+)|-overlong(?P<buffer>[0-9]+)x(?P<penalty>[0-9.eE+-]+))?$"
)


def parse_reward_tag(tag: str) -> dict:
    """Inverse of reward_tag: {'variant', 'alpha', 'form', 'cost'} (alpha/form None for correctness).

    >>> parse_reward_tag("human-a10-additive_clipped-len0.005")["cost"]
    {'kind': 'length', 'per_token': 0.005}
    """
    m = _TAG.match(tag)
    if not m or (m["variant"] == "correctness") != (m["alpha"] is None):
        raise ConfigError(
            f"not a reward tag: {tag!r} (expected 'correctness' or '<variant>-a<alpha>-<form>', "
            "optionally followed by '-len<per_token>' or '-overlong<buffer>x<penalty>')"
        )
    if m["per_token"] is not None:
        cost = {"kind": "length", "per_token": float(m["per_token"])}
    elif m["buffer"] is not None:
        cost = {"kind": "overlong", "overlong_buffer": int(m["buffer"]), "overlong_penalty": float(m["penalty"])}
    else:
        cost = {"kind": "none"}
    alpha = float(m["alpha"]) if m["alpha"] is not None else None
    return {"variant": m["variant"], "alpha": alpha, "form": m["form"], "cost": cost}


def experiment_runs(config: dict, name: str) -> list[Run]:
    """The runs behind one experiment (one paper table), in table order."""
    exp = config["experiments"][name]
    alphas = exp.get("alphas") or [config["reward"]["alpha"]]
    forms = exp.get("forms") or [config["reward"]["form"]]
    costs = exp.get("costs") or [config["reward"]["cost"]]
    runs = [
        # an experiment may name its own dataset (the noisy-value runs of Table 3)
        Run(exp.get("dataset") or config["dataset"], config["scale"], est, reward_tag(variant, alpha, form, cost), seed)
        for est in exp["estimators"]
        for variant in exp["rewards"]
        for cost in costs
        for form in forms
        for alpha in alphas
        for seed in config["seeds"]
    ]
    return list(dict.fromkeys(runs))  # correctness ignores alpha and form: one run, first place


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
        verl_test=f"{data_dir}/verl/test.parquet",
    )
    if reward["variant"] == "predicted":  # the score predictor's labelled copy (rlev.predictor)
        dataset["train"] = predicted_train_path(config, run.dataset, run.scale)
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
        "reward": _run_reward(config, reward),
    }


def _run_reward(config: dict, reward: dict) -> dict:
    """The reward block of a run: variant, alpha, form, plus only what its variant, cost and verifier read."""
    if reward["variant"] == "correctness":
        # s(x) = 1 reads neither alpha nor form; fixed (alpha 0 gives s = 1 in both forms) so that
        # another `reward.alpha` or `reward.form` leaves the correctness runs as they are.
        out = {"variant": "correctness", "alpha": 0, "form": "additive_clipped"}
    else:
        out = {
            "variant": reward["variant"],
            "alpha": reward["alpha"] if reward["alpha"] is not None else config["reward"]["alpha"],
            "form": reward["form"] or config["reward"]["form"],
        }
    if reward["cost"]["kind"] != "none":  # the settings its kind reads, as the tag spells them
        out["cost"] = dict(reward["cost"])
    if reward["variant"] == "shuffled":
        out["shuffle_seed"] = config["reward"]["shuffle_seed"]
    if reward["variant"] == "weak":
        out["weak_points"] = dict(config["reward"]["weak_points"])
    verifier = config["reward"]["verifier"]
    if verifier["kind"] != "rule":  # the rule verifier is the default everywhere
        out["verifier"] = dict(verifier)
        # a scalar reward key, so rlev.train.verl passes it to compute_score
        out["judge_on_failure"] = verifier["on_failure"]
        from rlev.verify import judge_options

        for option, value in judge_options(verifier).items():
            if option not in ("base_url", "model", "on_failure"):  # those have kwargs of their own
                out[f"judge_{option}"] = value
    return out


def predictor_dir(config: dict, scale: str) -> str:
    """The score predictor of `scale`: learnt from `predictor.dataset` (default: the exam `dataset`)."""
    return f"results/predictor/{config['predictor'].get('dataset') or config['dataset']}/{scale}"


def predicted_train_path(config: dict, dataset: str, scale: str) -> str:
    """`dataset`'s training split labelled by the predictor (`predicted_value` column)."""
    return f"{predictor_dir(config, scale)}/labels/{dataset}/train.parquet"


def policy_init_path(config: dict, dataset: str, scale: str) -> str:
    """Where RL starts from: the warm-started tiny model, or the configured model id/path."""
    s = config["scales"][scale]
    if s["backend"] == "local" and (s["model"] == "tiny" or s.get("sft_steps", 0) > 0):
        return f"results/models/{dataset}/{scale}/sft"
    return s["model"]


# --- a run directory against the plan ------------------------------------------------------

_RUN_PATH = re.compile(
    rf"(?:^|/){re.escape(RUNS_DIR)}/(?P<dataset>[^/]+)/(?P<scale>[^/]+)/(?P<estimator>[^/]+)/(?P<reward>[^/]+)"
    r"/seed(?P<seed>\d+)/?$"
)


def run_of_dir(run_dir: str | Path) -> Run:
    """The Run a directory `results/runs/<dataset>/<scale>/<estimator>/<reward>/seed<k>` holds."""
    m = _RUN_PATH.search(str(run_dir))
    if not m:
        raise ConfigError(f"{run_dir}: not a run directory ({RUNS_DIR}/<dataset>/<scale>/<estimator>/<reward>/seed<k>)")
    return Run(m["dataset"], m["scale"], m["estimator"], m["reward"], int(m["seed"]))


def config_digest(obj) -> str:
    """A short fingerprint of a JSON-able object: what Snakemake compares to rerun a job whose settings changed."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _write(path: str | Path, text: str, log: str | Path | None) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if log:
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        Path(log).write_text(f"wrote {path} (fingerprint {config_digest(text)})\n")


def write_run_config(config: dict, run: Run, path: str | Path, log: str | Path | None = None) -> None:
    """The run's saved config.yaml: what its training, evaluation and tables read."""
    _write(path, yaml.safe_dump(run_config(config, run), sort_keys=False), log)


def write_plan(config: dict, path: str | Path, log: str | Path | None = None) -> None:
    """The validated config (defaults filled) as JSON: the plan check_run_dirs compares run directories with."""
    import json

    _write(path, json.dumps(config, indent=1, sort_keys=True) + "\n", log)


def config_differences(saved, planned, where: str = "") -> list[str]:
    """Every key path at which two configs differ, with both values (`a.b: saved 1, planned 2`)."""
    if isinstance(saved, dict) and isinstance(planned, dict):
        out = []
        for key in list(dict.fromkeys([*saved, *planned])):
            path = f"{where}.{key}" if where else str(key)
            if key not in saved:
                out.append(f"{path}: missing, planned {planned[key]!r}")
            elif key not in planned:
                out.append(f"{path}: saved {saved[key]!r}, not planned")
            else:
                out += config_differences(saved[key], planned[key], path)
        return out
    return [] if saved == planned else [f"{where}: saved {saved!r}, planned {planned!r}"]


def check_run_dirs(plan: dict, run_dirs: list[str | Path]) -> None:
    """Refuse any run directory whose saved config.yaml is not the run the current plan makes.

    `plan` is the validated config (the workflow's results/plan.json). A table built from a
    run directory trained under other settings (an edited config.yaml, a run trained by hand,
    outputs left from before a change) would print numbers of another experiment.
    """
    problems = []
    for run_dir in run_dirs:
        run = run_of_dir(run_dir)
        saved_path = Path(run_dir) / "config.yaml"
        if not saved_path.is_file():
            problems.append(f"{run_dir}: no config.yaml")
            continue
        saved = yaml.safe_load(saved_path.read_text())
        planned = run_config(plan, run)
        diffs = config_differences(saved, planned)
        if diffs:
            problems.append(
                f"{saved_path} differs from the current plan at "
                + "; ".join(diffs[:5])
                + (f" (and {len(diffs) - 5} more)" if len(diffs) > 5 else "")
            )
    if problems:
        raise ConfigError(
            "run directories that do not match the current plan (a table would mix experiments): "
            + " | ".join(problems)
            + ". Fix: delete each named config.yaml and rerun the workflow (snakemake --cores all), "
            "which rewrites it from the config and retrains the run; keep hand-made runs out of "
            f"{RUNS_DIR}/ (rlev train --out DIR)."
        )
