"""Glue between Snakemake's ``snakemake`` object and the stage functions."""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

from dualclip.io import read_json


def start(snakemake) -> None:
    """Send stdout, stderr (tqdm progress included) and logging to the rule's log file."""
    if snakemake.log:
        os.makedirs(os.path.dirname(str(snakemake.log[0])) or ".", exist_ok=True)
        stream = open(str(snakemake.log[0]), "w", buffering=1)
        sys.stdout = sys.stderr = stream
        logging.basicConfig(stream=stream, level=logging.INFO, force=True)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # thread counts through the environment, read by torch, OpenCV and BLAS when they load:
    # importing torch here only to call set_num_threads cost every job ~2 s of CPU
    threads = str(max(1, int(snakemake.threads)))
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[variable] = threads
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(threads))


def shard_of(snakemake) -> tuple[str, int]:
    return snakemake.wildcards.split, int(snakemake.wildcards.shard)


def with_device(section: dict, device: str) -> dict:
    return {**section, "device": section.get("device", device)}


def start_shard(snakemake) -> Path:
    """The shard's folder, emptied: a rerun must not leave files of an earlier run (a dual
    of a subset that no longer exists) beside the new ones. Snakemake removed the manifest."""
    folder = Path(str(snakemake.output.manifest)).parent
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def finish_shard(snakemake) -> None:
    """Write the shard's manifest last, listing every file of the shard with its size
    (``files``) and its SHA-256 (``sha256``).

    Downstream jobs depend on manifests, not on per-image files (a DAG of per-image files
    takes minutes to build at paper scale); :func:`stale_manifests` checks the listed files
    against the disk before each run, so a deleted or changed file still reruns its shard.
    The checksums say what the shard holds: training keys its checkpoints by them, so a
    rerun with other upstream content never resumes from a checkpoint of the old one."""
    from dualclip.fetch import sha256_file
    from dualclip.io import code_version, write_json

    manifest = Path(str(snakemake.output.manifest))
    files, checksums = {}, {}
    for path in sorted(manifest.parent.rglob("*")):
        if path.is_file() and path != manifest and not path.name.startswith("."):
            name = path.relative_to(manifest.parent).as_posix()
            files[name] = path.stat().st_size
            checksums[name] = sha256_file(path)
    write_json(manifest, {"rule": snakemake.rule, "wildcards": dict(snakemake.wildcards.items()),
                          "n_images": int(snakemake.params.n_images), "n_files": len(files), "files": files,
                          "sha256": checksums, "code_version": code_version()})


def stale_files(manifest: str | os.PathLike) -> list[str]:
    """Why the files of a finished shard no longer match its manifest: missing, another
    size, or modified after the manifest was written (Snakemake's own mtime rule)."""
    manifest = Path(manifest)
    listed = read_json(manifest, "shard manifest", "delete it to rerun the shard").get("files", {})
    finished = manifest.stat().st_mtime_ns
    folder = f"{manifest.parent}{os.sep}"  # a string join: pathlib here was half the DAG build at full COCO
    problems = []
    for name, size in listed.items():
        try:
            status = os.stat(folder + name)
        except FileNotFoundError:
            problems.append(f"{name} is missing")
            continue
        if status.st_size != size:
            problems.append(f"{name} has {status.st_size} bytes, not {size}")
        elif status.st_mtime_ns > finished:
            problems.append(f"{name} was modified after the shard finished")
    return problems


def withdraw_stale_manifests(manifests) -> dict[str, list[str]]:
    """Check the existing ``manifests`` against the disk; a stale one is renamed to
    ``manifest.stale.json``, so that Snakemake sees its shard as not made and reruns it
    and everything downstream. Returns manifest path -> problems, for the stale ones.

    Snakemake offers no way to force a job from inside a workflow before the DAG is built,
    and a manifest whose files changed no longer says what is on disk: withdrawing it
    is the honest state (it happens in dry runs too, and says so in the log)."""
    stale = {}
    for manifest in manifests:
        if os.path.exists(manifest):
            problems = stale_files(manifest)
            if problems:
                os.replace(manifest, Path(manifest).with_name("manifest.stale.json"))
                stale[str(manifest)] = problems
    return stale


def shard_files(manifest: str, n_images: int, pattern: str) -> list[str]:
    """Per-slot paths of one shard of ``n_images`` beside its manifest, e.g. "{slot}.png"."""
    folder = Path(str(manifest)).parent
    return [str(folder / pattern.format(slot=slot)) for slot in range(int(n_images))]


def per_image_files(manifests: list[str], n_images: int, shard_size: int, pattern: str) -> list[str]:
    """Per-image paths of the first ``n_images`` from the shards' manifest paths,
    e.g. pattern "{slot}.json" or "{slot}/duals.json"."""
    return [str(Path(manifests[index // shard_size]).parent / pattern.format(slot=index % shard_size))
            for index in range(int(n_images))]
