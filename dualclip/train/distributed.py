"""Data-parallel training across processes (one per GPU), launched by ``torchrun``.

Every process builds the same deterministic batch plan; at each step process ``r``
encodes a contiguous slice of the batch's images and of its texts, the features are
all-gathered *with gradient* (``torch.distributed.nn.functional.all_gather``, as
open_clip's ``gather_with_grad``), and every process computes the loss of the whole
batch. The all-gather's backward sums the identical losses' gradients over the
processes, and DDP averages the parameter gradients, so one step equals the
single-process step on the same global batch (up to float summation order): the
batch, the masks, the positives and the equal-compute budget do not depend on the
number of processes. ``train.nproc_per_node: 1`` (the default) runs in-process
without ``torch.distributed``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: torch.device) -> Context:
    """The process group of a ``torchrun`` launch (WORLD_SIZE > 1), else a one-process context.

    On CUDA each process takes GPU ``LOCAL_RANK`` and talks over NCCL; on CPU over gloo.
    ``DUALCLIP_DIST_BACKEND=gloo`` overrides NCCL, e.g. to put two processes on one GPU
    for a check (NCCL refuses two ranks on the same device).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Context(device=device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = os.environ.get("DUALCLIP_DIST_BACKEND") or ("nccl" if device.type == "cuda" else "gloo")
        dist.init_process_group(backend)
    return Context(rank=rank, world_size=world_size, device=device)


def teardown(context: Context) -> None:
    if context.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def slice_bounds(n: int, world_size: int) -> list[int]:
    """Where each process's contiguous share of ``n`` items starts (sizes differ by at most one)."""
    return np.linspace(0, n, world_size + 1).round().astype(int).tolist()


def local_slice(n: int, context: Context) -> slice:
    """This process's share of ``n`` items; empty when ``n`` < the number of processes."""
    bounds = slice_bounds(n, context.world_size)
    return slice(bounds[context.rank], bounds[context.rank + 1])


def gather_rows(local: torch.Tensor, n_total: int, context: Context) -> torch.Tensor:
    """Concatenate every process's rows in rank order, keeping the autograd graph.

    Collectives need equal shapes, so each slice is zero-padded to the largest one and
    the padding is cut off again; padded rows get no gradient.
    """
    if not context.distributed:
        return local
    from torch.distributed.nn.functional import all_gather

    bounds = slice_bounds(n_total, context.world_size)
    sizes = [end - start for start, end in zip(bounds, bounds[1:])]
    padded = torch.nn.functional.pad(local, (0, 0, 0, max(sizes) - local.shape[0]))
    pieces = all_gather(padded)
    return torch.cat([piece[:size] for piece, size in zip(pieces, sizes)])


def launch(run_kwargs: dict, nproc_per_node: int, work_dir: str | Path, log=None) -> dict:
    """Run ``dualclip.train.run(**run_kwargs)`` in ``nproc_per_node`` processes.

    One process: in this process. More: ``torchrun --standalone`` (a free local port,
    so parallel jobs on one node do not collide) runs ``python -m dualclip.train.worker``
    on a JSON copy of the arguments, and the summary is read back from the run folder.
    """
    from dualclip.io import read_json, write_json
    from dualclip.train import run

    if nproc_per_node <= 1:
        return run(**run_kwargs)
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    arguments = work_dir / ".launch_arguments.json"
    write_json(arguments, run_kwargs)
    package_root = str(Path(__file__).resolve().parents[2])
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc_per_node}",
               "-m", "dualclip.train.worker", str(arguments)]
    print("launching: " + " ".join(command), flush=True)
    try:  # the rule's log file when dualclip.workflow.start redirected stdout there
        log = sys.stdout if log is None and sys.stdout.fileno() >= 0 else log
    except (AttributeError, OSError, ValueError):
        log = None  # a captured stdout without a file descriptor (pytest): inherit ours
    completed = subprocess.run(command, env=environment, stdout=log, stderr=subprocess.STDOUT if log else None)
    if completed.returncode != 0:
        raise RuntimeError(f"torchrun with {nproc_per_node} processes failed (exit {completed.returncode}); "
                           "each process's traceback is in the log above")
    return read_json(Path(run_kwargs["out_dir"]) / "summary.json")

