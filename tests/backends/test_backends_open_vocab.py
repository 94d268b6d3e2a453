"""Open-vocabulary detection (OWLv2 boxes + SAM masks) and the CLIP-consistency filter.

The OWLv2 and SAM models are tiny random-weight models built from their configs (the
OWLv2 tokenizer's merges trained here), saved with ``save_pretrained`` and loaded by the
backend from the folders, the way a user's weights are. Random weights make the boxes
meaningless, so the tests check structure (one mask per component at the image's size,
union of the label's instances, scores, batching, determinism) and drive the decisions
with constructed inputs; the CLIP check is tested on hand-built embeddings whose verdict
is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dualclip.detect import get_detector
from dualclip.detect.owl import OwlSamDetector, box_mask, query_boxes
from dualclip.detect.yolo import Instance
from dualclip.filter import DualFilter, clip_check
from dualclip.parse import Component
from tiny_models import build_tiny_owlv2, build_tiny_sam


def comp(index, label, text=None):
    text = text or f"a {label}"
    return Component(index=index, text=text, start=0, end=len(text), head=label.split()[-1], label=label)


def rgb(height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def region(y0, y1, x0, x1, shape=(20, 20)):
    mask = np.zeros(shape, bool)
    mask[y0:y1, x0:x1] = True
    return mask


@pytest.fixture(scope="module")
def owl_dirs(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tiny-owl-sam")
    return build_tiny_owlv2(folder / "owlv2"), build_tiny_sam(folder / "sam")


@pytest.fixture(scope="module")
def owl(owl_dirs):
    owlv2, sam = owl_dirs
    # conf 0: random weights, and we want boxes to check
    return get_detector({"backend": "owlv2", "model": str(owlv2), "sam_model": str(sam), "conf": 0.0, "max_instances": 3,
                         "batch_size": 2, "device": "cpu"})


@pytest.fixture
def forward_batches():
    """Batch size of every OWLv2 and SAM forward pass (the models still run)."""
    from transformers import Owlv2ForObjectDetection, SamModel

    sizes = {"owlv2": [], "sam": []}

    def record(module, args, kwargs, output):
        if isinstance(module, Owlv2ForObjectDetection):
            sizes["owlv2"].append(int(kwargs["pixel_values"].shape[0]))
        elif isinstance(module, SamModel):
            sizes["sam"].append(int(kwargs["pixel_values"].shape[0]))

    handle = torch.nn.modules.module.register_module_forward_hook(record, with_kwargs=True)
    yield sizes
    handle.remove()


# --------------------------------------------------------------------------- the detector


def test_owlv2_and_sam_load_from_saved_folders(owl, owl_dirs):
    assert isinstance(owl, OwlSamDetector) and owl.name == "owlv2"
    owlv2, _ = owl_dirs
    # the processor read the trained tokenizer from the folder (not a default one)
    vocab = (owlv2 / "tokenizer-files" / "vocab.json").read_text()
    assert len(owl.processor.tokenizer) == len(__import__("json").loads(vocab))
    assert owl.processor.image_processor.size["height"] == 64 and owl.sam_processor.image_processor.size["longest_edge"] == 64


def test_one_mask_per_component_is_the_union_of_its_label_instances(owl):
    image = rgb(48, 72)  # not square, not the model's size: masks still come at 48x72
    components = [comp(0, "dog"), comp(1, "pineapple"), comp(2, "dog", "another dog")]
    (found,) = owl.instances([image], [[c.label for c in components]])
    assert found, "conf 0 with random weights returns boxes"
    for instance in found:
        assert instance.mask.shape == (48, 72) and instance.mask.dtype == bool and instance.mask.any()
        assert instance.label in {"dog", "pineapple"} and 0.0 <= instance.score <= 1.0
    assert sum(instance.label == "dog" for instance in found) <= 3  # max_instances per label
    detections = owl.detect(image, components, ground_truth=None)
    assert [d.component for d in detections] == [0, 1, 2]
    for detection, component in zip(detections, components):
        matched = [instance for instance in found if instance.label == component.label]
        union = np.zeros((48, 72), bool)
        for instance in matched:
            union |= instance.mask
        np.testing.assert_array_equal(detection.mask, union)
        assert detection.scores == [instance.score for instance in matched]  # the detector's score per instance
    np.testing.assert_array_equal(detections[0].mask, detections[2].mask)  # same label: same instances


def test_masks_stay_in_their_boxes():
    assert box_mask([1.0, 2.0, 4.0, 3.0], (5, 6)).astype(int).tolist() == [
        [0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0], [0, 1, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]]


def test_query_boxes_thresholds_suppresses_and_caps():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50], [60, 60, 70, 70]], dtype=torch.float32)
    logits = torch.logit(torch.tensor([0.9, 0.8, 0.7, 0.1, 0.6]))
    found = query_boxes(logits, boxes, conf=0.5, nms_iou=0.3, max_instances=10)
    # box 1 overlaps box 0 (IoU 0.81) and loses; box 3 is below conf
    assert [(box[0], round(score, 2)) for box, score in found] == [(0.0, 0.9), (20.0, 0.7), (60.0, 0.6)]
    assert len(query_boxes(logits, boxes, conf=0.5, nms_iou=0.3, max_instances=2)) == 2
    assert query_boxes(logits, boxes, conf=0.95, nms_iou=0.3, max_instances=10) == []


def test_batched_detection_equals_one_image_at_a_time(owl, owl_dirs, forward_batches):
    images = [rgb(48, 72, 1), rgb(64, 40, 2), rgb(50, 50, 3)]
    components = [[comp(0, "dog"), comp(1, "plate")], [comp(0, "sign")], [comp(0, "cat"), comp(1, "dog")]]
    batched = owl.detect_batch(images, components)
    assert forward_batches == {"owlv2": [2, 1], "sam": [2, 1]}  # batch_size 2: one call of each model per 2 images
    owlv2, sam = owl_dirs
    alone = get_detector({"backend": "owlv2", "model": str(owlv2), "sam_model": str(sam), "conf": 0.0, "max_instances": 3,
                          "batch_size": 1, "device": "cpu"})
    for image, image_components, detections in zip(images, components, batched):
        for expected, detection in zip(alone.detect(image, image_components), detections):
            # padding the queries and the box lists of a call changes nothing an image gets
            np.testing.assert_array_equal(expected.mask, detection.mask)
            assert detection.scores == pytest.approx(expected.scores, abs=1e-4)


def test_missing_folders_are_clear_errors(owl_dirs, tmp_path):
    owlv2, sam = owl_dirs
    with pytest.raises(RuntimeError, match="detect.model"):
        OwlSamDetector({"model": str(tmp_path / "nope"), "sam_model": str(sam), "device": "cpu"})
    with pytest.raises(RuntimeError, match="detect.sam_model"):
        OwlSamDetector({"model": str(owlv2), "sam_model": str(tmp_path / "nope"), "device": "cpu"})
    boxes_only = OwlSamDetector({"model": str(owlv2), "sam_model": None, "device": "cpu"})
    with pytest.raises(ValueError, match="sam_model is not set"):
        boxes_only.detect(rgb(20, 20), [comp(0, "dog")])
    with pytest.raises(ValueError, match="prompt_template"):
        OwlSamDetector({"model": str(owlv2), "sam_model": None, "device": "cpu", "prompt_template": "a photo"})


def test_detect_run_shard_records_owlv2_scores(owl_dirs, tmp_path):
    from dualclip.detect import run_shard
    from dualclip.io import bits_to_masks, read_json, read_label_png, write_json, write_png

    owlv2, sam = owl_dirs
    labels = [["pineapple", "plate"], [], ["sign"]]
    files = {key: [] for key in ("images", "truths", "parses", "outs")}
    for slot, names in enumerate(labels):
        write_png(tmp_path / "data" / f"{slot}.png", rgb(40, 56, slot))
        write_json(tmp_path / "data" / f"{slot}.json", {"image_id": f"train-0000-{slot:03d}"})
        write_json(tmp_path / "parse" / f"{slot}.json", {"image_id": f"train-0000-{slot:03d}", "reason": "none parsed",
                                                          "components": [comp(i, name).to_dict() for i, name in enumerate(names)]})
        for key, path in zip(files, (f"data/{slot}.png", f"data/{slot}.json", f"parse/{slot}.json", f"detect/{slot}.json")):
            files[key].append(str(tmp_path / path))
    config = {"backend": "owlv2", "model": str(owlv2), "sam_model": str(sam), "conf": 0.0, "max_instances": 2, "device": "cpu"}
    run_shard(config, *files.values())
    first = read_json(files["outs"][0])
    assert first["backend"] == "owlv2" and [c["label"] for c in first["components"]] == ["pineapple", "plate"]
    masks = bits_to_masks(read_label_png(tmp_path / "detect" / first["masks_file"]), 2)
    for entry, mask in zip(first["components"], masks):
        assert entry["found"] == bool(mask.any()) and entry["area"] == int(mask.sum())
        assert len(entry["scores"]) == len(entry["instances"]) <= 2
    assert read_json(files["outs"][1])["status"] == "skipped"


# --------------------------------------------------------------------------- the filter with the open-vocabulary detector


class PromptedTable:
    """A text-prompted detector with set instances: the i-th image it is given gets table[i]
    (as (label, score, mask) triples, kept only when the label was asked for)."""

    prompted = True

    def __init__(self, table, batch_size=8):
        self.table = table
        self.batch_size = batch_size
        self.asked: list[list[str]] = []
        self.label_ids: dict[str, int] = {}

    def label_id(self, label):
        return self.label_ids.setdefault(label, len(self.label_ids))

    def instances(self, images, labels, segment=True):
        start = len(self.asked)
        self.asked += [list(image_labels) for image_labels in labels]
        return [[Instance(index=i, class_id=self.label_id(label), label=label, score=score, mask=mask)
                 for i, (label, score, mask) in enumerate(self.table[start + n]) if label in image_labels]
                for n, image_labels in enumerate(labels)]


def test_filter_prompts_the_open_vocabulary_detector_with_the_components_labels():
    apple, sign = region(0, 8, 0, 8), region(10, 20, 10, 20)
    components = [comp(0, "pineapple"), comp(1, "stop sign")]
    original = [("pineapple", 0.9, apple), ("stop sign", 0.8, sign)]
    table = [original,
             [("stop sign", 0.8, sign)],  # pineapple removed, sign kept: accept
             [("pineapple", 0.9, apple), ("stop sign", 0.7, sign)],  # sign still there: reject
             [("pineapple", 0.6, region(0, 6, 0, 6))]]  # both gone? the pineapple came back: reject
    detector = PromptedTable(table)
    filt = DualFilter({"conf": 0.25}, detector=detector)
    blank = np.zeros((20, 20, 3), np.uint8)
    decisions = filt.evaluate(blank, components, [apple, sign], [(0,), (1,), (0, 1)], [blank] * 3)
    assert detector.asked == [["pineapple", "stop sign"]] * 4
    assert [d.accepted for d in decisions] == [True, False, False]
    assert decisions[1].reasons == ["removed component 1 'a stop sign' still detected (0.70)"]
    assert decisions[1].rejected_by == ["redetect"] and decisions[0].rejected_by == []
    assert decisions[2].removed_scores == {0: 0.6, 1: 0.0}


def test_filter_runs_the_real_open_vocabulary_detector(owl_dirs):
    owlv2, _ = owl_dirs
    filt = DualFilter({"conf": 0.25, "detector": {"backend": "owlv2", "model": str(owlv2), "conf": 0.0, "device": "cpu"}})
    assert filt.prompted and filt.detector.sam is None  # boxes are enough for the located check
    image = rgb(40, 56)
    masks = [region(0, 20, 0, 28, (40, 56)), region(20, 40, 28, 56, (40, 56))]
    decisions = filt.evaluate(image, [comp(0, "dog"), comp(1, "plate")], masks, [(0,), (1,), (0, 1)],
                              [rgb(40, 56, 1), rgb(40, 56, 2), rgb(40, 56, 3)])
    assert len(decisions) == 3
    for decision in decisions:
        assert set(decision.removed_scores) | set(decision.kept_scores) == {0, 1}
        assert decision.accepted == (not decision.reasons) and decision.clip is None


# --------------------------------------------------------------------------- the CLIP-consistency check


def test_clip_check_on_hand_built_embeddings():
    e = np.eye(4)
    caption, dual_text = e[0], e[1]
    original = np.array([1.0, 0.0, 1.0, 0.0])
    band = (0.5, 0.98)
    # the dual sits between its dual text and the original's picture, away from the caption
    dual = np.array([0.2, 1.0, 1.0, 0.0])
    verdict = clip_check(original, dual, caption, dual_text, text_margin=0.1, image_cosine=band)
    assert verdict["accepted"] and verdict["reasons"] == []
    assert verdict["dual_text_score"] == pytest.approx(1 / np.sqrt(2.04), abs=1e-6)
    assert verdict["caption_score"] == pytest.approx(0.2 / np.sqrt(2.04), abs=1e-6)
    assert verdict["image_cosine"] == pytest.approx(1.2 / np.sqrt(2.04) / np.sqrt(2), abs=1e-6)
    # (a) fails: the dual still looks like the caption more than like its dual text
    stale = np.array([1.0, 0.2, 1.0, 0.0])
    verdict = clip_check(original, stale, caption, dual_text, text_margin=0.1, image_cosine=band)
    assert not verdict["accepted"] and verdict["text_gain"] < 0 and "above the caption" in verdict["reasons"][0]
    # (b) fails above the band: the "dual" is the original picture itself
    verdict = clip_check(original, original * 3.0, caption, dual_text, text_margin=-1.0, image_cosine=band)
    assert not verdict["accepted"] and verdict["image_cosine"] == pytest.approx(1.0) and "too close" in verdict["reasons"][0]
    # (b) fails below the band: another scene, though it matches the dual text
    verdict = clip_check(original, np.array([0.0, 1.0, 0.0, 1.0]), caption, dual_text, text_margin=0.1, image_cosine=band)
    assert not verdict["accepted"] and verdict["image_cosine"] == pytest.approx(0.0) and "another scene" in verdict["reasons"][0]
    # the margin is a threshold on the gain
    verdict = clip_check(original, dual, caption, dual_text, text_margin=0.6, image_cosine=band)
    assert not verdict["accepted"] and verdict["text_gain"] == pytest.approx(0.8 / np.sqrt(2.04), abs=1e-6)


class TableEmbedder:
    """Set embeddings: images by the value of their first pixel, texts by their string."""

    def __init__(self, images: dict[int, list[float]], texts: dict[str, list[float]], batch_size=3):
        self.image_table, self.text_table, self.batch_size = images, texts, batch_size
        self.calls: list[int] = []

    def images(self, images):
        assert len(images) <= self.batch_size
        self.calls.append(len(images))
        return np.array([self.image_table[int(image[0, 0, 0])] for image in images], dtype=float)

    def texts(self, texts):
        return np.array([self.text_table[text] for text in texts], dtype=float)


def picture(value):
    return np.full((20, 20, 3), value, np.uint8)


EMBEDDER_TABLES = (
    {0: [1, 0, 1, 0], 1: [0.2, 1, 1, 0], 2: [1, 0.2, 1, 0], 3: [1, 0, 1, 0]},  # original; good, stale, identical duals
    {"a dog and a cat": [1, 0, 0, 0], "a cat": [0, 1, 0, 0], "a dog": [0, 0, 0, 1], "an empty scene": [0, 1, 0, 1]},
)


def test_clip_filter_decides_and_records_per_subset_and_packs_its_calls():
    embedder = TableEmbedder(*EMBEDDER_TABLES)
    components = [comp(0, "dog"), comp(1, "cat")]
    filt = DualFilter({"redetect": False, "clip": {"enabled": True, "text_margin": 0.1, "image_cosine": [0.5, 0.98]}},
                      clip_embedder=embedder)
    masks = [region(0, 10, 0, 10), region(10, 20, 10, 20)]
    cases = [
        (picture(0), components, masks, [(0,), (1,), (0, 1)], [picture(1), picture(2), picture(3)],
         "a dog and a cat", ["a cat", "a dog", "an empty scene"]),
        (picture(0), components, masks, [(0,)], [picture(1)], "a dog and a cat", ["a cat"]),
    ]
    decided = list(filt.evaluate_many(cases))
    assert embedder.calls == [3, 3]  # 6 images in calls of 3, across the two cases
    first = decided[0]
    assert [d.accepted for d in first] == [True, False, False]
    assert first[1].rejected_by == ["clip"] and "above the caption" in first[1].reasons[0]
    assert first[2].rejected_by == ["clip"] and "too close" in first[2].reasons[-1]
    assert first[0].clip["accepted"] and first[0].to_dict()["clip"]["text_gain"] > 0.1
    assert decided[1][0].accepted
    with pytest.raises(ValueError, match="one dual text per subset"):
        list(filt.evaluate_many([(picture(0), components, masks, [(0,)], [picture(1)])]))
    with pytest.raises(ValueError, match="nothing would be checked"):
        DualFilter({"redetect": False})


def test_both_checks_combine_and_the_shard_summary_counts_rejections_per_check(tmp_path):
    from dualclip.filter import run_shard
    from dualclip.io import masks_to_bits, read_json, write_json, write_png

    components = [comp(0, "dog"), comp(1, "cat")]
    dog, cat = region(0, 10, 0, 10), region(10, 20, 10, 20)
    write_png(tmp_path / "0.png", picture(0))
    write_json(tmp_path / "parse.json", {"image_id": "train-0000-000", "caption": "a dog and a cat",
                                         "components": [c.to_dict() for c in components]})
    write_png(tmp_path / "0.masks.png", masks_to_bits([dog, cat], (20, 20)))
    write_json(tmp_path / "detect.json", {"image_id": "train-0000-000", "masks_file": "0.masks.png",
                                          "components": [{"index": 0, "found": True}, {"index": 1, "found": True}]})
    duals = [{"subset": [0], "file": "drop-0.png"}, {"subset": [1], "file": "drop-1.png"}, {"subset": [0, 1], "file": "drop-0+1.png"}]
    for dual, value in zip(duals, (1, 2, 1)):
        write_png(tmp_path / "0" / dual["file"], picture(value))
    write_json(tmp_path / "0" / "duals.json", {"image_id": "train-0000-000", "duals": duals})
    # the rewrite record lists its subsets in another order: texts are matched by subset
    write_json(tmp_path / "rewrite.json", {"image_id": "train-0000-000", "caption": "a dog and a cat", "duals": [
        {"subset": [0, 1], "text": "an empty scene"}, {"subset": [0], "text": "a cat"}, {"subset": [1], "text": "a dog"}]})
    table = [[("dog", 0.9, dog), ("cat", 0.9, cat)],  # original
             [("cat", 0.9, cat)],  # drop-0: clean, CLIP agrees -> accept
             [("dog", 0.9, dog), ("cat", 0.9, cat)],  # drop-1: cat still there, and CLIP: stale -> both reject
             [("cat", 0.8, cat)]]  # drop-0+1: cat still there; CLIP: good -> redetect rejects
    config = {"conf": 0.25, "clip": {"enabled": True, "text_margin": 0.1, "image_cosine": [0.5, 0.98]}}
    summary = run_shard(config, [str(tmp_path / "0.png")], [str(tmp_path / "parse.json")], [str(tmp_path / "detect.json")],
                        [str(tmp_path / "0" / "duals.json")], [str(tmp_path / "out" / "0.json")], detector=PromptedTable(table),
                        rewrite_files=[str(tmp_path / "rewrite.json")], clip_embedder=TableEmbedder(*EMBEDDER_TABLES))
    record = read_json(tmp_path / "out" / "0.json")
    assert [d["rejected_by"] for d in record["decisions"]] == [[], ["redetect", "clip"], ["redetect"]]
    assert record["n_accepted"] == 1 and record["decisions"][0]["clip"]["accepted"]
    assert summary == read_json(tmp_path / "out" / "summary.json")
    assert summary["n_duals"] == 3 and summary["n_accepted"] == 1
    assert summary["rejected_by"] == {"redetect": 2, "clip": 1} and summary["checks"] == ["redetect", "clip"]
    with pytest.raises(ValueError, match="one rewrite record per image"):
        run_shard(config, [str(tmp_path / "0.png")], [str(tmp_path / "parse.json")], [str(tmp_path / "detect.json")],
                  [str(tmp_path / "0" / "duals.json")], [str(tmp_path / "out" / "0.json")], detector=PromptedTable(table),
                  clip_embedder=TableEmbedder(*EMBEDDER_TABLES))


def test_clip_embedder_runs_an_open_clip_model():
    from dualclip.filter import ClipEmbedder

    embedder = ClipEmbedder({"name": "dualclip-tiny", "pretrained": None}, device="cpu", batch_size=4)
    images = embedder.images([rgb(40, 56, 1), rgb(64, 64, 2)])
    texts = embedder.texts(["a dog and a cat", "a cat"])
    assert images.shape[0] == 2 and texts.shape[0] == 2 and images.shape[1] == texts.shape[1]
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, rtol=1e-5)
    verdict = clip_check(images[0], images[1], texts[0], texts[1], 0.0, (0.0, 1.0))
    assert set(verdict) >= {"dual_text_score", "caption_score", "text_gain", "image_cosine", "accepted"}


# --------------------------------------------------------------------------- pre-flight


def test_preflight_checks_the_open_vocabulary_models(owl_dirs, tmp_path):
    from dualclip.preflight import open_vocabulary_detector_problems

    owlv2, sam = owl_dirs
    assert [p for p in open_vocabulary_detector_problems("detect", {"model": str(owlv2), "sam_model": str(sam)}, True)] == [(None, None)] * 2
    problems = open_vocabulary_detector_problems("detect", {"model": str(tmp_path / "owl"), "sam_model": str(tmp_path / "sam")}, True)
    errors = [error for error, _ in problems]
    assert "config detect.model" in errors[0] and "config detect.sam_model" in errors[1]
    # the filter without masks needs no SAM
    assert len(open_vocabulary_detector_problems("filter.detector", {"model": str(owlv2)}, False)) == 1


def test_preflight_checks_the_clip_filter_model():
    from dualclip.preflight import clip_filter_problems

    def config(model):
        return {"filter": {"clip": {"enabled": True, "model": model}}}

    assert clip_filter_problems(config(None)) == []  # the run's own model, checked as `model`
    assert clip_filter_problems(config({"name": "dualclip-tiny", "pretrained": None})) == []
    (error,) = clip_filter_problems(config({"name": "ViT-B-33", "pretrained": None}))
    assert error.startswith("config filter.clip.model.name: 'ViT-B-33' is not an open_clip architecture")
