"""Dual quality filter: does a dual image really lack the removed components and keep the rest?

A detector (``instances(images) -> list[list[Instance]]``, e.g. ``YoloDetector``) runs on
the original image and on each dual image; the originals and duals of consecutive images
are packed into calls of the detector's ``batch_size``. Detection is *located*: an
instance counts for component ``i`` only when it has one of ``i``'s classes, confidence
>= ``conf`` and overlaps ``i``'s original mask (intersection over the smaller of the two
areas >= ``min_overlap``). Class alone would not do: with "a red circle and a blue
circle", the kept circle is still a circle after the other one is removed.

A dual is accepted when

* no removed component is still detected in its region, and
* every kept component is still detected -- required only for kept components the
  detector found in the original image (``require_kept_in_original``); one it missed
  even there cannot be checked, which is noted, not held against the dual.

Each decision carries the reasons for a rejection and the best score per component
(0.0 when nothing matched), so thresholds can be re-tuned from the records.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterable, Iterator, Sequence

import numpy as np

from dualclip.parse import Component

DEFAULTS = {
    "conf": 0.25,
    "min_overlap": 0.5,
    "require_kept_in_original": True,
    "detector": {"backend": "yolo"},  # detect-stage style config of the detector to use
}


@dataclass
class FilterDecision:
    subset: tuple[int, ...]
    accepted: bool
    reasons: list[str] = field(default_factory=list)  # why rejected
    notes: list[str] = field(default_factory=list)  # checks that could not be made
    removed_scores: dict[int, float] = field(default_factory=dict)  # component -> best score in the dual
    kept_scores: dict[int, float] = field(default_factory=dict)
    original_scores: dict[int, float] = field(default_factory=dict)  # component -> best score in the original

    def to_dict(self) -> dict:
        data = asdict(self)
        data["subset"] = list(self.subset)
        for key in ("removed_scores", "kept_scores", "original_scores"):
            data[key] = {str(component): score for component, score in data[key].items()}
        return data


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over the smaller area (1.0 when one lies inside the other)."""
    smaller = min(int(a.sum()), int(b.sum()))
    return float(np.logical_and(a, b).sum()) / smaller if smaller else 0.0


def best_scores(instances, components: Sequence[Component], masks: Sequence[np.ndarray], classes: Sequence[set[int]],
                conf: float, min_overlap: float) -> dict[int, float]:
    """Per component: highest confidence of an instance of its classes inside its region."""
    scores = {}
    for component, mask, wanted in zip(components, masks, classes):
        matching = [
            instance.score for instance in instances
            if instance.class_id in wanted and instance.score >= conf and overlap(instance.mask, mask) >= min_overlap
        ]
        scores[component.index] = max(matching, default=0.0)
    return scores


def decide(subset: tuple[int, ...], components: Sequence[Component], dual_scores: dict[int, float],
           original_scores: dict[int, float], conf: float, require_kept_in_original: bool) -> FilterDecision:
    removed = set(subset)
    decision = FilterDecision(subset=tuple(subset), accepted=True, original_scores=dict(original_scores))
    for component in components:
        score = dual_scores[component.index]
        if component.index in removed:
            decision.removed_scores[component.index] = score
            if score >= conf:
                decision.reasons.append(f"removed component {component.index} {component.text!r} still detected ({score:.2f})")
        else:
            decision.kept_scores[component.index] = score
            if score >= conf:
                continue
            if require_kept_in_original and original_scores.get(component.index, 0.0) < conf:
                decision.notes.append(
                    f"kept component {component.index} {component.text!r} not detected in the original either; not checked"
                )
            else:
                decision.reasons.append(f"kept component {component.index} {component.text!r} no longer detected")
    decision.accepted = not decision.reasons
    return decision


class DualFilter:
    def __init__(self, config: dict, detector=None):
        self.config = {**DEFAULTS, **config}
        self.conf = float(self.config["conf"])
        self.min_overlap = float(self.config["min_overlap"])
        self.require_kept_in_original = bool(self.config["require_kept_in_original"])
        if detector is None:
            from dualclip.detect import get_detector

            # the detector section's device (set from the top-level `device` by the filter script) wins
            detector = get_detector({"device": self.config.get("device", "auto"), "config_key": "filter.detector.model",
                                     **self.config["detector"]})
        if not hasattr(detector, "instances"):
            raise ValueError(
                f"filter.detector: backend {getattr(detector, 'name', type(detector).__name__)!r} cannot detect in new "
                "images (it has no instances()); use backend: yolo"
            )
        self.detector = detector
        # A detector that does not say how many images it takes per call gets one at a time.
        self.batch_size = max(1, int(getattr(detector, "batch_size", 1)))

    def _classes(self, components: Sequence[Component]) -> list[set[int]]:
        from dualclip.detect.yolo import label_classes

        return [label_classes(component.label, self.detector.names, getattr(self.detector, "class_map", {})) for component in components]

    def evaluate(
        self,
        image: np.ndarray,
        components: Sequence[Component],
        masks: Sequence[np.ndarray],
        subsets: Sequence[tuple[int, ...]],
        duals: Sequence[np.ndarray],
    ) -> list[FilterDecision]:
        """One decision per (subset, dual image); ``masks`` are the components' original masks."""
        (decisions,) = self.evaluate_many([(image, components, masks, subsets, duals)])
        return decisions

    def evaluate_many(
        self,
        cases: Iterable[tuple[np.ndarray, Sequence[Component], Sequence[np.ndarray], Sequence[tuple[int, ...]], Sequence[np.ndarray]]],
    ) -> Iterator[list[FilterDecision]]:
        """``evaluate`` of each ``(image, components, masks, subsets, duals)`` case, yielded in case order.

        The originals and duals of consecutive cases fill detector calls of ``batch_size``
        images; a case's decisions come as soon as its last image has been detected.
        """
        from dualclip.batching import packed_batches

        def prepared():
            for image, components, masks, subsets, duals in cases:
                if len(subsets) != len(duals):
                    raise ValueError(f"filter: {len(subsets)} subsets but {len(duals)} dual images")
                if len(masks) != len(components):
                    raise ValueError(f"filter: {len(components)} components but {len(masks)} masks")
                masks = [mask.astype(bool) for mask in masks]
                yield (components, masks, self._classes(components), subsets), [image, *duals]

        for (components, masks, classes, subsets), found in packed_batches(prepared(), self.batch_size, self.detector.instances):
            original = best_scores(found[0], components, masks, classes, self.conf, self.min_overlap)
            yield [
                decide(tuple(subset), components, best_scores(instances, components, masks, classes, self.conf, self.min_overlap),
                       original, self.conf, self.require_kept_in_original)
                for subset, instances in zip(subsets, found[1:])
            ]


def run_shard(config: dict, image_files: list[str], parse_files: list[str], detect_files: list[str],
              duals_files: list[str], out_files: list[str], detector=None) -> None:
    """Filter decisions of one shard: one JSON per image, one decision per dual image.

    Reads the stage files as the other stages write them: the parse record (components),
    the detect record and its bit-packed masks PNG (each component's own, undilated
    region), and the inpaint ``duals.json`` with its ``drop-*.png`` images. Works on the
    lists it is given, whatever their length (the last shard of a split may be short).
    """
    from collections import deque
    from pathlib import Path

    from tqdm import tqdm

    from dualclip.io import bits_to_masks, read_json, read_label_png, read_rgb, write_json

    dual_filter = DualFilter(config, detector=detector)
    progress = tqdm(total=len(out_files), desc="filter", unit="image", mininterval=5)
    # What run_shard needs to write an image handed to the filter; its decisions come back
    # in the order the images went in.
    handed: deque[tuple[str, dict, list[dict]]] = deque()

    def cases():
        for image_file, parse_file, detect_file, duals_file, out in zip(
            image_files, parse_files, detect_files, duals_files, out_files, strict=True
        ):
            parsed = read_json(parse_file)
            duals = read_json(duals_file)
            record = {"image_id": duals["image_id"], "status": "ok", "reason": None, "decisions": []}
            if not duals["duals"]:
                record.update(status="skipped", reason=f"no dual images ({duals.get('reason')})")
                write_json(out, record)
                progress.update()
                continue
            components = [Component.from_dict(component) for component in parsed["components"]]
            detected = read_json(detect_file)
            masks = bits_to_masks(read_label_png(Path(detect_file).parent / detected["masks_file"]), len(detected["components"]))
            folder = Path(duals_file).parent
            handed.append((out, record, duals["duals"]))
            yield (read_rgb(image_file), components, masks, [tuple(dual["subset"]) for dual in duals["duals"]],
                   [read_rgb(folder / dual["file"]) for dual in duals["duals"]])

    for decisions in dual_filter.evaluate_many(cases()):
        out, record, duals = handed.popleft()
        record["decisions"] = [{"file": dual["file"], **decision.to_dict()} for dual, decision in zip(duals, decisions, strict=True)]
        record["n_accepted"] = sum(decision.accepted for decision in decisions)
        write_json(out, record)
        progress.update()
    progress.close()
