"""Loaders on the committed excerpts: fields, counts, crops and skip records."""

from __future__ import annotations

import json
import logging
import shutil

import pytest

from bench_helpers import json_image_names, make_images
from dualclip.eval.benchmarks import load_sugarcrepe, load_valse, load_vg_attribution, load_vg_relation
from dualclip.eval.benchmarks.sugarcrepe import SUBSETS
from dualclip.eval.benchmarks.sugarcrepe_pp import load_sugarcrepe_pp
from dualclip.eval.benchmarks.valse import PIECES


@pytest.fixture()
def sc_images(tmp_path, fixtures_dir):
    names = []
    for s in SUBSETS:
        names += json_image_names(fixtures_dir / "sugarcrepe" / f"{s}.json", "filename")
    make_images(tmp_path / "val2017", names)
    return tmp_path / "val2017"


def test_sugarcrepe_excerpt_fields(fixtures_dir, sc_images):
    res = load_sugarcrepe(fixtures_dir / "sugarcrepe", sc_images)
    assert res.counts() == {s: 5 for s in SUBSETS}
    assert not res.skipped_items and not res.skipped_pieces
    raw = json.loads((fixtures_dir / "sugarcrepe" / "swap_obj.json").read_text())
    by_id = {it.item_id: it for it in res.items}
    assert "swap_obj/108" not in by_id and "swap_obj/109" in by_id
    it = by_id["swap_obj/107"]
    assert it.benchmark == "sugarcrepe" and it.suite == "swap_obj"
    assert it.positive == raw["107"]["caption"]
    assert it.negatives == [raw["107"]["negative_caption"]]
    assert it.image_path == sc_images / raw["107"]["filename"]
    assert it.crop_bbox is None and it.meta["category"] == "SWAP"


def test_sugarcrepe_missing_single_image_is_recorded(fixtures_dir, sc_images, caplog):
    raw = json.loads((fixtures_dir / "sugarcrepe" / "add_att.json").read_text())
    gone = raw["2"]["filename"]
    users = [k for k, v in raw.items() if v["filename"] == gone]
    (sc_images / gone).unlink()
    with caplog.at_level(logging.WARNING):
        res = load_sugarcrepe(fixtures_dir / "sugarcrepe", sc_images, subsets=["add_att"])
    skipped = {s.item_id for s in res.skipped_items}
    assert skipped == {f"add_att/{k}" for k in users}
    assert all(gone in s.reason and s.suite == "add_att" for s in res.skipped_items)
    assert len(res.items) + len(res.skipped_items) == 5
    assert not res.skipped_pieces
    assert "image is missing" in caplog.text
    frame = res.skips_frame()
    assert list(frame["level"].unique()) == ["item"]


@pytest.mark.parametrize("how, words", [("none", "no image folder"),
                                        ("absent", "does not exist"),
                                        ("empty", "is empty"),
                                        ("unrelated", "none of the 5 images")])
def test_sugarcrepe_unusable_folder_skips_pieces(fixtures_dir, tmp_path, how, words, caplog):
    folder = {"none": None, "absent": tmp_path / "nope", "empty": tmp_path / "empty",
              "unrelated": tmp_path / "other"}[how]
    if how == "empty":
        folder.mkdir()
    if how == "unrelated":
        make_images(folder, ["something_else.jpg"])
    with caplog.at_level(logging.WARNING):
        res = load_sugarcrepe(fixtures_dir / "sugarcrepe", folder)
    assert res.items == [] and res.skipped_items == []
    assert [p.suite for p in res.skipped_pieces] == list(SUBSETS)
    assert all(p.n_items == 5 and words in p.reason and "val2017" in p.reason
               for p in res.skipped_pieces)
    assert "Skipping sugarcrepe/replace_obj (5 items)" in caplog.text


def test_sugarcrepe_bad_inputs_name_the_file(tmp_path, fixtures_dir):
    with pytest.raises(FileNotFoundError, match="add_obj.json"):
        load_sugarcrepe(tmp_path, None, subsets=["add_obj"])
    (tmp_path / "add_obj.json").write_text('{"0": {"filename": ')
    with pytest.raises(ValueError, match=r"add_obj.json is not valid JSON.*download it again"):
        load_sugarcrepe(tmp_path, None, subsets=["add_obj"])
    (tmp_path / "add_obj.json").write_text('{"0": {"filename": "a.jpg", "caption": "x"}}')
    with pytest.raises(ValueError, match=r"add_obj.json item '0': missing field"):
        load_sugarcrepe(tmp_path, None, subsets=["add_obj"])
    with pytest.raises(ValueError, match="unknown SugarCrepe subset"):
        load_sugarcrepe(fixtures_dir / "sugarcrepe", None, subsets=["swap_rel"])



@pytest.mark.parametrize("load, piece, wrong_layout, unknown, expected", [
    (load_sugarcrepe, "add_obj", "[]", "unknown SugarCrepe subset 'swap_rel'; choose from ['replace_obj', ",
     "expected a JSON object keyed by index, got list; is this a SugarCrepe data/ file?"),
    (load_sugarcrepe_pp, "swap_att", "{}", "unknown SugarCrepe++ subset 'swap_rel'; choose from ['replace_obj', ",
     "expected a JSON list of records, got dict; is this a SugarCrepe++ data/ file (a SugarCrepe file is an object)?"),
    (load_valse, "plurals", "[]", "unknown VALSE piece 'swap_rel'; choose from ['existence', ",
     "expected a JSON object keyed by item id, got list; is this a VALSE data/ file?"),
])
def test_loaders_name_an_unknown_piece_and_a_file_of_another_layout(tmp_path, load, piece, wrong_layout, unknown,
                                                                      expected):
    with pytest.raises(ValueError) as error:
        load(tmp_path, None, ["swap_rel"])
    assert str(error.value).startswith(unknown)
    (tmp_path / f"{piece}.json").write_text(wrong_layout)
    with pytest.raises(ValueError) as error:
        load(tmp_path, None, [piece])
    assert str(error.value) == f"{tmp_path / piece}.json: {expected}"


def _valse_images(fixtures_dir, root):
    """One folder per image source, as VALSE's config.py expects separate folders."""
    from dualclip.eval.benchmarks.valse import PIECES as P

    for piece, source in P.items():
        make_images(root / source, json_image_names(fixtures_dir / "valse" / f"{piece}.json",
                                                    "image_file"))
    return {source: root / source for source in set(P.values())}


def test_valse_excerpt_valid_filter(fixtures_dir, tmp_path):
    dirs = _valse_images(fixtures_dir, tmp_path)
    res = load_valse(fixtures_dir / "valse", dirs)
    assert res.counts() == {p: 3 for p in PIECES}
    assert all(it.meta["valid"] and it.meta["mturk"]["caption"] >= 2 for it in res.items)
    allres = load_valse(fixtures_dir / "valse", dirs, valid_only=False)
    assert allres.counts() == {p: 5 for p in PIECES}
    assert sum(not it.meta["valid"] for it in allres.items) == 2 * len(PIECES)
    raw = json.loads((fixtures_dir / "valse" / "foil-it.json").read_text())
    key = next(iter(raw))
    it = next(i for i in allres.items if i.item_id == f"foil-it/{key}")
    assert it.positive == raw[key]["caption"] and it.negatives == [raw[key]["foil"]]
    assert it.image_path == tmp_path / "coco2014_val" / raw[key]["image_file"]


def test_valse_piece_without_images_is_skipped(fixtures_dir, tmp_path):
    dirs = _valse_images(fixtures_dir, tmp_path)
    only = {"visual7w": dirs["visual7w"], "relations": dirs["coco2017_val"]}
    res = load_valse(fixtures_dir / "valse", only)
    loaded = set(res.counts())
    assert loaded == {"existence", "counting-hard", "counting-small-quant",
                      "counting-adversarial", "relations"}
    skipped = {p.suite: p for p in res.skipped_pieces}
    assert set(skipped) == set(PIECES) - loaded
    assert "no image folder" in skipped["foil-it"].reason
    assert "COCO 2014 validation" in skipped["foil-it"].reason
    assert skipped["foil-it"].n_items == 3


def test_vg_relation_sample(fixtures_dir, tmp_path):
    ann = fixtures_dir / "aro" / "visual_genome_relation.sample_first43.json"
    raw = json.loads(ann.read_text())
    make_images(tmp_path / "images", [r["image_path"] for r in raw], size=(16, 16))
    res = load_vg_relation(ann, tmp_path / "images")
    assert len(res) == 43 and not res.skipped_items
    for it, r in zip(res.items, raw):
        assert it.suite == r["relation_name"]
        assert it.positive == r["true_caption"] and it.negatives == [r["false_caption"]]
        assert it.crop_bbox == (r["bbox_x"], r["bbox_y"], r["bbox_x"] + r["bbox_w"],
                                r["bbox_y"] + r["bbox_h"])
    assert res.counts()["to the left of"] == 10
    # A folder holding visual_genome_relation.json works too; a missing image is recorded.
    folder = tmp_path / "ann"
    folder.mkdir()
    shutil.copy(ann, folder / "visual_genome_relation.json")
    (tmp_path / "images" / "1591973.jpg").unlink()
    res2 = load_vg_relation(folder, tmp_path / "images")
    assert len(res2) == 42
    assert [s.item_id for s in res2.skipped_items] == [
        str(i) for i, r in enumerate(raw) if r["image_path"] == "1591973.jpg"]


def test_vg_attribution_handmade(fixtures_dir, tmp_path):
    ann = fixtures_dir / "aro" / "visual_genome_attribution.handmade.json"
    make_images(tmp_path, ["2410049.jpg", "2410046.jpg"])
    res = load_vg_attribution(ann, tmp_path)
    assert res.counts() == {"white_brown": 5, "red_blue": 2, "wooden_metal": 1}
    assert res.items[0].crop_bbox == (10, 20, 210, 170)
    assert res.items[0].meta["attributes"] == ["white", "brown"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{**json.loads(ann.read_text())[0], "attributes": ["x"]}]))
    with pytest.raises(ValueError, match=r"bad.json item 0.*attributes"):
        load_vg_attribution(bad, tmp_path)
    res_none = load_vg_attribution(ann, None)
    assert res_none.items == [] and res_none.skipped_pieces[0].n_items == 8
    assert "vgr_vga_images.zip" in res_none.skipped_pieces[0].reason
