"""VALSE loader (Parcalabescu et al., ACL 2022; github.com/Heidelberg-NLP/VALSE).

Annotation folder: the repo's ``data/`` folder with the eleven piece files. Each file is
a JSON object keyed by item id; every item has ``image_file``, ``caption``, ``foil`` (one
string) and ``mturk`` votes. Valid items are those with ``mturk["caption"] >= 2``; the
official script evaluates only those.

The pieces draw images from different datasets, so images are given per piece or per
image source (see :data:`PIECES` and :data:`IMAGE_SOURCES`).
"""

from __future__ import annotations

import os
from typing import Iterable, Mapping, Union

from .items import BenchmarkItem, LoadResult, attach_images
from .loading import annotation_files

BENCHMARK = "valse"

#: Piece name (file stem) -> image source key.
PIECES: dict[str, str] = {
    "existence": "visual7w",
    "plurals": "coco2017_val",
    "counting-hard": "visual7w",
    "counting-small-quant": "visual7w",
    "counting-adversarial": "visual7w",
    "relations": "coco2017_val",
    "action-replacement": "swig",
    "actant-swap": "swig",
    "coreference-standard": "visdial_train",
    "coreference-hard": "visdial_val",
    "foil-it": "coco2014_val",
}

#: Pieces whose images also come from further sources: coreference-standard draws on VisDial
#: v1.0 train, i.e. COCO train2014 *and* val2014 (215 of its 708 valid items are val2014 files).
EXTRA_IMAGE_SOURCES: dict[str, tuple[str, ...]] = {"coreference-standard": ("coco2014_val",)}

#: Image source key -> where its images come from (printed in skip messages).
IMAGE_SOURCES: dict[str, str] = {
    "visual7w": "Visual7W images, files v7w_<id>.jpg",
    "coco2017_val": "COCO 2017 validation images, files 000000xxxxxx.jpg",
    "swig": "SWiG images_512, files like exercising_255.jpg",
    "visdial_train": "VisDial v1.0 train images: COCO train2014 (COCO_train2014_*.jpg) and val2014 (COCO_val2014_*.jpg, from the coco2014_val folder)",
    "visdial_val": "VisDial v1.0 val images, files VisualDialog_val2018_*.jpg",
    "coco2014_val": "COCO 2014 validation images, files COCO_val2014_*.jpg",
}

#: (all items, valid items) per piece at Heidelberg-NLP/VALSE@2152d90.
EXPECTED_COUNTS: dict[str, tuple[int, int]] = {
    "existence": (534, 505), "plurals": (1000, 851), "counting-hard": (1000, 868),
    "counting-small-quant": (1000, 900), "counting-adversarial": (756, 691),
    "relations": (614, 535), "action-replacement": (779, 648), "actant-swap": (1042, 949),
    "coreference-standard": (916, 708), "coreference-hard": (141, 104),
    "foil-it": (1000, 943),
}

ImageDirs = Union[str, os.PathLike, Mapping[str, Union[str, os.PathLike, None]], None]


def is_valid(record: dict) -> bool:
    """The VALSE README's validity rule: at least 2 of 3 annotators say the caption fits."""
    return int(record["mturk"]["caption"]) >= 2


def _image_dir_for(piece: str, image_dirs: ImageDirs):
    """The folder (or, for a piece of several image sources, the folders) serving ``piece``."""
    if image_dirs is None or isinstance(image_dirs, (str, os.PathLike)):
        return image_dirs
    if piece in image_dirs:
        return image_dirs[piece]
    folders = [image_dirs.get(source) for source in (PIECES[piece], *EXTRA_IMAGE_SOURCES.get(piece, ()))]
    folders = [f for f in folders if f]
    return folders[0] if len(folders) == 1 else (folders or None)


def load_valse(
    annotation_dir: str | os.PathLike,
    image_dirs: ImageDirs,
    pieces: Iterable[str] | None = None,
    valid_only: bool = True,
) -> LoadResult:
    """Load VALSE pieces (all eleven by default) as :class:`BenchmarkItem`.

    ``image_dirs`` is one folder for every piece, or a mapping whose keys are piece
    names (:data:`PIECES`, value: a folder or a list of folders) or image source keys
    (:data:`IMAGE_SOURCES`; a piece of several sources, :data:`EXTRA_IMAGE_SOURCES`, looks
    in each of their folders); a piece with no folder is skipped and recorded. ``valid_only`` keeps only the validated items
    (``mturk.caption >= 2``), as the official evaluation does; with ``False`` every item
    is returned and ``meta["valid"]`` tells them apart (the scorer still uses only the
    valid ones).
    """
    result = LoadResult()
    for piece, path, data in annotation_files(annotation_dir, pieces, PIECES, title="VALSE", piece_word="piece",
                                              layout=dict, layout_words="a JSON object keyed by item id"):
        candidates = []
        for key, rec in data.items():
            try:
                foil = rec["foil"]
                valid = is_valid(rec)
                caption, image_file = rec["caption"], rec["image_file"]
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(f"{path} item {key!r}: bad or missing field ({e!r}); "
                                 f"expected image_file/caption/foil/mturk.caption") from e
            if not isinstance(foil, str):
                raise ValueError(f"{path} item {key!r}: 'foil' should be one string, got "
                                 f"{type(foil).__name__}; this loader expects the VALSE "
                                 f"data/ files, not the original FOIL-it format")
            if valid_only and not valid:
                continue
            item = BenchmarkItem(
                benchmark=BENCHMARK, suite=piece, item_id=f"{piece}/{key}",
                image_path=None, positive=caption, negatives=[foil],
                meta={"valid": valid, "mturk": dict(rec["mturk"]), "key": key,
                      "dataset": rec.get("dataset"),
                      "linguistic_phenomena": rec.get("linguistic_phenomena")},
            )
            candidates.append((item, image_file))
        folder = _image_dir_for(piece, image_dirs)
        hint = IMAGE_SOURCES[PIECES[piece]]
        result.extend(attach_images(BENCHMARK, piece, candidates, folder, hint))
    return result


__all__ = ["load_valse", "PIECES", "EXTRA_IMAGE_SOURCES", "IMAGE_SOURCES", "EXPECTED_COUNTS", "is_valid"]
