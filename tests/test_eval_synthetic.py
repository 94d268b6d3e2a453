"""Tests for the synthetic benchmark suites (dualclip/eval/synthetic.py).

The suites are built from the ground truth of ~100 real test scenes; every item is then
re-checked against its scene by an independent reading of its texts, so a negative that
happens to be true (or a positive that is false) fails here. score_suites runs end to
end with a tiny, randomly initialised open_clip model.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from dualclip.data import write_shard
from dualclip.data.shapes import COLOURS, NUMBER_WORDS, RELATIONS, SHAPES, relation_between, render_scene
from dualclip.eval.scoring import PER_ITEM_SCORE_COLUMNS, strictly_best
from dualclip.eval.synthetic import (
    ALL_SUITES,
    CLASSIFICATION_SUITES,
    IMAGE_SUITES,
    TEXT_SUITES,
    build_suites,
    class_prompts,
    score_suites,
)
from dualclip.io import read_json, read_rgb

DATASET = {"name": "shapes", "seed": 0, "image_size": 64, "min_objects": 1, "max_objects": 4}
INPAINT = {"backend": "opencv", "method": "telea", "radius": 3, "dilation": 2}
N_SCENES = 100

COLOUR = "|".join(COLOURS)
SHAPE = "|".join(SHAPES)
NUMBER = {word: n for n, word in NUMBER_WORDS.items()}
PHRASE = re.compile(rf"^(?:a|an) (?:({COLOUR}) )?({SHAPE})$")
RELATION_WORDS = {words: name for name, words in RELATIONS.items()}


def phrases(text: str) -> list[tuple[str | None, str]]:
    """'a red circle, a star and a blue cross' -> [('red', 'circle'), (None, 'star'), ('blue', 'cross')]."""
    parts = re.split(r", | and ", text)
    out = []
    for part in parts:
        match = PHRASE.match(part)
        assert match, (text, part)
        out.append(match.groups())
    return out


def scene_pairs(scene: dict) -> Counter:
    return Counter((o["colour"], o["shape"]) for o in scene["objects"])


def parse_relation(text: str):
    words = "|".join(sorted(RELATION_WORDS, key=len, reverse=True))
    match = re.match(rf"^(.+?) ({words}) (.+)$", text)
    (a,), (b,) = phrases(match.group(1)), phrases(match.group(3))
    return a, RELATION_WORDS[match.group(2)], b


def find(scene: dict, colour: str, shape: str) -> list[dict]:
    return [o for o in scene["objects"] if (o["colour"], o["shape"]) == (colour, shape)]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("suites")
    write_shard(DATASET, "test", 0, N_SCENES, root / "data")
    records = [(str(root / "data" / f"{slot}.png"), read_json(root / "data" / f"{slot}.json")) for slot in range(N_SCENES)]
    counts = build_suites(INPAINT, records, ALL_SUITES, 0, root / "eval" / "suites.json")
    suites = read_json(root / "eval" / "suites.json")
    scenes = {record["scene"]["index"]: record["scene"] for _, record in records}
    return root, counts, suites, scenes


def items_of(suites: dict, suite: str) -> list[dict]:
    items = [item for item in suites["items"] if item["suite"] == suite]
    assert items, suite
    return items


# ---------------------------------------------------------------- building


def test_every_suite_is_built_and_counted(built):
    _, counts, suites, scenes = built
    assert set(counts) == set(TEXT_SUITES + IMAGE_SUITES) | set(CLASSIFICATION_SUITES)
    n_single = sum(len(scene["objects"]) == 1 for scene in scenes.values())
    assert n_single >= 10 and all(counts[suite] == n_single for suite in CLASSIFICATION_SUITES)
    assert {k: v for k, v in counts.items() if k not in CLASSIFICATION_SUITES} == dict(
        Counter(item["suite"] for item in suites["items"]))
    assert suites["counts"] == counts
    assert len({item["item_id"] for item in suites["items"]}) == len(suites["items"])
    assert len(suites["retrieval"]) == N_SCENES


def test_text_items_have_distinct_positive_and_negatives(built):
    _, _, suites, scenes = built
    for item in suites["items"]:
        scene = scenes[item["scene"]]
        assert item["n_objects"] == len(scene["objects"])
        assert item["novel"] == any(o["novel_pair"] for o in scene["objects"])
        if item["kind"] == "text":
            assert item["negatives"] and all(n != item["positive"] for n in item["negatives"])


@pytest.mark.parametrize("suite", ["sc_replace_obj", "sc_replace_att", "sc_add_obj", "sc_swap_att", "omission"])
def test_listing_positives_describe_the_scene_exactly(built, suite):
    _, _, suites, scenes = built
    for item in items_of(suites, suite):
        assert Counter(phrases(item["positive"])) == scene_pairs(scenes[item["scene"]]), item


def replaced_phrase(item) -> tuple[tuple, tuple]:
    """The one phrase (old, new) in which the item's negative differs from its positive."""
    positive, negative = phrases(item["positive"]), phrases(item["negatives"][0])
    changed = [(p, n) for p, n in zip(positive, negative) if p != n]
    assert len(positive) == len(negative) and len(changed) == 1, item
    return changed[0]


def test_replace_att_new_pair_is_absent_and_both_captions_name_the_same_colours(built):
    _, _, suites, scenes = built
    for item in items_of(suites, "sc_replace_att"):
        old, new = replaced_phrase(item)
        assert old[1] == new[1] and old[0] != new[0]  # same shape, other colour
        assert not find(scenes[item["scene"]], *new), item
        # calibrated: the old colour stays on another object and the new one is taken from
        # one, so only the binding of colour to shape tells the captions apart
        colours = {colour for colour, _ in phrases(item["positive"])}
        assert colours == {colour for colour, _ in phrases(item["negatives"][0])}, item
    # one item per look (colour, shape) of an object that can be recoloured so
    recolourable = sum(len({(o["colour"], o["shape"]) for o in s["objects"] if sum(p["colour"] == o["colour"] for p in s["objects"]) > 1
                            and any(not find(s, p["colour"], o["shape"]) for p in s["objects"])}) for s in scenes.values())
    assert len(items_of(suites, "sc_replace_att")) == recolourable > 0


def test_replace_obj_new_shape_is_absent(built):
    _, _, suites, scenes = built
    for item in items_of(suites, "sc_replace_obj"):
        old, new = replaced_phrase(item)
        assert old[0] == new[0] and new[1] not in {o["shape"] for o in scenes[item["scene"]]["objects"]}, item


def test_add_obj_added_pair_is_absent(built):
    _, _, suites, scenes = built
    for item in items_of(suites, "sc_add_obj"):
        positive, negative = phrases(item["positive"]), phrases(item["negatives"][0])
        assert negative[:-1] == positive, item
        assert not find(scenes[item["scene"]], *negative[-1]), item


def test_swap_att_negative_keeps_shapes_and_colours_but_names_an_absent_pair(built):
    _, _, suites, scenes = built
    for item in items_of(suites, "sc_swap_att"):
        scene = scenes[item["scene"]]
        positive, negative = phrases(item["positive"]), phrases(item["negatives"][0])
        assert [s for _, s in positive] == [s for _, s in negative]
        assert sorted(c for c, _ in positive) == sorted(c for c, _ in negative)
        assert any(not find(scene, *pair) for pair in negative), item


def test_add_att_positive_is_bare_and_negative_colour_is_wrong(built):
    _, _, suites, scenes = built
    for item in items_of(suites, "sc_add_att"):
        scene = scenes[item["scene"]]
        positive, negative = phrases(item["positive"]), phrases(item["negatives"][0])
        assert all(colour is None for colour, _ in positive)
        assert Counter(s for _, s in positive) == Counter(o["shape"] for o in scene["objects"])
        coloured = [pair for pair in negative if pair[0] is not None]
        assert len(coloured) == 1 and not find(scene, *coloured[0]), item


def test_relation_positive_holds_and_negative_does_not(built):
    _, _, suites, scenes = built
    for suite in ("aro_relation", "sc_swap_obj"):
        for item in items_of(suites, suite):
            scene = scenes[item["scene"]]
            a, relation, b = parse_relation(item["positive"])
            (obj_a,), (obj_b,) = find(scene, *a), find(scene, *b)  # described objects are unique
            assert relation_between(scene, obj_a["id"], obj_b["id"]) == relation, item
            na, n_relation, nb = parse_relation(item["negatives"][0])
            assert n_relation == relation
            if suite == "aro_relation":
                # the same two objects, roles exchanged: false by antisymmetry
                assert (na, nb) == (b, a)
                assert relation_between(scene, obj_b["id"], obj_a["id"]) != relation
            else:
                # shapes exchanged: at least one described object does not exist
                assert (na[1], nb[1]) == (b[1], a[1]) and (not find(scene, *na) or not find(scene, *nb)), item


def test_attribution_negative_names_an_absent_size_shape(built):
    _, _, suites, scenes = built
    pattern = re.compile(rf"^the (small|large) ({SHAPE}) and the (small|large) ({SHAPE})$")
    for item in items_of(suites, "aro_attribution"):
        scene = scenes[item["scene"]]
        present = {(o["size"], o["shape"]) for o in scene["objects"]}
        s1, h1, s2, h2 = pattern.match(item["positive"]).groups()
        assert (s1, h1) in present and (s2, h2) in present, item
        n1, g1, n2, g2 = pattern.match(item["negatives"][0]).groups()
        assert (g1, g2) == (h1, h2) and not ((n1, g1) in present and (n2, g2) in present), item


def test_existence_items_match_the_scene(built):
    _, _, suites, scenes = built
    kinds = Counter()
    for item in items_of(suites, "valse_existence"):
        shapes = {o["shape"] for o in scenes[item["scene"]]["objects"]}
        for text, truth in [(item["positive"], True)] + [(n, False) for n in item["negatives"]]:
            negated = re.match(rf"^there is no ({SHAPE})$", text)
            affirmed = re.match(rf"^there is an? ({SHAPE})$", text)
            assert negated or affirmed, text
            holds = (negated.group(1) not in shapes) if negated else (affirmed.group(1) in shapes)
            assert holds == truth, item
        kinds[item["positive"].startswith("there is no")] += 1
    assert kinds[True] and kinds[False]  # both directions are tested


def test_counting_wrong_count_differs_from_true_count(built):
    _, _, suites, scenes = built
    pattern = re.compile(rf"^there (is|are) (an?|{'|'.join(NUMBER)}) ({SHAPE})(?:e?s)?$")
    for item in items_of(suites, "valse_counting"):
        scene = scenes[item["scene"]]
        verb, word, shape = pattern.match(item["positive"]).groups()
        true_count = sum(o["shape"] == shape for o in scene["objects"])
        count = NUMBER.get(word, 1)
        assert count == true_count and verb == ("are" if count > 1 else "is"), item
        verb, word, other = pattern.match(item["negatives"][0]).groups()
        assert other == shape and NUMBER.get(word, 1) != true_count and 1 <= NUMBER.get(word, 1) <= 4, item


def test_omission_negative_drops_exactly_one_object(built):
    _, _, suites, _ = built
    for item in items_of(suites, "omission"):
        positive, negative = Counter(phrases(item["positive"])), Counter(phrases(item["negatives"][0]))
        assert sum((positive - negative).values()) == 1 and not (negative - positive), item


def test_image_side_negative_is_the_scene_without_a_mentioned_object(built):
    _, _, suites, scenes = built
    for item in items_of(suites, "image_side"):
        scene = scenes[item["scene"]]
        original = read_rgb(item["positive_image"])
        (negative_path,) = item["negative_images"]
        assert Path(negative_path).exists() and negative_path != item["positive_image"]
        negative = read_rgb(negative_path)
        assert not np.array_equal(negative, original)
        # it is exactly the clean re-render without one object, and the caption names all
        removed = int(re.search(r"-without-(\d+)\.png$", negative_path).group(1))
        assert np.array_equal(negative, render_scene(scene, exclude=(removed,))[0])
        assert Counter(phrases(item["caption"])) == scene_pairs(scene)
        # calibrated: another object keeps the removed one's colour, so absence cannot be
        # read off the colour histogram
        colour = scene["objects"][removed]["colour"]
        assert sum(o["colour"] == colour for o in scene["objects"]) > 1, item
    # every such object of a scene is an item of its own
    shared = sum(sum(p["colour"] == o["colour"] for p in s["objects"]) > 1 for s in scenes.values() for o in s["objects"])
    assert len(items_of(suites, "image_side")) == shared > 0


def test_image_side_sham_keeps_every_object_and_the_dual_removes_one(built):
    _, _, suites, scenes = built
    for item in items_of(suites, "image_side_sham"):
        scene = scenes[item["scene"]]
        image, labels = render_scene(scene)
        sham, (dual_path,) = read_rgb(item["positive_image"]), item["negative_images"]
        dual = read_rgb(dual_path)
        assert not np.array_equal(sham, image) and not np.array_equal(dual, image) and not np.array_equal(sham, dual)
        # the sham patch avoids every object: all object pixels are untouched
        assert np.array_equal(sham[labels > 0], image[labels > 0])
        # the dual removed one object (most of its pixels changed); the dilated mask may
        # graze a neighbour's edge, but no other object loses more than a fringe
        fractions = sorted((np.abs(dual[labels == o["id"] + 1].astype(int) - image[labels == o["id"] + 1]).max(-1) > 0).mean()
                           for o in scene["objects"])
        assert fractions[-1] > 0.9 and (len(fractions) == 1 or fractions[-2] < 0.2), fractions


def test_retrieval_entries_describe_their_scene(built):
    _, _, suites, scenes = built
    for entry, index in zip(suites["retrieval"], range(N_SCENES)):
        scene = scenes[index]
        assert entry["image"].endswith(f"/{index}.png")
        assert sorted(map(tuple, entry["object_set"])) == sorted(scene_pairs(scene).elements())
        assert Counter(phrases(entry["caption"])) == scene_pairs(scene)


def test_classification_items_are_the_single_object_scenes(built):
    root, _, suites, scenes = built
    entries = suites["classification"]["items"]
    assert suites["classification"]["suites"] == list(CLASSIFICATION_SUITES)
    assert sorted(e["scene"] for e in entries) == sorted(i for i, s in scenes.items() if len(s["objects"]) == 1)
    for entry in entries:
        (obj,) = scenes[entry["scene"]]["objects"]
        assert (entry["shape"], entry["colour"], entry["novel"]) == (obj["shape"], obj["colour"], bool(obj["novel_pair"]))
        assert entry["image"] == str(root / "data" / f"{entry['scene']}.png")


def test_class_prompts_cover_every_value_of_the_other_attribute():
    shapes, colours = class_prompts("shape"), class_prompts("colour")
    assert list(shapes) == SHAPES and list(colours) == list(COLOURS)
    assert "a photo of a red circle" in shapes["circle"] and "an orange star" in colours["orange"]
    for cls, prompts in shapes.items():
        assert len(prompts) == 2 * len(COLOURS) and all(p.endswith(f" {cls}") for p in prompts)
    for cls, prompts in colours.items():
        assert len(prompts) == 2 * len(SHAPES) and all(f" {cls} " in p for p in prompts)


def test_build_is_deterministic(built, tmp_path):
    root, _, suites, _ = built
    records = [(str(root / "data" / f"{slot}.png"), read_json(root / "data" / f"{slot}.json")) for slot in range(20)]
    build_suites(INPAINT, records, ["sc_replace_att", "valse_counting"], 0, tmp_path / "a.json")
    build_suites(INPAINT, records, ["sc_replace_att", "valse_counting"], 0, tmp_path / "b.json")
    assert read_json(tmp_path / "a.json") == read_json(tmp_path / "b.json")


def test_missing_suite_is_a_clear_error(built, tmp_path):
    root, _, _, scenes = built
    # aro_relation needs two distinct objects: a one-object scene cannot provide it
    single = next(i for i, s in scenes.items() if len(s["objects"]) == 1)
    records = [(str(root / "data" / f"{single}.png"), read_json(root / "data" / f"{single}.json"))]
    with pytest.raises(ValueError, match="aro_relation"):
        build_suites(INPAINT, records, ["aro_relation"], 0, tmp_path / "x.json")


# ---------------------------------------------------------------- scoring


def test_strictly_best_treats_ties_as_wrong():
    assert strictly_best(0.5, [0.4, 0.1])
    assert not strictly_best(0.5, [0.5])
    assert not strictly_best(0.5, [0.1, 0.5])
    assert not strictly_best(0.5, [0.6])


@pytest.fixture(scope="module")
def tiny_model():
    import torch

    from dualclip.train.models import create_model

    # one intra-op thread: on the shared 2-core machine, two contending threads make this
    # tiny forward pass 10-30x slower
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield create_model("dualclip-tiny")
    torch.set_num_threads(threads)


def test_score_suites_end_to_end_with_a_tiny_model(built, tiny_model):
    import torch

    _, _, suites, _ = built
    # a small suites file: 3 items per suite and 12 retrieval entries
    items = [item for suite in TEXT_SUITES + IMAGE_SUITES for item in items_of(suites, suite)[:3]]
    small = {"items": items, "retrieval": suites["retrieval"][:12], "counts": {}}
    model, preprocess, tokenizer = tiny_model
    torch.manual_seed(0)
    per_item, summary = score_suites(model, preprocess, tokenizer, small, "cpu", batch_size=16)
    # one row per item and per retrieval query
    assert len(per_item) == len(items) + 12
    assert set(PER_ITEM_SCORE_COLUMNS) <= set(per_item.columns)  # the schema the real benchmarks share
    assert list(per_item["item_id"][: len(items)]) == [item["item_id"] for item in items]
    scored = per_item[per_item["suite"] != "retrieval_t2i"]
    # correctness is the strict rule applied to the recorded scores
    assert (scored["correct"] == (scored["pos_score"] > scored["max_neg_score"])).all()
    assert scored["pos_score"].between(-1, 1).all()
    # blind scores exist for the text suites only
    text = per_item["suite"].isin(TEXT_SUITES)
    assert per_item.loc[text, "blind_correct"].notna().all()
    assert per_item.loc[~text, "blind_correct"].isna().all()
    # summary: accuracy per suite in percent, blind accuracy only for text suites, R@1 for retrieval
    assert summary["value"].between(0, 100).all()
    accuracy = summary[summary["metric"].isin(["accuracy", "R@1"])]
    assert sorted(accuracy["suite"]) == sorted(TEXT_SUITES + IMAGE_SUITES + ["retrieval_t2i"])
    assert set(summary.loc[summary["metric"] == "blind_accuracy", "suite"]) == set(TEXT_SUITES)
    assert summary.loc[summary["suite"] == "retrieval_t2i", "metric"].tolist() == ["R@1"]
    for row in accuracy.itertuples():
        group = per_item[per_item["suite"] == row.suite]
        assert row.n_items == len(group) and row.value == pytest.approx(100 * group["correct"].mean())
    # the same model scores the same file the same way
    again, _ = score_suites(model, preprocess, tokenizer, small, "cpu", batch_size=7)
    assert (again["correct"] == per_item["correct"]).all()


def test_zero_shot_classification_is_scored_apart_and_leaves_the_other_suites_unchanged(built, tiny_model):
    import torch
    import torch.nn.functional as F
    from PIL import Image

    _, _, suites, _ = built
    items = [item for suite in TEXT_SUITES for item in items_of(suites, suite)[:2]]
    entries = suites["classification"]["items"][:8]
    without = {"items": items, "retrieval": suites["retrieval"][:6], "counts": {}}
    with_zs = {**without, "classification": {"suites": list(CLASSIFICATION_SUITES), "items": entries}}
    model, preprocess, tokenizer = tiny_model
    before, summary_before = score_suites(model, preprocess, tokenizer, without, "cpu", batch_size=16)
    after, summary = score_suites(model, preprocess, tokenizer, with_zs, "cpu", batch_size=16)
    # the compositional suites' scores are bit-identical with the classification suites added
    assert after.iloc[: len(before)].equals(before)
    assert summary.iloc[: len(summary_before)].equals(summary_before)
    zs = after.iloc[len(before):]
    assert list(zs["suite"]) == ["zs_shape"] * 8 + ["zs_colour"] * 8 and zs["blind_correct"].isna().all()
    # an independent computation of the shape prediction: ensembled prompt embeddings, argmax
    with torch.no_grad():
        prompts = class_prompts("shape")
        weights = torch.stack([F.normalize(F.normalize(model.encode_text(tokenizer(p)), dim=-1).mean(0), dim=0)
                               for p in prompts.values()])
        images = torch.stack([preprocess(Image.open(e["image"]).convert("RGB")) for e in entries])
        predicted = (F.normalize(model.encode_image(images), dim=-1) @ weights.T).argmax(1).tolist()
    expected = [list(prompts)[k] == e["shape"] for k, e in zip(predicted, entries)]
    assert zs[zs["suite"] == "zs_shape"]["correct"].tolist() == expected
    top1 = summary[summary["metric"] == "top1"].set_index("suite")["value"]
    assert top1["zs_shape"] == pytest.approx(100 * sum(expected) / 8)
    assert set(top1.index) == set(CLASSIFICATION_SUITES)


def test_test_images_skipped_at_download_become_no_item(tmp_path):
    """Issue 11, finding 2: the test slice honours `status` exactly as training does."""
    from dualclip.eval import build
    from dualclip.io import write_json

    write_shard(DATASET, "test", 0, 6, tmp_path / "data")
    skipped = tmp_path / "data" / "2.json"
    write_json(skipped, {**read_json(skipped), "status": "skipped", "reason": "image file cannot be decoded"})
    images = [str(tmp_path / "data" / f"{slot}.png") for slot in range(6)]
    truth = [str(tmp_path / "data" / f"{slot}.json") for slot in range(6)]
    # (these 6 scenes hold no single-object scene for the zero-shot classification suites,
    # and no room for a sham patch beside an object whose colour another object shares)
    suites = [suite for suite in ALL_SUITES if suite not in CLASSIFICATION_SUITES and suite != "image_side_sham"]
    build(INPAINT, {"suites": suites, "seed": 0}, images, truth, str(tmp_path / "suites.json"), str(tmp_path / "images"))
    suites = read_json(tmp_path / "suites.json")
    assert len(suites["retrieval"]) == 5
    assert all(item["image"] != images[2] for item in suites["items"] + suites["retrieval"] if "image" in item)


def test_retrieval_captions_do_not_depend_on_the_other_suites(built, tmp_path):
    """The retrieval captions draw from a stream of their own: changing or dropping another
    suite (here the image suites, whose sham placement draws the most) leaves them as they are."""
    root, _, suites, _ = built
    records = [(str(root / "data" / f"{slot}.png"), read_json(root / "data" / f"{slot}.json")) for slot in range(N_SCENES)]
    build_suites(INPAINT, records, ["retrieval_t2i", "omission"], 0, tmp_path / "few.json", tmp_path / "images")
    assert read_json(tmp_path / "few.json")["retrieval"] == suites["retrieval"]


def test_the_preflight_scene_needs_match_what_the_builder_can_build(tmp_path):
    """MIN_SCENE_OBJECTS (checked before the run) is what build_suites needs: with one object fewer
    per scene a suite gets no item, with that many it gets some."""
    from dualclip.eval import MIN_SCENE_OBJECTS

    for needed in sorted(set(MIN_SCENE_OBJECTS.values())):
        suites = [suite for suite, n in MIN_SCENE_OBJECTS.items() if n == needed]
        for max_objects, buildable in ((needed - 1, False), (needed, True)):
            root = tmp_path / f"{needed}-{max_objects}"
            write_shard({**DATASET, "min_objects": 1, "max_objects": max_objects}, "test", 0, 150, root)
            records = [(str(root / f"{slot}.png"), read_json(root / f"{slot}.json")) for slot in range(150)]
            for suite in suites:
                if buildable:
                    assert build_suites(INPAINT, records, [suite], 0, root / "s.json", root / "images")[suite] > 0, suite
                else:
                    with pytest.raises(ValueError, match=suite):
                        build_suites(INPAINT, records, [suite], 0, root / "s.json", root / "images")
    # and a suite left out of the table needs no more than one object
    root = tmp_path / "single"
    write_shard({**DATASET, "min_objects": 1, "max_objects": 1}, "test", 0, 150, root)
    records = [(str(root / f"{slot}.png"), read_json(root / f"{slot}.json")) for slot in range(150)]
    for suite in ALL_SUITES:
        if suite not in MIN_SCENE_OBJECTS and suite != "retrieval_t2i":
            assert build_suites(INPAINT, records, [suite], 0, root / "s.json", root / "images")[suite] > 0, suite
