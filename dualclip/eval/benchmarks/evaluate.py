"""Score benchmark items with any open_clip model and summarise the official metrics.

``score_items`` embeds every distinct (image, crop) once and every distinct caption
once, L2-normalises the embeddings, and scores each caption by the dot product with its
item's image. Identical captions therefore get bit-identical scores, so a negative equal
to the positive is an exact tie (and is judged by the benchmark's tie rule, see
:mod:`dualclip.eval.benchmarks.scoring`).

SugarCrepe++ items (``meta["positive2"]``) also get their second positive scored and the
three text-text similarities (P1·P2, P1·N, P2·N); all six are computed in float64 from the
same normalised embeddings, so identical captions tie exactly there too.

Two text-only baselines come with every item (same tie rules, SugarCrepe++: ITT):
``blind_*`` scores the captions against the mean embedding of the distinct images scored
in the call (the benchmark's images: how far the text alone solves it, as the synthetic
suites' blind scores) and ``length_correct`` says whether the positive has strictly fewer
words than every negative ("the shorter caption wins"; ties are wrong everywhere).
"""

from __future__ import annotations

import logging
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image

from dualclip.eval.embed import embed_images, embed_texts

from .items import BenchmarkItem
from .scoring import SUGARCREPE_PP_SCORES, correct_from_scores, length_correct, sugarcrepe_pp_correct, summarise  # noqa: F401

log = logging.getLogger(__name__)

PER_ITEM_COLUMNS = ["benchmark", "suite", "item_id", "pos_score", "max_neg_score",
                    "n_negatives", "correct", "valid", "blind_pos_score", "blind_max_neg_score",
                    "blind_correct", "length_correct"]
#: Extra per-item columns of SugarCrepe++ items (``correct`` is ITT for them).
SUGARCREPE_PP_COLUMNS = ["pos2_score", "text_p1_p2", "text_p1_neg", "text_p2_neg", "image_p1_neg",
                         "image_p2_neg", "tot"]


def _load_image(item: BenchmarkItem) -> Image.Image:
    if item.image_path is None:
        raise ValueError(f"{item.benchmark}/{item.item_id}: item has no image_path; load "
                         f"items with an image folder so missing images are skipped")
    try:
        with Image.open(item.image_path) as im:
            img = im.convert("RGB")
    except FileNotFoundError as e:
        raise FileNotFoundError(
            f"{item.benchmark}/{item.item_id}: image {item.image_path} not found; it was "
            f"present when the items were loaded, re-run the loader") from e
    except OSError as e:
        raise OSError(f"{item.benchmark}/{item.item_id}: cannot read image {item.image_path} "
                      f"({e}); the file is probably corrupt, download it again") from e
    if item.crop_bbox is not None:
        img = img.crop(item.crop_bbox)
    return img


def score_items(
    model: torch.nn.Module,
    preprocess: Callable[[Image.Image], torch.Tensor],
    tokenizer: Callable[[list[str]], torch.Tensor],
    items: Sequence[BenchmarkItem],
    device: str | torch.device = "cpu",
    batch_size: int = 64,
    num_workers: int = 0,
) -> pd.DataFrame:
    """One row per item: ``benchmark, suite, item_id, pos_score, max_neg_score,
    n_negatives, correct, valid`` (``valid`` is ``meta["valid"]``, True when absent);
    SugarCrepe++ items add :data:`SUGARCREPE_PP_COLUMNS` (empty for other items) and
    their ``correct`` is ITT.

    Works with any open_clip model (``encode_image``/``encode_text``); the model is put
    in eval mode for the call and restored afterwards. Images are opened with PIL,
    converted to RGB and cropped to ``crop_bbox`` when set, then passed to
    ``preprocess``; ``num_workers`` > 0 decodes images in that many DataLoader workers.
    """
    items = list(items)
    if not items:
        return pd.DataFrame(columns=PER_ITEM_COLUMNS)
    img_keys: dict[tuple, int] = {}
    img_items: list[BenchmarkItem] = []
    item_img: list[int] = []
    for it in items:
        key = (str(it.image_path), it.crop_bbox)
        if key not in img_keys:
            img_keys[key] = len(img_items)
            img_items.append(it)
        item_img.append(img_keys[key])
    txt_keys: dict[str, int] = {}
    for it in items:
        for t in (it.positive, *it.negatives, *_second_positive(it)):
            txt_keys.setdefault(t, len(txt_keys))
    log.info("scoring %d items: %d distinct images, %d distinct captions",
             len(items), len(img_items), len(txt_keys))
    img_emb = embed_images(model, preprocess, img_items, device, batch_size, num_workers, load=_load_image)
    txt_emb = embed_texts(model, tokenizer, list(txt_keys), device, batch_size)

    # the blind "image": the mean of the distinct images scored here, as the synthetic suites
    mean_img = F.normalize(img_emb.mean(0), dim=0)
    pos, max_neg, blind_pos, blind_max_neg = (np.empty(len(items)) for _ in range(4))
    for k, it in enumerate(items):
        idx = torch.tensor([txt_keys[it.positive]] + [txt_keys[t] for t in it.negatives])
        s = (txt_emb[idx] @ img_emb[item_img[k]]).double().numpy()
        pos[k], max_neg[k] = s[0], s[1:].max()
        b = (txt_emb[idx] @ mean_img).double().numpy()
        blind_pos[k], blind_max_neg[k] = b[0], b[1:].max()
    by_bench = pd.Series([it.benchmark for it in items])
    correct = np.empty(len(items), dtype=bool)
    blind_correct = np.empty(len(items), dtype=bool)
    for b in by_bench.unique():
        m = (by_bench == b).to_numpy()
        correct[m] = correct_from_scores(b, pos[m], max_neg[m])
        blind_correct[m] = correct_from_scores(b, blind_pos[m], blind_max_neg[m])
    df = pd.DataFrame({
        "benchmark": by_bench,
        "suite": [it.suite for it in items],
        "item_id": [it.item_id for it in items],
        "pos_score": pos,
        "max_neg_score": max_neg,
        "n_negatives": [len(it.negatives) for it in items],
        "correct": correct,
        "valid": [bool(it.meta.get("valid", True)) for it in items],
        "blind_pos_score": blind_pos,
        "blind_max_neg_score": blind_max_neg,
        "blind_correct": blind_correct,
        "length_correct": [length_correct([it.positive, *_second_positive(it)], it.negatives) for it in items],
    }, columns=PER_ITEM_COLUMNS)
    pp = [k for k, it in enumerate(items) if it.benchmark == "sugarcrepe_pp"]
    if pp:
        df = _add_sugarcrepe_pp(df, [items[k] for k in pp], pp, txt_emb, txt_keys,
                                img_emb[[item_img[k] for k in pp]], mean_img)
    return df


def _second_positive(item: BenchmarkItem) -> tuple[str, ...]:
    if item.benchmark != "sugarcrepe_pp":
        return ()
    if "positive2" not in item.meta:
        raise ValueError(f"sugarcrepe_pp/{item.item_id}: meta['positive2'] (the second positive "
                         f"caption) is missing; load the items with load_sugarcrepe_pp")
    return (item.meta["positive2"],)


def _add_sugarcrepe_pp(df: pd.DataFrame, items: list[BenchmarkItem], rows: list[int],
                       txt_emb: torch.Tensor, txt_keys: dict[str, int], img: torch.Tensor,
                       mean_img: torch.Tensor) -> pd.DataFrame:
    """The six SugarCrepe++ similarities of ``items`` (rows ``rows`` of ``df``), in float64:
    an elementwise product summed in one order, so identical captions tie exactly. The
    blind ITT puts the mean image (``mean_img``) in place of each item's image."""
    def idx(texts):
        return torch.tensor([txt_keys[t] for t in texts])

    emb = txt_emb.double()
    img = img.double()
    p1 = emb[idx([it.positive for it in items])]
    p2 = emb[idx([it.meta["positive2"] for it in items])]
    neg = emb[idx([it.negatives[0] for it in items])]

    def cos(a, b):
        return (a * b).sum(dim=-1).numpy()

    sims = dict(zip(SUGARCREPE_PP_SCORES, (cos(img, p1), cos(img, p2), cos(img, neg), cos(p1, p2),
                                           cos(p1, neg), cos(p2, neg))))
    ok = sugarcrepe_pp_correct(*(sims[c] for c in SUGARCREPE_PP_SCORES))
    blind = mean_img.double().expand_as(img)
    blind_ok = sugarcrepe_pp_correct(cos(blind, p1), cos(blind, p2), cos(blind, neg), *(
        sims[c] for c in SUGARCREPE_PP_SCORES[3:]))
    df = df.copy()
    for col in SUGARCREPE_PP_COLUMNS:
        df[col] = pd.Series([None] * len(df), dtype="object")
    df["correct"] = df["correct"].astype(bool)
    values = {**{c: sims[c] for c in SUGARCREPE_PP_SCORES}, "correct": ok["itt"], "blind_correct": blind_ok["itt"],
              "image_p1_neg": ok["image_p1_neg"], "image_p2_neg": ok["image_p2_neg"], "tot": ok["tot"]}
    for col, vals in values.items():
        df.loc[rows, col] = pd.Series(vals.tolist(), index=rows, dtype="object" if col in SUGARCREPE_PP_COLUMNS
                                      else df[col].dtype)
    if len(rows) == len(df):  # a SugarCrepe++-only table: plain dtypes
        df = df.astype({c: "float64" for c in SUGARCREPE_PP_SCORES} |
                       {c: "bool" for c in ("correct", "blind_correct", "image_p1_neg", "image_p2_neg", "tot")})
    return df
