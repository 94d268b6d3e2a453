"""Loaders on the complete annotation files in ../shared/benchmarks (skipped when absent).

Set DUALCLIP_SHARED_BENCHMARKS to point elsewhere. Images are placeholder PNGs written
under the names the annotations expect.
"""

from __future__ import annotations

import hashlib
import json

from bench_helpers import json_image_names, make_images
from dualclip.eval.benchmarks import load_sugarcrepe, load_valse, load_vg_relation
from dualclip.eval.benchmarks.sugarcrepe import EXPECTED_COUNTS as SC_COUNTS
from dualclip.eval.benchmarks.valse import EXPECTED_COUNTS as VALSE_COUNTS
from helpers import needs_shared_benchmarks, shared_benchmarks_dir

SHARED = shared_benchmarks_dir()
pytestmark = needs_shared_benchmarks("sugarcrepe")

# README table: distinct images per SugarCrepe file.
SC_DISTINCT_IMAGES = {"add_att": 497, "add_obj": 908, "replace_att": 524, "replace_obj": 823,
                      "replace_rel": 777, "swap_att": 593, "swap_obj": 224}


def test_shared_files_match_checksums():
    sums = (SHARED / "SHA256SUMS.txt").read_text().split("\n")
    checked = 0
    for line in filter(None, sums):
        digest, rel = line.split(maxsplit=1)
        assert hashlib.sha256((SHARED / rel).read_bytes()).hexdigest() == digest, rel
        checked += 1
    assert checked == 20


def test_sugarcrepe_complete(tmp_path):
    names = []
    for s in SC_COUNTS:
        names += json_image_names(SHARED / "sugarcrepe" / f"{s}.json", "filename")
    make_images(tmp_path, names, distinct=False)
    res = load_sugarcrepe(SHARED / "sugarcrepe", tmp_path)
    assert res.counts() == SC_COUNTS
    assert len(res) == 7511
    assert not res.skipped_items and not res.skipped_pieces
    for s, n in SC_DISTINCT_IMAGES.items():
        assert len({it.image_path for it in res.items if it.suite == s}) == n, s
    ids = {it.item_id for it in res.items if it.suite == "swap_obj"}
    assert "swap_obj/108" not in ids and "swap_obj/245" in ids


def test_valse_complete(tmp_path):
    names = []
    for p in VALSE_COUNTS:
        names += json_image_names(SHARED / "valse" / f"{p}.json", "image_file")
    make_images(tmp_path, names, distinct=False)
    res = load_valse(SHARED / "valse", tmp_path, valid_only=False)
    assert not res.skipped_items and not res.skipped_pieces
    counts = res.counts()
    valid = {}
    for it in res.items:
        valid[it.suite] = valid.get(it.suite, 0) + bool(it.meta["valid"])
    assert {p: (counts[p], valid[p]) for p in counts} == VALSE_COUNTS
    assert len(res) == 8782 and sum(valid.values()) == 7702
    res_valid = load_valse(SHARED / "valse", tmp_path)
    assert len(res_valid) == 7702


def test_aro_vg_relation_sample(tmp_path):
    ann = SHARED / "aro" / "visual_genome_relation.sample_first43.json"
    raw = json.loads(ann.read_text())
    make_images(tmp_path, [r["image_path"] for r in raw], distinct=False)
    res = load_vg_relation(ann, tmp_path)
    assert len(res) == 43 and not res.skipped_items
    excluded = (SHARED / "aro" / "vgr_excluded_relations_from_notebook.txt").read_text().split("\n")
    from dualclip.eval.benchmarks import excluded_vgr_relations
    assert excluded_vgr_relations() == frozenset(x for x in excluded if x)
