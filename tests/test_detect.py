"""Tests for the ground-truth oracle detector (dualclip/detect/oracle.py), the detect
stage's run_shard (dualclip/detect/__init__.py) and the bit-packed mask PNG
(dualclip/io.py masks_to_bits / bits_to_masks).

The scenes are hand-made world scenes rendered by dualclip.data.shapes, so the
expected instance of every component is known exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

from dualclip.data.shapes import render_scene
from dualclip.detect import detected_indices, get_detector, run_shard
from dualclip.io import bits_to_masks, masks_to_bits, read_json, read_label_png, write_png
from dualclip.parse import Component
from helpers import world_shard_with_odd_captions

CELL = {0: (3, 3), 1: (35, 3), 2: (3, 35), 3: (35, 35)}  # top-left corners of the 2x2 grid


def make_scene(specs: list[tuple[str, str, str]]) -> dict:
    """A scene of (shape, colour, size) objects, one per grid cell, rendered for real."""
    objects = []
    for i, (shape, colour, size) in enumerate(specs):
        x, y = CELL[i]
        objects.append({"id": i, "shape": shape, "colour": colour, "size": size,
                        "bbox": [x, y, 26 if size == "large" else 18, 26 if size == "large" else 18],
                        "angle": 0.0, "novel_pair": False})
    return {"split": "test", "index": 0, "image_size": 64, "background_seed": 1, "objects": objects, "relations": []}


def truth_of(scene: dict):
    image, labels = render_scene(scene)
    return image, {"scene": scene, "labels": labels}


def component(index: int, label: str, attributes: list[str], count: int = 1) -> Component:
    text = " ".join(["a" if count == 1 else str(count), *attributes, label])
    return Component(index=index, text=text, start=0, end=len(text), head=label, label=label,
                     attributes=attributes, count=count, plural=count > 1)


@pytest.fixture(scope="module")
def oracle():
    return get_detector({"backend": "oracle"})


SCENE = make_scene([("circle", "red", "small"), ("circle", "blue", "large"), ("circle", "red", "large"), ("star", "green", "small")])


def test_attributes_pick_the_matching_instances(oracle):
    image, truth = truth_of(SCENE)
    labels = truth["labels"]
    components = [component(0, "circle", ["blue"]), component(1, "circle", ["red"], count=2),
                  component(2, "circle", ["small", "red"]), component(3, "star", [])]
    detections = oracle.detect(image, components, truth)
    assert [d.component for d in detections] == [0, 1, 2, 3]
    # "a blue circle" and "two red circles" are different objects of one class
    assert detections[0].instances == [1]
    assert np.array_equal(detections[0].mask, labels == 2)
    assert sorted(detections[1].instances) == [0, 2]
    assert np.array_equal(detections[1].mask, (labels == 1) | (labels == 3))
    assert not (detections[0].mask & detections[1].mask).any()
    # colour and size together narrow it to one instance
    assert detections[2].instances == [0]
    assert np.array_equal(detections[3].mask, labels == 4)
    assert all(d.found for d in detections)
    assert all(len(d.scores) == len(d.instances) for d in detections)


def test_attribute_matching_is_case_insensitive(oracle):
    image, truth = truth_of(SCENE)
    detection = oracle.detect(image, [component(0, "circle", ["Blue"])], truth)[0]
    assert detection.instances == [1]


def test_unmodelled_attribute_does_not_hide_the_object(oracle):
    # "a shiny star": the world has no "shiny", the only star must still be found
    image, truth = truth_of(SCENE)
    detection = oracle.detect(image, [component(0, "star", ["shiny"])], truth)[0]
    assert detection.found and detection.instances == [3]


@pytest.mark.parametrize("attributes, expected", [(["yellow"], []), (["shiny", "red"], [0, 2])])
def test_known_attribute_that_matches_nothing_is_not_ignored(oracle, attributes, expected):
    image, truth = truth_of(SCENE)
    detection = oracle.detect(image, [component(0, "circle", attributes)], truth)[0]
    assert sorted(detection.instances) == expected
    assert detection.found == bool(expected)


def test_absent_class_is_not_found(oracle):
    image, truth = truth_of(SCENE)
    detections = oracle.detect(image, [component(0, "star", []), component(1, "hexagon", ["red"])], truth)
    assert detections[0].found
    assert not detections[1].found and detections[1].instances == [] and detections[1].scores == []
    assert detections[1].mask.shape == image.shape[:2] and detections[1].mask.dtype == bool


@pytest.mark.parametrize("truth", [None, {"scene": SCENE["objects"]}])
def test_oracle_without_ground_truth_is_a_clear_error(oracle, truth):
    image, _ = truth_of(SCENE)
    with pytest.raises(ValueError, match="ground-truth"):
        oracle.detect(image, [component(0, "circle", [])], truth)


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown backend 'sam'; use .*'yolo' or 'owlv2'"):
        get_detector({"backend": "sam"})


# ---------------------------------------------------------------- mask bit packing


def test_masks_bits_round_trip_with_overlaps_and_png(tmp_path):
    rng = np.random.default_rng(0)
    for count in (0, 1, 3, 8):
        masks = [rng.random((17, 23)) < 0.4 for _ in range(count)]  # random masks overlap
        bits = masks_to_bits(masks, (17, 23))
        assert bits.dtype == np.uint8
        write_png(tmp_path / f"{count}.png", bits)  # through the file, as the stages use it
        back = bits_to_masks(read_label_png(tmp_path / f"{count}.png"), count)
        assert len(back) == count
        for mask, restored in zip(masks, back):
            assert restored.dtype == bool and np.array_equal(mask, restored)
    # bit i is mask i: the 8th mask is the high bit
    top = masks_to_bits([np.zeros((2, 2), bool)] * 7 + [np.ones((2, 2), bool)], (2, 2))
    assert (top == 128).all()


def test_more_than_eight_masks_is_an_error():
    with pytest.raises(ValueError, match="at most 8"):
        masks_to_bits([np.zeros((2, 2), bool)] * 9, (2, 2))


# ---------------------------------------------------------------- run_shard on real files


@pytest.fixture(scope="module")
def shard(tmp_path_factory):
    """A rendered 4-image shard, parsed for real; slot 2's caption gains an absent object
    and slot 3's caption names nothing of the vocabulary."""
    from dualclip.parse import run_shard as parse_shard

    root = tmp_path_factory.mktemp("detect")
    truth_files = world_shard_with_odd_captions(root, 4, absent_slot=2, absent_article="a white",
                                                nothing_slot=3, nothing_caption="a dog on a couch")
    parse_files = [str(root / "parse" / f"{slot}.json") for slot in range(4)]
    parse_shard({"backend": "spacy", "max_components": 3, "hard_negatives": False,
                 "vocabulary": {"circle": ["disc"], "square": ["box"], "triangle": [], "star": [], "hexagon": [], "cross": ["plus"]},
                 "attribute_words": ["red", "green", "blue", "yellow", "purple", "orange", "small", "large"]},
                truth_files, parse_files)
    images = [str(root / "data" / f"{slot}.png") for slot in range(4)]
    out = [str(root / "detect" / f"{slot}.json") for slot in range(4)]
    run_shard({"backend": "oracle"}, images, truth_files, parse_files, out)
    return root, truth_files, parse_files, out


def test_run_shard_masks_follow_the_parsed_components(shard):
    root, truth_files, parse_files, out = shard
    for slot in range(3):
        record, parsed, truth = read_json(out[slot]), read_json(parse_files[slot]), read_json(truth_files[slot])
        labels = read_label_png(root / "data" / f"{slot}.labels.png")
        assert record["image_id"] == parsed["image_id"] == truth["image_id"]
        assert record["masks_file"] == f"{slot}.masks.png"
        masks = bits_to_masks(read_label_png(root / "detect" / record["masks_file"]), len(record["components"]))
        assert [c["index"] for c in record["components"]] == list(range(len(parsed["components"])))
        objects = truth["scene"]["objects"]
        for entry, comp, mask in zip(record["components"], parsed["components"], masks):
            assert entry["label"] == comp["label"]
            assert entry["area"] == int(mask.sum())
            # the mask is exactly the union of the recorded ground-truth instances, whose
            # shape is the component's class and whose colour is the caption's colour
            assert np.array_equal(mask, np.isin(labels, [i + 1 for i in entry["instances"]]))
            for i in entry["instances"]:
                assert objects[i]["shape"] == comp["label"]
                assert {w for w in comp["attributes"]} <= {objects[i]["colour"], objects[i]["size"]}
            assert entry["found"] == bool(entry["instances"])


def test_run_shard_absent_object_is_not_found_and_takes_no_subset(shard):
    _, _, parse_files, out = shard
    record = read_json(out[2])
    parsed = read_json(parse_files[2])
    assert parsed["components"][0]["text"].startswith("a white")
    assert record["components"][0]["found"] is False and record["components"][0]["area"] == 0
    assert record["status"] == "ok"  # the other components were found
    assert detected_indices(record) == [c["index"] for c in record["components"][1:]]


def test_run_shard_without_components_is_skipped_with_an_empty_mask(shard):
    root, _, _, out = shard
    record = read_json(out[3])
    assert record["components"] == [] and record["status"] == "skipped"
    assert "no components parsed" in record["reason"]
    assert not read_label_png(root / "detect" / "3.masks.png").any()
    assert detected_indices(record) == []
