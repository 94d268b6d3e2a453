"""YOLO segmentation backend (ultralytics): every instance of a component's class.

A component matches every predicted instance whose class is one of the model classes its
``label`` maps to (``class_map``, default: the class of the same name) and whose
confidence is at least ``conf``; the component's mask is the union of their masks.
Masks come at the image's own resolution (``retina_masks``), so nothing is resized
afterwards. Images go to the model in calls of ``batch_size``, each letterboxed to
``imgsz`` x ``imgsz`` (``rect=False``), so an image's result does not depend on the
sizes of the images that share its call.

The pure parts (``instances_from_result``, ``component_detections``) work on any
ultralytics ``Results`` and are what the quality filter (``dualclip.filter``) uses too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from dualclip.detect import ComponentDetection, DetectorSettings
from dualclip.parse import Component


@dataclass(frozen=True, kw_only=True)
class YoloSettings(DetectorSettings):
    model: str = "yolov8x-seg.pt"  # path to segmentation weights (.pt); nothing is downloaded offline
    conf: float = 0.25
    iou: float = 0.7
    imgsz: int = 640
    max_det: int = 300
    batch_size: int = 8  # images per model call (the detect and filter stages pack a shard's images into them)
    half: bool | str = "auto"  # fp16 on CUDA
    class_map: dict = field(default_factory=dict)  # component label -> model class name(s) when they differ


@dataclass
class Instance:
    """One predicted instance: class, confidence, HxW bool mask at the image's resolution."""

    index: int  # position in the detector's output (sorted by confidence)
    class_id: int
    label: str  # the model's class name
    score: float
    mask: np.ndarray


def check_image(image: np.ndarray) -> None:
    """Detectors take RGB uint8 images (every detect backend that reads pixels)."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"detect: expected an HxWx3 uint8 RGB image, got {image.shape} {image.dtype}")


def instances_from_result(result, conf: float) -> list[Instance]:
    """The instances of one ultralytics ``Results`` with confidence >= ``conf``."""
    height, width = result.orig_shape
    if result.boxes is None or len(result.boxes) == 0:
        return []
    if result.masks is None:
        raise ValueError("detector returned boxes without masks; use a segmentation model (*-seg.pt)")
    masks = result.masks.data
    if tuple(masks.shape[-2:]) != (height, width):
        raise ValueError(
            f"instance masks are {tuple(masks.shape[-2:])}, image is {(height, width)}: predict with retina_masks=True"
        )
    scores = result.boxes.conf.tolist()
    classes = [int(value) for value in result.boxes.cls.tolist()]
    masks = (masks > 0.5).cpu().numpy() if hasattr(masks, "cpu") else np.asarray(masks) > 0.5
    return [
        Instance(index=index, class_id=classes[index], label=str(result.names[classes[index]]), score=float(scores[index]), mask=masks[index])
        for index in range(len(scores))
        if scores[index] >= conf
    ]


def label_classes(label: str, names: dict[int, str], class_map: dict) -> set[int]:
    """Model class ids a component label stands for (via ``class_map``, else by name)."""
    wanted = class_map.get(label.lower(), label)
    wanted = [wanted] if isinstance(wanted, str) else list(wanted)
    by_name = {str(name).lower(): class_id for class_id, name in names.items()}
    missing = [name for name in wanted if str(name).lower() not in by_name]
    if missing:
        raise ValueError(
            f"component label {label!r} maps to {missing}, not a class of the detector "
            f"(it knows {sorted(by_name)[:10]}...); add '{label}: [class name]' to detect.class_map "
            "or restrict the parser's labels to the detector's classes"
        )
    return {by_name[str(name).lower()] for name in wanted}


def component_detections(
    instances: Sequence[Instance], components: Sequence[Component], names: dict[int, str], class_map: dict, shape: tuple[int, int]
) -> list[ComponentDetection]:
    """One ``ComponentDetection`` per component: the union of all instances of its classes."""
    detections = []
    for component in components:
        classes = label_classes(component.label, names, class_map)
        matched = [instance for instance in instances if instance.class_id in classes]
        mask = np.zeros(shape, dtype=bool)
        for instance in matched:
            mask |= instance.mask
        detections.append(
            ComponentDetection(
                component=component.index,
                mask=mask,
                scores=[instance.score for instance in matched],
                instances=[instance.index for instance in matched],
            )
        )
    return detections


class YoloDetector:
    name = "yolo"

    def __init__(self, config: dict):
        # an ultralytics .pt is a pickled model object: load it as data (weights_only) with
        # ultralytics' allow-list of its own and torch's layers, so a file cannot run code
        os.environ["ULTRALYTICS_SAFE_LOAD"] = "1"
        import ultralytics.nn.tasks
        from ultralytics import YOLO

        from dualclip.runtime import resolve_device

        ultralytics.nn.tasks.SAFE_LOAD = True  # read at import: set it also where ultralytics was loaded before

        self.settings = settings = YoloSettings.from_config(config, "detect")
        self.conf = float(settings.conf)
        if not 0.0 <= self.conf <= 1.0:
            raise ValueError(f"detect.conf must be in [0, 1], got {self.conf}")
        self.class_map = {str(key).lower(): value for key, value in (settings.class_map or {}).items()}
        self.device = str(resolve_device(settings.device))
        half = settings.half
        self.half = self.device.startswith("cuda") if half == "auto" else bool(half)
        weights = str(settings.model)
        try:
            self.model = YOLO(weights)
        except Exception as error:  # ultralytics raises several types for a missing/bad file
            key = settings.config_key
            raise RuntimeError(
                f"{key}: cannot load YOLO weights {weights!r} ({error}); download a segmentation "
                f"checkpoint (e.g. yolov8x-seg.pt) once and set {key} to its path"
            ) from error
        if self.model.task != "segment":
            raise ValueError(
                f"detect.model {weights!r} is a {self.model.task!r} model; masks need a segmentation model (*-seg.pt)"
            )
        self.names: dict[int, str] = dict(self.model.names)
        self.batch_size = max(1, int(settings.batch_size))

    def _predict(self, images: Sequence[np.ndarray]):
        for image in images:
            check_image(image)
        return self.model.predict(
            # ultralytics reads numpy arrays as BGR (OpenCV order); dualclip images are RGB.
            [np.ascontiguousarray(image[:, :, ::-1]) for image in images],
            conf=self.conf,
            iou=float(self.settings.iou),
            imgsz=int(self.settings.imgsz),
            max_det=int(self.settings.max_det),
            batch=self.batch_size,
            device=self.device,
            half=self.half,
            retina_masks=True,  # masks at the input image's resolution
            # ultralytics pads a batch of same-size images to their own aspect but a mixed
            # batch to a square; always square keeps a result independent of its batch.
            rect=False,
            verbose=False,
        )

    def instances(self, images: Sequence[np.ndarray]) -> list[list[Instance]]:
        results = []
        for start in range(0, len(images), self.batch_size):
            results += self._predict(images[start:start + self.batch_size])
        return [instances_from_result(result, self.conf) for result in results]

    def detect(self, image: np.ndarray, components: list[Component], ground_truth: dict | None = None) -> list[ComponentDetection]:
        return self.detect_batch([image], [components])[0]

    def detect_batch(self, images: Sequence[np.ndarray], components_list: Sequence[list[Component]]) -> list[list[ComponentDetection]]:
        if len(images) != len(components_list):
            raise ValueError(f"detect_batch: {len(images)} images but {len(components_list)} component lists")
        # Check every label before spending time on inference.
        for components in components_list:
            for component in components:
                label_classes(component.label, self.names, self.class_map)
        return [
            component_detections(found, components, self.names, self.class_map, image.shape[:2])
            for image, components, found in zip(images, components_list, self.instances(images))
        ]
