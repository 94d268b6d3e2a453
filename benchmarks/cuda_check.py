"""CUDA checks of the trainer, for a machine with a GPU (CI has none, so this is no test).

1. One process on the GPU, in fp32 and with bf16 autocast (``precision: amp``): the
   loss falls and the weights stay finite.
2. ``torchrun`` with 2 processes sharing the one GPU (gloo, because NCCL refuses two
   ranks on one device; with 1 process there is no process group at all): the weights
   match the one-process fp32 run, measured as max over tensors of
   |w_a - w_b| / |w_a - w_0| (0 = identical updates).
3. The paper-scale model (``ViT-B-32-quickgelu``, random weights) at NegCLIP's batch of
   256 with bf16 autocast: seconds per step and peak GPU memory.

Needs the per-image files of a run of the embedded default (``make demo``)::

    python benchmarks/cuda_check.py --results results --n-train 500 --out cuda_check.json
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from dualclip.train.trainer import train  # noqa: E402


def tiny_config(steps: int, precision: str, device: str = "cuda") -> dict:
    return {"model": {"name": "dualclip-tiny", "pretrained": None}, "device": device,
            "train": {"batch_images": 128, "compute": "equal_compute", "budget_images": 128 * steps, "epochs": 1,
                      "lr": 5e-4, "weight_decay": 0.1, "warmup_steps": 5, "precision": precision,
                      "checkpoint_every": 10_000, "negclip": {"neighbour_model": "pixels", "k": 3}}}


def update_difference(a: Path, b: Path) -> float:
    """The largest per-tensor |w_a - w_b| / |w_a - w_0| between two runs' final weights (seed 0)."""
    from dualclip.train.trainer import initial_model

    start = initial_model({"name": "dualclip-tiny"}, 0)[0].state_dict()
    wa = torch.load(a / "model.pt", map_location="cpu", weights_only=False)["model"]
    wb = torch.load(b / "model.pt", map_location="cpu", weights_only=False)["model"]
    return max(float((wa[k] - wb[k]).norm() / (wa[k] - start[k]).norm().clamp_min(1e-12)) for k in wa)


def losses(run_dir: Path) -> list[float]:
    state = torch.load(run_dir / "model.pt", map_location="cpu", weights_only=False)
    return [row["loss"] for row in state["log_rows"] if "loss" in row]


def torchrun(job: Path, out_dir: Path, nproc: int, backend: str | None) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    if backend:
        env["DUALCLIP_DIST_BACKEND"] = backend
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               __file__, "--worker", str(job), str(out_dir)]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-4000:])


def paper_scale_step_time(captions: list[str], steps: int = 10, batch: int = 256) -> dict:
    from dualclip.train.batches import BatchSpec
    from dualclip.train.distributed import Context
    from dualclip.train.loss import DualContrastiveLoss
    from dualclip.train.models import create_model
    from dualclip.train.trainer import autocast_factory, make_optimizer, training_step

    device = torch.device("cuda")
    model, _, tokenizer = create_model("ViT-B-32-quickgelu", None)
    model.to(device).train()
    optimizer = make_optimizer(model, {"lr": 1e-6, "weight_decay": 0.1})
    images = torch.randn(batch, 3, 224, 224).pin_memory()
    spec = BatchSpec(images=list(range(batch)), texts=(captions * batch)[:batch],
                     image_pos=list(range(batch)), text_pos=list(range(batch)))
    context, loss_fn = Context(device=device), DualContrastiveLoss()
    autocast = autocast_factory(device, "amp")

    torch.cuda.reset_peak_memory_stats()
    timings = []
    for step in range(3 + steps):
        torch.cuda.synchronize()
        started = time.perf_counter()
        loss = training_step(model, loss_fn, tokenizer, images, spec, context, autocast)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        torch.cuda.synchronize()
        if step >= 3:
            timings.append(time.perf_counter() - started)
    return {"s_per_step": round(sum(timings) / len(timings), 4), "images_per_s": round(batch * len(timings) / sum(timings)),
            "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2), "loss": round(float(loss), 4),
            "steps_timed": steps, "batch": batch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default="results")
    parser.add_argument("--n-train", type=int, default=500)
    parser.add_argument("--shard-size", type=int, default=250)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--method", default="ours")
    parser.add_argument("--work", default="/tmp/cuda_check")
    parser.add_argument("--out", default="cuda_check.json")
    parser.add_argument("--device", default="cuda", help="cpu: a dry run of the script itself")
    parser.add_argument("--worker", nargs=2, metavar=("JOB", "OUT_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:  # one torchrun process
        with open(args.worker[0], "rb") as handle:
            config, method, data = pickle.load(handle)
        train(config, method, 0, data, args.worker[1])
        return

    from train_throughput import records_from

    from dualclip.train.batches import build_train_data

    assert args.device == "cpu" or torch.cuda.is_available(), "no CUDA device"
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    data = build_train_data(records_from(Path(args.results), args.n_train, args.shard_size))
    report = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" else "none", "method": args.method,
              "n_train": len(data.samples), "n_duals": data.n_duals, "steps": args.steps, "checks": {}}

    def check(name, function):
        started = time.time()
        try:
            result = function()
            report["checks"][name] = {"ok": True, **(result or {}), "seconds": round(time.time() - started, 1)}
        except Exception:  # record and go on: one failed check must not hide the others
            report["checks"][name] = {"ok": False, "error": traceback.format_exc()[-3000:]}
        print(name, json.dumps(report["checks"][name])[:3000], flush=True)

    def single(precision):
        summary = train(tiny_config(args.steps, precision, args.device), args.method, 0, data, work / f"one_{precision}")
        curve = losses(work / f"one_{precision}")
        assert curve[-1] < curve[0], f"loss did not fall: {curve[0]} -> {curve[-1]}"
        return {"first_loss": curve[0], "last_loss": curve[-1], "device": summary["device"],
                "s_per_step": round(summary["train_seconds_this_process"] / summary["steps"], 4)}

    check("one_process_fp32", lambda: single("fp32"))
    check("one_process_amp_bf16", lambda: single("amp"))
    check("amp_vs_fp32_update_difference",
          lambda: {"relative_update_difference": update_difference(work / "one_fp32", work / "one_amp")})
    job = work / "job.pkl"
    job.write_bytes(pickle.dumps((tiny_config(args.steps, "fp32", args.device), args.method, data)))

    def distributed(nproc, backend):
        out_dir = work / f"torchrun_{nproc}"
        torchrun(job, out_dir, nproc, backend)
        state = torch.load(out_dir / "model.pt", map_location="cpu", weights_only=False)
        return {"world_size": state["world_size"], "device": state["summary"]["device"],
                "relative_update_difference_vs_one_process": update_difference(work / "one_fp32", out_dir),
                "last_loss": losses(out_dir)[-1]}

    check("torchrun_2_processes_gloo_one_gpu", lambda: distributed(2, "gloo"))
    if args.device == "cuda":
        check("paper_scale_vit_b32_bf16_batch256", lambda: paper_scale_step_time([s.caption for s in data.samples]))
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
