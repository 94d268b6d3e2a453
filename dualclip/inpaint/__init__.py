"""inpaint: remove every non-empty subset of an image's detected components.

Backend interface: ``get_inpainter(config)`` returns an object with
``inpaint(image, masks, seeds) -> list[np.ndarray]``: ``masks`` are the (already dilated)
union masks, one per subset; ``seeds`` one integer per subset (a diffusion backend seeds
its generator with it); the result is one HxWx3 uint8 image per mask, with every pixel
outside its mask unchanged.

A backend that batches (Stable Diffusion) also has ``inpaint_many(items)``: ``items``
yields ``(image, masks, seeds)`` per image, it yields each image's ``inpaint`` result in
item order, and the subsets of consecutive images share its model calls. ``run_shard``
uses it when present; the OpenCV backend works one image at a time.

cv2 and numpy are imported where they are used: listing the backends (the workflow's
pre-flight check, while it plans) must not load them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Protocol

from dualclip.registry import Settings, create, register
from dualclip.subsets import nonempty_subsets, subset_name

if TYPE_CHECKING:
    import numpy as np


class Inpainter(Protocol):
    name: str

    def inpaint(self, image: np.ndarray, masks: list[np.ndarray], seeds: list[int]) -> list[np.ndarray]: ...


def dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    import cv2
    import numpy as np

    if pixels <= 0:
        return mask.astype(bool)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


@dataclass(frozen=True, kw_only=True)
class InpaintSettings(Settings):
    """The inpaint stage's own keys (``run_shard``), whatever the backend."""

    dilation: int = 2  # pixels added around each component's mask before inpainting


register("inpaint", "opencv", "dualclip.inpaint.opencv:OpenCVInpainter", "dualclip.inpaint.opencv:OpenCVSettings",
         "OpenCV's Telea or Navier-Stokes inpainting: fast, CPU only")
register("inpaint", "sd", "dualclip.inpaint.sd:StableDiffusionInpainter", "dualclip.inpaint.sd:SDSettings",
         "a Stable Diffusion inpainting pipeline (diffusers), subsets batched across images")


def get_inpainter(config: dict) -> Inpainter:
    return create("inpaint", config)


def run_shard(config: dict, image_files: list[str], detect_files: list[str], out_files: list[str], seed: int = 0) -> None:
    """Inpaint every non-empty subset of each image's found components.

    Writes ``{slot}/drop-<i+j>.png`` per subset and ``{slot}/duals.json`` (written last,
    it marks the image complete). Works on the lists it is given, whatever their length
    (the last shard of a split may be short).
    """
    from pathlib import Path

    import numpy as np
    from tqdm import tqdm

    from dualclip.io import bits_to_masks, read_json, read_label_png, read_rgb, write_json, write_png
    from dualclip.runtime import stable_seed

    inpainter = get_inpainter(config)
    dilation = int(InpaintSettings.from_config(config, "inpaint").dilation)
    progress = tqdm(total=len(out_files), desc=f"inpaint ({inpainter.name})", unit="image", mininterval=5)

    def write_record(out: str, image_id: str, duals: list[dict]) -> None:
        write_json(out, {
            "image_id": image_id,
            "backend": inpainter.name,
            "status": "ok" if duals else "skipped",
            "reason": None if duals else "no component found, so no dual image",
            "duals": duals,
        })
        progress.update()

    # What run_shard needs to write an image handed to the inpainter; its results come
    # back in the order the images went in.
    handed: deque[tuple[str, str, list[tuple[int, ...]], list[int], list[int]]] = deque()

    def work() -> Iterator[tuple[np.ndarray, list[np.ndarray], list[int]]]:
        for image_file, detect_file, out in zip(image_files, detect_files, out_files, strict=True):
            record = read_json(detect_file)
            found = [c["index"] for c in record["components"] if c["found"]]
            if not found:
                write_record(out, record["image_id"], [])
                continue
            bits = read_label_png(Path(detect_file).parent / record["masks_file"])
            masks = bits_to_masks(bits, len(record["components"]))
            subsets = nonempty_subsets(found)
            unions = [dilate(np.logical_or.reduce([masks[i] for i in subset]), dilation) for subset in subsets]
            seeds = [stable_seed("inpaint", seed, record["image_id"], *subset) % (2**31) for subset in subsets]
            handed.append((out, record["image_id"], subsets, [int(union.sum()) for union in unions], seeds))
            yield read_rgb(image_file), unions, seeds

    def one_at_a_time(items):
        for image, masks, seeds in items:
            yield inpainter.inpaint(image, masks, seeds)

    for outputs in getattr(inpainter, "inpaint_many", one_at_a_time)(work()):
        out, image_id, subsets, areas, seeds = handed.popleft()
        folder = Path(out).parent
        duals = []
        for subset, filled, area, subset_seed in zip(subsets, outputs, areas, seeds, strict=True):
            name = subset_name(subset) + ".png"
            write_png(folder / name, filled)
            duals.append({"subset": list(subset), "file": name, "mask_area": area, "seed": subset_seed})
        write_record(out, image_id, duals)
    progress.close()
