"""SugarCrepe++ (Sri-Harsha/scpp @ c083bbf): loader, official scorer (ITT, Image-P1-Neg,
Image-P2-Neg, TOT; strict ``>``), download with pinned SHA-256, evaluation stage and the
COCO dry run.

Runs on the committed excerpt tests/fixtures/benchmarks/sugarcrepe_pp (MIT, see
tests/fixtures/benchmarks/SOURCE.md); the tests on the complete files skip when
../shared/benchmarks/sugarcrepe_pp is absent (set DUALCLIP_SHARED_BENCHMARKS to point
elsewhere). Images are placeholder PNGs under the names the annotations expect; downloads
come from a local HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from bench_helpers import REPO, json_image_names, make_images
from dualclip.eval.benchmarks import (
    RESULT_COLUMNS,
    load_sugarcrepe_pp,
    score_items,
    stage,
    sugarcrepe_pp_correct,
    sugarcrepe_pp_frame,
    summarise,
)
from dualclip.eval.benchmarks.sugarcrepe_pp import EXPECTED_COUNTS, SUBSETS
from dualclip.fetch import ChecksumMismatchError
from helpers import coco_dry_run, needs_shared_benchmarks, serving_files, shared_benchmarks_dir

SHARED = shared_benchmarks_dir() / "sugarcrepe_pp"
COMMIT = "c083bbf039a5ca215acaf25e7ee736d2ea6f3864"
# The excerpt: ids 0..4 of every subset, plus replace_att 14 (P1 == P2) and swap_obj 8 (P1 == N).
EXCERPT_COUNTS = {"replace_obj": 5, "replace_att": 6, "replace_rel": 5, "swap_obj": 6, "swap_att": 5}
METRICS = ["itt", "image_p1_neg", "image_p2_neg", "tot"]
needs_shared = needs_shared_benchmarks("sugarcrepe_pp")


@pytest.fixture(scope="module")
def fix(fixtures_dir) -> Path:
    return fixtures_dir / "sugarcrepe_pp"


def names_of(folder: Path, subsets=SUBSETS) -> list[str]:
    return [n for s in subsets for n in json_image_names(folder / f"{s}.json", "filename")]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _value(df, suite, metric):
    sel = df[(df.suite == suite) & (df.metric == metric)]
    assert len(sel) == 1, (suite, metric, df)
    return sel.iloc[0].value, sel.iloc[0].n_items


# --------------------------------------------------------------------------- loader

def test_loader_reads_the_excerpt_with_both_positives(fix, tmp_path):
    make_images(tmp_path, names_of(fix))
    res = load_sugarcrepe_pp(fix, tmp_path)
    assert res.counts() == EXCERPT_COUNTS
    assert not res.skipped_items and not res.skipped_pieces
    first = json.loads((fix / "swap_obj.json").read_text())[0]
    item = next(it for it in res.items if it.item_id == "swap_obj/0")
    assert item.benchmark == "sugarcrepe_pp" and item.suite == "swap_obj"
    assert item.positive == first["caption"] and item.meta["positive2"] == first["caption2"]
    assert item.negatives == [first["negative_caption"]] and item.image_path == tmp_path / first["filename"]
    assert item.meta["category"] == "SWAP"
    # kept as upstream does: a positive identical to the negative (never answerable)
    same = {it.item_id for it in res.items if it.positive == it.negatives[0]}
    assert same == {"swap_obj/2", "swap_obj/8"}


def test_loader_skips_pieces_and_items_without_images_and_rejects_sugarcrepe_files(fix, fixtures_dir, tmp_path):
    names = names_of(fix, ["replace_obj"])
    make_images(tmp_path, names[1:])
    res = load_sugarcrepe_pp(fix, tmp_path, subsets=["replace_obj", "swap_att"])
    assert res.counts() == {"replace_obj": 4}
    assert [s.item_id for s in res.skipped_items] == ["replace_obj/0"]
    assert [(p.suite, p.n_items) for p in res.skipped_pieces] == [("swap_att", 5)]
    assert "COCO 2017 validation" in res.skipped_pieces[0].reason
    res = load_sugarcrepe_pp(fix, None, subsets=["swap_obj"])
    assert len(res) == 0 and res.skipped_pieces[0].reason.startswith("no image folder was given")
    with pytest.raises(ValueError, match="unknown SugarCrepe\\+\\+ subset 'add_obj'"):
        load_sugarcrepe_pp(fix, tmp_path, subsets=["add_obj"])
    with pytest.raises(ValueError, match="expected a JSON list"):
        load_sugarcrepe_pp(fixtures_dir / "sugarcrepe", tmp_path, subsets=["swap_obj"])


@needs_shared
def test_complete_files_counts_and_checksums(tmp_path):
    sums = dict(reversed(line.split()) for line in (SHARED / "SHA256SUMS.txt").read_text().splitlines() if line.strip())
    for name, digest in sums.items():
        assert sha256(SHARED / name) == digest, name
    # the pins shipped with the package are the shared checksums
    pins = stage.pinned_checksums()["sugarcrepe_pp"]
    assert pins["commit"] == COMMIT and pins["repository"] == "Sri-Harsha/scpp"
    assert pins["files"] == {name: sums[name] for name in pins["files"]}
    assert set(pins["files"]) == {f"{s}.json" for s in SUBSETS}
    make_images(tmp_path, names_of(SHARED), distinct=False)
    res = load_sugarcrepe_pp(SHARED, tmp_path)
    assert res.counts() == EXPECTED_COUNTS
    assert sum(EXPECTED_COUNTS.values()) == len(res) == 4757
    assert not res.skipped_items and not res.skipped_pieces
    assert {it.item_id for it in res.items if it.positive == it.negatives[0]} == {"swap_obj/2", "swap_obj/8"}
    assert all(it.meta["positive2"] for it in res.items)


def test_sources_point_at_the_pinned_commit(fix):
    entry = stage.sources()["benchmarks"]["sugarcrepe_pp"]
    assert list(entry["pieces"]) == list(SUBSETS) and set(entry["pieces"].values()) == {"coco2017_val"}
    assert entry["files"] == {f"{s}.json": f"https://raw.githubusercontent.com/Sri-Harsha/scpp/{COMMIT}/data/{s}.json"
                              for s in sorted(SUBSETS)}
    assert set(entry["files"]) == set(stage.pinned_checksums()["sugarcrepe_pp"]["files"])
    for s in SUBSETS:  # the excerpt is not the official file
        assert stage.pinned_sha256("sugarcrepe_pp", f"{s}.json") != sha256(fix / f"{s}.json")


# --------------------------------------------------------------------------- scorer

def test_scorer_strict_rules_on_hand_built_similarities():
    # columns: I.P1, I.P2, I.N, P1.P2, P1.N, P2.N
    rows = np.array([
        [.9, .8, .1, .9, .2, .3],   # all right
        [.5, .8, .5, .9, .2, .3],   # I.P1 ties I.N: P1 wrong, ITT wrong
        [.9, .5, .5, .9, .2, .3],   # I.P2 ties I.N: P2 wrong, ITT wrong
        [.9, .2, .5, .4, .4, .3],   # P2 loses; P1.P2 ties P1.N: TOT wrong
        [.2, .9, .5, .6, .2, .6],   # P1 loses; P1.P2 ties P2.N: TOT wrong
        [.3, .3, .3, .7, .7, .7],   # everything tied: all wrong
        [.2, .1, .5, .8, .1, .1],   # both positives lose, TOT right
    ])
    ok = sugarcrepe_pp_correct(*rows.T)
    assert ok["image_p1_neg"].tolist() == [True, False, True, True, False, False, False]
    assert ok["image_p2_neg"].tolist() == [True, True, False, False, True, False, False]
    assert ok["itt"].tolist() == [True, False, False, False, False, False, False]
    assert ok["tot"].tolist() == [True, True, True, False, False, False, True]
    with pytest.raises(ValueError, match="differ in shape"):
        sugarcrepe_pp_correct([1, 2], [1], [1], [1], [1], [1])


def test_summary_per_subset_and_mean():
    suites, rows = [], []
    right = [.9, .8, .1, .9, .2, .3]
    tie = [.5, .5, .5, .5, .5, .5]
    p1_only = [.9, .2, .5, .9, .2, .3]
    for s, items in {
        "replace_obj": [right, right, right, tie],        # itt 75, p1 75, p2 75, tot 75
        "replace_att": [right, p1_only],                  # itt 50, p1 100, p2 50, tot 100
        "replace_rel": [tie, tie],                        # 0 everywhere
        "swap_obj": [p1_only],                            # itt 0, p1 100, p2 0, tot 100
        "swap_att": [right, tie, tie, tie, tie],          # 20 everywhere
    }.items():
        suites += [s] * len(items)
        rows += items
    per_item = sugarcrepe_pp_frame(suites, rows, [f"{s}/{i}" for i, s in enumerate(suites)])
    assert (per_item.correct == per_item.image_p1_neg & per_item.image_p2_neg).all()
    out = summarise("sugarcrepe_pp", per_item)
    assert list(out.columns) == RESULT_COLUMNS and set(out.metric) == set(METRICS)
    assert _value(out, "replace_obj", "itt") == (75.0, 4)
    assert _value(out, "replace_att", "itt") == (50.0, 2)
    assert _value(out, "replace_att", "image_p1_neg") == (100.0, 2)
    assert _value(out, "replace_att", "image_p2_neg") == (50.0, 2)
    assert _value(out, "swap_obj", "tot") == (100.0, 1)
    assert _value(out, "replace_rel", "tot") == (0.0, 2)
    v, n = _value(out, "mean", "itt")
    assert n == 14 and v == pytest.approx((75 + 50 + 0 + 0 + 20) / 5)  # unweighted over subsets
    v, _ = _value(out, "mean", "tot")
    assert v == pytest.approx((75 + 100 + 0 + 100 + 20) / 5)
    # without all five subsets there is no mean
    part = summarise("sugarcrepe_pp", per_item[per_item.suite != "swap_att"])
    assert "mean" not in set(part.suite) and len(part) == 4 * 4
    with pytest.raises(ValueError, match="lacks columns"):
        summarise("sugarcrepe_pp", per_item.drop(columns=["tot"]))
    with pytest.raises(ValueError, match="unknown SugarCrepe\\+\\+ subsets"):
        summarise("sugarcrepe_pp", per_item.assign(suite="add_obj"))


def test_score_items_gives_exact_ties_for_identical_captions(fix, tmp_path, tiny_clip):
    model, preprocess, tokenizer = tiny_clip
    make_images(tmp_path, names_of(fix), size=(64, 48), pattern=True)
    items = load_sugarcrepe_pp(fix, tmp_path).items
    df = score_items(model, preprocess, tokenizer, items)
    assert len(df) == sum(EXCERPT_COUNTS.values())
    for col in ("pos2_score", "text_p1_p2", "text_p1_neg", "text_p2_neg"):
        assert df[col].dtype == np.float64, col
    by_id = df.set_index("item_id")
    for key in ("swap_obj/2", "swap_obj/8"):  # P1 == N: an exact tie, so wrong
        row = by_id.loc[key]
        assert row.pos_score == row.max_neg_score and not row.image_p1_neg and not row.correct
        assert row.text_p1_neg >= row.text_p1_p2 and not row.tot
    row = by_id.loc["replace_att/14"]  # P1 == P2
    assert row.pos_score == row.pos2_score and row.text_p1_neg == row.text_p2_neg
    ok = sugarcrepe_pp_correct(df.pos_score, df.pos2_score, df.max_neg_score, df.text_p1_p2, df.text_p1_neg,
                               df.text_p2_neg)
    for metric, col in zip(METRICS, ["correct", "image_p1_neg", "image_p2_neg", "tot"]):
        assert df[col].tolist() == ok[metric].tolist(), metric
    # the similarities are cosines of the model's normalised embeddings
    import torch
    import torch.nn.functional as F
    from PIL import Image

    it = next(i for i in items if i.item_id == "swap_att/1")
    with torch.no_grad():
        img = F.normalize(model.encode_image(preprocess(Image.open(it.image_path).convert("RGB"))[None]), dim=-1)
        txt = F.normalize(model.encode_text(tokenizer([it.positive, it.meta["positive2"], it.negatives[0]])), dim=-1)
    row = by_id.loc["swap_att/1"]
    expected = [(img @ txt[0]).item(), (img @ txt[1]).item(), (img @ txt[2]).item(),
                (txt[0] @ txt[1]).item(), (txt[0] @ txt[2]).item(), (txt[1] @ txt[2]).item()]
    got = [row.pos_score, row.pos2_score, row.max_neg_score, row.text_p1_p2, row.text_p1_neg, row.text_p2_neg]
    assert got == pytest.approx(expected, abs=1e-5)
    out = summarise("sugarcrepe_pp", df)
    assert set(out.suite) == set(SUBSETS) | {"mean"} and len(out) == 4 * 6


# --------------------------------------------------------------------------- download rule

@pytest.fixture
def local_server():
    with serving_files() as base_and_content:
        yield base_and_content


def _serve(monkeypatch, base, content, folder: Path):
    urls = {}
    for s in SUBSETS:
        content[f"/scpp/data/{s}.json"] = (folder / f"{s}.json").read_bytes()
        urls[f"{s}.json"] = f"{base}/scpp/data/{s}.json"
    real = stage.annotation_urls
    monkeypatch.setattr(stage, "annotation_urls", lambda b: urls if b == "sugarcrepe_pp" else real(b))
    return urls


def _config(tmp_path, **settings):
    return {"results_dir": str(tmp_path / "results"), "device": "cpu", "eval": {"batch_size": 8},
            "benchmarks": {"sugarcrepe_pp": settings}}


def test_download_checks_the_pinned_sha256(fix, tmp_path, local_server, monkeypatch):
    base, content = local_server
    urls = _serve(monkeypatch, base, content, fix)
    out = tmp_path / "results" / "benchmark_data" / "sugarcrepe_pp"
    # the excerpt is not the pinned official file: refused, and nothing is kept
    with pytest.raises(ChecksumMismatchError):
        stage.prepare("sugarcrepe_pp", _config(tmp_path, pieces=["swap_obj"]), out)
    assert not (out / "annotations" / "swap_obj.json").exists()
    # a file served with the pinned checksum is accepted as "pinned"
    pins = {f"{s}.json": sha256(fix / f"{s}.json") for s in SUBSETS}
    real = stage.pinned_sha256
    monkeypatch.setattr(stage, "pinned_sha256",
                        lambda b, name: pins[name] if b == "sugarcrepe_pp" else real(b, name))
    images = tmp_path / "coco"
    make_images(images, names_of(fix, ["swap_obj", "swap_att"]))
    ready = stage.prepare("sugarcrepe_pp", _config(tmp_path, images=str(images)), out)
    files = {f["file"]: f for f in ready["files"]}
    assert set(files) == {f"{s}.json" for s in SUBSETS}
    assert {f["checksum"] for f in files.values()} == {"pinned"}
    assert {f["source"] for f in files.values()} == set(urls.values())
    for name, rec in files.items():
        assert Path(rec["path"]).read_bytes() == (fix / name).read_bytes()
    status = {p["piece"]: p["status"] for p in ready["pieces"]}
    assert status == {"replace_obj": "skipped", "replace_att": "skipped", "replace_rel": "skipped",
                      "swap_obj": "ready", "swap_att": "ready"}
    assert {p["piece"]: p["n_items"] for p in ready["pieces"]} == EXCERPT_COUNTS


def test_download_excerpt_with_verify_checksums_false_is_recorded(fix, tmp_path, local_server, monkeypatch):
    base, content = local_server
    _serve(monkeypatch, base, content, fix)
    out = tmp_path / "results" / "benchmark_data" / "sugarcrepe_pp"
    ready = stage.prepare("sugarcrepe_pp", _config(tmp_path, verify_checksums=False, pieces=["swap_att"]), out)
    (rec,) = ready["files"]
    assert rec["file"] == "swap_att.json" and rec["sha256"] == sha256(fix / "swap_att.json")
    assert rec["checksum"] == "differs from the pinned checksum (verify_checksums: false)"
    assert rec["pinned_sha256"] == stage.pinned_sha256("sugarcrepe_pp", "swap_att.json")


@needs_shared
def test_download_of_the_official_files_passes_the_pins(tmp_path, local_server, monkeypatch):
    base, content = local_server
    _serve(monkeypatch, base, content, SHARED)
    ready = stage.prepare("sugarcrepe_pp", _config(tmp_path), tmp_path / "out")
    assert {f["checksum"] for f in ready["files"]} == {"pinned"} and len(ready["files"]) == 5
    assert {p["piece"]: p["n_items"] for p in ready["pieces"]} == EXPECTED_COUNTS
    # and a local copy of them too
    ready = stage.prepare("sugarcrepe_pp", _config(tmp_path, annotations=str(SHARED)), tmp_path / "local")
    assert {f["checksum"] for f in ready["files"]} == {"pinned"}


def test_local_excerpt_is_refused_with_the_official_commit_named(fix, tmp_path):
    with pytest.raises(ChecksumMismatchError, match=f"Sri-Harsha/scpp @ {COMMIT}"):
        stage.prepare("sugarcrepe_pp", _config(tmp_path, annotations=str(fix)), tmp_path / "out")


# --------------------------------------------------------------------------- evaluation stage

def test_eval_stage_writes_the_official_metrics(fix, tmp_path):
    import torch

    from dualclip.train.models import create_model

    torch.manual_seed(0)
    model, _, _ = create_model("dualclip-tiny")
    model_file = tmp_path / "model.pt"
    run = {"method": "ours", "seed": 3, "n_train": 24, "n_samples": 24, "code_version": "test-version"}
    torch.save({"model": model.state_dict(), "config": {"model": {"name": "dualclip-tiny", "pretrained": None}},
                "step": 0, "summary": run}, model_file)
    images = tmp_path / "coco"
    make_images(images, [n for n in names_of(fix) if n not in set(names_of(fix, ["replace_rel"]))])
    config = _config(tmp_path, annotations=str(fix), images=str(images), verify_checksums=False)
    stage.prepare("sugarcrepe_pp", config, tmp_path / "results" / "benchmark_data" / "sugarcrepe_pp")
    out = tmp_path / "eval" / "sugarcrepe_pp.csv"
    stage.evaluate(model_file, "sugarcrepe_pp", config, out, tmp_path / "eval" / "sugarcrepe_pp_items.csv",
                   device="cpu")
    scores = pd.read_csv(out)
    items = pd.read_csv(tmp_path / "eval" / "sugarcrepe_pp_items.csv")
    skips = pd.read_csv(tmp_path / "eval" / "sugarcrepe_pp_skips.csv")
    assert list(scores.columns) == stage.SCORE_COLUMNS
    assert (scores.method == "ours").all() and (scores.benchmark == "sugarcrepe_pp").all()
    # the official metrics, and the text-only baselines of the headline ITT
    assert set(scores.metric) == {*METRICS, "blind_itt", "length_itt"} and scores.value.between(0, 100).all()
    assert set(scores.suite) == set(SUBSETS) - {"replace_rel"}  # no mean: a subset was skipped
    for suite, n in EXCERPT_COUNTS.items():
        if suite != "replace_rel":
            sub = items[items.suite == suite]
            assert _value(scores, suite, "itt") == (pytest.approx(sub.correct.mean() * 100), n)
            assert _value(scores, suite, "tot")[0] == pytest.approx(sub.tot.mean() * 100)
    assert {"pos2_score", "text_p1_p2", "tot"} <= set(items.columns)
    assert list(skips.suite) == ["replace_rel"] and skips.level.iloc[0] == "piece"


# --------------------------------------------------------------------------- workflow

def test_example_config_and_pieces():
    example = yaml.safe_load((REPO / "config" / "benchmarks_example.yaml").read_text())["benchmarks"]
    assert example["sugarcrepe_pp"]["pieces"] == list(SUBSETS)
    coco = yaml.safe_load((REPO / "config" / "coco.yaml").read_text())["benchmarks"]
    assert coco["sugarcrepe_pp"] == {"annotations": None, "images": "data/coco/val2017"}
    sec = stage.section(_config(Path("/tmp"), pieces=["swap_obj"]), "sugarcrepe_pp")
    assert stage.needed_files("sugarcrepe_pp", sec) == ["swap_obj.json"]
    with pytest.raises(ValueError, match="unknown"):
        stage.pieces("sugarcrepe_pp", {**sec, "pieces": ["add_obj"]})


def test_coco_dry_run_plans_a_sugarcrepe_pp_eval_per_run(tmp_path):
    text, jobs, results = coco_dry_run(tmp_path)
    planned = set(re.findall(rf"{results}/eval/([^/\s]+)/n(\d+)/seed(\d+)/sugarcrepe_pp\.csv", text))
    runs = set(re.findall(rf"{results}/train/([^/\s]+)/n(\d+)/seed(\d+)/model\.pt", text))
    assert runs and planned == runs, (planned, runs)
    assert {m for m, _, _ in runs} >= {"baseline", "ours"} and {s for _, _, s in runs} == {"0", "1"}
    assert int(jobs["eval_benchmark"]) == len(runs)
    assert int(jobs["download_benchmark"]) == 1
    assert f"{results}/benchmark_data/sugarcrepe_pp/ready.json" in text
