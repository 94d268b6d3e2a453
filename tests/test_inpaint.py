"""Tests for the inpaint stage (dualclip/inpaint/__init__.py) and the OpenCV backend
(dualclip/inpaint/opencv.py): the power set of the found components, and dual images
that change the removed region only.

run_shard is exercised on a real rendered shard that went through the real parse and
detect stages first, so the files it reads are the files the workflow gives it.
"""

from __future__ import annotations

import numpy as np
import pytest

from dualclip.data.shapes import render_background
from dualclip.detect import run_shard as detect_shard
from dualclip.inpaint import dilate, get_inpainter, nonempty_subsets, run_shard, subset_name
from dualclip.io import bits_to_masks, read_json, read_label_png, read_rgb
from dualclip.parse import run_shard as parse_shard
from helpers import world_shard_with_odd_captions

INPAINT = {"backend": "opencv", "method": "telea", "radius": 3, "dilation": 2}
PARSE = {"backend": "spacy", "max_components": 3, "hard_negatives": False,
         "vocabulary": {"circle": ["disc", "disk", "ball"], "square": ["box", "block"], "triangle": [], "star": [],
                        "hexagon": [], "cross": ["plus"]},
         "attribute_words": ["red", "green", "blue", "yellow", "purple", "orange", "small", "large"]}
N_SLOTS = 6


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_nonempty_subsets_is_the_power_set_minus_the_empty_set(k):
    indices = [7, 2, 5, 0][:k]  # unsorted, non-contiguous component indices
    subsets = nonempty_subsets(indices)
    assert len(subsets) == 2 ** k - 1
    assert len(set(subsets)) == len(subsets)
    assert () not in subsets
    assert all(list(s) == sorted(s) and set(s) <= set(indices) for s in subsets)
    assert [len(s) for s in subsets] == sorted(len(s) for s in subsets)  # smallest first
    assert subsets[-1] == tuple(sorted(indices))


def test_nonempty_subsets_of_nothing_is_empty():
    assert nonempty_subsets([]) == []


def test_subset_name_is_readable_and_unique():
    assert subset_name((0,)) == "drop-0"
    assert subset_name((0, 2)) == "drop-0+2"
    assert subset_name((1, 10)) == "drop-1+10"
    names = [subset_name(s) for s in nonempty_subsets([0, 1, 2, 3])]
    assert len(set(names)) == len(names)


def test_dilate_grows_the_mask_by_the_given_pixels():
    mask = np.zeros((21, 21), bool)
    mask[10, 10] = True
    assert np.array_equal(dilate(mask, 0), mask)
    grown = dilate(mask, 2)
    ys, xs = np.nonzero(grown)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (8, 12, 8, 12)
    assert grown[mask].all()


def test_opencv_inpainter_keeps_pixels_outside_the_mask_and_fills_inside():
    background = render_background(64, 3)
    image = background.copy()
    image[20:30, 20:30] = (255, 0, 0)
    mask = np.zeros((64, 64), bool)
    mask[18:32, 18:32] = True
    (filled,) = get_inpainter(INPAINT).inpaint(image, [mask], [0])
    assert filled.dtype == np.uint8 and filled.shape == image.shape
    assert np.array_equal(filled[~mask], image[~mask])
    # the red square is gone: the fill is close to the textured background, not red
    inside = filled[20:30, 20:30].astype(int)
    assert np.abs(inside - background[20:30, 20:30].astype(int)).mean() < 40
    assert (inside[..., 0] - inside[..., 2]).mean() < 60


def test_unknown_method_or_backend_is_a_clear_error():
    with pytest.raises(ValueError, match="inpaint.method"):
        get_inpainter({**INPAINT, "method": "magic"})
    with pytest.raises(ValueError, match="unknown backend"):
        get_inpainter({**INPAINT, "backend": "photoshop"})


# ---------------------------------------------------------------- run_shard on real files


@pytest.fixture(scope="module")
def shard(tmp_path_factory):
    """data -> parse -> detect -> inpaint on a real 6-image shard.

    Slot 4's caption gains an object absent from the image (a not-found component, so
    k < number of components); slot 5's caption names nothing (no dual at all)."""
    root = tmp_path_factory.mktemp("inpaint")
    truth = world_shard_with_odd_captions(root, N_SLOTS, absent_slot=4, absent_article="a",
                                          nothing_slot=5, nothing_caption="an empty table")
    images = [str(root / "data" / f"{slot}.png") for slot in range(N_SLOTS)]
    parsed = [str(root / "parse" / f"{slot}.json") for slot in range(N_SLOTS)]
    detected = [str(root / "detect" / f"{slot}.json") for slot in range(N_SLOTS)]
    out = [str(root / "inpaint" / f"{slot}" / "duals.json") for slot in range(N_SLOTS)]
    parse_shard(PARSE, truth, parsed)
    detect_shard({"backend": "oracle"}, images, truth, parsed, detected)
    run_shard(INPAINT, images, detected, out, seed=0)
    return root, images, detected, out


def found_of(detect_file: str) -> list[int]:
    return [c["index"] for c in read_json(detect_file)["components"] if c["found"]]


def test_run_shard_writes_2_to_the_k_minus_1_pngs(shard):
    root, _, detected, out = shard
    ks = []
    for slot in range(N_SLOTS):
        k = len(found_of(detected[slot]))
        ks.append(k)
        folder = root / "inpaint" / str(slot)
        pngs = sorted(p.name for p in folder.glob("*.png"))
        assert len(pngs) == 2 ** k - 1
        duals = read_json(out[slot])
        assert sorted(d["file"] for d in duals["duals"]) == pngs
        assert [tuple(d["subset"]) for d in duals["duals"]] == nonempty_subsets(found_of(detected[slot]))
        assert duals["image_id"] == read_json(detected[slot])["image_id"]
        assert duals["status"] == ("ok" if k else "skipped")
        # nothing but the dual images and the marker file (no temporary leftovers)
        assert sorted(p.name for p in folder.iterdir()) == sorted(pngs + ["duals.json"])
    # the shard really covers different k, the not-found component and the empty slot
    assert len(set(ks)) >= 3 and ks[5] == 0
    assert len(read_json(detected[4])["components"]) > ks[4]


def test_not_found_component_takes_part_in_no_subset(shard):
    _, _, detected, out = shard
    missing = [c["index"] for c in read_json(detected[4])["components"] if not c["found"]]
    assert missing == [0]
    assert all(0 not in d["subset"] for d in read_json(out[4])["duals"])


def test_dual_images_change_only_the_dilated_union_of_the_subset(shard):
    root, images, detected, out = shard
    checked = 0
    for slot in range(N_SLOTS):
        record = read_json(detected[slot])
        image = read_rgb(images[slot])
        masks = bits_to_masks(read_label_png(root / "detect" / record["masks_file"]), len(record["components"]))
        for dual in read_json(out[slot])["duals"]:
            union = np.logical_or.reduce([masks[i] for i in dual["subset"]])
            region = dilate(union, INPAINT["dilation"])
            assert dual["mask_area"] == int(region.sum())
            filled = read_rgb(root / "inpaint" / str(slot) / dual["file"])
            assert filled.shape == image.shape
            # every pixel outside the dilated union is bit-identical to the original
            assert np.array_equal(filled[~region], image[~region])
            # the removed objects are really gone: most of their pixels changed a lot
            change = np.abs(filled.astype(int) - image.astype(int)).max(-1)
            assert (change[union] > 20).mean() > 0.5, (slot, dual["subset"])
            # and components that were kept are untouched where they do not meet the region
            kept = [i for i in found_of(detected[slot]) if i not in dual["subset"]]
            for i in kept:
                assert np.array_equal(filled[masks[i] & ~region], image[masks[i] & ~region])
            checked += 1
    assert checked >= 10


def test_seeds_are_stable_and_differ_per_subset(shard, tmp_path):
    # the seed is a pure function of (dataset seed, image id, subset): a rerun writes the
    # same seeds, and two subsets of one image get different ones
    root, images, detected, out = shard
    again = [str(tmp_path / str(slot) / "duals.json") for slot in range(N_SLOTS)]
    run_shard(INPAINT, images, detected, again, seed=0)
    for first, second in zip(out, again):
        a, b = read_json(first), read_json(second)
        assert [d["seed"] for d in a["duals"]] == [d["seed"] for d in b["duals"]]
        assert len({d["seed"] for d in a["duals"]}) == len(a["duals"])
        for dual in a["duals"]:  # OpenCV is deterministic: identical bytes on a rerun
            assert (root / "inpaint" / first.split("/")[-2] / dual["file"]).read_bytes() == \
                (tmp_path / second.split("/")[-2] / dual["file"]).read_bytes()


def test_run_shard_on_a_short_list_writes_the_same_files(shard, tmp_path):
    # The last shard of a split is short: run_shard works on whatever lists it is given,
    # and an image's files do not depend on which other images shared its call.
    root, images, detected, out = shard
    pieces = [str(tmp_path / str(slot) / "duals.json") for slot in range(N_SLOTS)]
    run_shard(INPAINT, images[:2], detected[:2], pieces[:2], seed=0)
    run_shard(INPAINT, images[2:], detected[2:], pieces[2:], seed=0)
    whole = sorted(p.relative_to(root / "inpaint") for p in (root / "inpaint").rglob("*") if p.is_file())
    assert whole == sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert all((root / "inpaint" / name).read_bytes() == (tmp_path / name).read_bytes() for name in whole)


# ---------------------------------------------------------------- packing work items into batches


def test_packed_batches_fills_every_call_and_returns_each_cases_results_in_order():
    from dualclip.batching import packed_batches

    item_counts = [7, 3, 0, 1, 3]  # the subsets of images with k = 3, 2, 0, 1, 2 components
    cases = [(f"image{number}", [(number, position) for position in range(count)]) for number, count in enumerate(item_counts)]
    calls = []

    def run_batch(items):
        calls.append(len(items))
        return [f"done {number}.{position}" for number, position in items]

    pulled = []

    def lazily():
        for case in cases:
            pulled.append(case[0])
            yield case

    results = []
    for case, done in packed_batches(lazily(), 4, run_batch):
        results.append((case, done, len(pulled)))
    assert calls == [4, 4, 4, 2]  # 14 items in full calls of 4; per image it was 2 + 1 + 0 + 1 + 1 = 5 calls, 3 of them partial
    assert [case for case, _, _ in results] == [case for case, _ in cases]
    for (case, done, _), count in zip(results, item_counts):
        number = int(case.removeprefix("image"))
        assert done == [f"done {number}.{position}" for position in range(count)]
    # Streamed: image0 comes back once image1 has filled the second call, before the rest is read.
    assert results[0][2] == 2


def test_packed_batches_checks_its_arguments():
    from dualclip.batching import packed_batches

    with pytest.raises(ValueError, match="at least 1"):
        list(packed_batches([("a", [1])], 0, lambda items: items))
    with pytest.raises(ValueError, match="1 results for 2 items"):
        list(packed_batches([("a", [1, 2])], 2, lambda items: items[:1]))
