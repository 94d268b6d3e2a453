"""data: produce the per-image files (image, ground truth) of a dataset shard.

Every dataset writes, for each slot of a shard, ``{slot}.png`` (RGB image) and
``{slot}.json`` (the ground-truth record, with at least ``image_id`` and ``caption``);
the synthetic world also writes ``{slot}.labels.png`` (instance ids + 1).
"""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from dualclip.io import image_id, write_json, write_png
from dualclip.registry import get_backend, register

# a dataset's backend is its shard writer: (dataset section, split, shard, shard_size, out_dir, n_images=)
register("data", "shapes", "dualclip.data:write_shapes_shard", "dualclip.data.shapes:WorldConfig",
         "the synthetic world of coloured shapes, rendered with its ground-truth instance masks")
register("data", "coco", "dualclip.data.coco:write_coco_shard", "dualclip.data.coco:CocoSettings",
         "COCO 2017: a seeded, shard-stable subset with captions and instance annotations")


def write_shard(dataset: dict, split: str, shard: int, shard_size: int, out_dir: str | Path,
                   n_images: int | None = None) -> None:
    """Slots 0 .. n_images-1 of shard ``shard`` (images shard*shard_size + slot); n_images
    defaults to the shard size and is smaller for the partial last shard of a split."""
    writer = get_backend("data", dataset["name"]).load()
    n_images = shard_size if n_images is None else int(n_images)
    if not 0 < n_images <= shard_size:
        raise ValueError(f"shard {shard} of {split}: {n_images} images do not fit a shard of shard_size {shard_size}")
    writer(dataset, split, shard, shard_size, Path(out_dir), n_images=n_images)


def write_shapes_shard(dataset: dict, split: str, shard: int, shard_size: int, out_dir: Path,
                       n_images: int | None = None) -> None:
    from dualclip.data.shapes import WorldConfig, world_record

    world = WorldConfig.from_config(dataset)
    for slot in tqdm(range(shard_size if n_images is None else n_images), desc=f"render {split} shard {shard}", mininterval=5):
        index = shard * shard_size + slot
        image, labels, record = world_record(world, split, index)
        record["image_id"] = image_id(split, shard, slot)
        write_png(out_dir / f"{slot}.png", image)
        write_png(out_dir / f"{slot}.labels.png", labels)
        # the JSON is written last: its presence means the slot is complete
        write_json(out_dir / f"{slot}.json", record)
