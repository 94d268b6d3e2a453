"""envs/*.yaml pin exactly the versions the tests run with (pyproject.toml)."""

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


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
    project = pins(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"])
    for env_file in (REPO / "envs").glob("*.yaml"):
        env = yaml.safe_load(env_file.read_text())
        pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
        env_pins = pins(pip_section)
        for name, pinned in env_pins.items():
            assert project.get(name) == pinned, f"{env_file.name}: {name}=={pinned} but pyproject pins {project.get(name)}"
        # the Python range of pyproject (3.11.4+: tarfile's extraction filters)
        assert "python>=3.11.4,<3.12" in env["dependencies"]


def test_installed_versions_are_the_pinned_ones():
    project = pins(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"])
    for name, pinned in project.items():
        installed = version(name)
        assert installed.split("+")[0] == pinned, f"{name}: installed {installed}, pinned {pinned}"


def test_every_rule_has_conda_log_and_resources():
    for rule_file in (REPO / "rules").glob("*.smk"):
        text = rule_file.read_text()
        for block in re.split(r"^rule ", text, flags=re.M)[1:]:
            name = block.split(":", 1)[0]
            for directive in ("conda:", "log:", "resources:", "threads:"):
                assert directive in block, f"rule {name} in {rule_file.name} lacks {directive}"
