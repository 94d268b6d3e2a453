"""COCO 2017: a seeded, shard-stable subset of images with captions and instance annotations.

Selection. All image ids of a COCO split that have captions are put in a seeded order
(sorted by a BLAKE2b hash of ``(seed, coco split, id)``: a permutation that depends on
nothing else, not even the numpy version). Shard ``k`` of size ``S`` holds
``order[k*S:(k+1)*S]``, cut at ``n_<split>`` when the dataset config sets it, so a shard
holds the same images whatever ``n_images`` is (a grown dataset only appends; only a
previously partial last shard gains slots). The workflow passes the dataset section
without ``n_*`` keys, so every shard is written whole.

Caption. ``captions: one`` (default) keeps one caption per image, chosen by a hash of
``(seed, id)``; ``captions: all`` keeps all of them (usually five), the seeded one first.
``caption`` is always the seeded one -- the caption the pipeline works on. Empty or
whitespace-only captions are never chosen (their ids are listed in ``empty_caption_ids``);
an image left with no usable caption is a recorded skip.

Checked input. Annotation files listing an image id twice are refused (the last entry
would silently pair one image's captions with another's file). Images whose shorter side
is below ``min_side`` (default 32 px) or with more than ``max_pixels`` pixels (default
4096x4096; COCO's largest is 640x640) are recorded skips. The size is checked from the
annotations before fetching and from the file's header before decoding, so a huge
image never gets decoded. Oversized images are skipped, not downscaled: their
``instances`` (polygons, RLE, boxes) are in the original pixels and would no longer fit.

Files per slot (``{slot}`` = position in the shard), JSON written last so its presence
means the slot is complete:

* ``{slot}.png`` -- the image as RGB PNG (``image_format: png``, the default, which the
  other stages read), or ``{slot}.jpg``, a byte copy of the COCO JPEG
  (``image_format: jpeg``; smaller, but stages expecting ``{slot}.png`` will not find it);
* ``{slot}.json`` -- the ground-truth record::

    {"image_id": "train-0000-003", "status": "ok" | "skipped", "reason": null | "why",
     "dataset": "coco", "coco_split": "train2017", "coco_image_id": 139,
     "file_name": "000000000139.jpg", "image_file": "3.png", "height": 426, "width": 640,
     "caption": "...", "captions": ["...", ...], "caption_ids": [..], "empty_caption_ids": [..],
     "instances": [{"id": 42, "category_id": 18, "category": "dog", "iscrowd": 0,
                    "bbox": [x, y, w, h], "area": 123.0, "segmentation": <COCO polygons or RLE>}]}

  (``dualclip.detect.coco_oracle`` reads ``instances``). A slot whose image cannot be
  had (missing or corrupt file, failed download, size not matching the annotations,
  below ``min_side`` or above ``max_pixels``) or that has no usable caption is a
  *recorded skip*: ``status: skipped`` with the reason, and a 1x1 placeholder image.

Source. ``root`` is a local COCO folder: ``annotations/captions_<split>.json``,
``annotations/instances_<split>.json`` and ``<split>/<file_name>``. With ``download:
true``, ``prepare_coco`` fetches and safely extracts the annotation zip once (run it in a
single job before the shards), and a shard job fetches each of its missing images
(``dualclip.fetch``: resumable, atomic); the images are checked by decoding them and
comparing their size with the annotations.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from dualclip.io import copy_file, image_id, read_json, write_json, write_png
from dualclip.registry import Settings
from dualclip.runtime import stable_seed_blake2b


@dataclass(frozen=True, kw_only=True)
class CocoSettings(Settings):
    """The dataset section's keys of ``name: coco``."""

    root: str = "data/coco"
    seed: int = 0
    coco_splits: dict = field(default_factory=lambda: {"train": "train2017", "val": "val2017"})  # dualclip split -> COCO split
    captions: str = "one"  # or "all"
    image_format: str = "png"  # or "jpeg"
    download: bool = False
    annotations_url: str = "http://images.cocodataset.org/annotations/annotations_trainval2017.zip"
    annotations_sha256: str | None = None  # pinned checksum; otherwise recorded on first download
    images_url: str = "http://images.cocodataset.org"  # + /<coco split>/<file_name>
    min_side: int = 32  # px: smaller images (thumbnails, 1x1 placeholders) are skipped
    max_pixels: int = 4096 * 4096  # width x height above this is skipped; COCO's largest is 640x640

    def __post_init__(self):
        if self.captions not in ("one", "all"):
            raise ValueError(f"dataset.captions must be 'one' or 'all', got {self.captions!r}")
        if self.image_format not in ("png", "jpeg"):
            raise ValueError(f"dataset.image_format must be 'png' or 'jpeg', got {self.image_format!r}")
        if int(self.min_side) < 1:
            raise ValueError(f"dataset.min_side must be at least 1 px, got {self.min_side!r}")
        # Above PIL's bomb limit Image.open itself warns or raises before our check could
        # name dataset.max_pixels, so the cap must stay within it (PIL's limit is not changed).
        if not 1 <= int(self.max_pixels) <= Image.MAX_IMAGE_PIXELS:
            raise ValueError(
                f"dataset.max_pixels must be between 1 and {Image.MAX_IMAGE_PIXELS} (PIL's decompression-bomb limit), "
                f"got {self.max_pixels!r}"
            )


def coco_split(config: CocoSettings, split: str) -> str:
    splits = config.coco_splits
    if split not in splits:
        raise ValueError(f"dataset.coco_splits has no COCO split for the {split!r} split; add e.g. {split}: val2017")
    return splits[split]


def seeded_order(ids: Sequence[int], seed: int, salt: str = "") -> list[int]:
    """All ids in a seeded order that depends only on (seed, salt, id)."""
    return sorted(ids, key=lambda value: (stable_seed_blake2b(seed, salt, value), value))


def shard_ids(order: Sequence[int], shard: int, shard_size: int, n_images: int | None = None) -> list[int]:
    """Shard ``shard`` of the order: ``order[k*S:(k+1)*S]``, cut at ``n_images``."""
    if shard < 0 or shard_size < 1:
        raise ValueError(f"shard must be >= 0 and shard_size >= 1, got {shard}, {shard_size}")
    end = (shard + 1) * shard_size
    if n_images is not None:
        if n_images > len(order):
            raise ValueError(f"n_images = {n_images} but the COCO split has only {len(order)} images with captions")
        end = min(end, n_images)
    return list(order[shard * shard_size:end])


def choose_captions(captions: list[dict], seed: int, coco_image_id: int, mode: str) -> list[dict]:
    """The seeded caption first; with mode 'all' the others follow in annotation order.

    Empty captions (already cleaned, so whitespace-only ones too) are never chosen; no
    usable caption gives ``[]``."""
    ordered = sorted((caption for caption in captions if caption["caption"]), key=lambda caption: caption["id"])
    if not ordered:
        return []
    chosen = ordered[stable_seed_blake2b(seed, "caption", coco_image_id) % len(ordered)]
    if mode == "one":
        return [chosen]
    return [chosen] + [caption for caption in ordered if caption is not chosen]


def clean_caption(text: str) -> str:
    # COCO captions carry stray newlines and double spaces.
    return " ".join(str(text).split())


# --------------------------------------------------------------------------- annotations


@dataclass
class CocoIndex:
    split: str
    images: dict[int, dict]  # id -> image info (file_name, height, width, coco_url)
    captions: dict[int, list[dict]]
    instances: dict[int, list[dict]]
    categories: dict[int, str]

    @property
    def order_ids(self) -> list[int]:
        """Images eligible for selection: those with at least one caption."""
        return sorted(image for image in self.images if self.captions.get(image))


def annotation_paths(root: Path, split: str) -> tuple[Path, Path]:
    return root / "annotations" / f"captions_{split}.json", root / "annotations" / f"instances_{split}.json"


def _images_by_id(data: dict, path: Path) -> dict[int, dict]:
    """The ``images`` list by id, refusing an id listed twice (the last entry would win)."""
    images: dict[int, dict] = {}
    for info in data.get("images", []):
        coco_id = int(info["id"])
        if coco_id in images:
            raise ValueError(
                f"{path}: image id {coco_id} is listed twice, as {images[coco_id].get('file_name')!r} and "
                f"{info.get('file_name')!r}; image ids must be unique, so one entry is wrong: correct the file or "
                f"delete it and unpack/download the annotations again"
            )
        images[coco_id] = info
    return images


def load_index(root: str | Path, split: str) -> CocoIndex:
    root = Path(root)
    captions_path, instances_path = annotation_paths(root, split)
    for path in (captions_path, instances_path):
        if not path.is_file():
            raise FileNotFoundError(
                f"COCO annotations {path} not found; run the COCO prepare step (dataset.download: true) or unpack "
                f"annotations_trainval2017.zip into {root}"
            )
    fix = "delete it and download the annotations again"
    captions_data = read_json(captions_path, "COCO annotation file", fix)
    instances_data = read_json(instances_path, "COCO annotation file", fix)
    categories = {int(category["id"]): str(category["name"]) for category in instances_data.get("categories", [])}
    images = _images_by_id(instances_data, instances_path)
    caption_images = _images_by_id(captions_data, captions_path)
    for coco_id in images.keys() & caption_images.keys():
        # the two files must mean the same picture by an id, or captions meet another image
        if images[coco_id].get("file_name") != caption_images[coco_id].get("file_name"):
            raise ValueError(
                f"image id {coco_id} is {images[coco_id].get('file_name')!r} in {instances_path} but "
                f"{caption_images[coco_id].get('file_name')!r} in {captions_path}; use annotation files of one release"
            )
    # An image missing from either file cannot be used; both list all split images in COCO.
    images = {image: info for image, info in images.items() if image in caption_images}
    captions: dict[int, list[dict]] = {}
    for annotation in captions_data.get("annotations", []):
        captions.setdefault(int(annotation["image_id"]), []).append(
            {"id": int(annotation["id"]), "caption": clean_caption(annotation["caption"])}
        )
    instances: dict[int, list[dict]] = {}
    for annotation in instances_data.get("annotations", []):
        category_id = int(annotation["category_id"])
        if category_id not in categories:
            raise ValueError(f"{instances_path}: annotation {annotation.get('id')} has unknown category_id {category_id}")
        instances.setdefault(int(annotation["image_id"]), []).append(
            {
                "id": int(annotation["id"]),
                "category_id": category_id,
                "category": categories[category_id],
                "iscrowd": int(annotation.get("iscrowd", 0)),
                "bbox": annotation.get("bbox"),
                "area": annotation.get("area"),
                "segmentation": annotation["segmentation"],
            }
        )
    for found in instances.values():
        found.sort(key=lambda instance: instance["id"])
    return CocoIndex(split, images, captions, instances, categories)


def prepare_coco(dataset: dict) -> Path:
    """Make sure the annotation files are in ``root`` (downloading them when allowed)."""
    from dualclip import fetch

    config = CocoSettings.from_config(dataset, "dataset")
    root = Path(config.root)
    needed = [path for split in config.coco_splits.values() for path in annotation_paths(root, split)]
    if all(path.is_file() for path in needed):
        return root
    if not config.download:
        missing = [str(path) for path in needed if not path.is_file()]
        raise FileNotFoundError(f"COCO annotations missing: {missing}; set dataset.download: true or unpack them into {root}")
    archive = root / Path(config.annotations_url).name
    # The extraction validates the download: a page served instead of the zip is deleted
    # and its checksum never recorded, so running again downloads the real file.
    fetch.download_and_extract(
        config.annotations_url, archive, root,
        sha256=config.annotations_sha256, lock_file=root / "checksums.json",
    )
    missing = [str(path) for path in needed if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"{archive} did not contain {missing}; check dataset.annotations_url and dataset.coco_splits")
    return root


# --------------------------------------------------------------------------- images


def _image_source(config: CocoSettings, split: str, info: dict) -> tuple[Path | None, str | None]:
    """(local path of the COCO image, or None and why it is not there)."""
    path = Path(config.root) / split / info["file_name"]
    if path.is_file():
        return path, None
    if not config.download:
        return None, f"image file {path} missing (dataset.download is off)"
    from dualclip import fetch

    url = f"{str(config.images_url).rstrip('/')}/{split}/{info['file_name']}"
    try:
        # No checksum exists per image; decoding and the size check below verify it.
        return fetch.download(url, path, timeout=60.0, retries=3), None
    except fetch.FetchError as error:
        return None, f"download failed: {error}"


def _size_problem(config: CocoSettings, height: int, width: int, what: str) -> str | None:
    """Why an image of this size is not used, or None."""
    if min(height, width) < int(config.min_side):
        return (f"{what} {height}x{width}: shorter side below dataset.min_side ({config.min_side} px); "
                f"lower dataset.min_side to keep such images")
    if height * width > int(config.max_pixels):
        return (f"{what} {height}x{width} = {height * width} pixels, above dataset.max_pixels ({config.max_pixels}); "
                f"not decoded (raise dataset.max_pixels to keep such images)")
    return None


def _load_image(config: CocoSettings, path: Path, info: dict) -> tuple[np.ndarray | None, str | None]:
    expected = (int(info["height"]), int(info["width"]))
    try:
        with warnings.catch_warnings():
            # Image.open reads only the header. Its bomb warning is moot: dataset.max_pixels
            # is at most PIL's limit and the size is checked below, before anything is decoded.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except Image.DecompressionBombError as error:
        # over twice PIL's limit, hence over dataset.max_pixels: PIL refused it from the header
        return None, f"image file {path} is above dataset.max_pixels ({config.max_pixels}); not decoded ({error})"
    except (OSError, ValueError) as error:
        return None, f"image file {path} cannot be decoded ({error}); delete it to fetch it again"
    with image:
        # The annotated size passed min_side and max_pixels, so the header's size must equal
        # it; comparing before load() keeps an oversized file from being decoded.
        if (image.height, image.width) != expected:
            return None, (f"image {path} is {image.height}x{image.width} but annotated as {expected[0]}x{expected[1]}; "
                          f"not decoded")
        try:
            image.load()
            rgb = np.asarray(image.convert("RGB"))
        except (OSError, ValueError) as error:
            return None, f"image file {path} cannot be decoded ({error}); delete it to fetch it again"
    return rgb, None


def image_record(config: CocoSettings, index: CocoIndex, coco_id: int, split: str, shard: int, slot: int) -> dict:
    info = index.images[coco_id]
    captions = index.captions[coco_id]
    chosen = choose_captions(captions, int(config.seed), coco_id, config.captions)
    empty = sorted(caption["id"] for caption in captions if not caption["caption"])
    return {
        "image_id": image_id(split, shard, slot),
        "status": "ok" if chosen else "skipped",
        "reason": None if chosen else f"no usable caption: all {len(captions)} captions are empty or whitespace-only",
        "dataset": "coco",
        "coco_split": index.split,
        "coco_image_id": coco_id,
        "file_name": info["file_name"],
        "image_file": f"{slot}.{'jpg' if config.image_format == 'jpeg' else 'png'}",
        "height": int(info["height"]),
        "width": int(info["width"]),
        "caption": chosen[0]["caption"] if chosen else "",
        "captions": [caption["caption"] for caption in chosen],
        "caption_ids": [caption["id"] for caption in chosen],
        "empty_caption_ids": empty,
        "instances": index.instances.get(coco_id, []),
    }


def write_slot(config: CocoSettings, index: CocoIndex, coco_id: int, split: str, shard: int, slot: int, out_dir: Path) -> dict:
    record = image_record(config, index, coco_id, split, shard, slot)
    info = index.images[coco_id]
    # Checks that need no image come first: a slot they skip is never fetched.
    reason = record["reason"] or _size_problem(config, int(info["height"]), int(info["width"]), "annotated as")
    source, image = None, None
    if reason is None:
        source, reason = _image_source(config, index.split, info)
    if source is not None:
        image, reason = _load_image(config, source, info)
    target = out_dir / record["image_file"]
    if image is None:
        record.update(status="skipped", reason=reason)
        # The other stages expect an image file per slot; they skip by the record's status.
        write_png(out_dir / f"{slot}.png", np.zeros((1, 1, 3), dtype=np.uint8))
        record["image_file"] = f"{slot}.png"
    elif config.image_format == "jpeg":
        copy_file(source, target)
    else:
        write_png(target, image)
    write_json(out_dir / f"{slot}.json", record)
    return record


def write_coco_shards(dataset: dict, split: str, shards: Sequence[int], shard_size: int, out_dirs: Sequence[str | Path],
                      index: CocoIndex | None = None, n_images: Sequence[int] | None = None) -> list[list[dict]]:
    """Write several shards with one annotation load (the instances file is large).

    ``n_images``: images of each shard (the workflow's partial last shard has fewer than
    ``shard_size``); by default full shards, cut at the config's ``n_<split>`` if set."""
    config = CocoSettings.from_config(dataset, "dataset")
    if index is None:
        index = load_index(config.root, coco_split(config, split))
    order = seeded_order(index.order_ids, int(config.seed), index.split)
    n_split = dataset.get(f"n_{split}")  # the workflow leaves it out (see the module docstring)
    written = []
    for position, (shard, out_dir) in enumerate(zip(shards, out_dirs)):
        out_dir = Path(out_dir)
        ids = shard_ids(order, int(shard), int(shard_size), None if n_split is None else int(n_split))
        wanted = int(shard_size) if n_images is None else int(n_images[position])
        if n_split is None and len(ids) < wanted:
            # the split asks for more images than COCO has: say how many there are
            raise ValueError(
                f"COCO {index.split} has {len(order)} captioned images, but dataset.n_{split} asks for at least "
                f"{int(shard) * int(shard_size) + wanted} (shard {shard}); lower dataset.n_{split} to at most {len(order)}"
            )
        ids = ids[:wanted]
        records = [write_slot(config, index, coco_id, split, int(shard), slot, out_dir) for slot, coco_id in enumerate(ids)]
        skipped = [f"{record['image_id']}: {record['reason']}" for record in records if record["status"] == "skipped"]
        if skipped:
            print(f"{split} shard {shard}: {len(skipped)} of {len(records)} slots are recorded skips: " + "; ".join(skipped[:20]))
        written.append(records)
    return written


def write_coco_shard(dataset: dict, split: str, shard: int, shard_size: int, out_dir: str | Path,
                     index: CocoIndex | None = None, n_images: int | None = None) -> list[dict]:
    """Write one shard's slots (see the module docstring); returns the records."""
    counts = None if n_images is None else [n_images]
    return write_coco_shards(dataset, split, [shard], shard_size, [out_dir], index=index, n_images=counts)[0]
