"""SugarCrepe++ loader (Dumpala et al., NeurIPS 2024 Datasets & Benchmarks, arXiv 2406.11171;
github.com/Sri-Harsha/scpp).

Annotation folder: the repo's ``data/`` folder (the human-validated set) with the five
``<subset>.json`` files. Each file is a JSON list of records with ``id``, ``filename`` (a
COCO val2017 file name), ``caption`` (positive P1, the SugarCrepe caption), ``caption2``
(positive P2, a human-checked paraphrase with other words) and ``negative_caption``.
Images: the COCO 2017 validation images, as SugarCrepe, all in one flat folder.

Each record becomes one :class:`BenchmarkItem` whose ``positive`` is P1, ``negatives`` is
``[N]`` and ``meta["positive2"]`` is P2; :func:`dualclip.eval.benchmarks.evaluate.score_items`
scores P2 and the text-only pairs for these items, and
:func:`dualclip.eval.benchmarks.scoring.summarise` reports the official ITT, Image-P1-Neg,
Image-P2-Neg and TOT accuracies.
"""

from __future__ import annotations

import os
from typing import Iterable

from .items import BenchmarkItem, LoadResult, attach_images
from .loading import annotation_files
from .sugarcrepe import SUBSETS as SUGARCREPE_SUBSETS

BENCHMARK = "sugarcrepe_pp"

#: Subset name -> category: SugarCrepe's REPLACE and SWAP subsets (there are no ADD subsets).
SUBSETS: dict[str, str] = {name: category for name, category in SUGARCREPE_SUBSETS.items() if category != "ADD"}

#: Item counts of the annotation files at Sri-Harsha/scpp@c083bbf (4,757 in total).
EXPECTED_COUNTS: dict[str, int] = {
    "replace_att": 788, "replace_obj": 1652, "replace_rel": 1406, "swap_att": 666, "swap_obj": 245,
}

IMAGE_HINT = "COCO 2017 validation images, http://images.cocodataset.org/zips/val2017.zip"

FIELDS = ("filename", "caption", "caption2", "negative_caption")


def load_sugarcrepe_pp(
    annotation_dir: str | os.PathLike,
    image_dir: str | os.PathLike | None,
    subsets: Iterable[str] | None = None,
) -> LoadResult:
    """Load the SugarCrepe++ subsets (all five by default) as :class:`BenchmarkItem`.

    ``item_id`` is ``"<subset>/<id>"``; ``suite`` is the subset name; ``positive`` is P1
    (``caption``), ``negatives`` ``[negative_caption]``; ``meta`` holds ``positive2`` (P2,
    ``caption2``), ``category`` (REPLACE/SWAP) and the original ``id``. Items whose
    positive equals the negative (2 in swap_obj upstream) are kept: they can never be
    answered correctly under the strict rule, as upstream counts them.
    """
    result = LoadResult()
    for subset, path, data in annotation_files(
            annotation_dir, subsets, SUBSETS, title="SugarCrepe++", piece_word="subset", layout=list,
            layout_words="a JSON list of records",
            file_words="a SugarCrepe++ data/ file (a SugarCrepe file is an object)"):
        candidates = []
        for i, rec in enumerate(data):
            try:
                filename, p1, p2, neg = (rec[f] for f in FIELDS)
            except (KeyError, TypeError) as e:
                raise ValueError(f"{path} record {i}: missing field {e}; expected "
                                 f"{'/'.join(FIELDS)}") from e
            key = rec.get("id", i)
            item = BenchmarkItem(
                benchmark=BENCHMARK, suite=subset, item_id=f"{subset}/{key}",
                image_path=None, positive=p1, negatives=[neg],
                meta={"positive2": p2, "category": SUBSETS[subset], "key": key},
            )
            candidates.append((item, filename))
        result.extend(attach_images(BENCHMARK, subset, candidates, image_dir, IMAGE_HINT))
    return result
