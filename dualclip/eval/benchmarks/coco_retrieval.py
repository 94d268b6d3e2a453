"""COCO (Karpathy test split) image-text retrieval: loader and Recall@K.

Annotation: a Karpathy-format file such as BLIP's ``coco_karpathy_test.json`` (5,000
images, about 5 captions each): a JSON list of ``{"image": "val2014/COCO_val2014_...jpg",
"caption": [str, ...], ...}``; ``image`` is relative to the image folder. Captions pass
through the ARO/BLIP ``pre_caption`` (max 30 words), as ARO's retrieval code does.

Recall@K: image->text counts an image as a hit when one of its own captions is among
the K best-scored captions; text->image counts a caption as a hit when its image is among
the K best-scored images. Ranks are tie-pessimistic: every wrong candidate scoring at
least as high as the best correct one is ranked above it (ties are wrong).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image

from dualclip.eval.embed import embed_images, embed_texts

from .aro import pre_caption
from .items import SkippedItem, SkippedPiece, folder_problem, karpathy_entries, read_annotation

log = logging.getLogger(__name__)

BENCHMARK = "coco_retrieval"
IMAGE_HINT = ("COCO 2014 images laid out as the Karpathy file names them "
              "(val2014/COCO_val2014_*.jpg), http://images.cocodataset.org/zips/val2014.zip")


@dataclass
class RetrievalSet:
    """Images, captions and the ground-truth links between them."""

    image_paths: list[Path] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    img2txt: list[list[int]] = field(default_factory=list)
    txt2img: list[int] = field(default_factory=list)
    skipped_items: list[SkippedItem] = field(default_factory=list)
    skipped_pieces: list[SkippedPiece] = field(default_factory=list)


def load_karpathy(
    annotation_file: str | os.PathLike,
    image_dir: str | os.PathLike | None,
    max_words: int = 30,
    captions_per_image: int | None = None,
    suite: str = "karpathy_test",
) -> RetrievalSet:
    """Load a Karpathy-format split. Images whose file is missing are skipped with
    their captions and recorded; an unusable image folder skips the whole set.

    ``captions_per_image``: keep only the first N captions of each image (an image
    with fewer raises an error); ``None`` keeps all captions (upstream behaviour).
    """
    path = Path(annotation_file)
    data = karpathy_entries(path, read_annotation(path, "Karpathy retrieval"))
    out = RetrievalSet()
    folder = Path(image_dir) if image_dir is not None else None
    problem = folder_problem(folder)
    if problem is not None:
        reason = f"{problem}; provide the images ({IMAGE_HINT}) to evaluate retrieval"
        log.warning("Skipping %s/%s (%d images): %s", BENCHMARK, suite, len(data), reason)
        out.skipped_pieces.append(SkippedPiece(BENCHMARK, suite, len(data), reason))
        return out
    assert folder is not None
    for i, (image, captions) in enumerate(data):
        if captions_per_image is not None:
            if len(captions) < captions_per_image:
                raise ValueError(f"{path} entry {i} ({image}) has {len(captions)} captions, "
                                 f"fewer than captions_per_image={captions_per_image}")
            captions = captions[:captions_per_image]
        img_path = folder / image
        if not img_path.is_file():
            out.skipped_items.append(SkippedItem(
                BENCHMARK, suite, str(i), str(img_path),
                f"image file {img_path} not found; add it ({IMAGE_HINT})"))
            continue
        k = len(out.image_paths)
        out.image_paths.append(img_path)
        ids = []
        for cap in captions:
            ids.append(len(out.texts))
            out.texts.append(pre_caption(cap, max_words))
            out.txt2img.append(k)
        out.img2txt.append(ids)
    if out.skipped_items:
        log.warning("%s: %d of %d images missing, skipped with their captions (first: %s)",
                    BENCHMARK, len(out.skipped_items), len(data), out.skipped_items[0].image_path)
    return out


def retrieval_recall(
    sim: np.ndarray,
    img2txt: Sequence[Sequence[int]],
    txt2img: Sequence[int],
    ks: Sequence[int] = (1, 5, 10),
) -> dict[str, float]:
    """Recall@K in percent from ``sim`` of shape (n_images, n_texts).

    Returns ``i2t_R@k`` and ``t2i_R@k`` for each k, plus ``rsum`` (their sum).
    """
    sim = np.asarray(sim, dtype=np.float64)
    n_img, n_txt = sim.shape
    if len(img2txt) != n_img or len(txt2img) != n_txt:
        raise ValueError(f"similarity matrix is {sim.shape} but the links describe "
                         f"{len(img2txt)} images and {len(txt2img)} texts")
    txt2img = np.asarray(txt2img)
    i2t_rank = np.empty(n_img, dtype=np.int64)
    for i in range(n_img):
        gt = np.asarray(img2txt[i], dtype=np.int64)
        if gt.size == 0:
            raise ValueError(f"image {i} has no caption")
        best = sim[i, gt].max()
        wrong = np.ones(n_txt, dtype=bool)
        wrong[gt] = False
        i2t_rank[i] = int((sim[i, wrong] >= best).sum())
    gt_scores = sim[txt2img, np.arange(n_txt)]
    # number of images scoring >= the right one, minus the right one itself
    t2i_rank = (sim >= gt_scores[None, :]).sum(axis=0) - 1
    out: dict[str, float] = {}
    for k in ks:
        out[f"i2t_R@{k}"] = float((i2t_rank < k).mean() * 100.0)
    for k in ks:
        out[f"t2i_R@{k}"] = float((t2i_rank < k).mean() * 100.0)
    out["rsum"] = float(sum(out.values()))
    return out


def summarise_retrieval(recalls: dict[str, float], n_images: int, n_texts: int,
                        benchmark: str = BENCHMARK, suite: str = "karpathy_test") -> pd.DataFrame:
    """Recall@K in the long results format (``n_items``: images for i2t, texts for t2i)."""
    rows = []
    for metric, value in recalls.items():
        n = n_images if metric.startswith("i2t") else n_texts if metric.startswith("t2i") else n_images
        rows.append({"benchmark": benchmark, "suite": suite, "metric": metric,
                     "value": float(value), "n_items": int(n)})
    return pd.DataFrame(rows, columns=["benchmark", "suite", "metric", "value", "n_items"])


@torch.no_grad()
def similarity_matrix(
    model: torch.nn.Module,
    preprocess: Callable[[Image.Image], torch.Tensor],
    tokenizer: Callable[[list[str]], torch.Tensor],
    data: RetrievalSet,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
) -> np.ndarray:
    """Cosine similarities (n_images, n_texts) of L2-normalised open_clip embeddings."""
    images = embed_images(model, preprocess, data.image_paths, device, batch_size)
    texts = embed_texts(model, tokenizer, data.texts, device, batch_size)
    return (images @ texts.T).numpy()
