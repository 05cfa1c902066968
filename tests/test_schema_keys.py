"""Every config key a loader or back end reads is a key of the config schema, the one place
keys and defaults are written (workflow/schemas/config.schema.yaml).

A static scan: in each module below, the string keys read from the named variables
(`cfg["k"]`, `cfg.get("k")`, `"k" in cfg`) must be keys the schema allows for that part of
the config (plus the few a run config adds: a scale's `name` and `init_model`, an
estimator's `name`). A key read but not in the schema is one the user cannot set (the
schema rejects it) or one documented nowhere.
"""

from __future__ import annotations

import ast

import pytest

from conftest import REPO
from rlev.config import load_schema

SCHEMA = load_schema()
DEFS = SCHEMA["$defs"]
RUN_ADDS = {"scale": {"name", "init_model"}, "estimator": {"name"}}


def dataset_keys(source: str) -> set[str]:
    keys = set(DEFS["dataset"]["properties"])
    for branch in DEFS["dataset"]["allOf"]:
        if branch["if"]["properties"]["source"]["const"] == source:
            keys |= set(branch["then"]["properties"])
    return keys


def props(name: str) -> set[str]:
    return set(DEFS[name]["properties"])


# module -> {variable name: the schema keys it may read}
READS = {
    "rlev/data/sources/table.py": {"cfg": dataset_keys("table")},
    "rlev/data/sources/rlev_hub.py": {"cfg": dataset_keys("rlev")},
    "rlev/data/sources/gaokao.py": {"cfg": dataset_keys("gaokao")},
    "rlev/data/sources/webinstruct.py": {"cfg": dataset_keys("webinstruct")},
    "rlev/data/synthetic.py": {"cfg": dataset_keys("synthetic")},
    "rlev/data/ood.py": {"cfg": props("benchmark")},
    "rlev/train/verl.py": {
        "setup": props("verl_scale") | RUN_ADDS["scale"],
        "est": props("estimator") | RUN_ADDS["estimator"],
        "verifier": props("verifier"),
    },
    "rlev/train/local.py": {
        "setup": props("local_scale") | RUN_ADDS["scale"],
        "est": props("estimator") | RUN_ADDS["estimator"],
        "estimator": props("estimator") | RUN_ADDS["estimator"],
    },
    "rlev/evaluate/in_domain.py": {"verifier": props("verifier")},
    "rlev/verify/__init__.py": {"verifier": props("verifier")},
}


def keys_read(path, names) -> dict[str, set[str]]:
    """name -> the string keys the module reads from a variable of that name."""
    out: dict[str, set[str]] = {n: set() for n in names}

    def var(node):
        return node.id if isinstance(node, ast.Name) and node.id in names else None

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Subscript) and var(node.value) and isinstance(node.slice, ast.Constant):
            if isinstance(node.slice.value, str) and isinstance(node.ctx, ast.Load):
                out[var(node.value)].add(node.slice.value)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and var(node.func.value)
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            out[var(node.func.value)].add(node.args[0].value)
        elif (
            isinstance(node, ast.Compare)
            and isinstance(node.left, ast.Constant)
            and isinstance(node.left.value, str)
            and len(node.ops) == 1
            and isinstance(node.ops[0], (ast.In, ast.NotIn))
            and var(node.comparators[0])
        ):
            out[var(node.comparators[0])].add(node.left.value)
    return out


@pytest.mark.parametrize("module", sorted(READS))
def test_every_key_a_loader_or_back_end_reads_is_in_the_schema(module):
    allowed = READS[module]
    read = keys_read(REPO / module, set(allowed))
    assert any(read.values()), f"{module}: no reads found; is the variable name still right?"
    unknown = {name: sorted(keys - allowed[name]) for name, keys in read.items() if keys - allowed[name]}
    assert not unknown, f"{module} reads config keys the schema does not have: {unknown}"


def test_the_scan_catches_a_key_the_schema_lacks(tmp_path):
    path = tmp_path / "loader.py"
    path.write_text('def load(cfg):\n    return cfg["path"], cfg.get("splitt"), "colums" in cfg\n')
    assert keys_read(path, {"cfg"})["cfg"] == {"path", "splitt", "colums"}
    assert keys_read(path, {"cfg"})["cfg"] - dataset_keys("table") == {"splitt", "colums"}
