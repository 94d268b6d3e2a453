"""Common item type and skip records shared by all benchmark loaders.

Every loader turns an official annotation file into a list of :class:`BenchmarkItem`.
An item is one image with one positive caption and one or more negative captions; the
scorer counts it correct when the positive caption scores above all negatives (see
:mod:`dualclip.eval.benchmarks.scoring` for the exact rule of each benchmark).

Loaders never crash and never silently drop items because of missing images:

* a whole *piece* (a SugarCrepe subset, a VALSE piece, an ARO dataset) whose image
  folder was not provided, does not exist, is empty, or holds none of the piece's
  images is skipped and recorded as a :class:`SkippedPiece`;
* a single item whose image file is missing is recorded as a :class:`SkippedItem`.

Both lists travel with the items in a :class:`LoadResult`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from dualclip.io import read_json

log = logging.getLogger(__name__)

#: PIL crop box: (left, upper, right, lower) in pixels.
CropBox = tuple[int, int, int, int]


@dataclass
class BenchmarkItem:
    """One test case: an image, its positive caption and its negative captions.

    ``benchmark``: ``sugarcrepe``, ``valse``, ``vg_relation``, ``vg_attribution``,
    ``coco_order`` or ``flickr30k_order``.
    ``suite``: the unit the official script reports accuracy for (a SugarCrepe subset,
    a VALSE piece, a VG-Relation relation name, a VG-Attribution attribute pair, or the
    split for the Order benchmarks).
    ``crop_bbox``: PIL crop box ``(left, upper, right, lower)`` applied before the
    model's preprocessing, or ``None`` for the whole image.
    ``meta``: benchmark-specific extras (for VALSE ``valid`` and the mturk votes).
    """

    benchmark: str
    suite: str
    item_id: str
    image_path: Path | None
    positive: str
    negatives: list[str]
    crop_bbox: CropBox | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.negatives, list) or not self.negatives:
            raise ValueError(
                f"{self.benchmark}/{self.item_id}: negatives must be a non-empty list of "
                f"strings, got {self.negatives!r}"
            )
        if self.image_path is not None and not isinstance(self.image_path, Path):
            self.image_path = Path(self.image_path)
        if self.crop_bbox is not None:
            self.crop_bbox = tuple(int(v) for v in self.crop_bbox)  # type: ignore[assignment]
            if len(self.crop_bbox) != 4:
                raise ValueError(
                    f"{self.benchmark}/{self.item_id}: crop_bbox must be (left, upper, "
                    f"right, lower), got {self.crop_bbox!r}"
                )


@dataclass
class SkippedItem:
    """One item left out because its image is missing (or similar), with the reason."""

    benchmark: str
    suite: str
    item_id: str
    image_path: str | None
    reason: str


@dataclass
class SkippedPiece:
    """A whole piece left out, e.g. because the user did not provide its images."""

    benchmark: str
    suite: str
    n_items: int
    reason: str


@dataclass
class LoadResult:
    """Items that can be evaluated, plus everything that was skipped and why."""

    items: list[BenchmarkItem] = field(default_factory=list)
    skipped_items: list[SkippedItem] = field(default_factory=list)
    skipped_pieces: list[SkippedPiece] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)

    def extend(self, other: "LoadResult") -> "LoadResult":
        self.items.extend(other.items)
        self.skipped_items.extend(other.skipped_items)
        self.skipped_pieces.extend(other.skipped_pieces)
        return self

    def counts(self) -> dict[str, int]:
        """Number of loaded items per suite."""
        out: dict[str, int] = {}
        for it in self.items:
            out[it.suite] = out.get(it.suite, 0) + 1
        return out

    def skips_frame(self) -> pd.DataFrame:
        """All skips as one table: ``level`` is ``piece`` or ``item``."""
        rows = [{"level": "piece", "item_id": None, "image_path": None, **asdict(p)}
                for p in self.skipped_pieces]
        rows += [{"level": "item", "n_items": 1, **asdict(s)} for s in self.skipped_items]
        cols = ["level", "benchmark", "suite", "item_id", "image_path", "n_items", "reason"]
        return pd.DataFrame(rows, columns=cols)


def folder_problem(image_dir: Path | None) -> str | None:
    """Why ``image_dir`` cannot serve images, or ``None`` when it can."""
    if image_dir is None:
        return "no image folder was given"
    if not image_dir.exists():
        return f"image folder {image_dir} does not exist"
    if not image_dir.is_dir():
        return f"image path {image_dir} is not a folder"
    with os.scandir(image_dir) as it:
        if next(it, None) is None:
            return f"image folder {image_dir} is empty"
    return None


def attach_images(
    benchmark: str,
    suite: str,
    candidates: Sequence[tuple[BenchmarkItem, str]],
    image_dir: str | os.PathLike | Sequence[str | os.PathLike] | None,
    hint: str,
) -> LoadResult:
    """Resolve each candidate's image file name against ``image_dir``.

    ``candidates`` pairs each item (with ``image_path=None``) with its image file name
    relative to ``image_dir``. ``image_dir`` is one folder or a list of folders searched in
    order (a piece whose images come from two sets, e.g. VALSE coreference-standard: COCO
    train2014 and val2014). Returns the items whose image exists, the items whose image is
    missing as :class:`SkippedItem`, or, when no folder is usable or they hold none of the
    piece's images, one :class:`SkippedPiece` for the whole piece.
    ``hint`` tells the user where the images come from (printed in messages).
    """
    res = LoadResult()
    n = len(candidates)
    given = [] if image_dir is None else (
        [image_dir] if isinstance(image_dir, (str, os.PathLike)) else list(image_dir))
    problems = [(Path(f), folder_problem(Path(f))) for f in given]
    folders = [f for f, problem in problems if problem is None]
    if not folders:
        problem = "; ".join(pr for _, pr in problems if pr) or folder_problem(None)
        reason = f"{problem}; provide the images ({hint}) to evaluate this piece"
        log.warning("Skipping %s/%s (%d items): %s", benchmark, suite, n, reason)
        res.skipped_pieces.append(SkippedPiece(benchmark, suite, n, reason))
        return res
    where = " or ".join(str(f) for f in folders)
    exists_cache: dict[str, Path | None] = {}
    missing: list[tuple[BenchmarkItem, Path]] = []
    for item, rel in candidates:
        if rel not in exists_cache:
            exists_cache[rel] = next((f / rel for f in folders if (f / rel).is_file()), None)
        path = exists_cache[rel]
        if path is not None:
            item.image_path = path
            res.items.append(item)
        else:
            missing.append((item, folders[0] / rel))
    if n and not res.items:
        example = missing[0][1]
        reason = (f"none of the {n} images were found in {where} (e.g. {example.name}); "
                  f"point the image folder at the right place ({hint})")
        log.warning("Skipping %s/%s (%d items): %s", benchmark, suite, n, reason)
        res.skipped_pieces.append(SkippedPiece(benchmark, suite, n, reason))
        return res
    for item, path in missing:
        res.skipped_items.append(SkippedItem(
            benchmark, item.suite, item.item_id, str(path),
            f"image file {path.name} not found in {where}; add it there ({hint})"))
    if missing:
        log.warning("%s/%s: %d of %d items skipped because their image is missing "
                    "(first: %s)", benchmark, suite, len(missing), n, missing[0][1])
    return res


def merge_results(results: Iterable[LoadResult]) -> LoadResult:
    out = LoadResult()
    for r in results:
        out.extend(r)
    return out


def read_annotation(path: Path, what: str):
    """A benchmark's JSON annotation file; a missing or broken one is an error naming it and the fix."""
    return read_json(path, f"{what} annotation file",
                     "download it again from the official source (the benchmark's repository, or see "
                     "../shared/benchmarks/README.md) and pass the folder that contains it")


def karpathy_entries(path: Path, data) -> list[tuple[str, list[str]]]:
    """(image, captions) of each entry of a Karpathy-format split (ARO Order and COCO
    retrieval read the same files); a single caption string counts as a list of one."""
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a Karpathy-format JSON list, got {type(data).__name__}")
    entries = []
    for i, ann in enumerate(data):
        try:
            image, captions = ann["image"], ann["caption"]
        except (KeyError, TypeError) as e:
            raise ValueError(f"{path} entry {i}: missing field {e!r}; expected image/caption") from e
        entries.append((image, [captions] if isinstance(captions, str) else list(captions)))
    return entries
