"""score_items end to end on the fixture items with a tiny random open_clip model."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from bench_helpers import json_image_names, make_images
from dualclip.eval.benchmarks import (
    RESULT_COLUMNS,
    BenchmarkItem,
    load_order,
    load_sugarcrepe,
    load_valse,
    load_vg_attribution,
    load_vg_relation,
    score_items,
    summarise,
)
from dualclip.eval.benchmarks.sugarcrepe import SUBSETS
from dualclip.eval.benchmarks.valse import PIECES


@pytest.fixture(scope="module")
def all_items(fixtures_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs")
    names = []
    for s in SUBSETS:
        names += json_image_names(fixtures_dir / "sugarcrepe" / f"{s}.json", "filename")
    for p in PIECES:
        names += json_image_names(fixtures_dir / "valse" / f"{p}.json", "image_file")
    vgr = fixtures_dir / "aro" / "visual_genome_relation.sample_first43.json"
    vga = fixtures_dir / "aro" / "visual_genome_attribution.handmade.json"
    kar = fixtures_dir / "karpathy" / "coco_karpathy_test.handmade.json"
    names += [r["image_path"] for r in json.loads(vgr.read_text())]
    names += [r["image"] for r in json.loads(kar.read_text())]
    make_images(root, names, size=(400, 360), pattern=True)
    return {
        "sugarcrepe": load_sugarcrepe(fixtures_dir / "sugarcrepe", root).items,
        "valse": load_valse(fixtures_dir / "valse", root, valid_only=False).items,
        "vg_relation": load_vg_relation(vgr, root).items,
        "vg_attribution": load_vg_attribution(vga, root).items,
        "coco_order": load_order(kar, root, benchmark="coco_order").items,
    }


def _manual_score(model, preprocess, tokenizer, item, text, crop=True):
    img = Image.open(item.image_path).convert("RGB")
    if crop and item.crop_bbox is not None:
        img = img.crop(item.crop_bbox)
    with torch.no_grad():
        i = F.normalize(model.encode_image(preprocess(img)[None]), dim=-1)
        t = F.normalize(model.encode_text(tokenizer([text])), dim=-1)
    return float((i @ t.T).item())


def test_score_items_end_to_end(tiny_clip, all_items):
    model, preprocess, tokenizer = tiny_clip
    items = [it for its in all_items.values() for it in its]
    assert len(items) == 35 + 55 + 43 + 8 + 15
    model.train()
    df = score_items(model, preprocess, tokenizer, items, batch_size=16)
    assert model.training  # mode restored
    model.eval()
    assert len(df) == len(items)
    assert list(df.item_id) == [it.item_id for it in items]
    assert df.pos_score.between(-1, 1).all() and df.max_neg_score.between(-1, 1).all()
    order = df.benchmark.isin(["coco_order"])
    assert (df.correct[~order] == (df.pos_score > df.max_neg_score)[~order]).all()
    assert (df.correct[order] == (df.pos_score >= df.max_neg_score)[order]).all()
    assert (df.n_negatives[order] == 4).all() and (df.n_negatives[~order] == 1).all()
    assert df.valid.sum() == len(items) - 2 * len(PIECES)
    # Independent recomputation for a cropped VG-R item and an uncropped SugarCrepe item.
    vg = all_items["vg_relation"][0]
    row = df[(df.benchmark == "vg_relation") & (df.item_id == vg.item_id)].iloc[0]
    assert row.pos_score == pytest.approx(_manual_score(model, preprocess, tokenizer, vg, vg.positive), abs=1e-5)
    assert row.max_neg_score == pytest.approx(_manual_score(model, preprocess, tokenizer, vg, vg.negatives[0]), abs=1e-5)
    uncropped = _manual_score(model, preprocess, tokenizer, vg, vg.positive, crop=False)
    assert abs(uncropped - row.pos_score) > 1e-6  # the crop was applied
    sc = all_items["sugarcrepe"][3]
    row = df[df.item_id == sc.item_id].iloc[0]
    assert row.pos_score == pytest.approx(_manual_score(model, preprocess, tokenizer, sc, sc.positive), abs=1e-5)
    # Summaries in the long format for every benchmark.
    for b in all_items:
        out = summarise(b, df[df.benchmark == b])
        assert list(out.columns) == RESULT_COLUMNS
        assert out.value.between(0, 100).all() and (out.n_items > 0).all()
    sc_sum = summarise("sugarcrepe", df[df.benchmark == "sugarcrepe"])
    assert {"REPLACE", "SWAP", "ADD", "mean"} <= set(sc_sum.suite)
    valse_sum = summarise("valse", df[df.benchmark == "valse"])
    assert valse_sum.set_index("suite").loc["mean", "n_items"] == 3 * len(PIECES)


def test_identical_negative_is_an_exact_tie(tiny_clip, all_items):
    model, preprocess, tokenizer = tiny_clip
    base = all_items["sugarcrepe"][0]
    same = BenchmarkItem("sugarcrepe", "add_att", "tie", base.image_path, base.positive,
                         [base.positive])
    order_same = BenchmarkItem("coco_order", "test", "tie", base.image_path, base.positive,
                               [base.positive, base.positive])
    df = score_items(model, preprocess, tokenizer, [same, order_same, base], batch_size=2)
    threaded = score_items(model, preprocess, tokenizer, [same, order_same, base], batch_size=2,
                           num_workers=2)
    pd.testing.assert_frame_equal(df, threaded)
    assert df.pos_score[0] == df.max_neg_score[0] and not df.correct[0]
    assert df.pos_score[1] == df.max_neg_score[1] and df.correct[1]


def test_score_items_errors_name_the_item(tiny_clip, tmp_path):
    model, preprocess, tokenizer = tiny_clip
    assert score_items(model, preprocess, tokenizer, []).empty
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    item = BenchmarkItem("valse", "existence", "existence/7", bad, "a", ["b"])
    with pytest.raises(OSError, match=r"valse/existence/7: cannot read image .*broken.jpg"):
        score_items(model, preprocess, tokenizer, [item])
    with pytest.raises(ValueError, match="negatives must be a non-empty list"):
        BenchmarkItem("valse", "existence", "x", bad, "a", [])
