"""YOLO backend (random-weight yolov8n-seg built from its yaml) and the dual quality filter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dualclip.detect.yolo import Instance, YoloDetector, component_detections, instances_from_result, label_classes
from dualclip.filter import DualFilter, FilterDecision, overlap
from dualclip.parse import Component


def comp(index, label, text=None, head=None):
    text = text or f"a {label}"
    return Component(index=index, text=text, start=0, end=len(text), head=head or label, label=label)


def rgb(height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


# --------------------------------------------------------------------------- the real model


@pytest.fixture(scope="module")
def detector(tiny_yolo_path):
    # conf 0: random weights score every box near zero, and we want instances to check.
    return YoloDetector({"model": str(tiny_yolo_path), "conf": 0.0, "imgsz": 64, "max_det": 12, "device": "cpu"})


def test_yolo_loads_saved_weights_and_masks_match_image(detector):
    assert detector.model.task == "segment"
    assert detector.names[1] == "dog" and len(detector.names) == 80
    image = rgb(48, 72)  # not the model's input size: masks must still come at 48x72
    found = detector.instances([image, rgb(40, 40, seed=1)])
    assert len(found) == 2 and found[0], "conf=0 with max_det=12 should return instances"
    for instance in found[0]:
        assert instance.mask.shape == (48, 72) and instance.mask.dtype == bool
        assert instance.label == detector.names[instance.class_id]
    assert all(instance.mask.shape == (40, 40) for instance in found[1])

    components = [comp(0, found[0][0].label), comp(1, "person")]
    detections = detector.detect(image, components, ground_truth=None)
    assert [d.component for d in detections] == [0, 1]
    wanted = found[0][0].class_id
    union = np.zeros((48, 72), bool)
    for instance in found[0]:
        if instance.class_id == wanted:
            union |= instance.mask
    np.testing.assert_array_equal(detections[0].mask, union)
    assert detections[0].instances == [i.index for i in found[0] if i.class_id == wanted]
    assert detections[0].scores == [i.score for i in found[0] if i.class_id == wanted]
    # batched path gives the same as one image at a time
    batch = detector.detect_batch([image, image], [components, components[:1]])
    np.testing.assert_array_equal(batch[0][0].mask, detections[0].mask)
    assert len(batch[1]) == 1


def test_yolo_threshold_and_bad_label(tiny_yolo_path):
    strict = YoloDetector({"model": str(tiny_yolo_path), "conf": 0.9, "imgsz": 64, "device": "cpu"})
    detections = strict.detect(rgb(48, 72), [comp(0, "dog")], None)
    assert not detections[0].found and detections[0].scores == []  # random weights score far below 0.9
    with pytest.raises(ValueError, match="detect.class_map"):
        strict.detect(rgb(48, 72), [comp(0, "unicorn")], None)
    mapped = YoloDetector({"model": str(tiny_yolo_path), "imgsz": 64, "device": "cpu", "class_map": {"puppy": ["dog", "cat"]}})
    assert label_classes("puppy", mapped.names, mapped.class_map) == {1, 2}


def test_yolo_rejects_missing_weights(tmp_path):
    with pytest.raises(RuntimeError, match="detect.model"):
        YoloDetector({"model": str(tmp_path / "nope-seg.pt"), "device": "cpu"})


def test_class_mapping_union_and_threshold_on_constructed_results():
    from ultralytics.engine.results import Results

    height, width = 10, 12
    masks = torch.zeros((4, height, width))
    masks[0, 0:3, 0:3] = 1  # dog 0.9
    masks[1, 5:8, 5:8] = 1  # dog 0.3
    masks[2, 0:2, 8:12] = 1  # cat 0.8
    masks[3, 8:10, 0:4] = 1  # dog 0.1 -- below conf
    boxes = torch.tensor([
        [0, 0, 3, 3, 0.9, 1], [5, 5, 8, 8, 0.3, 1], [8, 0, 12, 2, 0.8, 2], [0, 8, 4, 10, 0.1, 1],
    ], dtype=torch.float32)
    names = {0: "person", 1: "dog", 2: "cat"}
    result = Results(np.zeros((height, width, 3), np.uint8), path="x.png", names=names, boxes=boxes, masks=masks)
    instances = instances_from_result(result, conf=0.25)
    assert [(i.label, round(i.score, 2)) for i in instances] == [("dog", 0.9), ("dog", 0.3), ("cat", 0.8)]

    components = [comp(0, "dog"), comp(1, "pet"), comp(2, "person")]
    detections = component_detections(instances, components, names, {"pet": ["dog", "cat"]}, (height, width))
    assert detections[0].mask.sum() == 9 + 9 and detections[0].instances == [0, 1]
    assert detections[1].mask.sum() == 9 + 9 + 8 and sorted(detections[1].instances) == [0, 1, 2]
    assert not detections[2].found and detections[2].scores == []
    assert not detections[0].mask[8:10, 0:4].any()  # the 0.1 dog is not in the union

    wrong = Results(np.zeros((20, 20, 3), np.uint8), path="x.png", names=names, boxes=boxes[:1], masks=masks[:1])
    with pytest.raises(ValueError, match="retina_masks"):
        instances_from_result(wrong, conf=0.25)


# --------------------------------------------------------------------------- the dual filter


class TableDetector:
    """Set instances per image: the i-th image it is given, over all its calls, gets table[i]."""

    names = {0: "person", 1: "dog", 2: "circle"}
    class_map: dict = {}

    def __init__(self, table, batch_size=8):
        self.table = table
        self.batch_size = batch_size
        self.calls: list[int] = []  # images per call

    def instances(self, images):
        assert len(images) <= self.batch_size
        start = sum(self.calls)
        assert start + len(images) <= len(self.table), "asked about more images than the table has"
        self.calls.append(len(images))
        return self.table[start:start + len(images)]


def box(y0, y1, x0, x1, shape=(20, 20)):
    mask = np.zeros(shape, bool)
    mask[y0:y1, x0:x1] = True
    return mask


def inst(class_id, score, mask, index=0):
    return Instance(index=index, class_id=class_id, label=TableDetector.names[class_id], score=score, mask=mask)


def test_overlap_is_intersection_over_smaller():
    assert overlap(box(0, 4, 0, 4), box(0, 10, 0, 10)) == 1.0
    assert overlap(box(0, 4, 0, 4), box(2, 4, 0, 4)) == 1.0
    assert overlap(box(0, 4, 0, 4), box(0, 4, 2, 6)) == 0.5
    assert overlap(box(0, 4, 0, 4), np.zeros((20, 20), bool)) == 0.0


def test_filter_accepts_and_rejects_located_detections():
    red, blue, dog = box(0, 8, 0, 8), box(0, 8, 12, 20), box(12, 20, 0, 10)
    components = [comp(0, "circle", "a red circle", "circle"), comp(1, "circle", "a blue circle", "circle"), comp(2, "dog")]
    masks = [red, blue, dog]
    original = [inst(2, 0.9, red), inst(2, 0.8, blue), inst(1, 0.7, dog)]
    subsets = [(0,), (1,), (0, 2), (2,)]
    duals = [
        [inst(2, 0.8, blue), inst(1, 0.7, dog)],  # red removed cleanly; blue circle still a circle -> accept
        [inst(2, 0.9, red), inst(2, 0.6, box(1, 7, 13, 19)), inst(1, 0.7, dog)],  # blue came back -> reject
        [inst(2, 0.8, blue), inst(1, 0.2, dog)],  # dog below conf counts as gone -> accept
        [inst(2, 0.9, red), inst(1, 0.7, dog)],  # blue circle (kept) vanished, dog still there -> reject twice
    ]
    filt = DualFilter({"conf": 0.25, "min_overlap": 0.5}, detector=TableDetector([original, *duals]))
    decisions = filt.evaluate(np.zeros((20, 20, 3), np.uint8), components, masks, subsets, [np.zeros((20, 20, 3), np.uint8)] * 4)
    assert [d.accepted for d in decisions] == [True, False, True, False]
    assert decisions[0].removed_scores == {0: 0.0} and decisions[0].kept_scores == {1: 0.8, 2: 0.7}
    assert decisions[1].reasons == ["removed component 1 'a blue circle' still detected (0.60)"]
    assert decisions[2].removed_scores == {0: 0.0, 2: 0.0}
    assert sorted(decisions[3].reasons) == [
        "kept component 1 'a blue circle' no longer detected",
        "removed component 2 'a dog' still detected (0.70)",
    ]
    assert decisions[3].to_dict()["subset"] == [2] and decisions[3].to_dict()["kept_scores"] == {"0": 0.9, "1": 0.0}


def test_filter_does_not_require_what_the_detector_never_saw():
    person, dog = box(0, 10, 0, 10), box(10, 20, 10, 20)
    components = [comp(0, "person"), comp(1, "dog")]
    original = [inst(1, 0.9, dog)]  # the person was never detected
    filt = DualFilter({}, detector=TableDetector([original, []]))
    decision: FilterDecision = filt.evaluate(np.zeros((20, 20, 3), np.uint8), components, [person, dog], [(1,)], [np.zeros((20, 20, 3), np.uint8)])[0]
    assert decision.accepted and "not detected in the original either" in decision.notes[0]
    strict = DualFilter({"require_kept_in_original": False}, detector=TableDetector([original, []]))
    assert not strict.evaluate(np.zeros((20, 20, 3), np.uint8), components, [person, dog], [(1,)], [np.zeros((20, 20, 3), np.uint8)])[0].accepted


def test_filter_packs_the_images_of_consecutive_cases_into_full_detector_calls():
    dog, person = box(0, 10, 0, 10), box(10, 20, 10, 20)
    components = [comp(0, "dog"), comp(1, "person")]
    both = [inst(1, 0.9, dog), inst(0, 0.8, person)]
    blank = np.zeros((20, 20, 3), np.uint8)
    cases = [  # (subsets, table rows: the original's instances, then each dual's)
        ([(0,), (1,), (0, 1)], [both, [inst(0, 0.8, person)], both, []]),  # accept, reject (person stayed), accept
        ([(0,)], [both, both]),  # reject: the dog stayed
        ([(1,)], [both, [inst(1, 0.9, dog)]]),  # accept
    ]
    table = [row for _, rows in cases for row in rows]
    detector = TableDetector(table, batch_size=3)
    filt = DualFilter({}, detector=detector)
    decided = list(filt.evaluate_many(
        (blank, components, [dog, person], subsets, [blank] * len(subsets)) for subsets, _ in cases
    ))
    assert detector.calls == [3, 3, 2]  # 8 images; case by case it took 2 + 1 + 1 calls, all partial
    assert [[decision.accepted for decision in decisions] for decisions in decided] == [[True, False, True], [False], [True]]
    assert decided[0][1].reasons == ["removed component 1 'a person' still detected (0.80)"]
    assert decided[2][0].kept_scores == {0: 0.9} and decided[2][0].original_scores == {0: 0.9, 1: 0.8}


def test_filter_runs_the_real_detector(detector):
    image = rgb(40, 56)
    components = [comp(0, "dog"), comp(1, "person")]
    masks = [box(0, 20, 0, 28, (40, 56)), box(20, 40, 28, 56, (40, 56))]
    filt = DualFilter({"conf": 0.99}, detector=detector)  # random weights never reach 0.99
    decisions = filt.evaluate(image, components, masks, [(0,), (1,), (0, 1)], [rgb(40, 56, 1), rgb(40, 56, 2), rgb(40, 56, 3)])
    assert len(decisions) == 3
    for decision in decisions:
        assert decision.accepted  # nothing detected: removed ones gone, kept ones never seen
        assert set(decision.removed_scores) | set(decision.kept_scores) == {0, 1}
    with pytest.raises(ValueError, match="cannot detect in new images"):
        DualFilter({}, detector=object())


def test_filter_run_shard_reads_the_stage_files(tiny_yolo_path, tmp_path):
    from dualclip.filter import run_shard
    from dualclip.io import masks_to_bits, read_json, write_json, write_png
    from dualclip.subsets import nonempty_subsets, subset_name

    image = rgb(40, 56)
    write_png(tmp_path / "0.png", image)
    components = [comp(0, "dog"), comp(1, "person")]
    write_json(tmp_path / "parse0.json", {"image_id": "train-0000-000", "caption": "a dog a person",
                                          "components": [c.to_dict() for c in components]})
    masks = [box(0, 20, 0, 28, (40, 56)), box(20, 40, 28, 56, (40, 56))]
    write_png(tmp_path / "0.masks.png", masks_to_bits(masks, (40, 56)))
    write_json(tmp_path / "detect0.json", {"image_id": "train-0000-000", "masks_file": "0.masks.png",
                                           "components": [{"index": 0, "found": True}, {"index": 1, "found": True}]})
    duals = []
    for number, subset in enumerate(nonempty_subsets([0, 1])):
        write_png(tmp_path / "0" / f"{subset_name(subset)}.png", rgb(40, 56, seed=number + 1))
        duals.append({"subset": list(subset), "file": f"{subset_name(subset)}.png"})
    write_json(tmp_path / "0" / "duals.json", {"image_id": "train-0000-000", "duals": duals})
    write_json(tmp_path / "1" / "duals.json", {"image_id": "train-0000-001", "duals": [], "reason": "no component found"})
    config = {"conf": 0.99, "device": "cpu", "detector": {"backend": "yolo", "model": str(tiny_yolo_path), "conf": 0.0, "imgsz": 64}}
    run_shard(config, [str(tmp_path / "0.png")] * 2, [str(tmp_path / "parse0.json")] * 2, [str(tmp_path / "detect0.json")] * 2,
              [str(tmp_path / "0" / "duals.json"), str(tmp_path / "1" / "duals.json")], [str(tmp_path / "f0.json"), str(tmp_path / "f1.json")])
    first = read_json(tmp_path / "f0.json")
    assert [d["subset"] for d in first["decisions"]] == [[0], [1], [0, 1]]
    assert [d["file"] for d in first["decisions"]] == ["drop-0.png", "drop-1.png", "drop-0+1.png"]
    assert first["n_accepted"] == 3 and set(first["decisions"][0]["removed_scores"]) == {"0"}
    second = read_json(tmp_path / "f1.json")
    assert second["status"] == "skipped" and "no component found" in second["reason"]


# --------------------------------------------------------------------------- stages that fill their batches


@pytest.fixture
def model_batches():
    """Batch size of every forward pass of a YOLO segmentation model (the model still runs)."""
    from ultralytics.nn.tasks import SegmentationModel

    sizes = []

    def record(module, inputs, output):
        if isinstance(module, SegmentationModel):
            sizes.append(int(inputs[0].shape[0]))

    handle = torch.nn.modules.module.register_module_forward_hook(record)
    yield sizes
    handle.remove()


# Mixed sizes and aspects: ultralytics would letterbox a mixed batch differently from a
# single image unless every image is padded to the square (rect=False).
SHAPES = [(48, 128), (128, 40), (64, 64), (40, 100), (90, 60), (48, 128)]
YOLO_CONFIG = {"backend": "yolo", "conf": 0.0, "imgsz": 128, "max_det": 12, "device": "cpu"}


def test_detect_run_shard_packs_images_into_full_model_calls(tiny_yolo_path, tmp_path, model_batches):
    from dualclip.detect import run_shard
    from dualclip.io import bits_to_masks, read_json, read_label_png, write_json, write_png

    labels = [["person", "dog"], ["person"], [], ["dog", "cat"], ["person"], ["cat"]]  # slot 2: nothing parsed
    images, truths, parses, outs = [], [], [], []
    for slot, (shape, names) in enumerate(zip(SHAPES, labels)):
        image_id = f"train-0000-{slot:03d}"
        write_png(tmp_path / "data" / f"{slot}.png", rgb(*shape, seed=slot))
        write_json(tmp_path / "data" / f"{slot}.json", {"image_id": image_id})
        components = [comp(index, name) for index, name in enumerate(names)]
        write_json(tmp_path / "parse" / f"{slot}.json", {"image_id": image_id, "components": [c.to_dict() for c in components],
                                                          "reason": None if names else "nothing in the vocabulary"})
        images.append(str(tmp_path / "data" / f"{slot}.png"))
        truths.append(str(tmp_path / "data" / f"{slot}.json"))
        parses.append(str(tmp_path / "parse" / f"{slot}.json"))
        outs.append(str(tmp_path / "detect" / f"{slot}.json"))
    model = str(tiny_yolo_path)
    run_shard({**YOLO_CONFIG, "model": model, "batch_size": 2}, images, truths, parses, outs)
    assert model_batches == [2, 2, 1]  # the 5 images with components; image by image it was 5 calls

    alone = YoloDetector({**YOLO_CONFIG, "model": model, "batch_size": 1})
    for slot, (shape, names) in enumerate(zip(SHAPES, labels)):
        record = read_json(outs[slot])
        assert record["image_id"] == f"train-0000-{slot:03d}" and record["backend"] == "yolo"
        masks = bits_to_masks(read_label_png(tmp_path / "detect" / record["masks_file"]), len(names))
        if not names:
            assert record["status"] == "skipped" and "nothing in the vocabulary" in record["reason"]
            assert record["components"] == [] and not read_label_png(tmp_path / "detect" / record["masks_file"]).any()
            continue
        # An image's detections do not depend on the images that shared its call.
        expected = alone.detect(rgb(*shape, seed=slot), [comp(index, name) for index, name in enumerate(names)])
        assert [entry["label"] for entry in record["components"]] == names
        for entry, mask, detection in zip(record["components"], masks, expected):
            np.testing.assert_array_equal(mask, detection.mask)
            assert entry["found"] == detection.found and entry["area"] == int(detection.mask.sum())
            assert sorted(entry["scores"]) == pytest.approx(sorted(detection.scores), rel=1e-4, abs=1e-12)
    assert any(entry["found"] for slot in (0, 1, 4) for entry in read_json(outs[slot])["components"])  # not all empty


def test_filter_run_shard_packs_originals_and_duals_into_full_model_calls(tiny_yolo_path, tmp_path, model_batches):
    from dualclip.filter import run_shard
    from dualclip.io import masks_to_bits, read_json, write_json, write_png
    from dualclip.subsets import nonempty_subsets, subset_name

    labels = [["person"], ["dog"], [], ["person"], ["person", "dog"], ["cat"]]  # slot 2: no dual images
    files = {key: [] for key in ("images", "parses", "detects", "duals", "outs")}
    cases = []
    for slot, (shape, names) in enumerate(zip(SHAPES, labels)):
        image_id = f"train-0000-{slot:03d}"
        image = rgb(*shape, seed=slot)
        write_png(tmp_path / "data" / f"{slot}.png", image)
        components = [comp(index, name) for index, name in enumerate(names)]
        write_json(tmp_path / "parse" / f"{slot}.json", {"image_id": image_id, "components": [c.to_dict() for c in components]})
        height, width = shape
        masks = [box(0, height // 2, 0, width // 2, shape), box(height // 2, height, width // 2, width, shape)][:len(names)]
        write_png(tmp_path / "detect" / f"{slot}.masks.png", masks_to_bits(masks, shape))
        write_json(tmp_path / "detect" / f"{slot}.json", {"image_id": image_id, "masks_file": f"{slot}.masks.png",
                                                          "components": [{"index": c.index, "found": True} for c in components]})
        subsets = nonempty_subsets(list(range(len(names))))
        duals = [rgb(*shape, seed=100 * slot + number) for number in range(len(subsets))]
        for subset, dual in zip(subsets, duals):
            write_png(tmp_path / "inpaint" / str(slot) / f"{subset_name(subset)}.png", dual)
        write_json(tmp_path / "inpaint" / str(slot) / "duals.json", {
            "image_id": image_id, "reason": None if names else "no component found",
            "duals": [{"subset": list(subset), "file": f"{subset_name(subset)}.png"} for subset in subsets]})
        for key, path in zip(files, [f"data/{slot}.png", f"parse/{slot}.json", f"detect/{slot}.json",
                                     f"inpaint/{slot}/duals.json", f"filter/{slot}.json"]):
            files[key].append(str(tmp_path / path))
        cases.append((image, components, masks, subsets, duals))
    # conf 0 and no overlap required: every score counts, so the comparison below is not all zeros.
    config = {"conf": 0.0, "min_overlap": 0.0, "device": "cpu", "detector": {**YOLO_CONFIG, "model": str(tiny_yolo_path), "batch_size": 4}}
    run_shard(config, *files.values())
    assert model_batches == [4, 4, 4]  # 2 + 2 + 2 + 4 + 2 images; image by image it was 5 calls

    alone = DualFilter(config, detector=YoloDetector({**YOLO_CONFIG, "model": str(tiny_yolo_path), "batch_size": 1}))
    compared = 0
    for slot, case in enumerate(cases):
        record = read_json(files["outs"][slot])
        assert record["image_id"] == f"train-0000-{slot:03d}"
        if not case[3]:
            assert record["status"] == "skipped" and record["decisions"] == []
            continue
        expected = [decision.to_dict() for decision in alone.evaluate(*case)]
        assert [decision["file"] for decision in record["decisions"]] == [f"{subset_name(s)}.png" for s in case[3]]
        assert record["n_accepted"] == sum(decision["accepted"] for decision in expected)
        for written, wanted in zip(record["decisions"], expected):
            assert {key: written[key] for key in ("subset", "accepted", "reasons", "notes")} == \
                {key: wanted[key] for key in ("subset", "accepted", "reasons", "notes")}
            for key in ("removed_scores", "kept_scores", "original_scores"):
                assert written[key] == pytest.approx(wanted[key], rel=1e-4, abs=1e-12)
                compared += sum(score > 0 for score in wanted[key].values())
    assert compared > 0


class _RunsCode:
    """Unpickling this runs code: what a hostile weights file could carry."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_yolo_weights_load_as_data_and_a_file_carrying_code_is_refused(tiny_yolo_path, tmp_path):
    """Issue 11, finding 7: ultralytics' .pt is a pickled model; it is loaded with weights_only."""
    import torch

    checkpoint = torch.load(tiny_yolo_path, map_location="cpu", weights_only=False)
    marker = tmp_path / "code-ran"
    checkpoint["extra"] = _RunsCode(marker)
    hostile = tmp_path / "hostile-seg.pt"
    torch.save(checkpoint, hostile)
    assert YoloDetector({"model": str(tiny_yolo_path), "imgsz": 64, "device": "cpu"}).model.task == "segment"
    with pytest.raises(RuntimeError, match="filter.detector.model: cannot load YOLO weights"):
        YoloDetector({"model": str(hostile), "imgsz": 64, "device": "cpu", "config_key": "filter.detector.model"})
    assert not marker.exists()
