"""Fixtures for the benchmark tests (helpers live in bench_helpers.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

# Make bench_helpers importable under any pytest import mode.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_helpers import FIXTURES  # noqa: E402


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory):
    """A tiny randomly initialised open_clip model registered from a temp JSON config."""
    import open_clip
    import torch

    torch.manual_seed(0)
    cfg_dir = tmp_path_factory.mktemp("oc_cfg")
    name = "dualclip-bench-test-tiny"
    (cfg_dir / f"{name}.json").write_text(json.dumps({
        "embed_dim": 64,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8},
        "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2,
                     "layers": 2},
    }))
    open_clip.add_model_config(cfg_dir)
    model, _, preprocess = open_clip.create_model_and_transforms(name)
    tokenizer = open_clip.get_tokenizer(name)
    model.eval()
    return model, preprocess, tokenizer
