"""Fixtures of the backend tests: tiny random-weight models built here, saved, loaded back.

Nothing comes from a hub: each model is built from its library's own classes (builders in
``tiny_models.py``, shared with the COCO workflow test), written with
``save_pretrained``/``save`` to a temp folder and loaded the way a user's weights are
(``from_pretrained(dir)``, ``YOLO(path)``). Random weights make the outputs
meaningless, so the tests check structure (shapes, counts, determinism, pixels outside
masks) and drive the decision logic with constructed inputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tiny_models import build_tiny_lm, build_tiny_sd, build_tiny_yolo, offline_environment

# Before any ultralytics/transformers import: no hub calls, and ultralytics finds its
# font locally instead of downloading Arial.ttf.
offline_environment()


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory) -> Path:
    """A 1-layer Qwen2 causal LM with a byte-level BPE tokenizer trained here."""
    return build_tiny_lm(tmp_path_factory.mktemp("tiny-lm"))


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory) -> Path:
    """A tiny StableDiffusionInpaintPipeline (9-channel UNet) saved with save_pretrained."""
    return build_tiny_sd(tmp_path_factory.mktemp("tiny-sd"))


@pytest.fixture(scope="session")
def tiny_yolo_path(tmp_path_factory) -> Path:
    """yolov8n-seg built from its yaml (random weights), with named classes, saved as .pt."""
    return build_tiny_yolo(tmp_path_factory.mktemp("tiny-yolo") / "tiny-seg.pt")


def random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
