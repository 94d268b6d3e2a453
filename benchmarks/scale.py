"""Scale check at COCO sizes (issue 10, item 7), on synthetic COCO-format data made on the fly.

For each N in ``--sizes`` (default 10,000, 50,000 and 118,287 = all of COCO train 2017):

(a) DAG build: CPU seconds (user + sys of the child process) of ``snakemake -n`` with
    ``--configfile config/config.yaml config/coco.yaml`` and an override (``results_dir``
    a temporary folder, ``dataset.n_train: N``, ``dataset.root`` a synthetic COCO root whose
    annotation files list N images). Two states:

    * fresh: no results;
    * finished: every needed shard manifest (data, parse, detect, inpaint, rewrite, filter
      of the train split, data of the val split) exists with its per-image files (empty
      stand-ins, 15 per image) in the format ``dualclip.workflow.finish_shard`` writes,
      so the DAG build's check of every listed file (``withdraw_stale_shards``) runs;
      the outputs of the other jobs (prepare, train, eval, report) exist too, so the dry
      run has nothing to do.

    The paper-scale models are empty stand-ins that satisfy the pre-flight check.

(b) Train job memory: ``dualclip.train.trainer.train`` for method ``ours`` with the tiny
    model (batch 128, ``loader_workers`` 0 and 2), stopped after ``--steps`` steps, in a
    fresh process per N that builds the TrainData itself (N records with 3 duals per image
    on average; the image paths cycle over 2,000 small PNGs, a new string per entry).
    Peak RSS of the process (and of its largest loader worker), RSS with the data built,
    and the seconds until the first step starts (setup, including ``count_steps`` over
    the paper's budget of 12,800,000 images).

(c) NegCLIP neighbours: ``dualclip.train.batches.nearest_neighbours(features, 3)`` on
    random float32 features of dimension 512 (ViT-B/32), in a fresh process: seconds and
    the rise of its peak RSS; beside it the N x N float32 matrix the dense code needed.

Prints Markdown tables and appends them to ``--out`` (benchmarks/RESULTS.md; ``--out ''``
prints only). Generated data goes under ``--tmp`` (1.8 million empty files at 118,287 in
the finished state, about 200 MB of manifests; removed at the end unless ``--keep``, and
kept when a step fails, for its logs). About 30 minutes on 2 cores with the defaults::

    .venv/bin/python benchmarks/scale.py --sizes 10000 50000 118287 --repeat 3

``--snakefile`` points the DAG part at another checkout (its own config/ is used), e.g. a
``git worktree`` of an older commit: ``--parts dag --states fresh``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_SIZES = [10_000, 50_000, 118_287]
PAPER_BUDGET_IMAGES = 12_800_000  # config/coco.yaml train.budget_images
DISTINCT_IMAGES = 2_000
EMBED_DIM = 512  # ViT-B/32

# the per-image files of each shard stage: (rule, patterns); inpaint has one PNG per
# non-empty subset of max_components = 3 components
SUBSETS = ["+".join(map(str, s)) for r in (1, 2, 3) for s in itertools.combinations(range(3), r)]
STAGES = {
    "data": ("data", ["{slot}.png", "{slot}.json"]),
    "parse": ("parse", ["{slot}.json"]),
    "detect": ("detect", ["{slot}.json", "{slot}.masks.png"]),
    "inpaint": ("inpaint", ["{slot}/duals.json"] + [f"{{slot}}/drop-{s}.png" for s in SUBSETS]),
    "rewrite": ("rewrite", ["{slot}.json"]),
    "filter": ("filter", ["{slot}.json"]),
}
SHARD_RULES = {rule for rule, _ in STAGES.values()}
# creation order of the other jobs' outputs, so that none is older than its inputs
OUTPUT_RANK = {"prepare_coco": 0, "download_image_archive": 0, "download_benchmark": 1, "build_suites": 1,
               "train": 2, "eval_synthetic": 3, "eval_benchmark": 3, "eval_classification": 3, "eval_manifold": 3,
               "report": 4}


def child_env() -> dict:
    env = dict(os.environ)
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "YOLO_OFFLINE"):
        env.setdefault(key, "1")
    env.setdefault("YOLO_CONFIG_DIR", str(REPO / ".cache" / "ultralytics"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def run_measured(command: list[str], log: Path, cwd: Path | None = None) -> dict:
    """Run ``command`` with stdout and stderr to ``log``; its own resource usage (and that
    of the descendants it waited for) from wait4: CPU seconds, peak RSS, wall seconds."""
    started = time.perf_counter()
    with open(log, "wb") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=child_env(), cwd=cwd)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return {"rc": process.returncode, "wall_s": time.perf_counter() - started,
            "cpu_s": usage.ru_utime + usage.ru_stime, "user_s": usage.ru_utime, "sys_s": usage.ru_stime,
            "maxrss_mib": usage.ru_maxrss / 1024}


def last_json_line(log: Path) -> dict:
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"no result line in {log}:\n{log.read_text(errors='replace')[-3000:]}")


def merged_config(config_dir: Path) -> dict:
    import yaml

    def merge(base: dict, top: dict) -> dict:
        out = dict(base)
        for key, value in top.items():
            out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        return out

    config = {}
    for name in ("config.yaml", "coco.yaml"):
        config = merge(config, yaml.safe_load((config_dir / name).read_text()))
    return config


# --------------------------------------------------------------------------- (a) DAG build
def synthetic_coco(root: Path, n_train: int, n_val: int) -> None:
    """captions_/instances_ train2017 and val2017 annotation files listing n images each
    (one caption, one box); no image files: a dry run reads none of them."""
    categories = [{"id": i + 1, "name": name, "supercategory": "thing"}
                  for i, name in enumerate(["person", "bicycle", "car", "dog", "cat", "chair", "cup", "bowl"])]
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split, n, offset in (("train2017", n_train, 0), ("val2017", n_val, 10_000_000)):
        images = [{"id": offset + i, "file_name": f"{offset + i:012d}.jpg", "width": 640, "height": 480} for i in range(n)]
        captions = [{"id": offset + i, "image_id": offset + i,
                     "caption": f"A {categories[i % 8]['name']} next to a {categories[(i + 3) % 8]['name']} on a table."}
                    for i in range(n)]
        instances = [{"id": offset + i, "image_id": offset + i, "category_id": i % 8 + 1, "iscrowd": 0,
                      "bbox": [10.0, 20.0, 100.0, 80.0], "area": 8000.0,
                      "segmentation": [[10.0, 20.0, 110.0, 20.0, 110.0, 100.0, 10.0, 100.0]]} for i in range(n)]
        for name, content in ((f"captions_{split}.json", {"images": images, "annotations": captions}),
                              (f"instances_{split}.json", {"images": images, "annotations": instances,
                                                           "categories": categories})):
            (root / "annotations" / name).write_text(json.dumps(content))


def stand_in_models(folder: Path) -> dict:
    """Config keys pointing at empty stand-ins of the paper-scale models, which the
    Snakefile's pre-flight check (dualclip/preflight.py) wants to exist: an LLM folder with
    config.json, a diffusers folder with model_index.json, a YOLO .pt file."""
    (folder / "llm").mkdir(parents=True, exist_ok=True)
    (folder / "llm" / "config.json").write_text("{}")
    (folder / "sd").mkdir(parents=True, exist_ok=True)
    (folder / "sd" / "model_index.json").write_text("{}")
    (folder / "yolo-seg.pt").write_bytes(b"stand-in")
    llm, yolo = str(folder / "llm"), str(folder / "yolo-seg.pt")
    return {"parse": {"model": llm}, "rewrite": {"model": llm}, "detect": {"model": yolo},
            "inpaint": {"model": str(folder / "sd")}, "filter": {"detector": {"model": yolo}}}


def override_file(path: Path, results: Path, n_train: int, root: Path) -> Path:
    """The override config: results, size and COCO root, and the stand-in models."""
    path.write_text(json.dumps({"results_dir": str(results), "dataset": {"n_train": n_train, "root": str(root)},
                                **stand_in_models(path.parent / "models")}))
    return path


def dry_run(snakefile: Path, workdir: Path, override: Path, log: Path) -> dict:
    configs = [snakefile.parent / "config" / "config.yaml", snakefile.parent / "config" / "coco.yaml", override]
    workdir.mkdir(parents=True, exist_ok=True)
    snakemake = Path(sys.executable).with_name("snakemake")
    command = [str(snakemake)] if snakemake.exists() else [sys.executable, "-m", "snakemake"]
    result = run_measured(command + ["-n", "-s", str(snakefile), "-d", str(workdir),
                                     "--configfile", *map(str, configs)], log)
    text = log.read_text(errors="replace")
    if result["rc"] != 0:
        raise RuntimeError(f"snakemake -n failed ({result['rc']}), see {log}:\n{text[-3000:]}")
    total = re.search(r"^total\s+(\d+)\s*$", text, flags=re.MULTILINE)
    result["jobs"] = int(total.group(1)) if total else 0
    result["withdrawn"] = text.count("manifest withdrawn")
    result["log"] = text
    return result


def planned_outputs(text: str) -> list[tuple[str, list[str]]]:
    """(rule, output files) of every job a dry run lists."""
    jobs, current = [], None
    for line in text.splitlines():
        match = re.match(r"^(?:local)?(?:rule|checkpoint) (\S+):$", line.strip())
        if match and not line.startswith(" "):
            current = (match.group(1), [])
            jobs.append(current)
        elif current is not None and line.strip().startswith("output: "):
            current[1].extend(path.strip() for path in line.strip()[len("output: "):].split(", "))
    return jobs


def fake_shard(folder: Path, rule: str, split: str, shard: int, n_images: int, code: str) -> int:
    """A finished shard: per-image stand-in files, then the manifest (last, as
    finish_shard writes it, so no file is newer than it). Returns the files listed.

    The stand-ins are empty: the DAG build's check stats them (size and mtime) and reads
    no content, and a file without data blocks is made and removed without block I/O
    (on a disk mounted with ``discard`` each freed block costs a synchronous discard)."""
    import hashlib

    from dualclip.io import write_json

    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    stage = folder.parent.parent.name
    files, checksums = {}, {}
    for slot in range(n_images):
        if stage == "inpaint":
            (folder / str(slot)).mkdir()
        for pattern in STAGES[stage][1]:
            name = pattern.format(slot=slot)
            content = b""
            handle = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)  # 2x open()'s speed
            os.write(handle, content)
            os.close(handle)
            files[name] = len(content)
            checksums[name] = hashlib.sha256(content).hexdigest()
    order = sorted(files, key=lambda name: Path(name).parts)
    write_json(folder / "manifest.json", {"rule": rule, "wildcards": {"split": split, "shard": str(shard)},
                                          "n_images": n_images, "n_files": len(files),
                                          "files": {name: files[name] for name in order},
                                          "sha256": {name: checksums[name] for name in order}, "code_version": code})
    return len(files)


def fake_finished(results: Path, n_train: int, n_val: int, shard_size: int, code: str) -> int:
    """Every needed shard of n_train (train: all six stages; val: data) finished; a shard
    already there with the same image count is kept. Returns the files all manifests list."""
    listed = 0
    wanted = [("train", stage, n_train) for stage in STAGES] + [("val", "data", n_val)]
    for split, stage, n in wanted:
        for shard in range(-(-n // shard_size)):
            count = min(shard_size, n - shard * shard_size)
            folder = results / stage / split / str(shard)
            manifest = folder / "manifest.json"
            if manifest.exists() and json.loads(manifest.read_text()).get("n_images") == count:
                listed += count * len(STAGES[stage][1])
                continue
            listed += fake_shard(folder, STAGES[stage][0], split, shard, count, code)
    return listed


def finish_other_jobs(text: str) -> int:
    """Create the outputs of the non-shard jobs a dry run plans, upstream first."""
    jobs = planned_outputs(text)
    shard_jobs = sorted({rule for rule, _ in jobs if rule in SHARD_RULES})
    if shard_jobs:
        raise RuntimeError(f"the faked shards are not seen as finished: {shard_jobs} jobs planned")
    unranked = sorted({rule for rule, _ in jobs if rule not in OUTPUT_RANK and rule != "all"})
    if unranked:  # a stand-in made after its consumer's would make the consumer look stale
        raise RuntimeError(f"rules {unranked} have no place in OUTPUT_RANK: add them")
    made = 0
    for rule, outputs in sorted(jobs, key=lambda job: OUTPUT_RANK.get(job[0], 5)):
        for output in outputs:
            if Path(output).name == "manifest.json":
                raise RuntimeError(f"rule {rule} makes shard manifests ({output}): add it to STAGES")
            path = Path(output)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"stand-in\n")
            made += 1
    return made


def stale_count(results: Path) -> int:
    return sum(1 for _ in results.rglob("manifest.stale.json"))


def measured_dry_run(args, work: Path, override: Path, name: str) -> dict:
    """The dry run with the least CPU of ``--repeat`` runs (``cpu_all``: every run's)."""
    runs = [dry_run(args.snakefile, work / "wd", override, work / f"dag-{name}-{k}.log") for k in range(args.repeat)]
    best = min(runs, key=lambda run: run["cpu_s"])
    best["cpu_all"] = [round(run["cpu_s"], 1) for run in runs]
    return best


def dag_part(args, n: int, work: Path, code: str, config: dict) -> dict:
    shard_size, n_val = int(config["shard_size"]), int(config["dataset"]["n_val"])
    root = work / "coco"
    synthetic_coco(root, n, n_val)
    row = {"n": n, "shards": -(-n // shard_size)}
    if "fresh" in args.states:
        results = work / f"fresh-{n}"
        run = measured_dry_run(args, work, override_file(work / "fresh.json", results, n, root), f"fresh-{n}")
        row["fresh"] = {k: run[k] for k in ("cpu_s", "cpu_all", "user_s", "sys_s", "wall_s", "maxrss_mib", "jobs")}
        print(f"N={n} fresh: {run['cpu_s']:.1f} s CPU (runs: {run['cpu_all']}), {run['jobs']} jobs", flush=True)
        shutil.rmtree(results, ignore_errors=True)
    if "finished" in args.states:
        results = work / "results"
        started = time.perf_counter()
        listed = fake_finished(results, n, n_val, shard_size, code)
        override = override_file(work / "finished.json", results, n, root)
        # an unmeasured dry run lists the jobs whose outputs are still to make (it also
        # warms the file cache, as a second run of the workflow would find it)
        pre = dry_run(args.snakefile, work / "wd", override, work / f"dag-pre-{n}.log")
        if pre["withdrawn"] or stale_count(results):
            raise RuntimeError(f"the faked shards were withdrawn as stale; see {work / f'dag-pre-{n}.log'}")
        made = finish_other_jobs(pre["log"])
        print(f"N={n} finished state: {listed:,} files listed in manifests, {made} other outputs "
              f"({time.perf_counter() - started:.0f} s to make)", flush=True)
        run = measured_dry_run(args, work, override, f"finished-{n}")
        row["finished"] = {k: run[k] for k in ("cpu_s", "cpu_all", "user_s", "sys_s", "wall_s", "maxrss_mib", "jobs",
                                               "withdrawn")}
        row["finished"]["files_checked"] = listed
        print(f"N={n} finished: {run['cpu_s']:.1f} s CPU (runs: {run['cpu_all']}), {run['jobs']} jobs, "
              f"{run['withdrawn']} withdrawn", flush=True)
        row["finished"]["digest_s"] = digest_seconds(results, n, n_val, shard_size)
    return row


def digest_seconds(results: Path, n: int, n_val: int, shard_size: int) -> float | None:
    """CPU seconds of the digest of the manifests an `ours` train job reads before training
    (dualclip.train.train_run's data_digest), on the finished shards; None without one."""
    try:
        from dualclip.train.trainer import manifests_digest
    except ImportError:
        return None
    inputs = {name: [str(results / stage / split / str(shard) / "manifest.json") for shard in range(-(-count // shard_size))]
              for name, stage, split, count in (("data", "data", "train", n), ("rewrite", "rewrite", "train", n),
                                                ("inpaint", "inpaint", "train", n), ("filter", "filter", "train", n),
                                                ("val", "data", "val", n_val))}
    started = time.process_time()
    manifests_digest(inputs)
    return time.process_time() - started


# --------------------------------------------------------------------------- (b) train memory
def make_images(folder: Path, count: int) -> None:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(folder / f"{index:04d}.png")


def dual_counts(n: int) -> list[int]:
    pattern = [1, 3, 7, 0, 3, 2, 5]  # 3 per image on average, at most 2^3 - 1
    return [pattern[i % len(pattern)] for i in range(n)]


def train_child(n: int, workers: int, steps: int, images: str, out_dir: str) -> dict:
    """Runs in a fresh process: build the data, train `ours`, report memory and times."""
    import torch

    from dualclip.train import trainer
    from dualclip.train.batches import build_train_data

    def rss_mib(field: str) -> float:
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        return float("nan")

    started = time.perf_counter()
    records = []
    for i, k in enumerate(dual_counts(n)):
        records.append({
            "image": f"{images}/{i % DISTINCT_IMAGES:04d}.png",
            "caption": f"a person riding a bicycle past parked car number {i} on a busy street",
            "negatives": [],  # `ours` reads no parse records (NegCLIP's swaps live there)
            "duals": [{"file": f"{images}/{(7 * i + j) % DISTINCT_IMAGES:04d}.png",
                       "text": f"a bicycle past parked car number {i} on a busy street ({j})",
                       "check_ok": True, "accepted": True} for j in range(k)],
        })
    data = build_train_data(records)
    built = time.perf_counter() - started
    rss_data = rss_mib("VmRSS")
    config = {"model": {"name": "dualclip-tiny", "pretrained": None}, "device": "cpu",
              "train": {"batch_images": 128, "compute": "equal_compute", "budget_images": PAPER_BUDGET_IMAGES,
                        "epochs": 5, "lr": 5e-4, "weight_decay": 0.1, "warmup_steps": 50, "precision": "amp",
                        "loader_workers": workers, "checkpoint_every": 500}}
    marks = []
    step = trainer.training_step

    def timed_step(*args, **kwargs):
        marks.append(time.perf_counter())
        return step(*args, **kwargs)

    trainer.training_step = timed_step  # train() looks the name up at each step
    import inspect

    # the train job passes the digest of its shards' manifests (timed in the DAG part);
    # without one the trainer would hash every image file of the table itself
    extra = {"data_digest": "0" * 64} if "data_digest" in inspect.signature(trainer.train).parameters else {}
    began = time.perf_counter()
    result = trainer.train(config, "ours", 0, data, out_dir, stop_after_steps=steps, **extra)
    ended = time.perf_counter()
    import gc

    gc.collect()  # the loader's workers are joined (and so counted as children) by now
    return {"n": n, "workers": workers, "samples": len(data.samples), "duals": data.n_duals,
            "table": len(data.image_files), "build_data_s": built, "rss_data_mib": rss_data,
            "to_first_step_s": (marks[0] - began) if marks else float("nan"),
            "s_per_step": (ended - marks[0]) / max(1, len(marks)) if marks else float("nan"), "steps": len(marks),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "worker_peak_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 if workers else 0.0,
            "stopped": result, "threads": torch.get_num_threads()}


def train_part(args, n: int, work: Path) -> list[dict]:
    rows = []
    for workers in args.workers:
        out_dir = work / f"train-{n}-w{workers}"
        log = work / f"train-{n}-w{workers}.log"
        run = run_measured([sys.executable, __file__, "_train", str(n), str(workers), str(args.steps),
                            str(work / "images"), str(out_dir)], log)
        if run["rc"] != 0:
            raise RuntimeError(f"train child failed ({run['rc']}):\n{log.read_text(errors='replace')[-3000:]}")
        row = last_json_line(log)
        row["wall_s"] = run["wall_s"]
        rows.append(row)
        print(f"N={n} workers={workers}: peak {row['peak_rss_mib']:.0f} MiB, first step after "
              f"{row['to_first_step_s']:.1f} s", flush=True)
        shutil.rmtree(out_dir, ignore_errors=True)
    return rows


# --------------------------------------------------------------------------- (c) neighbours
def neighbours_child(n: int) -> dict:
    import numpy as np
    import torch

    from dualclip.train.batches import nearest_neighbours

    features = np.random.default_rng(0).standard_normal((n, EMBED_DIM), dtype=np.float32)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started, cpu = time.perf_counter(), time.process_time()
    out = nearest_neighbours(features, 3)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert out.shape == (n, 3) and not (out == np.arange(n)[:, None]).any()
    return {"n": n, "seconds": seconds, "cpu_s": cpu, "peak_before_mib": before, "peak_after_mib": after,
            "rise_mib": after - before, "threads": torch.get_num_threads()}


def neighbours_part(n: int, work: Path) -> dict:
    log = work / f"neighbours-{n}.log"
    run = run_measured([sys.executable, __file__, "_neighbours", str(n)], log)
    if run["rc"] != 0:
        raise RuntimeError(f"neighbours child failed ({run['rc']}):\n{log.read_text(errors='replace')[-3000:]}")
    row = last_json_line(log)
    print(f"N={n} neighbours: {row['seconds']:.1f} s, peak RSS +{row['rise_mib']:.0f} MiB", flush=True)
    return row


# --------------------------------------------------------------------------- report
def gib(mib: float) -> str:
    return f"{mib / 1024:.2f} GiB"


def cpu(run: dict) -> str:
    return f"{run['cpu_s']:.1f} ({run['user_s']:.1f} + {run['sys_s']:.1f})"


def report(args, dag: list, train: list, neighbours: list, wall: float, code: str, config: dict) -> str:
    import torch

    lines = [f"\n## {time.strftime('%Y-%m-%d')} — scale check at COCO sizes (`benchmarks/scale.py`, issue 10 item 7)",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads, CPU; code {code}; Snakefile {args.snakefile}; "
             f"sizes {', '.join(f'{n:,}' for n in args.sizes)}; script wall time {wall / 60:.1f} min.\n"]
    if dag:
        train_config = config["train"]
        benchmarks = [name for name, value in (config.get("benchmarks") or {}).items() if value is not False]
        lines += ["DAG build: CPU seconds (user + sys) of `snakemake -n` with config.yaml + coco.yaml "
                  f"(shard_size {config['shard_size']}, {len(train_config['methods'])} methods × "
                  f"{len(train_config['seeds'])} seeds{' + zeroshot' if train_config.get('zeroshot') else ''}, "
                  f"{len(benchmarks)} benchmarks, filter {'on' if config['filter']['enabled'] else 'off'})"
                  + (f", the least of {args.repeat} runs" if args.repeat > 1 else "") + ".\n",
                  "| N | shards per stage | fresh: CPU s (user + sys) | fresh: jobs | finished: files checked | "
                  "finished: CPU s (user + sys) | "
                  "finished: jobs | withdrawn | train job's manifest digest (`ours`), CPU s |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for row in dag:
            fresh, done = row.get("fresh"), row.get("finished")
            cells = [f"{row['n']:,}", str(row["shards"])]
            cells += [cpu(fresh), str(fresh["jobs"])] if fresh else ["–", "–"]
            cells += ([f"{done['files_checked']:,}", cpu(done), str(done["jobs"]), str(done["withdrawn"]),
                       "–" if done.get("digest_s") is None else f"{done['digest_s']:.1f}"] if done else ["–"] * 5)
            lines.append("| " + " | ".join(cells) + " |")
    if train:
        lines += ["", f"Train job, method `ours`, dualclip-tiny, batch 128, stopped after {args.steps} steps; "
                  "first step after = setup incl. `count_steps` over 12,800,000 images.\n",
                  "| N | image table (originals + duals) | loader workers | RSS with data built | peak RSS | "
                  "largest worker peak | first step after | s/step |",
                  "|---|---|---|---|---|---|---|---|"]
        for row in train:
            lines.append(f"| {row['n']:,} | {row['table']:,} | {row['workers']} | {gib(row['rss_data_mib'])} | "
                         f"{gib(row['peak_rss_mib'])} | {gib(row['worker_peak_rss_mib']) if row['workers'] else '–'} | "
                         f"{row['to_first_step_s']:.1f} s | {row['s_per_step']:.2f} |")
    if neighbours:
        lines += ["", "NegCLIP neighbours, `nearest_neighbours(features, 3)`, random float32 features of dim 512.\n",
                  "| N | seconds | CPU s | peak RSS rise | one dense N×N float32 matrix (old code) |",
                  "|---|---|---|---|---|"]
        for row in neighbours:
            lines.append(f"| {row['n']:,} | {row['seconds']:.1f} | {row['cpu_s']:.1f} | {gib(row['rise_mib'])} | "
                         f"{row['n'] ** 2 * 4 / 2**30:.1f} GiB |")
    lines += ["", "Targets (issue 10): " + "; ".join(targets(dag, train, neighbours))]
    return "\n".join(lines) + "\n"


def targets(dag: list, train: list, neighbours: list) -> list[str]:
    out = []
    largest = max([row["n"] for row in dag + train + neighbours], default=0)
    if largest != 118_287:
        return [f"stated at 118,287 only; the largest size measured is {largest:,}"]
    for row in dag:
        if row["n"] == largest:
            worst = max(row[state]["cpu_s"] for state in ("fresh", "finished") if state in row)
            out.append(f"DAG build ≤ 30 s CPU at 118,287: {worst:.1f} s, {'pass' if worst <= 30 else 'FAIL'}")
    smallest = min(row["n"] for row in train) if train else None
    for workers in sorted({row["workers"] for row in train}):
        at = {row["n"]: row["peak_rss_mib"] for row in train if row["workers"] == workers}
        if largest in at and smallest in at and smallest != largest:
            rise = at[largest] - at[smallest]
            out.append(f"train peak RSS at 118,287 within 2 GB of {smallest:,} (workers {workers}): "
                       f"+{rise / 1024:.2f} GiB, {'pass' if rise * 2**20 <= 2e9 else 'FAIL'}")
    for row in neighbours:
        if row["n"] == largest:
            out.append(f"neighbours at 118,287 under 2 GB: peak RSS rise {gib(row['rise_mib'])} "
                       f"(process peak {gib(row['peak_after_mib'])}), "
                       f"{'pass' if row['peak_after_mib'] * 2**20 < 2e9 else 'FAIL'}")
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_train":
        n, workers, steps, images, out_dir = sys.argv[2:7]
        print(json.dumps(train_child(int(n), int(workers), int(steps), images, out_dir)), flush=True)
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_neighbours":
        print(json.dumps(neighbours_child(int(sys.argv[2]))), flush=True)
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=DEFAULT_SIZES)
    parser.add_argument("--parts", nargs="+", default=["dag", "train", "neighbours"], choices=["dag", "train", "neighbours"])
    parser.add_argument("--states", nargs="+", default=["fresh", "finished"], choices=["fresh", "finished"])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="train.loader_workers values")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=1, help="dry runs per state and size (the least CPU is reported)")
    parser.add_argument("--snakefile", type=Path, default=REPO / "Snakefile")
    parser.add_argument("--tmp", default=tempfile.gettempdir(), help="where the generated data goes")
    parser.add_argument("--keep", action="store_true", help="keep the generated data")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "RESULTS.md"), help="'' to print only")
    args = parser.parse_args()
    args.sizes = sorted(set(args.sizes))  # ascending: the finished shards of one size are reused by the next
    args.snakefile = args.snakefile.resolve()
    from dualclip.io import code_version, print_report

    code = code_version()
    config = merged_config(args.snakefile.parent / "config")
    work = Path(tempfile.mkdtemp(prefix="dualclip-scale-", dir=args.tmp))
    print(f"generated data in {work}", flush=True)
    started = time.perf_counter()
    dag, train, neighbours = [], [], []
    failed = True
    try:
        if "train" in args.parts:
            make_images(work / "images", DISTINCT_IMAGES)
        for n in args.sizes:
            if "dag" in args.parts:
                dag.append(dag_part(args, n, work, code, config))
            if "train" in args.parts:
                train += train_part(args, n, work)
            if "neighbours" in args.parts:
                neighbours.append(neighbours_part(n, work))
        failed = False
    finally:
        if args.keep or failed:
            print(f"kept {work}" + (" (for the logs of the failure)" if failed else ""), flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)
    text = report(args, dag, train, neighbours, time.perf_counter() - started, code, config)
    print_report(text, args.out)


if __name__ == "__main__":
    main()
