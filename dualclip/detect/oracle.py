"""Ground-truth detector for the synthetic world: the upper bound of detection quality.

A component takes every instance of its class whose colour and size agree with the
attributes the caption gives it ("two red circles" -> all red circles), so two
components of one class ("a red circle and a blue circle") get different masks,
as a perfect open-vocabulary detector would give them.
"""

from __future__ import annotations

import numpy as np

from dualclip.data.shapes import COLOURS, SIZES
from dualclip.detect import ComponentDetection
from dualclip.parse import Component

MODELLED_ATTRIBUTES = set(COLOURS) | set(SIZES)


class OracleDetector:
    name = "oracle"

    def __init__(self, config: dict):
        self.config = config

    def detect(self, image: np.ndarray, components: list[Component], ground_truth: dict | None) -> list[ComponentDetection]:
        if ground_truth is None or "labels" not in ground_truth:
            raise ValueError(
                f"detect.backend 'oracle' needs the ground-truth instance masks ({{slot}}.labels.png beside the "
                f"image) of the synthetic world, missing for {(ground_truth or {}).get('image_id')}; for dataset "
                "'coco' use detect.backend 'coco_oracle' or 'yolo', for 'shapes' rerun its data shard"
            )
        labels = ground_truth["labels"]
        objects = ground_truth["scene"]["objects"]
        detections = []
        for component in components:
            same_class = [obj for obj in objects if obj["shape"] == component.label]
            # attributes the world does not model (e.g. "shiny") must not hide the object;
            # a modelled one that matches nothing ("a yellow circle") finds nothing
            wanted = {word.lower() for word in component.attributes} & MODELLED_ATTRIBUTES
            chosen = [obj for obj in same_class if wanted <= {obj["colour"], obj["size"]}]
            mask = np.isin(labels, [obj["id"] + 1 for obj in chosen])
            detections.append(
                ComponentDetection(
                    component=component.index,
                    mask=mask,
                    scores=[1.0] * len(chosen),
                    instances=[obj["id"] for obj in chosen],
                )
            )
        return detections
