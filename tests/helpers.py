"""Helpers shared by several test modules (test modules do not import each other).

tests/conftest.py puts this folder on sys.path, so ``from helpers import ...`` works from
every test folder.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------ the complete benchmark files


def shared_benchmarks_dir() -> Path:
    """The complete benchmark files: $DUALCLIP_SHARED_BENCHMARKS, else ../shared/benchmarks
    beside the clone (.ci/run sets the variable and fails when the folder is missing)."""
    env = os.environ.get("DUALCLIP_SHARED_BENCHMARKS")
    return Path(env) if env else REPO.parent / "shared" / "benchmarks"


def needs_shared_benchmarks(subfolder: str = ""):
    """Skip mark for tests on the complete files: the one data skip allowed, for a bare clone
    without ../shared/benchmarks (CI always has it)."""
    folder = shared_benchmarks_dir() / subfolder
    return pytest.mark.skipif(
        not folder.is_dir(), reason=f"complete benchmark files not found at {folder} (set DUALCLIP_SHARED_BENCHMARKS)")


def nonempty(items, what: str) -> list:
    """``items`` as a list, failing when it is empty: a loop over discovered files must not
    pass by finding nothing."""
    items = list(items)
    assert items, f"found no {what}"
    return items


# ------------------------------------------------------------------ the workflow on the tiny config

SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", "2"]
CONFIGS = [str(REPO / "config" / "config.yaml"), str(REPO / "tests" / "config_tiny.yaml")]


def snakemake(workdir, *args, check=True, extra_config=None):
    """Run snakemake on the tiny config; ``extra_config`` (a dict) is layered on top as a file
    (--config would turn nested numbers into strings)."""
    configs = list(CONFIGS)
    if extra_config:
        path = Path(workdir) / "extra_config.yaml"
        path.write_text(json.dumps(extra_config))  # JSON is YAML
        configs.append(str(path))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    command = [*SNAKEMAKE, "--configfile", *configs, "--directory", str(workdir), *args]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
    return result


def planned_jobs(workdir, *args, extra_config=None) -> dict[str, int]:
    """Rule -> job count of a dry run (empty when there is nothing to do)."""
    out = snakemake(workdir, "-n", *args, extra_config=extra_config)
    text = out.stdout + out.stderr
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:", 1)[1]
    return {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M) if rule != "total"}


# ------------------------------------------------------------------ training on the synthetic world


def world_train_data(folder, seed: int, n: int = 16, make_duals=None):
    """``n`` synthetic scenes written to ``folder`` as training records, each with its
    reversed caption as a negative; ``make_duals(image, caption)`` -> [(image, text)] adds duals."""
    from dualclip.download.shapes import WorldConfig, world_record
    from dualclip.io import write_png
    from dualclip.train.batches import build_train_data

    world = WorldConfig(seed=seed)
    records = []
    for index in range(n):
        image, _, record = world_record(world, "train", index)
        write_png(folder / f"{index}.png", image)
        duals = []
        for k, (dual_image, text) in enumerate(make_duals(image, record["caption"]) if make_duals else []):
            write_png(folder / f"{index}-dual{k}.png", dual_image)
            duals.append({"file": str(folder / f"{index}-dual{k}.png"), "text": text})
        records.append({"image": str(folder / f"{index}.png"), "caption": record["caption"],
                        "negatives": [record["caption"][::-1]], "duals": duals})
    return build_train_data(records)


def tiny_config(steps, batch_images=8):
    """A train config for ``steps`` steps of the tiny model on the CPU."""
    return {"model": {"name": "dualclip-tiny", "pretrained": None}, "device": "cpu",
            "train": {"batch_images": batch_images, "compute": "equal_compute", "budget_images": batch_images * steps, "epochs": 1,
                      "lr": 1e-3, "weight_decay": 0.1, "warmup_steps": 1, "checkpoint_every": 2,
                      "negclip": {"neighbour_model": "pixels", "k": 2}}}
