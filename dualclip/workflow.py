"""Glue between Snakemake's ``snakemake`` object and the stage functions."""

from __future__ import annotations

import logging
import os
import sys


def start(snakemake) -> None:
    """Send stdout, stderr (tqdm progress included) and logging to the rule's log file."""
    if snakemake.log:
        os.makedirs(os.path.dirname(str(snakemake.log[0])) or ".", exist_ok=True)
        stream = open(str(snakemake.log[0]), "w", buffering=1)
        sys.stdout = sys.stderr = stream
        logging.basicConfig(stream=stream, level=logging.INFO, force=True)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import torch

        torch.set_num_threads(max(1, int(snakemake.threads)))
    except ImportError:
        pass


def shard_of(snakemake) -> tuple[str, int]:
    return snakemake.wildcards.split, int(snakemake.wildcards.shard)


def with_device(section: dict, device: str) -> dict:
    return {**section, "device": section.get("device", device)}


def finish_shard(snakemake) -> None:
    """Write the shard's manifest last: downstream whole-dataset rules depend on it
    instead of on every per-image file (which keeps the DAG small at paper scale)."""
    from pathlib import Path

    from dualclip.io import code_version, write_json

    manifest = Path(str(snakemake.output.manifest))
    files = [str(Path(str(path)).relative_to(manifest.parent)) for key, paths in snakemake.output.items()
             if key != "manifest" for path in ([paths] if isinstance(paths, str) else paths)]
    write_json(manifest, {"rule": snakemake.rule, "wildcards": dict(snakemake.wildcards.items()),
                          "n_files": len(files), "files": files, "code_version": code_version()})


def shard_files(manifest: str, shard_size: int, pattern: str) -> list[str]:
    """Per-slot paths of one shard beside its manifest, e.g. pattern "{slot}.png"."""
    return per_image_files([str(manifest)], shard_size, shard_size, pattern)


def per_image_files(manifests: list[str], n_images: int, shard_size: int, pattern: str) -> list[str]:
    """Per-image paths of the first ``n_images`` from the shards' manifest paths,
    e.g. pattern "{slot}.json" or "{slot}/duals.json"."""
    from pathlib import Path

    return [str(Path(manifests[index // shard_size]).parent / pattern.format(slot=index % shard_size))
            for index in range(int(n_images))]
