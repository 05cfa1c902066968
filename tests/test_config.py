import copy
import re

import pytest
import yaml

from conftest import REPO
from rlev.config import (
    ConfigError,
    Run,
    experiment_runs,
    load_config,
    load_schema,
    parse_reward_tag,
    plan_runs,
    reward_tag,
    run_config,
    validate,
)


@pytest.fixture
def raw():
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_default_config_validates_and_fills_defaults(raw):
    config = validate(raw)
    assert config["data"]["test_share"] == 0.1
    assert config["scales"]["tiny"]["tiny"]["hidden_size"] == 64
    assert config["estimators"]["rloo"]["clip_ratio"] == 0.2
    # per-source defaults land only where they apply
    assert "train_exams" in config["datasets"]["synthetic"]
    assert "train_exams" not in config["datasets"]["rlev"]


def test_unknown_key_is_named(raw):
    raw["scales"]["tiny"]["rl_stpes"] = 3
    with pytest.raises(ConfigError, match=r"scales\.tiny.*rl_stpes"):
        validate(raw)


def test_wrong_type_is_named(raw):
    raw["scales"]["tiny"]["rl_steps"] = "many"
    with pytest.raises(ConfigError, match=r"scales\.tiny\.rl_steps"):
        validate(raw)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("scales.tiny.temperature", float("nan")),
        ("scales.tiny.lr", float("nan")),
        ("reward.alpha", float("nan")),
        ("reward.alpha", float("inf")),
        ("predictor.local.lr", float("-inf")),
        ("estimators.rloo.clip_ratio", float("nan")),
        ("experiments.alpha.alphas[1]", float("nan")),
    ],
)
def test_nan_and_infinity_are_refused_naming_the_key(raw, path, value):
    """Every comparison with NaN is false, so the schema's bounds let it through; YAML writes it .nan."""
    *parents, last = path.replace("[", ".[").split(".")
    node = raw
    for key in parents:
        node = node[key]
    if last.startswith("["):
        node[int(last[1:-1])] = value
    else:
        node[last] = value
    with pytest.raises(ConfigError, match=rf"^{re.escape(path)}: {value} is not a finite number"):
        validate(raw)


def test_undefined_reference_is_named(raw):
    raw["experiments"]["main"]["estimators"].append("ppo")
    with pytest.raises(ConfigError, match="experiments.main.estimators: 'ppo'"):
        validate(raw)


def test_override_selects_scale():
    config = load_config(REPO / "config.yaml", {"scale": "7B", "dataset": "rlev"})
    runs = plan_runs(config)
    assert {r.scale for r in runs} == {"7B"}
    # every experiment trains on `dataset` except the noisy-value one (Table 3), which names its own
    noisy = config["experiments"]["noisy"]["dataset"]
    assert {r.dataset for r in runs} == {"rlev", noisy}
    assert {r.dataset for r in experiment_runs(config, "noisy")} == {noisy}


def _properties(schema, path=""):
    """Every property schema in the config schema, with its dotted path."""
    if not isinstance(schema, dict):
        return
    for name, sub in schema.get("properties", {}).items():
        yield f"{path}.{name}", sub
        yield from _properties(sub, f"{path}.{name}")
    for key in ("$defs", "then", "else"):
        if key in schema:
            subs = schema[key].items() if key == "$defs" else [(key, schema[key])]
            for name, sub in subs:
                yield from _properties(sub, f"{path}<{name}>")


def test_every_schema_key_has_a_description():
    missing = [p for p, sub in _properties(load_schema()) if "description" not in sub]
    assert not missing, f"schema properties without a description: {missing}"


def test_reward_tags_round_trip():
    assert reward_tag("correctness", 10, "additive_clipped") == "correctness"
    tag = reward_tag("human", 10.0, "additive_clipped")
    assert tag == "human-a10-additive_clipped"
    assert parse_reward_tag(tag) == {
        "variant": "human",
        "alpha": 10.0,
        "form": "additive_clipped",
        "cost": {"kind": "none"},
    }
    assert parse_reward_tag("human-a0.5-multiplicative")["alpha"] == 0.5
    with pytest.raises(ConfigError):
        parse_reward_tag("human_10")


def test_runs_are_identified_by_parameters(raw):
    config = validate(raw)
    config["seeds"] = [0, 1]
    config["experiments"] = {"main": config["experiments"]["main"]}  # the main table only
    config["experiments"]["main"]["rewards"] = ["correctness", "human"]
    runs = plan_runs(config)
    assert len(runs) == 3 * 2 * 2 == len(set(runs))
    # a second experiment that needs the same run does not add a run
    config2 = copy.deepcopy(config)
    config2["experiments"]["main"]["estimators"] = ["rloo", "rloo"]
    assert len(plan_runs(config2)) == 4
    assert experiment_runs(config, "main")[0].path.startswith("results/runs/synthetic/tiny/")


def test_run_config_is_complete(raw):
    config = validate(raw)
    run = Run("synthetic", "tiny", "grpo", "human-a10-additive_clipped", 0)
    rc = run_config(config, run)
    assert rc["out_dir"] == run.path and rc["seed"] == 0
    assert rc["estimator"] == {**config["estimators"]["grpo"], "name": "grpo"}
    assert rc["estimator"]["norm_adv_by_std_in_grpo"] is False
    assert rc["reward"] == {"variant": "human", "alpha": 10.0, "form": "additive_clipped"}
    assert rc["scale"]["init_model"] == "results/models/synthetic/tiny/sft"
    assert rc["dataset"]["train"] == "results/data/synthetic/train.parquet"


def test_weak_points_default_is_the_generators_ladder():
    """`reward.weak_points` (user config) defaults to the paper's ladder that the data code uses as
    a fact about the data (rlev.data.difficulty): WebInstruct's scores and the synthetic levels."""
    from rlev.data.arithmetic import LEVELS, POINTS
    from rlev.data.difficulty import DIFFICULTY_POINTS

    assert load_schema()["properties"]["reward"]["properties"]["weak_points"]["default"] == DIFFICULTY_POINTS
    assert {name: points for name, (_, points) in LEVELS.items()} == DIFFICULTY_POINTS
    assert POINTS == (1, 2, 4, 6, 8) and DIFFICULTY_POINTS == {
        "primary": 1,
        "junior": 2,
        "senior": 4,
        "university": 6,
        "phd": 8,
    }


def test_judge_defaults_are_the_schemas():
    """The judge's options have their defaults in the schema (`$defs.verifier`); JudgeVerifier's
    keyword defaults (its Python API, e.g. in tests) must be the same values."""
    import inspect

    from rlev.verify import JUDGE_OPTIONS
    from rlev.verify.judge import JudgeVerifier

    schema = load_schema()["$defs"]["verifier"]["properties"]
    signature = inspect.signature(JudgeVerifier.__init__).parameters
    for option in JUDGE_OPTIONS:
        if "default" in schema[option] or signature[option].default is not None:
            assert schema[option].get("default") == signature[option].default, option


def test_the_judge_settings_reach_both_back_ends(raw, tmp_path):
    """reward.verifier's options build the same judge on the local back end (run_verifier) and on
    verl (compute_score's judge_* kwargs, which rlev.train.verl passes through unchanged)."""
    from rlev.reward import judge_for
    from rlev.train.verl import _reward_kwargs
    from rlev.verify import run_verifier

    raw["reward"]["verifier"] = {
        "kind": "judge",
        "url": "http://127.0.0.1:9/v1",
        "model": "judge-model",
        "timeout_s": 7.5,
        "max_retries": 2,
        "concurrency": 5,
        "max_tokens": 64,
        "cache_path": str(tmp_path / "verdicts.sqlite"),
    }
    config = validate(raw)
    rc = run_config(config, Run("synthetic", "tiny", "rloo", "human-a10-additive_clipped", 0))
    local_judge = run_verifier(rc["reward"]["verifier"])
    kwargs = _reward_kwargs(rc)
    named = ("judge_url", "judge_model", "judge_on_failure")
    options = {k[len("judge_") :]: v for k, v in kwargs.items() if k.startswith("judge_") and k not in named}
    verl_judge = judge_for(kwargs["judge_url"], kwargs["judge_model"], kwargs["judge_on_failure"], **options)
    for judge in (local_judge, verl_judge):
        assert (judge.url, judge.model, judge.on_failure) == (
            "http://127.0.0.1:9/v1/chat/completions",
            "judge-model",
            "unverified",
        )
        assert (judge.timeout_s, judge.max_retries, judge.concurrency, judge.max_tokens) == (7.5, 2, 5, 64)
        assert judge.cache_path == tmp_path / "verdicts.sqlite"


def test_schema_and_config_have_no_duplicate_keys():
    """YAML keeps the last of two equal keys without a word: a key documented twice loses one meaning."""
    import yaml

    class Strict(yaml.SafeLoader):
        pass

    def mapping(loader, node, deep=False):
        keys = [loader.construct_object(k, deep=deep) for k, _ in node.value]
        dupes = {k for k in keys if keys.count(k) > 1}
        assert not dupes, f"duplicate key(s) {dupes} at line {node.start_mark.line + 1}"
        return yaml.SafeLoader.construct_mapping(loader, node, deep)

    Strict.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    for path in ("workflow/schemas/config.schema.yaml", "config.yaml", "profiles/slurm/config.yaml"):
        yaml.load((REPO / path).read_text(), Loader=Strict)
