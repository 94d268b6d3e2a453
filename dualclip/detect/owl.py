"""Open-vocabulary backend: OWLv2 boxes prompted with each component's label, SAM masks.

Why OWLv2 (not Grounding DINO): each text query is scored on its own (a sigmoid per box
and query), so a box belongs to the label it was prompted with and its score does not
depend on the other labels of the caption, and the long tail the open vocabulary is for
is OWLv2's strength (published zero-shot LVIS rare-class AP above 30 for B/16, 18.1 for
Grounding DINO-T), at about the cost of one ViT-B pass per image.

Per image, the distinct labels of its components are the text queries
(``prompt_template``, "a photo of a {label}"); every box whose score for a query is at
least ``conf`` after per-query non-maximum suppression (``nms_iou``, at most
``max_instances`` boxes a query) is an instance of that label. SAM (``sam_model``) turns
each box into one mask at the image's resolution (``multimask_output=False``), clipped to
its box (``clip_to_box``) so a mask cannot leak into the rest of the scene. As with YOLO, a
component's mask is the union of the instances of its label, and its ``scores`` are the
detector's box scores. The images of a shard go to both models in calls of
``batch_size``: one OWLv2 forward and one SAM forward per call, the query lists and the
box lists padded to the longest of the call.

``instances(images, labels)`` (boxes and masks of the given labels, per image) is what
the dual filter (``dualclip.filter``) calls; with ``segment=False`` the box itself is
the instance's mask (the filter asks whether an object is still in a region; SAM adds
nothing to that).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from dualclip.detect import ComponentDetection, DetectorSettings
from dualclip.detect.yolo import Instance, check_image
from dualclip.parse import Component


@dataclass(frozen=True, kw_only=True)
class OwlSettings(DetectorSettings):
    model: str = "models/owlv2-base-patch16-ensemble"  # Owlv2ForObjectDetection + Owlv2Processor folder
    sam_model: str | None = "models/sam-vit-base"  # SamModel + SamProcessor folder; None: boxes only
    conf: float = 0.2  # OWLv2 box score (sigmoid) threshold
    nms_iou: float = 0.3  # boxes of one query overlapping more than this keep only the best
    max_instances: int = 10  # boxes per query and image
    prompt_template: str = "a photo of a {label}"
    batch_size: int = 8  # images per OWLv2 and SAM call
    clip_to_box: bool = True
    mask_threshold: float = 0.0  # SAM logit threshold
    half: bool | str = "auto"  # fp16 on CUDA


def box_mask(box: Sequence[float], shape: tuple[int, int]) -> np.ndarray:
    """HxW bool mask of the pixels whose centres lie in ``box`` (x0, y0, x1, y1)."""
    height, width = shape
    x0, y0, x1, y1 = box
    columns = (np.arange(width) + 0.5 >= x0) & (np.arange(width) + 0.5 <= x1)
    rows = (np.arange(height) + 0.5 >= y0) & (np.arange(height) + 0.5 <= y1)
    return rows[:, None] & columns[None, :]


def query_boxes(logits, boxes, conf: float, nms_iou: float, max_instances: int) -> list[tuple[list[float], float]]:
    """(box, score) of one query in one image: score >= ``conf``, per-query NMS, best first.

    ``logits``: the query's logit per predicted box; ``boxes``: (x0, y0, x1, y1) in pixels."""
    import torch
    from torchvision.ops import nms

    scores = torch.sigmoid(logits.float())
    keep = torch.nonzero(scores >= conf).flatten()
    if not len(keep):
        return []
    kept = nms(boxes[keep].float(), scores[keep], nms_iou)[:max_instances]
    order = keep[kept]
    return [(boxes[i].tolist(), float(scores[i])) for i in order]


class OwlSamDetector:
    name = "owlv2"
    prompted = True  # instances() takes the labels to look for (the dual filter asks for them)

    def __init__(self, config: dict):
        import torch
        from transformers import Owlv2ForObjectDetection, Owlv2Processor, SamModel, SamProcessor

        from dualclip.runtime import resolve_device

        self.settings = settings = OwlSettings.from_config(config, "detect")
        self.conf = float(settings.conf)
        if not 0.0 <= self.conf <= 1.0:
            raise ValueError(f"detect.conf must be in [0, 1], got {self.conf}")
        self.nms_iou = float(settings.nms_iou)
        self.max_instances = max(1, int(settings.max_instances))
        self.template = str(settings.prompt_template)
        if "{label}" not in self.template:
            raise ValueError(f"detect.prompt_template {self.template!r} has no {{label}}; e.g. 'a photo of a {{label}}'")
        self.batch_size = max(1, int(settings.batch_size))
        self.clip_to_box = bool(settings.clip_to_box)
        self.mask_threshold = float(settings.mask_threshold)
        self.device = str(resolve_device(settings.device))
        half = settings.half
        self.dtype = torch.float16 if (self.device.startswith("cuda") if half == "auto" else bool(half)) else torch.float32
        key = settings.config_key
        self.detector, self.processor = self._load(
            key, settings.model, Owlv2ForObjectDetection, Owlv2Processor, "google/owlv2-base-patch16-ensemble")
        self.sam = self.sam_processor = None
        if settings.sam_model:
            self.sam, self.sam_processor = self._load(
                key.rsplit(".", 1)[0] + ".sam_model", settings.sam_model, SamModel, SamProcessor, "facebook/sam-vit-base")
        # label -> class id, given in order of first use: ids are what the filter matches on
        self.label_ids: dict[str, int] = {}

    def _load(self, key: str, value, model_class, processor_class, hub_id: str):
        from dualclip.llm import model_source

        path = model_source(str(value))
        try:
            model = model_class.from_pretrained(path, dtype=self.dtype)
            processor = processor_class.from_pretrained(path)
        except (OSError, ValueError) as error:
            raise RuntimeError(
                f"{key}: cannot load {model_class.__name__} from {value!r} ({error}); download it once "
                f"(e.g. `hf download {hub_id} --local-dir models/{hub_id.split('/')[1]}`) and set {key} to that folder"
            ) from error
        return model.to(self.device).eval(), processor

    def label_id(self, label: str) -> int:
        return self.label_ids.setdefault(label.lower(), len(self.label_ids))

    def boxes(self, images: Sequence[np.ndarray], labels: Sequence[Sequence[str]]) -> list[dict[str, list[tuple[list[float], float]]]]:
        """Per image: label -> [(box, score)] from one OWLv2 call (``len(images) <= batch_size``)."""
        import torch

        queries = [[self.template.format(label=label) for label in image_labels] for image_labels in labels]
        inputs = self.processor(text=queries, images=list(images), return_tensors="pt").to(self.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        with torch.inference_mode():
            outputs = self.detector(**inputs)
        # boxes are relative to the square the image was padded to (OWLv2 pads bottom/right)
        found = []
        for index, (image, image_labels) in enumerate(zip(images, labels)):
            side = max(image.shape[:2])
            corners = outputs.pred_boxes[index].float()
            corners = torch.cat([corners[:, :2] - corners[:, 2:] / 2, corners[:, :2] + corners[:, 2:] / 2], dim=1) * side
            found.append({label: query_boxes(outputs.logits[index, :, query], corners, self.conf, self.nms_iou,
                                             self.max_instances)
                          for query, label in enumerate(image_labels)})
        return found

    def masks(self, images: Sequence[np.ndarray], boxes: Sequence[list[list[float]]]) -> list[list[np.ndarray]]:
        """One SAM mask per box, per image, from one SAM call; box lists are padded to the longest."""
        import torch

        longest = max((len(image_boxes) for image_boxes in boxes), default=0)
        if longest == 0:
            return [[] for _ in images]
        padded = [list(image_boxes) + [[0.0, 0.0, float(image.shape[1]), float(image.shape[0])]] * (longest - len(image_boxes))
                  for image, image_boxes in zip(images, boxes)]
        inputs = self.sam_processor(images=list(images), input_boxes=padded, return_tensors="pt")
        with torch.inference_mode():
            outputs = self.sam(pixel_values=inputs["pixel_values"].to(self.device, self.dtype),
                               input_boxes=inputs["input_boxes"].to(self.device, self.dtype), multimask_output=False)
        upscaled = self.sam_processor.post_process_masks(
            [masks.float().cpu() for masks in outputs.pred_masks], inputs["original_sizes"], inputs["reshaped_input_sizes"],
            mask_threshold=self.mask_threshold)
        result = []
        for image, image_boxes, masks in zip(images, boxes, upscaled):
            image_masks = []
            for box, mask in zip(image_boxes, masks[:, 0].numpy()):
                image_masks.append(mask & box_mask(box, image.shape[:2]) if self.clip_to_box else mask)
            result.append(image_masks)
        return result

    def instances(self, images: Sequence[np.ndarray], labels: Sequence[Sequence[str]], segment: bool = True) -> list[list[Instance]]:
        """Instances of ``labels[i]`` in ``images[i]``, in calls of ``batch_size`` images.

        ``segment``: SAM masks (needs ``sam_model``), else each box is its own mask."""
        if len(images) != len(labels):
            raise ValueError(f"instances: {len(images)} images but {len(labels)} label lists")
        if segment and self.sam is None:
            raise ValueError(f"{self.settings.config_key.rsplit('.', 1)[0]}.sam_model is not set: "
                             "masks need a SAM model folder (SamModel + SamProcessor)")
        for image in images:
            check_image(image)
        found: list[list[Instance]] = []
        for start in range(0, len(images), self.batch_size):
            chunk = list(images[start:start + self.batch_size])
            chunk_labels = [sorted({label.lower() for label in image_labels}) for image_labels in labels[start:start + self.batch_size]]
            # an image with no label still needs a query for the padded call; its boxes are not read
            queries = [image_labels or ["object"] for image_labels in chunk_labels]
            boxes = self.boxes(chunk, queries)
            flat = [[(label, box, score) for label in image_labels for box, score in image_boxes[label]]
                    for image_labels, image_boxes in zip(chunk_labels, boxes)]
            if segment:
                masks = self.masks(chunk, [[box for _, box, _ in entries] for entries in flat])
            else:
                masks = [[box_mask(box, image.shape[:2]) for _, box, _ in entries] for image, entries in zip(chunk, flat)]
            for entries, image_masks in zip(flat, masks):
                # a box without a pixel (degenerate, or SAM found nothing in it) is no instance
                kept = [(label, score, mask) for (label, _, score), mask in zip(entries, image_masks) if mask.any()]
                found.append([Instance(index=index, class_id=self.label_id(label), label=label, score=score, mask=mask)
                              for index, (label, score, mask) in enumerate(kept)])
        return found

    def detect(self, image: np.ndarray, components: list[Component], ground_truth: dict | None = None) -> list[ComponentDetection]:
        return self.detect_batch([image], [components])[0]

    def detect_batch(self, images: Sequence[np.ndarray], components_list: Sequence[list[Component]]) -> list[list[ComponentDetection]]:
        if len(images) != len(components_list):
            raise ValueError(f"detect_batch: {len(images)} images but {len(components_list)} component lists")
        found = self.instances(images, [[component.label for component in components] for components in components_list])
        detections = []
        for image, components, instances in zip(images, components_list, found):
            image_detections = []
            for component in components:
                matched = [instance for instance in instances if instance.label == component.label.lower()]
                mask = np.zeros(image.shape[:2], dtype=bool)
                for instance in matched:
                    mask |= instance.mask
                image_detections.append(ComponentDetection(
                    component=component.index, mask=mask, scores=[instance.score for instance in matched],
                    instances=[instance.index for instance in matched]))
            detections.append(image_detections)
        return detections
