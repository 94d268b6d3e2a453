"""inpaint: remove every non-empty subset of an image's detected components.

Backend interface: ``get_inpainter(config)`` returns an object with
``inpaint(image, masks, seeds) -> list[np.ndarray]``: ``masks`` are the (already dilated)
union masks, one per subset; ``seeds`` one integer per subset (a diffusion backend seeds
its generator with it); the result is one HxWx3 uint8 image per mask, with every pixel
outside its mask unchanged.
"""

from __future__ import annotations

from itertools import combinations
from typing import Protocol

import cv2
import numpy as np


class Inpainter(Protocol):
    name: str

    def inpaint(self, image: np.ndarray, masks: list[np.ndarray], seeds: list[int]) -> list[np.ndarray]: ...


def nonempty_subsets(indices: list[int]) -> list[tuple[int, ...]]:
    """All 2^k-1 non-empty subsets, smallest first, each sorted (the power set minus {})."""
    return [subset for size in range(1, len(indices) + 1) for subset in combinations(sorted(indices), size)]


def subset_name(subset: tuple[int, ...]) -> str:
    """File stem that makes the subset readable: components 0 and 2 removed -> 'drop-0+2'."""
    return "drop-" + "+".join(str(index) for index in subset)


def dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    if pixels <= 0:
        return mask.astype(bool)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def get_inpainter(config: dict) -> Inpainter:
    backend = config["backend"]
    if backend == "opencv":
        from dualclip.inpaint.opencv import OpenCVInpainter

        return OpenCVInpainter(config)
    if backend == "sd":
        from dualclip.inpaint.sd import StableDiffusionInpainter

        return StableDiffusionInpainter(config)
    raise ValueError(f"inpaint.backend: unknown backend {backend!r}; use 'opencv' or 'sd'")


def run_shard(config: dict, image_files: list[str], detect_files: list[str], out_files: list[str], seed: int = 0) -> None:
    """Inpaint every non-empty subset of each image's found components.

    Writes ``{slot}/drop-<i+j>.png`` per subset and ``{slot}/duals.json`` (written last,
    it marks the image complete).
    """
    from pathlib import Path

    from tqdm import tqdm

    from dualclip.download.shapes import stable_seed
    from dualclip.io import bits_to_masks, read_json, read_label_png, read_rgb, write_json, write_png

    inpainter = get_inpainter(config)
    dilation = int(config.get("dilation", 2))
    for image_file, detect_file, out in tqdm(
        list(zip(image_files, detect_files, out_files)), desc=f"inpaint ({inpainter.name})", mininterval=5
    ):
        record = read_json(detect_file)
        folder = Path(out).parent
        found = [c["index"] for c in record["components"] if c["found"]]
        duals = []
        if found:
            image = read_rgb(image_file)
            bits = read_label_png(Path(detect_file).parent / record["masks_file"])
            masks = bits_to_masks(bits, len(record["components"]))
            subsets = nonempty_subsets(found)
            unions = [dilate(np.logical_or.reduce([masks[i] for i in subset]), dilation) for subset in subsets]
            seeds = [stable_seed("inpaint", seed, record["image_id"], *subset) % (2**31) for subset in subsets]
            outputs = inpainter.inpaint(image, unions, seeds)
            for subset, union, filled, subset_seed in zip(subsets, unions, outputs, seeds):
                name = subset_name(subset) + ".png"
                write_png(folder / name, filled)
                duals.append({"subset": list(subset), "file": name, "mask_area": int(union.sum()), "seed": subset_seed})
        write_json(out, {
            "image_id": record["image_id"],
            "backend": inpainter.name,
            "status": "ok" if duals else "skipped",
            "reason": None if duals else "no component found, so no dual image",
            "duals": duals,
        })
