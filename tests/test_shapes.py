"""Tests for the synthetic compositional world (dualclip/data/shapes.py) and the
data stage that writes it to disk (dualclip/data/__init__.py).

Everything downstream (parse, detect, inpaint, eval) trusts the world's ground truth,
so these tests check the guarantees the module docstring promises on real renders:
determinism, shard stability, held-out compositions, exact label maps, consistent
relations, exact "without object i" re-renders and captions that name every object.
"""

from __future__ import annotations

import re
from collections import Counter

import cv2
import numpy as np
import pytest

from dualclip.data import write_shard
from dualclip.data.shapes import (
    COLOURS,
    NUMBER_WORDS,
    RELATIONS,
    SHAPES,
    WorldConfig,
    heldout_pairs,
    relation_between,
    render_background,
    render_scene,
    sample_scene,
    world_record,
)
from dualclip.io import image_id, read_json, read_label_png, read_rgb

DATASET = {"name": "shapes", "seed": 0, "n_train": 1000, "n_val": 250, "n_test": 500, "image_size": 64,
           "min_objects": 1, "max_objects": 4, "size_fraction_small": 0.30, "size_fraction_large": 0.44}
WORLD = WorldConfig.from_config(DATASET)
N_SCENES = 300  # enough for every template, 3-of-a-kind test scenes and held-out pairs


@pytest.fixture(scope="module")
def scenes():
    """(split, index) -> scene spec for a few hundred scenes of both splits (cheap: no rendering)."""
    return {(split, i): sample_scene(WORLD, split, i) for split in ("train", "test") for i in range(N_SCENES)}


@pytest.fixture(scope="module")
def records():
    """Rendered records of a smaller sample (rendering costs ~2 ms per image)."""
    return [world_record(WORLD, split, i) for split in ("train", "test") for i in range(120)]


# ---------------------------------------------------------------- determinism and shards


def test_same_seed_split_index_gives_identical_image_labels_and_record():
    image_a, labels_a, record_a = world_record(WORLD, "train", 7)
    image_b, labels_b, record_b = world_record(WorldConfig.from_config(dict(DATASET)), "train", 7)
    assert np.array_equal(image_a, image_b)
    assert np.array_equal(labels_a, labels_b)
    assert record_a == record_b


def test_different_seed_or_split_gives_a_different_image():
    image, _, record = world_record(WORLD, "train", 7)
    other_seed, _, other_record = world_record(WorldConfig.from_config({**DATASET, "seed": 1}), "train", 7)
    other_split, _, _ = world_record(WORLD, "test", 7)
    assert not np.array_equal(image, other_seed)
    assert record["scene"] != other_record["scene"]
    assert not np.array_equal(image, other_split)


def test_write_shard_is_byte_identical_across_runs(tmp_path):
    # the PNG files themselves (not only the arrays) must be reproducible: Snakemake reruns
    # and cached results compare files
    write_shard(DATASET, "train", 0, 3, tmp_path / "a")
    write_shard(DATASET, "train", 0, 3, tmp_path / "b")
    for slot in range(3):
        for name in (f"{slot}.png", f"{slot}.labels.png", f"{slot}.json"):
            assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    write_shard({**DATASET, "seed": 1}, "train", 0, 1, tmp_path / "c")
    assert (tmp_path / "a" / "0.png").read_bytes() != (tmp_path / "c" / "0.png").read_bytes()


def test_image_index_renders_the_same_whatever_the_shard_size_or_total(tmp_path):
    # image index 4 is slot 1 of shard 1 with 3-image shards and slot 4 of shard 0 with
    # 6-image shards; raising n_train (the total) must not change it either
    write_shard(DATASET, "train", 1, 3, tmp_path / "small")
    write_shard({**DATASET, "n_train": 24}, "train", 0, 6, tmp_path / "large")
    for small_slot in range(3):
        large_slot = 3 + small_slot
        small_dir, large_dir = tmp_path / "small", tmp_path / "large"
        assert (small_dir / f"{small_slot}.png").read_bytes() == (large_dir / f"{large_slot}.png").read_bytes()
        assert (small_dir / f"{small_slot}.labels.png").read_bytes() == (large_dir / f"{large_slot}.labels.png").read_bytes()
        small, large = read_json(small_dir / f"{small_slot}.json"), read_json(large_dir / f"{large_slot}.json")
        # only the file-layout id differs: the image is the same world image
        assert small.pop("image_id") == image_id("train", 1, small_slot)
        assert large.pop("image_id") == image_id("train", 0, large_slot)
        assert small == large
        assert small["scene"]["index"] == 3 + small_slot


# ---------------------------------------------------------------- held-out compositions


def test_heldout_pairs_cover_each_colour_and_shape_once_and_depend_on_seed():
    pairs = heldout_pairs(0)
    assert len(pairs) == 6
    assert sorted(colour for colour, _ in pairs) == sorted(COLOURS)
    assert sorted(shape for _, shape in pairs) == sorted(SHAPES)
    assert heldout_pairs(0) == pairs  # stable across calls (no salted hash)
    assert any(heldout_pairs(seed) != pairs for seed in range(1, 6))


def test_heldout_pairs_never_in_train_but_present_in_test(scenes):
    heldout = heldout_pairs(WORLD.seed)
    train_pairs = {(o["colour"], o["shape"]) for (split, _), s in scenes.items() if split == "train" for o in s["objects"]}
    test_objects = [o for (split, _), s in scenes.items() if split == "test" for o in s["objects"]]
    assert not train_pairs & heldout
    assert {(o["colour"], o["shape"]) for o in test_objects} & heldout
    # the per-object flag used by the eval's "novel pairs" accuracy agrees with the set
    for scene in scenes.values():
        for obj in scene["objects"]:
            assert obj["novel_pair"] == ((obj["colour"], obj["shape"]) in heldout)


def test_train_has_at_most_two_of_a_shape_but_test_has_three_of_a_kind(scenes):
    most_train = max(max(Counter(o["shape"] for o in s["objects"]).values())
                     for (split, _), s in scenes.items() if split == "train")
    triplets = sum(max(Counter(o["shape"] for o in s["objects"]).values()) >= 3
                   for (split, _), s in scenes.items() if split == "test")
    assert most_train <= WORLD.max_same_shape_train == 2
    assert triplets >= 5  # ~10% of test scenes at the default rate; 5 of 300 is a loose floor


def test_object_counts_within_configured_range(scenes):
    counts = Counter(len(s["objects"]) for s in scenes.values())
    assert set(counts) == set(range(WORLD.min_objects, WORLD.max_objects + 1))


# ---------------------------------------------------------------- label map


def _alone(scene: dict, obj_id: int) -> np.ndarray:
    """The object's full instance mask, rendered with every other object excluded."""
    others = tuple(o["id"] for o in scene["objects"] if o["id"] != obj_id)
    return render_scene(scene, exclude=others)[1] == obj_id + 1


def test_label_map_matches_the_objects(records):
    for image, labels, record in records:
        objects = record["scene"]["objects"]
        assert labels.shape == image.shape[:2] and labels.dtype == np.uint8
        # ids + 1 exactly, background 0, nothing else
        assert set(np.unique(labels)) == {0} | {o["id"] + 1 for o in objects}
        for obj in objects:
            area = int((labels == obj["id"] + 1).sum())
            assert area > 0 and area == obj["area"]
            # the label pixels carry the object's colour in the RGB image (shade jitter +-12)
            mean = image[labels == obj["id"] + 1].reshape(-1, 3).mean(0)
            assert np.abs(mean - np.array(COLOURS[obj["colour"]])).max() < 30, (obj, mean)


def test_label_pixels_inside_bbox_for_shapes_within_their_radius(records):
    # circles, hexagons and stars have every vertex within the nominal radius, so their
    # pixels must lie in the bbox (1 px tolerance: cv2 rasterises the closed boundary)
    for _, labels, record in records:
        for obj in record["scene"]["objects"]:
            if obj["shape"] not in ("circle", "hexagon", "star"):
                continue
            x, y, w, h = obj["bbox"]
            ys, xs = np.nonzero(labels == obj["id"] + 1)
            assert xs.min() >= x - 1 and xs.max() <= x + w and ys.min() >= y - 1 and ys.max() <= y + h, obj


def test_every_object_inside_its_bbox_and_no_objects_overlap(scenes):
    for (split, index), scene in scenes.items():
        seen = np.zeros((scene["image_size"],) * 2, dtype=int)
        for obj in scene["objects"]:
            mask = _alone(scene, obj["id"])
            x, y, w, h = obj["bbox"]
            ys, xs = np.nonzero(mask)
            assert xs.min() >= x - 1 and xs.max() <= x + w and ys.min() >= y - 1 and ys.max() <= y + h, (split, index, obj)
            seen += mask
        assert seen.max() <= 1, (split, index)


def test_no_overlap_between_objects_in_train_scenes(scenes):
    # each object drawn alone must keep all its pixels in the full label map: no object
    # hides another (the oracle's masks and the areas depend on it)
    for (split, index), scene in list(scenes.items())[:80]:
        _, labels = render_scene(scene)
        for obj in scene["objects"]:
            assert np.array_equal(_alone(scene, obj["id"]), labels == obj["id"] + 1), (split, index, obj["id"])


# ---------------------------------------------------------------- relations


OPPOSITE = {"left": "right", "right": "left", "above": "below", "below": "above"}


def test_relations_are_complete_antisymmetric_and_match_the_layout(scenes):
    for scene in scenes.values():
        objects = {o["id"]: o for o in scene["objects"]}
        n = len(objects)
        assert len(scene["relations"]) == n * (n - 1)
        for rel in scene["relations"]:
            a, b = objects[rel["subject"]], objects[rel["object"]]
            assert relation_between(scene, b["id"], a["id"]) == OPPOSITE[rel["relation"]]
            ax, ay = a["bbox"][0] + a["bbox"][2] / 2, a["bbox"][1] + a["bbox"][3] / 2
            bx, by = b["bbox"][0] + b["bbox"][2] / 2, b["bbox"][1] + b["bbox"][3] / 2
            # "a is left of b" means a's centre has the smaller x (image y grows downwards)
            expected = {"left": ax < bx, "right": ax > bx, "above": ay < by, "below": ay > by}[rel["relation"]]
            assert expected, (rel, a["bbox"], b["bbox"])


def test_relation_between_unknown_pair_raises(scenes):
    scene = scenes[("train", 0)]
    with pytest.raises(KeyError):
        relation_between(scene, 0, 0)


# ---------------------------------------------------------------- exclusion renders


def test_render_without_object_changes_only_that_object(records):
    checked = 0
    for _, _, record in records[:60]:
        scene = record["scene"]
        if len(scene["objects"]) < 2:
            continue
        full, labels = render_scene(scene)
        background = render_background(scene["image_size"], scene["background_seed"])
        for obj in scene["objects"]:
            without, labels_without = render_scene(scene, exclude=(obj["id"],))
            # the image is drawn anti-aliased, the label map without: faint edge pixels reach
            # up to 2 px beyond the label mask (measured over 600 scenes), nothing further
            region = cv2.dilate((labels == obj["id"] + 1).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
            assert np.array_equal(without[~region], full[~region])
            # where the object was, the image is now exactly the background texture (except
            # within the 2-px anti-aliased fringe of a neighbouring object)
            inside = labels == obj["id"] + 1
            others = (labels > 0) & ~inside
            clear = inside & ~cv2.dilate(others.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
            assert clear.sum() > 0.8 * inside.sum()
            assert np.array_equal(without[clear], background[clear])
            assert np.abs(full[inside].astype(int) - background[inside].astype(int)).mean() > 10
            # the excluded object is gone from the label map; the others are untouched
            assert not (labels_without == obj["id"] + 1).any()
            assert np.array_equal(labels_without[~inside], labels[~inside])
            checked += 1
    assert checked > 20


def test_background_is_textured_not_uniform():
    for index in range(30):
        background = render_background(64, index).astype(float)
        assert background.std() > 8
        # not just pixel grain: a blurred copy still varies (gradient, stripes, blotches)
        assert cv2.GaussianBlur(background, (0, 0), 3).std() > 6
    assert not np.array_equal(render_background(64, 0), render_background(64, 1))


# ---------------------------------------------------------------- captions

PHRASE = re.compile(
    r"\b(a|an|one|two|three|four) (?:(small|large) )?(" + "|".join(COLOURS) + r") (" + "|".join(SHAPES) + r")(?:e?s)?\b"
)
COUNT = {"a": 1, "an": 1, **{word: number for number, word in NUMBER_WORDS.items()}}


def test_captions_mention_every_object_with_count_words(records):
    templates = Counter()
    grouped = 0
    for _, _, record in records:
        scene, caption = record["scene"], record["caption"]
        templates[record["template"]] += 1
        mentioned = Counter()
        for match in PHRASE.finditer(caption):
            word, size, colour, shape = match.groups()
            mentioned[(colour, shape)] += COUNT[word]
            if size is not None:  # a size word, when given, is the object's true size
                assert any(o["size"] == size and (o["colour"], o["shape"]) == (colour, shape) for o in scene["objects"])
            if COUNT[word] > 1:
                grouped += 1
                assert match.group(0).endswith(("s", "es")), caption  # plural noun after a count word
        truth = Counter((o["colour"], o["shape"]) for o in scene["objects"])
        assert mentioned == truth, (caption, truth)
    # every template occurs and count words ("two red circles") are actually exercised
    assert set(templates) == {"list", "attributes", "count", "relation"}
    assert grouped > 0


def test_relation_captions_state_a_true_relation(records):
    relation_words = "|".join(sorted(RELATIONS.values(), key=len, reverse=True))
    pattern = re.compile(rf"^(.+?) ({relation_words}) (.+?)(?:, | and |$)")
    phrase = re.compile(r"^(?:a|an) (?:(small|large) )?(\w+) (\w+)$")
    n = 0
    for _, _, record in records:
        if record["template"] != "relation":
            continue
        scene = record["scene"]
        head, words, tail = pattern.match(record["caption"]).groups()
        relation = {v: k for k, v in RELATIONS.items()}[words]
        candidates = []
        for text in (head, tail):
            size, colour, shape = phrase.match(text).groups()
            candidates.append([o for o in scene["objects"] if (o["colour"], o["shape"]) == (colour, shape)
                               and (size is None or o["size"] == size)])
        assert any(relation_between(scene, a["id"], b["id"]) == relation
                   for a in candidates[0] for b in candidates[1] if a["id"] != b["id"]), record["caption"]
        n += 1
    assert n > 10


# ---------------------------------------------------------------- write_shard files


def test_write_shard_writes_complete_slots_with_image_id(tmp_path):
    write_shard(DATASET, "val", 2, 4, tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    # exactly the three files per slot, no temporary leftovers of the atomic writes
    assert names == sorted(f"{slot}{ext}" for slot in range(4) for ext in (".png", ".labels.png", ".json"))
    for slot in range(4):
        record = read_json(tmp_path / f"{slot}.json")
        assert record["image_id"] == image_id("val", 2, slot) == f"val-0002-{slot:03d}"
        image, labels, truth = world_record(WORLD, "val", 2 * 4 + slot)
        assert np.array_equal(read_rgb(tmp_path / f"{slot}.png"), image)
        assert np.array_equal(read_label_png(tmp_path / f"{slot}.labels.png"), labels)
        assert {k: v for k, v in record.items() if k != "image_id"} == truth
        assert record["caption"] and record["dataset"] == "shapes"


def test_write_shard_killed_mid_slot_leaves_no_json_nor_partial_files(tmp_path, monkeypatch):
    # the JSON is the slot's completion marker: if writing the label map fails, the slot
    # must have no JSON and no half-written temporary file
    import dualclip.data as data_stage
    import dualclip.io as io

    real_write_png = io.write_png
    calls = []

    def failing_write_png(path, array):
        calls.append(path)
        if str(path).endswith("1.labels.png"):
            # fail inside the atomic writer, after the temporary file was opened
            def write(handle):
                handle.write(b"partial")
                raise RuntimeError("killed")
            io.atomic_write(path, write)
        real_write_png(path, array)

    monkeypatch.setattr(data_stage, "write_png", failing_write_png)
    with pytest.raises(RuntimeError, match="killed"):
        write_shard(DATASET, "train", 0, 3, tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["0.json", "0.labels.png", "0.png", "1.png"]


def test_unknown_dataset_name_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset"):
        write_shard({"name": "imagenet"}, "train", 0, 1, tmp_path)
