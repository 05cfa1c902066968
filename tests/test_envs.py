"""The conda env of the GPU rules can be created: its pins agree with verl's own requirements,
and nothing in its pip list needs torch at build time (flash-attn comes after, from a script).
Every pin and mention of verl's version agrees with rlev.train.verl.VERL_VERSION."""

from __future__ import annotations

import importlib.metadata as md
import re
import subprocess

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import REPO

# verl's extras the verl env stands for (vllm rollouts, the FSDP engine, and what both pull in).
VERL_EXTRAS = ("vllm", "fsdp", "verl-core", "flash-attn-cu130torch211", "cupy-cu130")
# Packages whose PyPI release is a source archive that imports torch in its build: pip's
# isolated build env has no torch, so they cannot be in a plain `pip install -r` list.
BUILD_NEEDS_TORCH = {"flash-attn", "apex", "transformer-engine", "mamba-ssm", "causal-conv1d", "deepspeed"}


def pip_requirements(env_file) -> list[Requirement]:
    deps = yaml.safe_load(env_file.read_text())["dependencies"]
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    return [Requirement(line) for line in pip if not line.startswith("-")]


def verl_requirements() -> dict[str, list[Requirement]]:
    """verl's requirements, base and the extras above, by canonical name (from the installed verl's metadata)."""
    out: dict[str, list[Requirement]] = {}
    for text in md.requires("verl") or []:
        req = Requirement(text)
        if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in VERL_EXTRAS):
            out.setdefault(canonicalize_name(req.name), []).append(req)
    return out


def test_verl_env_pins_agree_with_verl_metadata():
    from rlev.train.verl import VERL_VERSION

    assert md.version("verl") == VERL_VERSION  # the metadata read below is that of the verl rlev targets
    reqs = pip_requirements(REPO / "envs" / "verl.yaml")
    verl_reqs = verl_requirements()
    pins = {canonicalize_name(r.name): r for r in reqs}
    assert str(pins["verl"].specifier) == f"=={VERL_VERSION}" and "vllm" in pins["verl"].extras
    checked = []
    for name, req in pins.items():
        pinned = [s.version for s in req.specifier if s.operator == "=="]
        for theirs in verl_reqs.get(name, []):
            if pinned:
                assert theirs.specifier.contains(pinned[0], prereleases=True), (
                    f"envs/verl.yaml pins {req} but verl {VERL_VERSION} requires {theirs}"
                )
                checked.append(name)
    # every package verl's vllm extra pins exactly is pinned here, at that version
    for name, theirs in verl_reqs.items():
        exact = [s for r in theirs for s in r.specifier if s.operator == "=="]
        if exact and name not in BUILD_NEEDS_TORCH:
            assert name in pins, f"verl {VERL_VERSION} pins {theirs[0]}; envs/verl.yaml does not list {name}"
    assert {"torch", "vllm", "transformers"} <= set(checked)


def test_verl_env_builds_nothing_that_needs_torch_at_build_time():
    env = REPO / "envs" / "verl.yaml"
    names = {canonicalize_name(r.name) for r in pip_requirements(env)}
    assert not names & BUILD_NEEDS_TORCH, f"{env}: {sorted(names & BUILD_NEEDS_TORCH)} would be built without torch"
    # flash-attn comes after the env exists, at verl's pinned version, from a wheel or built against its torch
    script = (REPO / "envs" / "verl.post-deploy.sh").read_text()
    flash = [s.version for r in verl_requirements()["flash-attn"] for s in r.specifier if s.operator == "=="]
    assert f"FLASH_ATTN_VERSION={flash[0]}" in script
    assert re.search(r"pip install --no-build-isolation --no-deps \"flash-attn==\$FLASH_ATTN_VERSION\"", script)
    assert "FLASH_ATTN_WHEEL" in script and "pip check" in script
    subprocess.run(["bash", "-n", str(REPO / "envs" / "verl.post-deploy.sh")], check=True)


@pytest.mark.parametrize("env", ["cpu.yaml", "verl.yaml"])
def test_env_files_install_this_checkout(env):
    lines = yaml.safe_load((REPO / "envs" / env).read_text())["dependencies"][-1]["pip"]
    assert "-e ${RLEV_ROOT}" in lines


def test_every_verl_pin_and_mention_is_the_version_the_code_targets():
    """verl is pinned in pyproject.toml and both env files, and its version is named in prose
    (docstrings, README, env comments); all must be rlev.train.verl.VERL_VERSION
    (envs/verl.post-deploy.sh imports that constant)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    from rlev.train.verl import VERL_VERSION

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = {"pyproject.toml": [Requirement(r) for r in project["dependencies"] if Requirement(r).name == "verl"]}
    for env in ("cpu.yaml", "verl.yaml"):
        pins[f"envs/{env}"] = [r for r in pip_requirements(REPO / "envs" / env) if r.name == "verl"]
    for where, reqs in pins.items():
        assert [str(r.specifier) for r in reqs] == [f"=={VERL_VERSION}"], (
            f"{where} pins {reqs}, not verl=={VERL_VERSION}"
        )
    assert "from rlev.train.verl import VERL_VERSION" in (REPO / "envs" / "verl.post-deploy.sh").read_text()
    mention = re.compile(r"\bverl(?:\[[\w,-]+\])?(?: |==)v?(\d+\.\d+(?:\.\d+)?)\b")
    files = [
        REPO / "README.md",
        REPO / "pyproject.toml",
        *(REPO / "envs").iterdir(),
        *(REPO / "docs").rglob("*.md"),
        *(REPO / "rlev").rglob("*.py"),
        *(REPO / "workflow").rglob("*.smk"),
        REPO / "Snakefile",
    ]
    wrong = [
        f"{p.relative_to(REPO)}: verl {v}"
        for p in files
        if p.is_file()
        for v in mention.findall(p.read_text(errors="replace"))
        if v != VERL_VERSION
    ]
    found = sum(len(mention.findall(p.read_text(errors="replace"))) for p in files if p.is_file())
    assert found > 5 and not wrong, f"verl versions other than {VERL_VERSION}: {wrong}"
