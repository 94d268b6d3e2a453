"""envs/*.yaml pin exactly the versions the tests run with (pyproject.toml)."""

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import yaml

from helpers import nonempty

REPO = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(requirements) -> dict[str, str]:
    found = {}
    for line in requirements:
        name, _, pinned = line.partition("==")
        assert pinned, f"not an exact pin: {line!r}"
        found[normalise(name)] = pinned
    return found


def test_conda_env_matches_pyproject_pins():
    project = pins(PROJECT["dependencies"])
    for env_file in nonempty((REPO / "envs").glob("*.yaml"), "conda environment files in envs/"):
        env = yaml.safe_load(env_file.read_text())
        pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
        env_pins = nonempty(pins(pip_section).items(), f"pip pins in {env_file.name}")
        for name, pinned in env_pins:
            assert project.get(name) == pinned, f"{env_file.name}: {name}=={pinned} but pyproject pins {project.get(name)}"
        # the Python range of pyproject (3.11.4+: tarfile's extraction filters)
        assert "python>=3.11.4,<3.12" in env["dependencies"]


def test_installed_versions_are_the_pinned_ones():
    # the test extras too: .ci/run and `make lint` run the pinned ruff and snakefmt
    project = pins(PROJECT["dependencies"] + PROJECT["optional-dependencies"]["test"])
    assert {"pytest", "ruff", "snakefmt"} <= set(project)
    for name, pinned in project.items():
        installed = version(name)
        assert installed.split("+")[0] == pinned, f"{name}: installed {installed}, pinned {pinned}"


def test_every_rule_has_conda_log_and_resources():
    rules = [(rule_file.name, block) for rule_file in (REPO / "rules").glob("*.smk")
             for block in re.split(r"^rule ", rule_file.read_text(), flags=re.M)[1:]]
    for file_name, block in nonempty(rules, "rules in rules/*.smk"):
        name = block.split(":", 1)[0]
        for directive in ("conda:", "log:", "resources:", "threads:"):
            assert directive in block, f"rule {name} in {file_name} lacks {directive}"


def test_license_file_is_the_license_pyproject_declares():
    assert PROJECT["license"] == {"text": "MIT"}
    assert (REPO / "LICENSE").read_text().startswith("MIT License\n\nCopyright (c) 2026 the dualclip authors\n")
