"""Helpers shared by several test modules (test modules do not import each other).

tests/conftest.py puts this folder on sys.path, so ``from helpers import ...`` works from
every test folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------ the complete benchmark files


def shared_benchmarks_dir() -> Path:
    """The complete benchmark files: $DUALCLIP_SHARED_BENCHMARKS, else ../shared/benchmarks
    beside the clone (.ci/run looks for the folder, sets the variable, and warns loudly without it)."""
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


def snakemake(workdir, *args, check=True, extra_config=None, configs=CONFIGS, timeout=None):
    """Run snakemake on ``configs`` (default the tiny config), offline; ``extra_config`` (a dict)
    is layered on top as a file (--config would turn nested numbers into strings)."""
    configs = list(configs)
    if extra_config:
        path = Path(workdir) / "extra_config.yaml"
        path.write_text(json.dumps(extra_config))  # JSON is YAML
        configs.append(str(path))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "YOLO_OFFLINE": "1"}
    command = [*SNAKEMAKE, "--configfile", *configs, "--directory", str(workdir), *args]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
    return result


def job_stats(text: str) -> dict[str, int]:
    """Rule -> job count of a dry run's output (empty when there is nothing to do)."""
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:", 1)[1]
    return {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M) if rule != "total"}


def planned_jobs(workdir, *args, extra_config=None) -> dict[str, int]:
    """Rule -> job count of a dry run (empty when there is nothing to do)."""
    out = snakemake(workdir, "-n", *args, extra_config=extra_config)
    return job_stats(out.stdout + out.stderr)


def stand_in_coco_models(work: Path) -> None:
    """Empty stand-ins, below ``work``, for the models config/coco.yaml names: the pre-flight
    checks that they exist (not their weights), so a dry run needs no download."""
    (work / "models" / "Qwen2.5-1.5B-Instruct").mkdir(parents=True)
    (work / "models" / "Qwen2.5-1.5B-Instruct" / "config.json").write_text("{}")
    (work / "models" / "stable-diffusion-inpainting").mkdir()
    (work / "models" / "stable-diffusion-inpainting" / "model_index.json").write_text("{}")
    (work / "models" / "yolov8x-seg.pt").write_bytes(b"")


def coco_dry_run(tmp_path: Path) -> tuple[str, dict[str, int], str]:
    """A dry run of config/coco.yaml shrunk to 10 images, methods baseline and ours, seeds 0 and 1,
    and no real benchmark but sugarcrepe_pp, with :func:`stand_in_coco_models`. Returns the output,
    rule -> job count and the results folder."""
    import yaml

    from dualclip.eval.benchmarks import stage

    others = [b for b in stage.BENCHMARK_NAMES if b != "sugarcrepe_pp"]
    small = {"shard_size": 5, "dataset": {"root": str(tmp_path / "coco"), "n_train": 10, "n_val": 5},
             "train": {"methods": ["baseline", "ours"], "seeds": [0, 1]},
             "benchmarks": {name: False for name in others}}
    work = tmp_path / "work"
    stand_in_coco_models(work)
    coco = [str(REPO / "config" / "config.yaml"), str(REPO / "config" / "coco.yaml")]
    result = snakemake(work, "-n", extra_config=small, configs=coco, timeout=300)
    text = result.stdout + result.stderr
    results = yaml.safe_load((REPO / "config" / "coco.yaml").read_text())["results_dir"]
    return text, job_stats(text), results


# ------------------------------------------------------------------ a local HTTP server


class StaticFiles(BaseHTTPRequestHandler):
    """Serves the bytes of ``content`` (URL path -> body); any other path is a 404."""

    content: dict[str, bytes] = {}

    def log_message(self, *args):
        pass

    def do_GET(self):
        body = self.content.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextlib.contextmanager
def serving(handler: type[BaseHTTPRequestHandler]):
    """A threaded HTTP server with ``handler`` on a free local port, for the time of the block;
    yields its base URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextlib.contextmanager
def serving_files():
    """A :class:`StaticFiles` server of its own; yields its base URL and its (empty, to be
    filled) ``content`` dict."""
    handler = type("Handler", (StaticFiles,), {"content": {}})
    with serving(handler) as base:
        yield base, handler.content


# ------------------------------------------------------------------ training on the synthetic world


def world_shard_with_odd_captions(folder: Path, n: int, absent_slot: int, absent_article: str,
                                  nothing_slot: int, nothing_caption: str) -> list[str]:
    """``n`` synthetic images (seed 0, 64 px) rendered into ``folder/data``; the caption of
    ``absent_slot`` gains, in front, a shape missing from its scene (``"<absent_article> <shape> and "``:
    a component that detection cannot find), that of ``nothing_slot`` becomes ``nothing_caption``
    (naming nothing of the vocabulary). Returns the record files."""
    from dualclip.data import write_shard
    from dualclip.io import read_json, write_json

    write_shard({"name": "shapes", "seed": 0, "image_size": 64}, "train", 0, n, folder / "data")
    truth = [str(folder / "data" / f"{slot}.json") for slot in range(n)]
    record = read_json(truth[absent_slot])
    shapes = {o["shape"] for o in record["scene"]["objects"]}
    absent = next(s for s in ("hexagon", "star", "cross", "triangle", "square", "circle") if s not in shapes)
    record["caption"] = f"{absent_article} {absent} and " + record["caption"]
    write_json(truth[absent_slot], record)
    record = read_json(truth[nothing_slot])
    record["caption"] = nothing_caption
    write_json(truth[nothing_slot], record)
    return truth



def world_train_data(folder, seed: int, n: int = 16, make_duals=None):
    """``n`` synthetic scenes written to ``folder`` as training records, each with its
    reversed caption as a negative; ``make_duals(image, caption)`` -> [(image, text)] adds duals."""
    from dualclip.data.shapes import WorldConfig, world_record
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
