"""Models by name, open_clip style: architectures are JSON configs in ``dualclip/model_configs``.

``dualclip-tiny`` trains from scratch on a CPU in minutes; any open_clip name works too
(paper scale: ``ViT-B-32-quickgelu`` with ``pretrained: openai`` — the plain
``ViT-B-32`` architecture would silently drop OpenAI's QuickGELU and lose accuracy).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import open_clip
import torch

MODEL_CONFIG_DIR = Path(__file__).resolve().parents[1] / "model_configs"
_registered = False


def register_model_configs() -> None:
    global _registered
    if not _registered:
        open_clip.add_model_config(MODEL_CONFIG_DIR)
        _registered = True


def create_model(name: str, pretrained: str | None = None, device: str | torch.device = "cpu"):
    """(model, preprocess, tokenizer) for an open_clip architecture name."""
    register_model_configs()
    if name == "ViT-B-32" and pretrained == "openai":
        raise ValueError("model 'ViT-B-32' with OpenAI weights drops QuickGELU: use 'ViT-B-32-quickgelu'")
    model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=pretrained or None, device=device)
    tokenizer = open_clip.get_tokenizer(name)
    return model, preprocess, tokenizer


def refused_global(error: pickle.UnpicklingError) -> str:
    """The object a ``weights_only`` load refused, from torch's long message (whose advice,
    loading with weights_only=False, is what we must not do)."""
    for line in str(error).splitlines():
        if "WeightsUnpickler error:" in line:
            return line.split("WeightsUnpickler error:", 1)[1].split(" was not an allowed global")[0].strip()
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def load_checkpoint(path: str | Path) -> dict:
    """A trained run's ``model.pt`` (model weights, config, summary), read as tensors and
    plain data only; a file that needs more (written before RNG states were stored as
    lists, or not written by us) is refused with what to do."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"{path}: holds Python objects that safe loading (weights_only) refuses ({refused_global(error)}); "
            "a model.pt written before RNG states were stored as lists looks like this: delete it and rerun its "
            "train job"
        ) from error


def load_checkpoint_model(path: str | Path, device: str | torch.device = "cpu"):
    """(model, preprocess, tokenizer, checkpoint) of a trained run, in eval mode.

    The file is read as tensors and plain data (``weights_only=True``): loading a model
    never runs code that a file brought with it."""
    checkpoint = load_checkpoint(path)
    model_config = checkpoint["config"]["model"]
    model, preprocess, tokenizer = create_model(model_config["name"], None, device="cpu")
    model.load_state_dict(checkpoint["model"])
    model.to(device).eval()
    return model, preprocess, tokenizer, checkpoint
