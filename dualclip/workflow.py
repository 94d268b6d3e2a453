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
