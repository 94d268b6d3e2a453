"""SugarCrepe loader (Hsieh et al., NeurIPS 2023; github.com/RAIVNLab/sugar-crepe).

Annotation folder: the repo's ``data/`` folder with the seven ``<subset>.json`` files.
Each file is a JSON object keyed by string index whose values hold ``filename`` (a COCO
val2017 file name), ``caption`` (positive) and ``negative_caption``.
Images: the COCO 2017 validation images (http://images.cocodataset.org/zips/val2017.zip),
all in one flat folder.
"""

from __future__ import annotations

import os
from typing import Iterable

from .items import BenchmarkItem, LoadResult, attach_images
from .loading import annotation_files

BENCHMARK = "sugarcrepe"

#: Subset name -> category used for the paper's REPLACE / SWAP / ADD averages.
SUBSETS: dict[str, str] = {
    "replace_obj": "REPLACE",
    "replace_att": "REPLACE",
    "replace_rel": "REPLACE",
    "swap_obj": "SWAP",
    "swap_att": "SWAP",
    "add_obj": "ADD",
    "add_att": "ADD",
}

#: Item counts of the annotation files at RAIVNLab/sugar-crepe@0047054 (swap_obj lost
#: item "108" upstream; the paper used 246).
EXPECTED_COUNTS: dict[str, int] = {
    "add_att": 692, "add_obj": 2062, "replace_att": 788, "replace_obj": 1652,
    "replace_rel": 1406, "swap_att": 666, "swap_obj": 245,
}

IMAGE_HINT = "COCO 2017 validation images, http://images.cocodataset.org/zips/val2017.zip"


def load_sugarcrepe(
    annotation_dir: str | os.PathLike,
    image_dir: str | os.PathLike | None,
    subsets: Iterable[str] | None = None,
) -> LoadResult:
    """Load the SugarCrepe subsets (all seven by default) as :class:`BenchmarkItem`.

    ``item_id`` is ``"<subset>/<key>"``; ``suite`` is the subset name; ``meta`` holds
    ``category`` (REPLACE/SWAP/ADD) and the original ``key``.
    """
    result = LoadResult()
    for subset, path, data in annotation_files(annotation_dir, subsets, SUBSETS, title="SugarCrepe",
                                               piece_word="subset", layout=dict,
                                               layout_words="a JSON object keyed by index"):
        candidates = []
        for key, rec in data.items():
            try:
                filename, pos, neg = rec["filename"], rec["caption"], rec["negative_caption"]
            except (KeyError, TypeError) as e:
                raise ValueError(f"{path} item {key!r}: missing field {e}; expected "
                                 f"filename/caption/negative_caption") from e
            item = BenchmarkItem(
                benchmark=BENCHMARK, suite=subset, item_id=f"{subset}/{key}",
                image_path=None, positive=pos, negatives=[neg],
                meta={"category": SUBSETS[subset], "key": key},
            )
            candidates.append((item, filename))
        result.extend(attach_images(BENCHMARK, subset, candidates, image_dir, IMAGE_HINT))
    return result
