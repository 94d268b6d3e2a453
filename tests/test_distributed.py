"""Data-parallel training: torchrun with 2 CPU processes (gloo) equals the one-process run."""

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dualclip.train import distributed
from dualclip.train.trainer import train

REPO = Path(__file__).resolve().parents[1]


def test_slices_cover_the_batch_in_order_and_may_be_empty():
    for n in (0, 1, 2, 5, 128):
        for world_size in (1, 2, 3, 8):
            shares = [distributed.local_slice(n, distributed.Context(rank=r, world_size=world_size)) for r in range(world_size)]
            assert [i for share in shares for i in range(n)[share]] == list(range(n))
            assert max(s.stop - s.start for s in shares) - min(s.stop - s.start for s in shares) <= 1


@pytest.fixture(scope="module")
def dual_data(tmp_path_factory):
    """16 scenes, each with two 'dual' images (flipped copies with their own texts) and a
    negative caption: every column type of the ours+negclip batch appears."""
    from helpers import world_train_data

    def flipped_duals(image, caption):
        return [(np.ascontiguousarray(flipped), f"{caption} ({k})") for k, flipped in enumerate((image[:, ::-1], image[::-1]))]

    return world_train_data(tmp_path_factory.mktemp("world"), seed=5, make_duals=flipped_duals)


def tiny_config(steps):
    from helpers import tiny_config as one_process_config

    return one_process_config(steps, batch_images=12)


def torchrun(tmp_path, config, method, data, out_dir, stop=None, mode="train"):
    job = tmp_path / f"{Path(out_dir).name}.pkl"
    job.write_bytes(pickle.dumps((config, method, data)))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
               str(REPO / "tests" / "ddp_train_worker.py"), mode, str(job), str(out_dir), *([str(stop)] if stop else [])]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]


@pytest.mark.parametrize("method", ["ours+negclip", "ours_pos"])
def test_two_processes_compute_the_one_process_gradient(dual_data, tmp_path, method):
    """Gradient scale and direction both matter (Adam would hide a wrong scale in the
    weights): the DDP-averaged gradient of a batch split over 2 processes equals the
    gradient of the whole batch in one process."""
    config = tiny_config(1)
    torchrun(tmp_path, config, method, dual_data, tmp_path / "two.pt", mode="grad")
    subprocess.run([sys.executable, str(REPO / "tests" / "ddp_train_worker.py"), "grad", str(tmp_path / "two.pt.pkl"),
                    str(tmp_path / "one.pt")], check=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=600)
    one, two = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    assert one.keys() == two.keys() and len(one) > 10
    for name in one:
        assert one[name] is not None and one[name].abs().sum() > 0, name
        assert torch.allclose(one[name], two[name], rtol=1e-3, atol=1e-7), name


@pytest.mark.slow
@pytest.mark.parametrize("method", ["ours+negclip"])
def test_two_processes_train_the_same_model_as_one(dual_data, tmp_path, method):
    torch.set_num_threads(1)
    config = tiny_config(4)
    single = train(config, method, 0, dual_data, tmp_path / "one")
    torchrun(tmp_path, config, method, dual_data, tmp_path / "two")
    a = torch.load(tmp_path / "one" / "model.pt", weights_only=False)
    b = torch.load(tmp_path / "two" / "model.pt", weights_only=False)
    assert b["world_size"] == 2 and b["summary"]["world_size"] == 2 and single["world_size"] == 1
    assert a["summary"]["images_seen"] == b["summary"]["images_seen"]
    assert_same_updates(a["model"], b["model"])
    # the loss of every step (the whole batch's, seen by rank 0) matches too
    losses_a = [row["loss"] for row in a["log_rows"] if "loss" in row]
    losses_b = [row["loss"] for row in b["log_rows"] if "loss" in row]
    assert len(losses_a) == 4 and np.allclose(losses_a, losses_b, rtol=1e-4)


def initial_weights():
    from dualclip.train.trainer import initial_model

    return initial_model({"name": "dualclip-tiny"}, 0)[0].state_dict()


def assert_same_updates(a: dict, b: dict) -> None:
    """Every tensor moved, and moved the same way in both runs to float summation order
    (Adam divides by sqrt(v), which magnifies 1e-7 gradient differences to ~1e-3 of an
    update on near-zero gradients; a wrong gradient scale or a lost column is ~1e-1)."""
    start = initial_weights()
    for key in a:
        update = (a[key] - start[key]).norm()
        assert update > 0, f"{key} did not train"
        assert (a[key] - b[key]).norm() / update < 1e-2, key


@pytest.mark.slow
def test_a_two_process_run_killed_midway_resumes(dual_data, tmp_path):
    config = tiny_config(5)
    out_dir = tmp_path / "killed"
    torchrun(tmp_path, config, "ours", dual_data, out_dir, stop=3)
    assert (out_dir / "checkpoint.pt").exists() and not (out_dir / "model.pt").exists()
    torchrun(tmp_path, config, "ours", dual_data, out_dir)
    resumed = torch.load(out_dir / "model.pt", weights_only=False)
    assert resumed["step"] == 5 and not (out_dir / "checkpoint.pt").exists()
    straight = train(config, "ours", 0, dual_data, tmp_path / "straight")
    assert straight["images_seen"] == resumed["summary"]["images_seen"]
    reference = torch.load(tmp_path / "straight" / "model.pt", weights_only=False)
    assert_same_updates(reference["model"], resumed["model"])


@pytest.mark.slow
def test_the_workflow_launches_torchrun_for_nproc_per_node(tmp_path):
    """scripts/train.py -> distributed.launch -> torchrun -> dualclip.train.worker, end to end:
    the 2-process run of the tiny config trains the model of the 1-process run, logs every
    process to the rule's log, and changing nproc_per_node reruns training only."""
    from helpers import planned_jobs, snakemake

    target = "results/train/ours/n24/seed0/model.pt"
    snakemake(tmp_path, target)
    one = torch.load(tmp_path / target, weights_only=False)
    two_procs = {"train": {"nproc_per_node": 2}}
    assert planned_jobs(tmp_path, target, extra_config=two_procs) == {"train": 1}
    snakemake(tmp_path, target, extra_config=two_procs)
    two = torch.load(tmp_path / target, weights_only=False)
    assert one["world_size"] == 1 and two["world_size"] == 2
    assert one["summary"]["images_seen"] == two["summary"]["images_seen"]
    assert_same_updates(one["model"], two["model"])
    log = (tmp_path / "results" / "logs" / "train" / "ours" / "n24" / "seed0.log").read_text()
    assert "torch.distributed.run" in log and "--nproc-per-node=2" in log
