"""COCO download/loader and ground-truth oracle on a tiny COCO-format fixture made here.

The fixture: 11 small JPEGs (one grayscale) in ``train2017/``, a captions file with five
captions per image (one image has none and must never be selected) and an instances
file mixing polygon, compressed-RLE and uncompressed-RLE (crowd) segmentations.
"""

from __future__ import annotations

import functools
import http.server
import json
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dualclip.data.coco import load_index, prepare_coco, seeded_order, shard_ids, write_coco_shard
from dualclip.detect.coco_oracle import CocoOracleDetector, decode_segmentation
from dualclip.io import read_json, read_rgb
from dualclip.parse import Component

N_IMAGES = 12  # ids 1..12; id 12 has no captions
CATEGORIES = [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}, {"id": 17, "name": "cat"}]


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE, written out by hand: column-major runs, zeros first."""
    flat = mask.flatten(order="F").astype(np.uint8)
    counts, current, run = [], 0, 0
    for value in flat:
        if value != current:
            counts.append(run)
            current, run = value, 0
        run += 1
    counts.append(run)
    return {"size": list(mask.shape), "counts": counts}


def image_size(coco_id: int) -> tuple[int, int]:
    # height, width; each side at least dataset.min_side's default of 32 px
    return 32 + coco_id, 40 + 2 * coco_id


def make_coco(root: Path) -> dict:
    from pycocotools import mask as mask_utils

    (root / "train2017").mkdir(parents=True)
    (root / "annotations").mkdir()
    images, captions, annotations = [], [], []
    expected = {}
    for coco_id in range(1, N_IMAGES + 1):
        height, width = image_size(coco_id)
        name = f"{coco_id:012d}.jpg"
        pixels = np.random.default_rng(coco_id).integers(0, 256, (height, width, 3), dtype=np.uint8)
        picture = Image.fromarray(pixels)
        (picture.convert("L") if coco_id == 3 else picture).save(root / "train2017" / name, quality=90)
        images.append({"id": coco_id, "file_name": name, "height": height, "width": width,
                       "coco_url": f"http://example.invalid/train2017/{name}"})
        if coco_id != N_IMAGES:
            for number in range(5):
                captions.append({"id": coco_id * 10 + number, "image_id": coco_id,
                                 "caption": f"  Caption {number} of image {coco_id} with a dog.\n"})
        # a polygon dog (rectangle 2..10 x 3..8), an RLE dog, an uncompressed-RLE crowd of people
        dog_b = np.zeros((height, width), np.uint8)
        dog_b[12:18, 20:28] = 1
        crowd = np.zeros((height, width), np.uint8)
        crowd[0:5, 0:6] = 1
        rle = mask_utils.encode(np.asfortranarray(dog_b))
        annotations += [
            {"id": coco_id * 100 + 1, "image_id": coco_id, "category_id": 18, "iscrowd": 0, "area": 40.0,
             "bbox": [3, 2, 5, 8], "segmentation": [[3, 2, 8, 2, 8, 10, 3, 10]]},
            {"id": coco_id * 100 + 2, "image_id": coco_id, "category_id": 18, "iscrowd": 0, "area": 48.0,
             "bbox": [20, 12, 8, 6], "segmentation": {"size": [height, width], "counts": rle["counts"].decode()}},
            {"id": coco_id * 100 + 3, "image_id": coco_id, "category_id": 1, "iscrowd": 1, "area": 30.0,
             "bbox": [0, 0, 6, 5], "segmentation": uncompressed_rle(crowd)},
        ]
        expected[coco_id] = {"dog_b": dog_b.astype(bool), "crowd": crowd.astype(bool)}
    (root / "annotations" / "captions_train2017.json").write_text(json.dumps({"images": images, "annotations": captions}))
    (root / "annotations" / "instances_train2017.json").write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": CATEGORIES})
    )
    return expected


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    return root, make_coco(root)


def dataset(root, **extra):
    return {"name": "coco", "root": str(root), "seed": 0, "coco_splits": {"train": "train2017"}, **extra}


def slot_files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


# --------------------------------------------------------------------------- selection


def test_seeded_order_is_a_permutation_stable_under_growth():
    ids = list(range(1, 200))
    order = seeded_order(ids, seed=0, salt="train2017")
    assert sorted(order) == ids and order != ids
    assert seeded_order(ids, seed=1, salt="train2017") != order
    # New ids never move old ones relative to each other.
    grown = seeded_order(ids + list(range(200, 260)), seed=0, salt="train2017")
    assert [value for value in grown if value < 200] == order
    assert shard_ids(order, 1, 30) == order[30:60]
    assert shard_ids(order, 1, 30, n_images=40) == order[30:40]
    with pytest.raises(ValueError, match="only 199 images"):
        shard_ids(order, 0, 30, n_images=500)


def test_shards_hold_the_same_images_whatever_n_images(coco, tmp_path):
    root, _ = coco
    small = [write_coco_shard(dataset(root, n_train=5), "train", shard, 4, tmp_path / f"small-{shard}") for shard in (0, 1)]
    large = [write_coco_shard(dataset(root, n_train=11), "train", shard, 4, tmp_path / f"large-{shard}") for shard in (0, 1, 2)]
    assert [len(records) for records in small] == [4, 1]
    assert [len(records) for records in large] == [4, 4, 3]
    assert slot_files(tmp_path / "small-0") == slot_files(tmp_path / "large-0")  # byte-identical files
    assert small[1][0] == large[1][0]
    chosen = [record["coco_image_id"] for records in large for record in records]
    assert sorted(chosen) == list(range(1, 12))  # all 11 captioned images, never id 12
    assert [record["image_id"] for record in large[1]] == [f"train-0001-{slot:03d}" for slot in range(4)]


def test_records_images_and_captions(coco, tmp_path):
    root, _ = coco
    records = write_coco_shard(dataset(root, n_train=11), "train", 0, 11, tmp_path)
    by_id = {record["coco_image_id"]: (slot, record) for slot, record in enumerate(records)}
    slot, record = by_id[3]  # the grayscale JPEG
    assert record["status"] == "ok" and record["reason"] is None
    image = read_rgb(tmp_path / f"{slot}.png")
    assert image.shape == (*image_size(3), 3) and (record["height"], record["width"]) == image_size(3)
    assert read_json(tmp_path / f"{slot}.json") == record
    # one caption, whitespace cleaned, chosen by seed; all five selectable with it first
    assert record["captions"] == [record["caption"]] and record["caption"].startswith("Caption ")
    assert record["caption"] == " ".join(record["caption"].split())
    all_five = write_coco_shard(dataset(root, n_train=11, captions="all"), "train", 0, 11, tmp_path / "all")
    assert [len(r["captions"]) for r in all_five] == [5] * 11
    assert [r["captions"][0] for r in all_five] == [r["caption"] for r in records]
    picks = {r["caption"].split()[1] for r in records}
    assert len(picks) > 1, "the seeded choice should not always take the same caption index"
    other_seed = write_coco_shard(dataset(root, n_train=11, seed=5), "train", 0, 11, tmp_path / "seed5")
    assert [r["coco_image_id"] for r in other_seed] != [r["coco_image_id"] for r in records]
    assert [i["category"] for i in record["instances"]] == ["dog", "dog", "person"]
    jpeg = write_coco_shard(dataset(root, n_train=11, image_format="jpeg"), "train", 0, 11, tmp_path / "jpeg")
    first = jpeg[0]
    assert (tmp_path / "jpeg" / first["image_file"]).read_bytes() == (root / "train2017" / first["file_name"]).read_bytes()


def test_bad_images_become_recorded_skips(tmp_path):
    root = tmp_path / "coco"
    make_coco(root)
    order = seeded_order(load_index(root, "train2017").order_ids, 0, "train2017")
    missing, broken, resized = order[0], order[1], order[2]
    (root / "train2017" / f"{missing:012d}.jpg").unlink()
    (root / "train2017" / f"{broken:012d}.jpg").write_bytes(b"not a jpeg")
    Image.new("RGB", (5, 5)).save(root / "train2017" / f"{resized:012d}.jpg")
    records = write_coco_shard(dataset(root), "train", 0, 4, tmp_path / "out")
    assert [r["status"] for r in records] == ["skipped", "skipped", "skipped", "ok"]
    assert "missing (dataset.download is off)" in records[0]["reason"]
    assert "cannot be decoded" in records[1]["reason"]
    assert "annotated as" in records[2]["reason"]
    assert records[0]["caption"]  # the record still says what the slot was
    assert read_rgb(tmp_path / "out" / "0.png").shape == (1, 1, 3)
    assert read_json(tmp_path / "out" / "0.json")["status"] == "skipped"
    # The oracle finds nothing in a skipped slot instead of failing on the placeholder.
    component = Component(index=0, text="a dog", start=0, end=5, head="dog", label="dog")
    assert not CocoOracleDetector({}).detect(read_rgb(tmp_path / "out" / "0.png"), [component], records[0])[0].found
    # The workflow passes each shard's image count: the last shard may be partial, and a
    # split larger than COCO's names the key to lower.
    partial = write_coco_shard(dataset(root), "train", 2, 4, tmp_path / "partial", n_images=3)
    assert [record["image_id"] for record in partial] == ["train-0002-000", "train-0002-001", "train-0002-002"]
    assert not (tmp_path / "partial" / "3.json").exists()
    with pytest.raises(ValueError, match=r"asks for at least 12 \(shard 2\); lower dataset.n_train to at most 11"):
        write_coco_shard(dataset(root), "train", 2, 4, tmp_path / "short")


def test_missing_annotations_name_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset.download: true"):
        write_coco_shard(dataset(tmp_path), "train", 0, 4, tmp_path / "out")
    with pytest.raises(ValueError, match="coco_splits has no COCO split for the 'val' split"):
        write_coco_shard(dataset(tmp_path), "val", 0, 4, tmp_path / "out")


def test_download_from_a_local_server(coco, tmp_path):
    """prepare_coco fetches + extracts the annotation zip; a shard fetches its images."""
    source, _ = coco
    served = tmp_path / "served"
    (served / "annotations").mkdir(parents=True)
    with zipfile.ZipFile(served / "annotations" / "annotations_trainval2017.zip", "w") as archive:
        for name in ("captions_train2017.json", "instances_train2017.json"):
            archive.write(source / "annotations" / name, f"annotations/{name}")
    (served / "train2017").symlink_to(source / "train2017")
    handler = functools.partial(QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        config = dataset(tmp_path / "local", download=True, images_url=url,
                         annotations_url=f"{url}/annotations/annotations_trainval2017.zip")
        prepare_coco(config)
        assert (tmp_path / "local" / "annotations" / "instances_train2017.json").is_file()
        records = write_coco_shard(config, "train", 0, 3, tmp_path / "out")
        assert [r["status"] for r in records] == ["ok"] * 3
        for record in records:
            fetched = tmp_path / "local" / "train2017" / record["file_name"]
            assert fetched.read_bytes() == (source / "train2017" / record["file_name"]).read_bytes()
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


# --------------------------------------------------------------------------- the oracle


def test_decode_polygon_and_rle():
    polygon = decode_segmentation([[3, 2, 8, 2, 8, 10, 3, 10]], 15, 12)
    assert polygon[3:9, 4:8].all() and not polygon[11:, :].any() and not polygon[:, 10:].any()
    mask = np.zeros((7, 9), bool)
    mask[1:4, 2:7] = True
    mask[5, 0] = True
    np.testing.assert_array_equal(decode_segmentation(uncompressed_rle(mask), 7, 9), mask)
    assert not decode_segmentation([[1, 1, 2, 2]], 7, 9).any()  # too few points: no area, not a box
    with pytest.raises(ValueError, match="RLE size"):
        decode_segmentation(uncompressed_rle(mask), 9, 9)


def test_coco_oracle_unions_instances_of_the_class(coco, tmp_path):
    root, expected = coco
    record = write_coco_shard(dataset(root, n_train=1), "train", 0, 1, tmp_path)[0]
    image = read_rgb(tmp_path / "0.png")
    coco_id = record["coco_image_id"]
    components = [
        Component(index=0, text="two dogs", start=0, end=8, head="dogs", label="dog", count=2, plural=True),
        Component(index=1, text="people", start=13, end=19, head="people", label="person", plural=True),
        Component(index=2, text="a cat", start=24, end=29, head="cat", label="cat"),
    ]
    detections = CocoOracleDetector({}).detect(image, components, record)
    dogs = detections[0]
    assert dogs.instances == [coco_id * 100 + 1, coco_id * 100 + 2] and dogs.scores == [1.0, 1.0]
    assert dogs.mask[3:9, 4:8].all() and dogs.mask[expected[coco_id]["dog_b"]].all()
    np.testing.assert_array_equal(detections[1].mask, expected[coco_id]["crowd"])
    assert not detections[2].found and detections[2].instances == []

    no_crowd = CocoOracleDetector({"include_crowd": False, "class_map": {"cat": "dog"}}).detect(image, components, record)
    assert not no_crowd[1].found
    np.testing.assert_array_equal(no_crowd[2].mask, dogs.mask)
    with pytest.raises(ValueError, match="re-run the download"):
        CocoOracleDetector({}).detect(image[:-1], components, record)
    with pytest.raises(ValueError, match="no 'instances'"):
        CocoOracleDetector({}).detect(image, components, {"image_id": "x"})
