"""The one open_clip embedding engine: images and texts in batches, L2-normalised.

Every site that embeds (the synthetic suites, the real benchmarks, COCO retrieval, zero-shot
classification, the trainer's validation and neighbour features, the filter's CLIP check)
calls these functions, so that an embedding is computed the same way everywhere:
``F.normalize(encode(batch).float(), dim=-1)``, batch by batch in input order. Results depend on
the batch size on CPU (matmul blocking), so each caller passes its own.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from PIL import Image


def open_rgb(image: str | os.PathLike | Image.Image) -> Image.Image:
    """A file path or a PIL image as an RGB PIL image; an unreadable file names itself."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    try:
        with Image.open(image) as opened:
            return opened.convert("RGB")
    except OSError as e:  # missing or corrupt: the same class, with the file and the fix
        raise type(e)(f"cannot read image {image} ({e}); download it again") from e


class PreprocessedImages(torch.utils.data.Dataset):
    """``preprocess(load(images[i]))``: the dataset that :func:`embed_images` batches."""

    def __init__(self, images: Sequence, preprocess: Callable, load: Callable = open_rgb):
        self.images, self.preprocess, self.load = images, preprocess, load

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.preprocess(self.load(self.images[index]))


def normalised_image_features(model, pixels: torch.Tensor, device) -> torch.Tensor:
    """Unit-length float image embeddings of one preprocessed batch, left on ``device``; call it
    under ``torch.no_grad()`` as the functions below do (grad mode picks other attention kernels)."""
    return F.normalize(model.encode_image(pixels.to(device)).float(), dim=-1)


def normalised_text_features(model, tokenizer, texts: Sequence[str], device) -> torch.Tensor:
    """Unit-length float text embeddings of one batch of texts, left on ``device``."""
    return F.normalize(model.encode_text(tokenizer(list(texts)).to(device)).float(), dim=-1)


def _eval_mode(model) -> bool:
    was_training = model.training
    model.eval()
    return was_training


@torch.no_grad()
def embed_pixel_batches(model, batches: Iterable[torch.Tensor], device) -> torch.Tensor:
    """Unit-length float CPU embeddings of already preprocessed image batches, concatenated."""
    was_training = _eval_mode(model)
    try:
        features = [normalised_image_features(model, pixels, device).cpu() for pixels in batches]
    finally:
        model.train(was_training)
    return torch.cat(features) if features else torch.empty(0)


def embed_images(model, preprocess, images: Sequence, device, batch_size: int, workers: int = 0,
                 load: Callable = open_rgb) -> torch.Tensor:
    """(len(images), dim) unit-length float CPU embeddings of ``images`` (file paths or PIL
    images; other items with a ``load`` that turns one into a PIL image), read in input order by
    a DataLoader with ``workers`` processes (0: in this process)."""
    loader = torch.utils.data.DataLoader(PreprocessedImages(images, preprocess, load), batch_size=max(1, batch_size),
                                         shuffle=False, num_workers=workers)
    return embed_pixel_batches(model, loader, device)


@torch.no_grad()
def embed_texts(model, tokenizer, texts: Sequence[str], device, batch_size: int) -> torch.Tensor:
    """(len(texts), dim) unit-length float CPU embeddings of ``texts``, in input order."""
    was_training = _eval_mode(model)
    batch_size = max(1, batch_size)
    try:
        features = [normalised_text_features(model, tokenizer, texts[start:start + batch_size], device).cpu()
                    for start in range(0, len(texts), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(features) if features else torch.empty(0)
