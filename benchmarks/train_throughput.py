"""Training throughput of every method on the embedded default's data.

Measures seconds per step and images per second over a fixed number of steps (after
warm-up steps that are not timed) for each method, and the ratio of each to baseline;
appends a Markdown table with the machine description to benchmarks/RESULTS.md.

Needs the per-image files of a finished run of the embedded default (``make demo``):

    .venv/bin/python benchmarks/train_throughput.py --results results --steps 30

``--device cuda`` times the GPU path (bf16 autocast as the trainer's ``precision: amp``;
each step waits for the GPU before the clock is read).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch
import yaml

from dualclip.io import code_version, print_report
from dualclip.train import assemble_records
from dualclip.train.batches import build_train_data
from dualclip.train.distributed import Context
from dualclip.train.methods import METHODS
from dualclip.train.models import create_model
from dualclip.train.trainer import (
    autocast_factory,
    compute_neighbours,
    iterate_plan,
    load_images,
    make_loss,
    make_optimizer,
    training_step,
    uses_amp,
)

REPO = Path(__file__).resolve().parents[1]


def records_from(results: Path, n: int, shard_size: int) -> list[dict]:
    slots = [(i // shard_size, i % shard_size) for i in range(n)]
    return assemble_records(
        [results / f"data/train/{s}/{k}.png" for s, k in slots],
        [results / f"data/train/{s}/{k}.json" for s, k in slots],
        [results / f"parse/train/{s}/{k}.json" for s, k in slots],
        [results / f"rewrite/train/{s}/{k}.json" for s, k in slots],
        [results / f"inpaint/train/{s}/{k}/duals.json" for s, k in slots],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default="results")
    parser.add_argument("--config", default=str(REPO / "config" / "config.yaml"))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--methods", nargs="*", default=METHODS)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "RESULTS.md"))
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--n-train", type=int, default=None, help="first N training images (default: the config's n_train)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = yaml.safe_load(Path(args.config).read_text())
    n_train = args.n_train or config["dataset"]["n_train"]
    data = build_train_data(records_from(Path(args.results), n_train, config["shard_size"]))
    device = torch.device(args.device)
    context = Context(device=device)
    precision = config["train"].get("precision", "amp")
    autocast, use_amp = autocast_factory(device, precision), uses_amp(device, precision)

    def synchronize():
        if device.type == "cuda":
            torch.cuda.synchronize()

    model, preprocess, tokenizer = create_model(config["model"]["name"], config["model"].get("pretrained"))
    images = load_images(data.image_files, preprocess)
    neighbours = compute_neighbours(data, preprocess, config["train"]["negclip"], model)
    model.to(device)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    rows = []
    for method in args.methods:
        model.load_state_dict(initial)
        model.train()
        optimizer = make_optimizer(model, config["train"])
        plan = iterate_plan(method, data, config["train"]["batch_images"], 0, neighbours, 0)
        n_images = n_texts = 0
        for step, _, batch in plan:
            if step == args.warmup:
                synchronize()
                started = time.perf_counter()
            if step >= args.warmup + args.steps:
                break
            # preloaded images: this measures the step, not the reading
            losses = training_step(model, make_loss(method, config["train"]), tokenizer, images[batch.images], batch, context, autocast)
            optimizer.zero_grad()
            losses["loss"].backward()
            optimizer.step()
            if step >= args.warmup:
                n_images += len(batch.images)
                n_texts += len(batch.texts)
        synchronize()
        seconds = time.perf_counter() - started
        rows.append({"method": method, "s/step": seconds / args.steps, "images/s": n_images / seconds,
                     "texts/step": n_texts / args.steps, "images/step": n_images / args.steps})
        print(rows[-1], flush=True)
    base = next(r for r in rows if r["method"] == "baseline") if any(r["method"] == "baseline" for r in rows) else rows[0]
    lines = [
        f"\n## {time.strftime('%Y-%m-%d')} — train throughput, {config['model']['name']}, batch {config['train']['batch_images']} images",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{args.threads} threads, {torch.cuda.get_device_name(device) + (' (bf16 autocast)' if use_amp else '') if device.type == 'cuda' else 'CPU'}; "
        f"{len(data.samples)} training images; code {code_version()}; {args.steps} timed steps after {args.warmup} warm-up steps.\n",
        "| method | s/step | images/s | images/step | texts/step | time per step vs baseline |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['method']} | {r['s/step']:.3f} | {r['images/s']:.0f} | {r['images/step']:.0f} | "
                     f"{r['texts/step']:.0f} | {r['s/step'] / base['s/step']:.2f}× |")
    print_report("\n".join(lines) + "\n", args.out)


if __name__ == "__main__":
    main()
