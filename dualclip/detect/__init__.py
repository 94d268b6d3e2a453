"""detect: find each parsed component in its image and return instance masks.

Backend interface: ``get_detector(config)`` returns an object with
``detect(image, components, ground_truth) -> list[ComponentDetection]`` — one entry per
component, in component order. ``ground_truth`` is the dataset's per-image record
(used only by the ``oracle`` backend; a real detector ignores it). The union of all
instances of a component's class that match it becomes that component's mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from dualclip.parse import Component
from dualclip.registry import Settings, create, internal, register


@dataclass
class ComponentDetection:
    component: int  # index into the parse result's components
    mask: np.ndarray  # HxW bool, the union of the matched instances
    scores: list[float] = field(default_factory=list)  # one per matched instance
    instances: list[int] = field(default_factory=list)  # ground-truth or detector instance ids

    @property
    def found(self) -> bool:
        return bool(self.mask.any())


class Detector(Protocol):
    name: str

    def detect(
        self, image: np.ndarray, components: list[Component], ground_truth: dict | None
    ) -> list[ComponentDetection]: ...


@dataclass(frozen=True, kw_only=True)
class DetectorSettings(Settings):
    """The keys of a detector that runs a model."""

    device: str = "auto"
    # the model's config key in load errors (the dual filter's detector: filter.detector.model)
    config_key: str = internal("detect.model")


register("detect", "oracle", "dualclip.detect.oracle:OracleDetector", None,
         "the synthetic world's ground-truth instances (upper bound)")
register("detect", "coco_oracle", "dualclip.detect.coco_oracle:CocoOracleDetector",
         "dualclip.detect.coco_oracle:CocoOracleSettings", "COCO's annotated instance masks (upper bound)")
register("detect", "yolo", "dualclip.detect.yolo:YoloDetector", "dualclip.detect.yolo:YoloSettings",
         "YOLO instance segmentation (ultralytics), classes mapped to component labels", features=("instances",))
register("detect", "owlv2", "dualclip.detect.owl:OwlSamDetector", "dualclip.detect.owl:OwlSettings",
         "OWLv2 boxes prompted with each component's label, SAM masks (open vocabulary)", features=("instances",))


def get_detector(config: dict, key: str | None = None) -> Detector:
    """The detector ``config["backend"]`` names; ``key``: the config key that named it, for the
    error about an unknown name (the dual filter's: filter.detector.backend)."""
    return create("detect", config, key=key)


def run_shard(config: dict, image_files: list[str], ground_truth_files: list[str], parse_files: list[str], out_files: list[str]) -> None:
    """Detect the parsed components of one shard: ``{slot}.json`` + ``{slot}.masks.png``.

    The masks PNG packs one bit per component (bit i = component i). A component that
    is not found is recorded with ``found: false`` and takes no part in the subsets.
    A detector with ``detect_batch`` (YOLO, OWLv2 + SAM) gets the images that have components in calls
    of its ``batch_size``; the others go one image at a time. Works on the lists it is
    given, whatever their length (the last shard of a split may be short).
    """
    from pathlib import Path

    from tqdm import tqdm

    from dualclip.io import masks_to_bits, read_json, read_label_png, read_rgb, write_json, write_png
    from dualclip.parse import Component

    detector = get_detector(config)
    batched = hasattr(detector, "detect_batch")
    batch_size = max(1, int(getattr(detector, "batch_size", 1))) if batched else 1
    progress = tqdm(total=len(out_files), desc=f"detect ({detector.name})", unit="image", mininterval=5)

    def write_record(out: str, parsed: dict, components: list[Component], detections: list[ComponentDetection],
                     shape: tuple[int, int]) -> None:
        masks_file = Path(out).with_suffix(".masks.png")
        write_png(masks_file, masks_to_bits([d.mask for d in detections], shape))
        record = {
            "image_id": parsed["image_id"],
            "backend": detector.name,
            "masks_file": masks_file.name,
            "components": [
                {"index": d.component, "label": components[i].label, "found": d.found, "scores": d.scores,
                 "instances": d.instances, "area": int(d.mask.sum())}
                for i, d in enumerate(detections)
            ],
        }
        record["status"] = "ok" if any(d.found for d in detections) else "skipped"
        if record["status"] == "skipped":
            record["reason"] = "no component found in the image" if components else f"no components parsed ({parsed.get('reason')})"
        write_json(out, record)
        progress.update()

    # (out file, parse record, components, image, ground truth) read but not yet detected
    waiting: list[tuple[str, dict, list[Component], np.ndarray, dict]] = []

    def detect_waiting() -> None:
        if batched:
            found = detector.detect_batch([entry[3] for entry in waiting], [entry[2] for entry in waiting])
        else:
            found = [detector.detect(image, components, truth) for _, _, components, image, truth in waiting]
        for (out, parsed, components, image, _), detections in zip(waiting, found, strict=True):
            write_record(out, parsed, components, detections, image.shape[:2])
        waiting.clear()

    for image_file, truth_file, parse_file, out in zip(image_files, ground_truth_files, parse_files, out_files, strict=True):
        parsed = read_json(parse_file)
        truth = read_json(truth_file)
        labels_file = Path(truth_file).with_suffix(".labels.png")
        if labels_file.exists():
            truth["labels"] = read_label_png(labels_file)
        image = read_rgb(image_file)
        components = [Component.from_dict(c) for c in parsed["components"]]
        if not components:  # nothing to look for: no detector call
            write_record(out, parsed, components, [], image.shape[:2])
            continue
        waiting.append((out, parsed, components, image, truth))
        if len(waiting) == batch_size:
            detect_waiting()
    if waiting:
        detect_waiting()
    progress.close()


def detected_indices(record: dict) -> list[int]:
    """Indices of the components that were found: the ones the power set is taken over."""
    return [c["index"] for c in record["components"] if c["found"]]
