"""Bad COCO input is refused or becomes a recorded skip (issue 11, findings 2 and 3).

Each test builds a small COCO-format folder here: ids 1..6 in ``train2017`` (and a
``val2017`` for the validation slice), 40x48 JPEGs with two captions each, and then breaks
it the way the finding describes.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dualclip.data.coco import load_index, write_coco_shard
from dualclip.io import read_json, read_rgb

HEIGHT, WIDTH = 40, 48


def write_coco(root: Path, split: str = "train2017", n: int = 6, captions=None, images=None) -> None:
    """A COCO split: ``captions`` maps id -> caption texts (default two real ones per id),
    ``images`` id -> (height, width) annotated and written (default 40x48)."""
    captions = captions or {}
    images = images or {}
    (root / split).mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(exist_ok=True)
    infos, caption_annotations = [], []
    for coco_id in range(1, n + 1):
        height, width = images.get(coco_id, (HEIGHT, WIDTH))
        name = f"{coco_id:012d}.jpg"
        pixels = np.random.default_rng(coco_id).integers(0, 256, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / split / name, quality=90)
        infos.append({"id": coco_id, "file_name": name, "height": height, "width": width})
        texts = captions.get(coco_id, [f"a dog next to box {coco_id}.", f"box {coco_id} and a dog."])
        for number, text in enumerate(texts):
            caption_annotations.append({"id": coco_id * 10 + number, "image_id": coco_id, "caption": text})
    write_annotations(root, split, infos, caption_annotations)


def write_annotations(root: Path, split: str, infos: list[dict], caption_annotations: list[dict]) -> None:
    (root / "annotations" / f"captions_{split}.json").write_text(
        json.dumps({"images": infos, "annotations": caption_annotations}))
    (root / "annotations" / f"instances_{split}.json").write_text(
        json.dumps({"images": infos, "annotations": [], "categories": [{"id": 18, "name": "dog"}]}))


def dataset(root: Path, **extra) -> dict:
    return {"name": "coco", "root": str(root), "seed": 0, "coco_splits": {"train": "train2017", "val": "val2017"}, **extra}


def by_coco_id(records: list[dict]) -> dict[int, dict]:
    return {record["coco_image_id"]: record for record in records}


# --------------------------------------------------------------------------- finding 2


def test_duplicate_image_id_is_refused_naming_both_entries_and_the_file(tmp_path):
    """Finding 2: an id listed twice used to let the last entry win silently."""
    write_coco(tmp_path)
    path = tmp_path / "annotations" / "instances_train2017.json"
    data = json.loads(path.read_text())
    data["images"].append({"id": 4, "file_name": "000000000099.jpg", "height": HEIGHT, "width": WIDTH})
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError) as raised:
        load_index(tmp_path, "train2017")
    message = str(raised.value)
    assert str(path) in message and "image id 4 is listed twice" in message
    assert "'000000000004.jpg'" in message and "'000000000099.jpg'" in message


def test_empty_and_whitespace_captions_are_never_chosen(tmp_path):
    """Finding 2: empty/whitespace captions were kept (status ok, trained with an empty text)."""
    write_coco(tmp_path, captions={
        2: ["", "  \n ", "a cat on a mat."],  # one usable caption left
        5: ["   ", "\n"],  # none left: a recorded skip
    })
    records = by_coco_id(write_coco_shard(dataset(tmp_path, captions="all"), "train", 0, 6, tmp_path / "out"))
    assert records[2]["status"] == "ok"
    assert records[2]["caption"] == "a cat on a mat." and records[2]["captions"] == ["a cat on a mat."]
    assert records[2]["caption_ids"] == [22] and records[2]["empty_caption_ids"] == [20, 21]
    skipped = records[5]
    assert skipped["status"] == "skipped" and "no usable caption" in skipped["reason"]
    assert skipped["caption"] == "" and skipped["empty_caption_ids"] == [50, 51]
    assert read_json(tmp_path / "out" / skipped["image_file"].replace(".png", ".json")) == skipped
    assert read_rgb(tmp_path / "out" / skipped["image_file"]).shape == (1, 1, 3)
    for coco_id, record in records.items():
        assert all(text.strip() for text in record["captions"]), coco_id


def test_images_below_min_side_are_recorded_skips(tmp_path):
    """Finding 2: a 1x1 image was downloaded with status ok."""
    write_coco(tmp_path, images={3: (1, 1), 4: (31, 200)})
    records = by_coco_id(write_coco_shard(dataset(tmp_path), "train", 0, 6, tmp_path / "out"))
    for coco_id in (3, 4):
        assert records[coco_id]["status"] == "skipped", coco_id
        assert "below dataset.min_side (32 px)" in records[coco_id]["reason"]
    assert [records[coco_id]["status"] for coco_id in (1, 2, 5, 6)] == ["ok"] * 4
    # the key moves the limit
    lowered = by_coco_id(write_coco_shard(dataset(tmp_path, min_side=1), "train", 0, 6, tmp_path / "lowered"))
    assert all(record["status"] == "ok" for record in lowered.values())


def test_validation_slice_leaves_out_images_skipped_at_download(tmp_path, monkeypatch, capsys):
    """Finding 2: train.run loaded every val file, so a skipped image's black placeholder
    (and an empty caption) entered the validation slice."""
    import dualclip.train.trainer as trainer
    from dualclip.train import run

    write_coco(tmp_path)
    write_coco(tmp_path, "val2017", captions={2: [" ", ""]})
    (tmp_path / "val2017" / "000000000004.jpg").unlink()  # skipped: file missing
    config = dataset(tmp_path)
    train_records = write_coco_shard(config, "train", 0, 6, tmp_path / "data" / "train" / "0")
    val_records = write_coco_shard(config, "val", 0, 6, tmp_path / "data" / "val" / "0")
    for folder in ("train", "val"):  # the manifest a shard job writes last (file sizes)
        shard = tmp_path / "data" / folder / "0"
        (shard / "manifest.json").write_text(json.dumps({"files": {p.name: p.stat().st_size for p in shard.iterdir()}}))
    kept = [record["caption"] for record in val_records if record["status"] == "ok"]
    assert len(kept) == 4 and all(record["status"] == "ok" for record in train_records)

    seen = {}

    def record_val(config, method, seed, data, out_dir, val=None, **options):
        # the training loop itself is not under test: what matters is the slice it gets
        seen["val"] = val
        return {}

    monkeypatch.setattr(trainer, "train", record_val)
    inputs = {"data": [str(tmp_path / "data" / "train" / "0" / "manifest.json")],
              "val": [str(tmp_path / "data" / "val" / "0" / "manifest.json")],
              "parse": [], "rewrite": [], "inpaint": [], "filter": []}
    model = {"name": "dualclip-tiny", "pretrained": None}
    run(model, {}, "cpu", "baseline", 0, inputs, str(tmp_path / "run"), n_images=6, n_val=6, shard_size=6)
    images, captions = seen["val"]
    assert captions == kept and images.shape[0] == 4
    assert "validation slice: 2 of 6 images skipped at download are left out" in capsys.readouterr().out


# --------------------------------------------------------------------------- finding 3


def huge_png(path: Path, size: tuple[int, int], keep_bytes: int | None = 4096) -> None:
    """A PNG whose header says ``size`` (width, height), cut after ``keep_bytes``: opening it
    reads the size; decoding it fails. So a skip that names max_pixels proves the size was
    checked before decoding, and the test never needs the gigabytes a full decode takes."""
    Image.new("1", size).save(path, format="PNG")
    if keep_bytes is not None:
        data = path.read_bytes()
        path.write_bytes(data[:keep_bytes])


def test_image_above_max_pixels_is_skipped_before_decoding(tmp_path):
    """Finding 3: a 10000x10000 image was decoded (14 GB RSS downstream) with only PIL's warning."""
    write_coco(tmp_path)
    annotations = tmp_path / "annotations"
    infos = json.loads((annotations / "captions_train2017.json").read_text())
    for info in infos["images"]:
        if info["id"] == 2:
            info.update(height=10000, width=10000)  # annotated honestly as huge
    write_annotations(tmp_path, "train2017", infos["images"], infos["annotations"])
    huge_png(tmp_path / "train2017" / "000000000002.jpg", (10000, 10000))
    # annotated as 40x48, but the file's header says 10000x10000
    huge_png(tmp_path / "train2017" / "000000000003.jpg", (10000, 10000))
    # beyond twice PIL's limit Image.open raises DecompressionBombError (not an OSError)
    huge_png(tmp_path / "train2017" / "000000000005.jpg", (20000, 10000))
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        records = by_coco_id(write_coco_shard(dataset(tmp_path), "train", 0, 6, tmp_path / "out"))
    assert records[2]["status"] == "skipped"
    assert "100000000 pixels, above dataset.max_pixels (16777216)" in records[2]["reason"]
    assert records[3]["status"] == "skipped"
    assert "is 10000x10000 but annotated as 40x48; not decoded" in records[3]["reason"]
    assert records[5]["status"] == "skipped" and "above dataset.max_pixels" in records[5]["reason"]
    assert [records[coco_id]["status"] for coco_id in (1, 4, 6)] == ["ok"] * 3
    # a lower cap skips ordinary images too; the limit is the config key's
    capped = by_coco_id(write_coco_shard(dataset(tmp_path, max_pixels=40 * 47), "train", 0, 6, tmp_path / "capped"))
    assert "above dataset.max_pixels (1880)" in capped[1]["reason"]


def test_max_pixels_cannot_exceed_pils_decompression_bomb_limit(tmp_path):
    """Finding 3: a cap above PIL's limit would let Image.open warn or raise before our check."""
    write_coco(tmp_path)
    with pytest.raises(ValueError, match=r"dataset.max_pixels must be between 1 and 89478485"):
        write_coco_shard(dataset(tmp_path, max_pixels=10**9), "train", 0, 6, tmp_path / "out")
    with pytest.raises(ValueError, match="dataset.min_side must be at least 1"):
        write_coco_shard(dataset(tmp_path, min_side=0), "train", 0, 6, tmp_path / "out")
