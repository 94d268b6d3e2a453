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

The detector is the detect stage's: YOLO (classes) or the open-vocabulary ``owlv2``
backend, which is prompted with the labels of each image's components (its originals and
duals are asked for the same labels).

A second, optional check (``clip.enabled``) asks CLIP (``clip.model``, else the run's
starting ``model``) whether the dual agrees with its dual text (``clip_check``): the dual
image must score its dual text above the original caption by ``clip.text_margin``, and
its image embedding's cosine to the original's must lie in ``clip.image_cosine`` (below
the upper end: not the same picture; above the lower end: still the same scene). A dual
is accepted when every enabled check accepts it; ``rejected_by`` names the checks that
did not, and the shard's ``summary.json`` counts the rejections per check.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

from dualclip.parse import Component
from dualclip.registry import Settings, available, internal, one_of

if TYPE_CHECKING:
    import numpy as np  # imported where used: the workflow imports FilterSettings while it plans


@dataclass(frozen=True, kw_only=True)
class ClipCheckSettings(Settings):
    """``filter.clip``."""

    enabled: bool = False
    model: dict | None = None  # {name, pretrained} of an open_clip model; None: the run's starting model
    text_margin: float = 0.0  # cos(dual, dual text) - cos(dual, caption) must be at least this
    image_cosine: Sequence[float] = (0.6, 0.98)  # cos(dual, original) must lie in this band
    batch_size: int = 64  # images per CLIP call


@dataclass(frozen=True, kw_only=True)
class RedetectorSettings(Settings):
    """``filter.detector``'s own keys; its other keys are the detector backend's (``dualclip.detect``)."""

    backend: str = "yolo"  # a detect backend that finds objects in new images ("instances")
    segment: bool = False  # owlv2: SAM masks for the re-detected instances; false: the boxes are the regions


@dataclass(frozen=True, kw_only=True)
class FilterSettings(Settings):
    """``filter``."""

    enabled: bool = False  # whether the stage runs (read by the workflow, dualclip.plan)
    redetect: bool = True  # the re-detection check (false: only the CLIP check, which must then be enabled)
    conf: float = 0.25
    min_overlap: float = 0.5
    require_kept_in_original: bool = True
    detector: dict = field(default_factory=dict)  # RedetectorSettings + the keys of its detect backend
    clip: dict | None = None  # ClipCheckSettings
    device: str = internal("auto")  # the top-level device (scripts/filter.py)

    @property
    def redetector(self) -> RedetectorSettings:
        return RedetectorSettings.from_config(self.detector or {}, "filter.detector")

    @property
    def clip_check(self) -> ClipCheckSettings:
        return ClipCheckSettings.from_config(self.clip or {}, "filter.clip")


@dataclass
class FilterDecision:
    subset: tuple[int, ...]
    accepted: bool
    reasons: list[str] = field(default_factory=list)  # why rejected
    notes: list[str] = field(default_factory=list)  # checks that could not be made
    removed_scores: dict[int, float] = field(default_factory=dict)  # component -> best score in the dual
    kept_scores: dict[int, float] = field(default_factory=dict)
    original_scores: dict[int, float] = field(default_factory=dict)  # component -> best score in the original
    clip: dict | None = None  # the CLIP check's scores and verdict (clip_check), when enabled
    rejected_by: list[str] = field(default_factory=list)  # "redetect", "clip"

    def to_dict(self) -> dict:
        data = asdict(self)
        data["subset"] = list(self.subset)
        for key in ("removed_scores", "kept_scores", "original_scores"):
            data[key] = {str(component): score for component, score in data[key].items()}
        return data


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over the smaller area (1.0 when one lies inside the other)."""
    import numpy as np

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


def unit(vectors) -> np.ndarray:
    import numpy as np

    vectors = np.asarray(vectors, dtype=np.float64)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def clip_check(original_image, dual_image, caption, dual_text, text_margin: float, image_cosine: Sequence[float]) -> dict:
    """The CLIP-consistency verdict on one dual from four embeddings (any scale: they are normalised).

    (a) the dual image is closer to its dual text than to the original caption by at
    least ``text_margin`` (cosines); (b) its cosine to the original image lies in
    ``image_cosine`` = [low, high]. Returns the scores, ``accepted`` and the reasons."""
    original_image, dual_image, caption, dual_text = unit([original_image, dual_image, caption, dual_text])
    low, high = (float(value) for value in image_cosine)
    scores = {
        "dual_text_score": float(dual_image @ dual_text),
        "caption_score": float(dual_image @ caption),
        "image_cosine": float(dual_image @ original_image),
    }
    scores["text_gain"] = scores["dual_text_score"] - scores["caption_score"]
    reasons = []
    if scores["text_gain"] < text_margin:
        reasons.append(f"clip: the dual image scores its dual text {scores['text_gain']:+.3f} above the caption "
                       f"(needs {text_margin:+.3f})")
    if scores["image_cosine"] > high:
        reasons.append(f"clip: the dual image is too close to the original (cosine {scores['image_cosine']:.3f} > {high:.3f})")
    elif scores["image_cosine"] < low:
        reasons.append(f"clip: the dual image is another scene (cosine {scores['image_cosine']:.3f} < {low:.3f})")
    return {**{key: round(value, 6) for key, value in scores.items()}, "accepted": not reasons, "reasons": reasons}


class ClipEmbedder:
    """Unit image and text embeddings of an open_clip model (``create_model`` by name and pretrained tag)."""

    def __init__(self, model: dict, device: str = "auto", batch_size: int = 64):
        import torch

        from dualclip.runtime import resolve_device
        from dualclip.train.models import create_model

        self.device = str(resolve_device(device))
        if not model.get("pretrained"):
            torch.manual_seed(0)  # an untrained model (tests): the same random weights in every job
        self.model, self.preprocess, self.tokenizer = create_model(model["name"], model.get("pretrained"), device=self.device)
        self.model.eval()
        self.batch_size = max(1, int(batch_size))

    def images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """One batch of RGB arrays -> unit-length float32 embeddings (the engine, dualclip.eval.embed)."""
        from PIL import Image

        from dualclip.eval.embed import embed_images

        pil_images = [Image.fromarray(image) for image in images]
        return embed_images(self.model, self.preprocess, pil_images, self.device, len(pil_images)).numpy()

    def texts(self, texts: Sequence[str]) -> np.ndarray:
        from dualclip.eval.embed import embed_texts

        return embed_texts(self.model, self.tokenizer, list(texts), self.device, len(texts)).numpy()


class DualFilter:
    def __init__(self, config: dict, detector=None, clip_embedder=None):
        self.settings = settings = FilterSettings.from_config(config, "filter")
        self.conf = float(settings.conf)
        self.min_overlap = float(settings.min_overlap)
        self.require_kept_in_original = bool(settings.require_kept_in_original)
        self.clip = settings.clip_check
        self.redetect = bool(settings.redetect)
        if not self.redetect and not self.clip.enabled:
            raise ValueError("filter: redetect is false and clip.enabled is false, so nothing would be checked; "
                             "enable one of them (or set filter.enabled: false)")
        self.clip_embedder = None
        if self.clip.enabled:
            low, high = (float(value) for value in self.clip.image_cosine)
            if not -1.0 <= low <= high <= 1.0:
                raise ValueError(f"filter.clip.image_cosine must be [low, high] with -1 <= low <= high <= 1, got {list(self.clip.image_cosine)}")
            if clip_embedder is None:
                if not self.clip.model:
                    raise ValueError("filter.clip.model is not set; name an open_clip model {name, pretrained} "
                                     "(the workflow passes the run's starting model)")
                clip_embedder = ClipEmbedder(self.clip.model, settings.device, self.clip.batch_size)
            self.clip_embedder = clip_embedder
        self.detector = None
        self.batch_size = 1
        self.prompted = False
        if self.redetect:
            self._set_detector(detector)

    def _set_detector(self, detector) -> None:
        redetectors = available("detect", feature="instances")
        redetector = self.settings.redetector
        if detector is None:
            from dualclip.detect import get_detector

            if redetector.backend not in redetectors:
                raise ValueError(f"filter.detector.backend: {redetector.backend!r} is no detector that finds objects "
                                 f"in new images; use {one_of(redetectors)}")
            section = {**self.settings.detector, "backend": redetector.backend}
            if redetector.backend == "owlv2" and not redetector.segment:
                section["sam_model"] = None  # boxes are the regions: SAM is not loaded
            # the detector section's device (set from the top-level `device` by the filter script) wins
            detector = get_detector({"device": self.settings.device, "config_key": "filter.detector.model", **section},
                                    key="filter.detector.backend")
        if not hasattr(detector, "instances"):
            raise ValueError(
                f"filter.detector: backend {getattr(detector, 'name', type(detector).__name__)!r} cannot detect in new "
                f"images (it has no instances()); use backend: {one_of(redetectors)}"
            )
        self.detector = detector
        # A detector that does not say how many images it takes per call gets one at a time.
        self.batch_size = max(1, int(getattr(detector, "batch_size", 1)))
        # a text-prompted detector (owlv2) is asked for the labels of the image's components
        self.prompted = bool(getattr(detector, "prompted", False))
        self.segment = bool(redetector.segment)  # a prompted detector's masks: SAM's, else its boxes

    def _classes(self, components: Sequence[Component]) -> list[set[int]]:
        if self.prompted:
            return [{self.detector.label_id(component.label)} for component in components]
        from dualclip.detect.yolo import label_classes

        return [label_classes(component.label, self.detector.names, getattr(self.detector, "class_map", {})) for component in components]

    def _instances(self, items: list) -> list:
        if not self.prompted:
            return self.detector.instances(items)
        images, labels = zip(*items)
        return self.detector.instances(list(images), list(labels), segment=self.segment)

    def evaluate(
        self,
        image: np.ndarray,
        components: Sequence[Component],
        masks: Sequence[np.ndarray],
        subsets: Sequence[tuple[int, ...]],
        duals: Sequence[np.ndarray],
        caption: str | None = None,
        dual_texts: Sequence[str] | None = None,
    ) -> list[FilterDecision]:
        """One decision per (subset, dual image); ``masks`` are the components' original masks.
        ``caption`` and ``dual_texts`` (one per subset) are what the CLIP check reads."""
        (decisions,) = self.evaluate_many([(image, components, masks, subsets, duals, caption, dual_texts)])
        return decisions

    def evaluate_many(self, cases: Iterable[tuple]) -> Iterator[list[FilterDecision]]:
        """``evaluate`` of each ``(image, components, masks, subsets, duals[, caption, dual_texts])``
        case, yielded in case order.

        The originals and duals of consecutive cases fill detector calls of ``batch_size``
        images, and then CLIP calls of ``clip.batch_size``; a case's decisions come as soon
        as its last image has been through both, so about one batch of images is held.
        """
        from collections import deque

        from dualclip.batching import packed_batches

        pending: deque[tuple] = deque()  # (image, duals, caption, dual texts) of cases handed on, in order

        def prepared():
            for image, components, masks, subsets, duals, *texts in cases:
                caption, dual_texts = texts if texts else (None, None)
                if len(subsets) != len(duals):
                    raise ValueError(f"filter: {len(subsets)} subsets but {len(duals)} dual images")
                if len(masks) != len(components):
                    raise ValueError(f"filter: {len(components)} components but {len(masks)} masks")
                if self.clip_embedder is not None and (caption is None or dual_texts is None or len(dual_texts) != len(subsets)):
                    raise ValueError("filter.clip: every case needs its caption and one dual text per subset")
                masks = [mask.astype(bool) for mask in masks]
                if self.clip_embedder is not None:
                    pending.append((image, duals, caption, dual_texts))
                labels = [component.label for component in components]
                items = [(picture, labels) for picture in [image, *duals]] if self.prompted else [image, *duals]
                yield (components, masks, subsets), items

        def redetected():
            if not self.redetect:
                for (_, _, subsets), _ in prepared():
                    yield [FilterDecision(subset=tuple(subset), accepted=True) for subset in subsets]
                return
            for (components, masks, subsets), found in packed_batches(prepared(), self.batch_size, self._instances):
                classes = self._classes(components)
                original = best_scores(found[0], components, masks, classes, self.conf, self.min_overlap)
                decisions = []
                for subset, instances in zip(subsets, found[1:]):
                    decision = decide(tuple(subset), components,
                                      best_scores(instances, components, masks, classes, self.conf, self.min_overlap),
                                      original, self.conf, self.require_kept_in_original)
                    decision.rejected_by = [] if decision.accepted else ["redetect"]
                    decisions.append(decision)
                yield decisions

        if self.clip_embedder is None:
            yield from redetected()
            return

        def with_images():
            for decisions in redetected():
                image, duals, caption, dual_texts = pending.popleft()
                yield (decisions, caption, dual_texts), [image, *duals]

        margin, band = float(self.clip.text_margin), self.clip.image_cosine
        for (decisions, caption, dual_texts), embeddings in packed_batches(
                with_images(), self.clip_embedder.batch_size, self.clip_embedder.images):
            texts = self.clip_embedder.texts([caption, *dual_texts])
            for decision, dual_embedding, dual_text_embedding in zip(decisions, embeddings[1:], texts[1:]):
                verdict = clip_check(embeddings[0], dual_embedding, texts[0], dual_text_embedding, margin, band)
                decision.clip = verdict
                if not verdict["accepted"]:
                    decision.reasons += verdict["reasons"]
                    decision.rejected_by.append("clip")
                decision.accepted = not decision.reasons
            yield decisions


def run_shard(config: dict, image_files: list[str], parse_files: list[str], detect_files: list[str],
              duals_files: list[str], out_files: list[str], detector=None, rewrite_files: list[str] | None = None,
              clip_embedder=None) -> dict:
    """Filter decisions of one shard: one JSON per image, one decision per dual image, and
    the shard's ``summary.json`` (duals, accepted, rejections per check), which it returns.

    Reads the stage files as the other stages write them: the parse record (components),
    the detect record and its bit-packed masks PNG (each component's own, undilated
    region), the inpaint ``duals.json`` with its ``drop-*.png`` images and, for the CLIP
    check, the rewrite record (the dual text of each subset). Works on the lists it is
    given, whatever their length (the last shard of a split may be short).
    """
    from collections import deque
    from pathlib import Path

    from tqdm import tqdm

    from dualclip.io import bits_to_masks, read_json, read_label_png, read_rgb, write_json

    dual_filter = DualFilter(config, detector=detector, clip_embedder=clip_embedder)
    if dual_filter.clip_embedder is not None and (rewrite_files is None or len(rewrite_files) != len(out_files)):
        raise ValueError("filter.clip: the CLIP check reads the dual texts: give one rewrite record per image")
    texts_of = iter(rewrite_files) if dual_filter.clip_embedder is not None else None
    summary = {"n_images": len(out_files), "n_duals": 0, "n_accepted": 0, "rejected_by": {"redetect": 0, "clip": 0},
               "checks": (["redetect"] if dual_filter.redetect else []) + (["clip"] if dual_filter.clip_embedder else [])}
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
            rewrite_file = next(texts_of) if texts_of is not None else None
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
            subsets = [tuple(dual["subset"]) for dual in duals["duals"]]
            caption = dual_texts = None
            if rewrite_file is not None:
                rewritten = read_json(rewrite_file)
                by_subset = {tuple(dual["subset"]): dual["text"] for dual in rewritten["duals"]}
                missing = [list(subset) for subset in subsets if subset not in by_subset]
                if missing:
                    raise ValueError(f"filter.clip: {rewrite_file} has no dual text for the subsets {missing} of "
                                     f"{duals_file}; rerun the rewrite stage of this shard")
                caption, dual_texts = rewritten["caption"], [by_subset[subset] for subset in subsets]
            handed.append((out, record, duals["duals"]))
            yield (read_rgb(image_file), components, masks, subsets,
                   [read_rgb(folder / dual["file"]) for dual in duals["duals"]], caption, dual_texts)

    for decisions in dual_filter.evaluate_many(cases()):
        out, record, duals = handed.popleft()
        record["decisions"] = [{"file": dual["file"], **decision.to_dict()} for dual, decision in zip(duals, decisions, strict=True)]
        record["n_accepted"] = sum(decision.accepted for decision in decisions)
        summary["n_duals"] += len(decisions)
        summary["n_accepted"] += record["n_accepted"]
        for decision in decisions:
            for check in decision.rejected_by:
                summary["rejected_by"][check] += 1
        write_json(out, record)
        progress.update()
    progress.close()
    if out_files:
        write_json(Path(out_files[0]).parent / "summary.json", summary)
    return summary
