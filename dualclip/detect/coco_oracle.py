"""COCO ground-truth oracle: component masks from the image's COCO instance annotations.

No model: a component matches every annotated instance whose category is one of the
names its ``label`` maps to (``class_map``, default: the category of the same name), and
its mask is the union of their decoded segmentations. Useful as an upper bound for the
detector and to build dual images without detection errors.

Ground-truth record (written by ``dualclip.data.coco``; see its docstring)::

    {"height": H, "width": W,
     "instances": [{"id": 42, "category": "dog", "category_id": 18, "iscrowd": 0,
                    "bbox": [x, y, w, h], "area": 123.0,
                    "segmentation": [[x1, y1, x2, y2, ...], ...]       # polygons, or
                                    {"size": [H, W], "counts": "..."}  # RLE, compressed
                                    {"size": [H, W], "counts": [..]}   # or not
                   }, ...]}
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dualclip.detect import ComponentDetection
from dualclip.parse import Component
from dualclip.registry import Settings


@dataclass(frozen=True, kw_only=True)
class CocoOracleSettings(Settings):
    include_crowd: bool = True  # crowd regions ("a crowd of people") are instances of the class too
    min_area: float = 0  # ignore instances whose decoded mask has fewer pixels
    class_map: dict = field(default_factory=dict)  # component label -> COCO category name(s) when they differ


def decode_segmentation(segmentation, height: int, width: int, where: str = "instance") -> np.ndarray:
    """A COCO segmentation (polygons, compressed or uncompressed RLE) as an HxW bool mask."""
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, list):
        # Polygons need >= 3 points; pycocotools would read a 4-number list as a box instead.
        polygons = [[float(value) for value in polygon] for polygon in segmentation if len(polygon) >= 6]
        if not polygons:
            return np.zeros((height, width), dtype=bool)
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    elif isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
        size = [int(value) for value in segmentation["size"]]
        if size != [height, width]:
            raise ValueError(f"{where}: RLE size {size} differs from the image size {[height, width]}")
        counts = segmentation["counts"]
        if isinstance(counts, list):
            rle = mask_utils.frPyObjects(segmentation, height, width)
        else:
            rle = {"size": size, "counts": counts.encode() if isinstance(counts, str) else counts}
    else:
        raise ValueError(f"{where}: segmentation is neither polygons nor RLE: {str(segmentation)[:80]}")
    return mask_utils.decode(rle).astype(bool)


class CocoOracleDetector:
    name = "coco_oracle"

    def __init__(self, config: dict):
        settings = CocoOracleSettings.from_config(config, "detect")
        self.include_crowd = bool(settings.include_crowd)
        self.min_area = int(settings.min_area)
        self.class_map = {str(key).lower(): value for key, value in (settings.class_map or {}).items()}

    def categories(self, label: str) -> set[str]:
        wanted = self.class_map.get(label.lower(), label)
        return {str(name).lower() for name in ([wanted] if isinstance(wanted, str) else wanted)}

    def detect(self, image: np.ndarray, components: list[Component], ground_truth: dict | None) -> list[ComponentDetection]:
        source = (ground_truth or {}).get("image_id", "image")
        if not ground_truth or "instances" not in ground_truth:
            raise ValueError(
                f"coco_oracle: {source}: the ground-truth record has no 'instances'; prepare the data with "
                "dualclip.data.coco or use detect.backend: yolo"
            )
        height, width = image.shape[:2]
        if ground_truth.get("status") == "skipped":
            # The download recorded why this slot has no usable image (a 1x1 placeholder):
            # nothing to find, and the record keeps the reason.
            return [ComponentDetection(component=c.index, mask=np.zeros((height, width), dtype=bool)) for c in components]
        if (ground_truth.get("height", height), ground_truth.get("width", width)) != (height, width):
            raise ValueError(
                f"coco_oracle: {source}: annotations are for {ground_truth['height']}x{ground_truth['width']} but the "
                f"image is {height}x{width}; the image file was resized after download, re-run the download"
            )
        decoded: dict[int, np.ndarray] = {}
        detections = []
        for component in components:
            wanted = self.categories(component.label)
            mask = np.zeros((height, width), dtype=bool)
            ids: list[int] = []
            for position, instance in enumerate(ground_truth["instances"]):
                if str(instance.get("category", "")).lower() not in wanted:
                    continue
                if instance.get("iscrowd") and not self.include_crowd:
                    continue
                if position not in decoded:
                    decoded[position] = decode_segmentation(
                        instance["segmentation"], height, width, where=f"{source} annotation {instance.get('id')}"
                    )
                area = int(decoded[position].sum())
                if area == 0 or area < self.min_area:
                    continue
                mask |= decoded[position]
                ids.append(int(instance.get("id", position)))
            detections.append(ComponentDetection(component=component.index, mask=mask, scores=[1.0] * len(ids), instances=ids))
        return detections
