"""What a subset policy costs the train job, at equal compute, on the embedded default's data.

A policy filters the power-set duals at train time (``dualclip.subsets``), so it can only
change the train job: reading the records and choosing the duals, replaying the plan to
count the steps of the budget, and the steps themselves (the same number of
``batch_images`` images each). For each policy this runs the train job's own entry point
(``dualclip.train.run``, from the shard manifests, no validation slice) on a budget of
``--steps`` steps, in alternating order, ``--repeats`` times, and reports the median and
range of the job's CPU time (images read in the training process, ``loader_workers: 0``,
so that the process's CPU time is the job's: on a shared machine wall time mostly
measures the neighbours); it also times the step count of the full budget (``count_steps``).

Needs the per-image files of a finished run of the embedded default (``make demo``, or
the train inputs of one: the data, inpaint and rewrite manifests of shards 0-3):

    .venv/bin/python benchmarks/subset_policies.py --results results --steps 40 --out benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import yaml

from dualclip.io import code_version, print_report
from dualclip.workflow import per_image_files

REPO = Path(__file__).resolve().parents[1]


def manifests(results: Path, stage: str, n_images: int, shard_size: int) -> list[str]:
    return [str(results / stage / "train" / str(shard) / "manifest.json") for shard in range(-(-n_images // shard_size))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default="results")
    parser.add_argument("--config", default=str(REPO / "config" / "config.yaml"))
    parser.add_argument("--policies", nargs="*", default=["all", "singletons", "sample_k"])
    parser.add_argument("--steps", type=int, default=40, help="train steps timed per run (equal for every policy)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--out", default=None, help="append the Markdown table to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from dualclip.train import assemble_records, run
    from dualclip.train.batches import build_train_data
    from dualclip.train.trainer import count_steps, iterate_plan

    config = yaml.safe_load(Path(args.config).read_text())
    results, shard_size, n_train = Path(args.results), config["shard_size"], config["dataset"]["n_train"]
    inputs = {stage: manifests(results, stage, n_train, shard_size) for stage in ("data", "inpaint", "rewrite")}
    inputs.update(val=[], parse=[], filter=[])
    missing = [path for paths in inputs.values() for path in paths if not Path(path).exists()]
    if missing:
        raise SystemExit(f"{missing[0]} is missing: run the embedded default's stages first (make demo)")
    train = {key: value for key, value in config["train"].items()
             if key not in ("methods", "seeds", "data_sizes", "zeroshot", "negclip", "ours_soft")}
    full_budget = int(train["budget_images"])
    train.update(budget_images=args.steps * int(train["batch_images"]), checkpoint_every=10**9, loader_workers=0)

    def files(stage, pattern):
        return per_image_files(inputs[stage], n_train, shard_size, pattern)

    records = assemble_records(files("data", "{slot}.png"), files("data", "{slot}.json"),
                               rewrite=files("rewrite", "{slot}.json"), duals=files("inpaint", "{slot}/duals.json"))
    timings: dict[str, dict] = {policy: {"job_s": [], "cpu_s": []} for policy in args.policies}
    for repeat in range(args.repeats):
        order = args.policies if repeat % 2 == 0 else args.policies[::-1]
        for policy in order:
            with tempfile.TemporaryDirectory() as out_dir:
                started, cpu_started = time.perf_counter(), time.process_time()
                summary = run(config["model"], {**train, "subsets": policy}, "cpu", "ours", 0, inputs, out_dir,
                              n_train, 0, shard_size)
                timings[policy]["job_s"].append(time.perf_counter() - started)
                timings[policy]["cpu_s"].append(time.process_time() - cpu_started)
                timings[policy]["summary"] = summary
                print(policy, f"{timings[policy]['job_s'][-1]:.1f} s wall, {timings[policy]['cpu_s'][-1]:.1f} s CPU", flush=True)
    rows = []
    for policy in args.policies:
        data = build_train_data(records, subsets=policy, seed=0)
        started = time.perf_counter()
        build_train_data(records, subsets=policy, seed=0)
        choose_s = time.perf_counter() - started
        started = time.perf_counter()
        steps, per_epoch = count_steps("ours", data, {**train, "budget_images": full_budget}, 0, None)
        count_s = time.perf_counter() - started
        # what each step computes over the full budget: the images and texts it encodes
        images = texts = 0
        for step, _, batch in iterate_plan("ours", data, int(train["batch_images"]), 0, None, 0):
            if step >= steps:
                break
            images, texts = images + len(batch.images), texts + len(batch.texts)
        summary = timings[policy]["summary"]
        rows.append({"policy": policy, "duals": data.n_duals, "per_image": data.n_duals / len(data.samples),
                     "k": data.sample_k, "steps": steps, "epochs": steps / per_epoch, "choose_s": choose_s,
                     "count_s": count_s, "cpu_s": statistics.median(timings[policy]["cpu_s"]),
                     "cpu_range": (min(timings[policy]["cpu_s"]), max(timings[policy]["cpu_s"])),
                     "job_s": statistics.median(timings[policy]["job_s"]),
                     "cpu_step_s": statistics.median(timings[policy]["cpu_s"]) / summary["steps"],
                     "images_per_step": images / steps, "texts_per_step": texts / steps})
    base = next((r for r in rows if r["policy"] == "all"), rows[0])
    lines = [
        f"\n## {time.strftime('%Y-%m-%d')} — the train job per subset policy (ours, equal compute), {config['model']['name']}",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores ({args.threads} torch threads), "
        f"torch {torch.__version__}, CPU; {len(records)} training images; code {code_version()}. "
        f"Job: `dualclip.train.run` (read the records, choose the duals, count the steps, train {args.steps} steps of "
        f"{train['batch_images']} images; median of {args.repeats}, interleaved). Full budget: {full_budget:,} images.\n",
        "| policy | duals used | duals/image | k | steps (full budget) | epochs (full budget) | images/step | texts/step | "
        "choose duals (s) | count steps, full budget (s) | job CPU, short budget (s): median (range) | "
        "job CPU per step (s) | job CPU vs all | median wall (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        k = f"{r['k']:.3f}" if r["k"] is not None else ""
        lines.append(f"| {r['policy']} | {r['duals']:,} | {r['per_image']:.2f} | {k} | {r['steps']} | {r['epochs']:.1f} | "
                     f"{r['images_per_step']:.1f} | {r['texts_per_step']:.1f} | "
                     f"{r['choose_s']:.3f} | {r['count_s']:.2f} | {r['cpu_s']:.1f} ({r['cpu_range'][0]:.1f}–{r['cpu_range'][1]:.1f}) | "
                     f"{r['cpu_step_s']:.2f} | "
                     f"{r['cpu_s'] / base['cpu_s']:.2f}× | {r['job_s']:.1f} |")
    text = "\n".join(lines) + "\n"
    print_report(text, args.out)


if __name__ == "__main__":
    main()
