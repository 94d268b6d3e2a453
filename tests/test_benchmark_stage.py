"""The real-benchmark stage: prepare (download_benchmark), evaluate (eval_benchmark), DAG wiring.

Uses the committed annotation excerpts in tests/fixtures/benchmarks with placeholder images
written under the file names the annotations expect, a tiny random open_clip model saved in
the trainer's checkpoint format, and a local HTTP server on 127.0.0.1 (no other network).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from dualclip.eval.benchmarks import stage  # noqa: E402
from dualclip.fetch import ChecksumMismatchError, FetchError  # noqa: E402
from helpers import needs_shared_benchmarks, nonempty, serving_files, shared_benchmarks_dir  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FIX = REPO / "tests" / "fixtures" / "benchmarks"
SHARED = shared_benchmarks_dir()
VGR = FIX / "aro" / "visual_genome_relation.sample_first43.json"
VGA = FIX / "aro" / "visual_genome_attribution.handmade.json"
KARPATHY = FIX / "karpathy" / "coco_karpathy_test.handmade.json"
RUN = {"method": "ours", "seed": 3, "n_train": 24, "n_samples": 24, "code_version": "test-version"}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_images(folder: Path, names, size=(48, 40)) -> None:
    """A distinct PNG (whatever the name's extension: PIL reads the content) per name."""
    from PIL import Image

    for name in sorted(set(names)):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256(name.encode()).digest()
        Image.new("RGB", size, (h[0], h[1], h[2])).save(path, format="PNG")


def records(path: Path) -> list[dict]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return list(data.values()) if isinstance(data, dict) else data


def sugarcrepe_names(subset: str) -> list[str]:
    return [r["filename"] for r in records(FIX / "sugarcrepe" / f"{subset}.json")]


def config_for(tmp_path: Path, **benchmarks) -> dict:
    return {"results_dir": str(tmp_path / "results"), "device": "cpu", "eval": {"batch_size": 8},
            "benchmarks": benchmarks}


def sugarcrepe_images(tmp_path: Path) -> tuple[Path, str]:
    """COCO folder with every fixture image except swap_obj's and one add_att image."""
    folder = tmp_path / "coco_val2017"
    names = [n for s in stage.pieces("sugarcrepe", stage.DEFAULTS) if s[0] != "swap_obj"
             for n in sugarcrepe_names(s[0])]
    removed = sugarcrepe_names("add_att")[0]
    swap_obj = set(sugarcrepe_names("swap_obj"))
    write_images(folder, [n for n in names if n != removed and n not in swap_obj])
    return folder, removed


# --------------------------------------------------------------------------- prepare

def test_prepare_local_folder_records_checksums_and_skips_pieces_without_images(tmp_path):
    images, removed = sugarcrepe_images(tmp_path)
    config = config_for(tmp_path, sugarcrepe={"annotations": str(FIX / "sugarcrepe"), "images": str(images),
                                              "verify_checksums": False})
    out = tmp_path / "results" / "benchmark_data" / "sugarcrepe"
    ready = stage.prepare("sugarcrepe", config, out)
    assert json.loads((out / "ready.json").read_text()) == json.loads(json.dumps(ready))
    assert ready["annotations_from"] == str((FIX / "sugarcrepe").resolve())
    files = {f["file"]: f for f in ready["files"]}
    assert sorted(files) == sorted(p.name for p in (FIX / "sugarcrepe").glob("*.json"))
    for name, rec in nonempty(files.items(), "annotation files in ready.json"):
        assert rec["sha256"] == sha256(FIX / "sugarcrepe" / name)  # recorded
        assert Path(rec["path"]).read_bytes() == (FIX / "sugarcrepe" / name).read_bytes()  # copied
        assert rec["pinned_sha256"] == stage.pinned_sha256("sugarcrepe", name) != rec["sha256"]  # excerpt
        assert rec["checksum"].startswith("differs from the pinned checksum")
    pieces = {p["piece"]: p for p in ready["pieces"]}
    assert pieces["swap_obj"]["status"] == "skipped"
    assert "none of the 5 images were found" in pieces["swap_obj"]["reason"]
    assert "COCO 2017 validation images" in pieces["swap_obj"]["reason"]
    assert ready["skipped"] == [{"piece": "swap_obj", "reason": pieces["swap_obj"]["reason"]}]
    assert pieces["add_att"]["status"] == "partial" and pieces["add_att"]["n_images_found"] == pieces["add_att"]["n_images"] - 1
    for name in ("replace_obj", "replace_att", "replace_rel", "swap_att", "add_obj"):
        assert pieces[name]["status"] == "ready" and pieces[name]["n_items"] == 5, name


def test_prepare_valse_pieces_without_an_image_folder_are_skipped_with_reason(tmp_path):
    coco = tmp_path / "val2017"
    plurals = [r["image_file"] for r in records(FIX / "valse" / "plurals.json")]
    write_images(coco, plurals)
    config = config_for(tmp_path, valse={"annotations": str(FIX / "valse"), "images": {"coco2017_val": str(coco)},
                                         "verify_checksums": False, "pieces": ["plurals", "existence", "relations"]})
    ready = stage.prepare("valse", config, tmp_path / "out")
    assert [f["file"] for f in ready["files"]] == ["plurals.json", "existence.json", "relations.json"]
    pieces = {p["piece"]: p for p in ready["pieces"]}
    assert pieces["plurals"]["status"] == "ready" and pieces["plurals"]["n_items"] == 3  # valid items only
    assert pieces["existence"]["status"] == "skipped"
    assert "no image folder is configured for image source 'visual7w'" in pieces["existence"]["reason"]
    assert pieces["relations"]["status"] == "skipped" and "none of the" in pieces["relations"]["reason"]
    config["benchmarks"]["valse"]["images"] = {"visual7": str(coco)}  # a typo is named, not ignored
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['visual7'\]"):
        stage.prepare("valse", config, tmp_path / "out")


def test_valse_coreference_standard_finds_its_images_in_train2014_and_val2014(tmp_path):
    """VisDial v1.0 train is COCO train2014 + val2014: the piece looks in the folders of both
    visdial_train and coco2014_val; with train2014 alone its val2014 items are listed as skipped."""
    valid = [r["image_file"] for r in records(FIX / "valse" / "coreference-standard.json") if r["mturk"]["caption"] >= 2]
    train, val = [n for n in valid if "train2014" in n], [n for n in valid if "val2014" in n]
    assert train and val
    write_images(tmp_path / "train2014", train)
    write_images(tmp_path / "val2014", val)
    images = {"visdial_train": str(tmp_path / "train2014"), "coco2014_val": str(tmp_path / "val2014")}
    config = config_for(tmp_path, valse={"annotations": str(FIX / "valse"), "images": images,
                                         "verify_checksums": False, "pieces": ["coreference-standard"]})
    ready = stage.prepare("valse", config, tmp_path / "out")
    (piece,) = ready["pieces"]
    assert piece["status"] == "ready" and piece["n_images_found"] == piece["n_images"] == len(set(valid))
    assert piece["folders"] == [images["visdial_train"], images["coco2014_val"]]
    loaded = stage.load_items("valse", ready)
    assert sorted(it.image_path.parent.name for it in loaded.items) == sorted(
        ["train2014"] * len(train) + ["val2014"] * len(val))
    assert not loaded.skipped_items
    del config["benchmarks"]["valse"]["images"]["coco2014_val"]
    ready = stage.prepare("valse", config, tmp_path / "out")
    (piece,) = ready["pieces"]
    assert piece["status"] == "partial" and piece["n_images_found"] == len(set(train))
    loaded = stage.load_items("valse", ready)
    assert len(loaded.items) == len(train) and [s.image_path.endswith(val[0]) for s in loaded.skipped_items] == [True]


def test_wrong_pinned_checksum_fails_with_a_clear_message(tmp_path):
    config = config_for(tmp_path, sugarcrepe={"annotations": str(FIX / "sugarcrepe")})
    with pytest.raises(ChecksumMismatchError) as err:
        stage.prepare("sugarcrepe", config, tmp_path / "out")
    message = str(err.value)
    first = "replace_obj.json"  # the first piece checked
    assert str(FIX / "sugarcrepe" / first) in message
    assert sha256(FIX / "sugarcrepe" / first) in message and stage.pinned_sha256("sugarcrepe", first) in message
    assert "RAIVNLab/sugar-crepe @ 0047054b243992f0fad63d6f64f7544862daf846" in message
    assert "verify_checksums: false" in message
    assert not (tmp_path / "out" / "ready.json").exists()


@needs_shared_benchmarks()
def test_pins_are_the_shared_checksums_and_the_official_files_pass(tmp_path):
    sums = SHARED / "SHA256SUMS.txt"
    listed = dict(reversed(line.split()) for line in sums.read_text().splitlines() if line.strip())
    for benchmark in ("sugarcrepe", "valse"):
        for name, digest in nonempty(stage.pinned_checksums()[benchmark]["files"].items(), f"{benchmark} pins"):
            assert listed[f"./{benchmark}/{name}"] == digest
    ready = stage.prepare("sugarcrepe", config_for(tmp_path, sugarcrepe={"annotations": str(SHARED / "sugarcrepe")}),
                          tmp_path / "out")
    assert {f["checksum"] for f in ready["files"]} == {"pinned"}
    assert {p["status"] for p in ready["pieces"]} == {"skipped"}  # no images were given


@pytest.fixture
def local_server():
    with serving_files() as base_and_content:
        yield base_and_content


def test_download_records_checksum_in_lock_then_verifies_and_rejects_html(tmp_path, local_server, monkeypatch):
    base, content = local_server
    content["/karpathy.json"] = KARPATHY.read_bytes()
    content["/drive.json"] = b"<!DOCTYPE html><html><body>Google Drive can't scan this file</body></html>"
    monkeypatch.setattr(stage, "annotation_urls", lambda b: {"coco_karpathy_test.json": f"{base}/karpathy.json"})
    config = config_for(tmp_path, coco_order={})
    out = tmp_path / "results" / "benchmark_data" / "coco_order"
    ready = stage.prepare("coco_order", config, out)
    (rec,) = ready["files"]
    assert rec["sha256"] == sha256(KARPATHY) and rec["source"] == f"{base}/karpathy.json"
    assert rec["checksum"] == "recorded in sha256.lock.json"
    lock = json.loads((out / "sha256.lock.json").read_text())
    assert lock[f"{base}/karpathy.json"]["sha256"] == sha256(KARPATHY)
    assert ready["pieces"][0]["status"] == "skipped" and ready["pieces"][0]["n_items"] == 15
    # the file changes upstream: the next download is refused
    (out / "annotations" / "coco_karpathy_test.json").unlink()
    content["/karpathy.json"] = KARPATHY.read_bytes().replace(b"a ", b"A ")
    with pytest.raises(ChecksumMismatchError, match="checksum recorded in"):
        stage.prepare("coco_order", config, out)
    # Google Drive answers an HTML page: deleted, not recorded, and the message says what to do
    monkeypatch.setattr(stage, "annotation_urls", lambda b: {"coco_karpathy_test.json": f"{base}/drive.json"})
    with pytest.raises(FetchError, match="HTML page") as err:
        stage.prepare("coco_order", config, out)
    assert "set that folder as this benchmark's `annotations`" in str(err.value)
    assert not (out / "annotations" / "coco_karpathy_test.json").exists()
    assert f"{base}/drive.json" not in json.loads((out / "sha256.lock.json").read_text())


def test_download_images_opt_in_fetches_and_extracts_the_archive(tmp_path, local_server, monkeypatch):
    import io
    import zipfile

    from PIL import Image

    base, content = local_server
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sugarcrepe_names("swap_att"):
            image = io.BytesIO()
            Image.new("RGB", (16, 16), (10, 20, 30)).save(image, format="PNG")
            archive.writestr(f"val2017/{name}", image.getvalue())
    content["/val2017.zip"] = buffer.getvalue()
    monkeypatch.setitem(stage.sources()["archives"], "coco_val2017",
                        {"url": f"{base}/val2017.zip", "file": "val2017.zip", "about": "test archive"})
    settings = {"annotations": str(FIX / "sugarcrepe"), "verify_checksums": False, "download_images": True,
                "pieces": ["swap_att", "swap_obj"]}
    config = config_for(tmp_path, sugarcrepe=settings)
    assert stage.archives_needed("sugarcrepe", {**stage.DEFAULTS, **settings}) == ["coco_val2017"]
    marker = tmp_path / "results" / "benchmark_data" / "images" / "coco_val2017" / "archive.json"
    record = stage.prepare_archive("coco_val2017", config, marker)
    assert record["n_files"] == len(set(sugarcrepe_names("swap_att")))
    assert record["sha256"] == hashlib.sha256(content["/val2017.zip"]).hexdigest()
    assert json.loads(marker.read_text()) == record
    assert not (marker.parent / "val2017.zip").exists()  # deleted once extracted
    lock = json.loads((marker.parent / "sha256.lock.json").read_text())
    assert lock[f"{base}/val2017.zip"]["sha256"] == record["sha256"]
    ready = stage.prepare("sugarcrepe", config, tmp_path / "results" / "benchmark_data" / "sugarcrepe")
    pieces = {p["piece"]: p for p in ready["pieces"]}
    assert pieces["swap_att"]["status"] == "ready" and pieces["swap_att"]["folder_from"] == "archive coco_val2017"
    assert Path(pieces["swap_att"]["folder"]) == marker.parent / "val2017"
    assert pieces["swap_obj"]["status"] == "skipped"


# --------------------------------------------------------------------------- evaluate

@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A random dualclip-tiny model saved as the trainer saves model.pt."""
    import torch

    from dualclip.train.models import create_model

    torch.manual_seed(0)
    model, _, _ = create_model("dualclip-tiny")
    path = tmp_path_factory.mktemp("run") / "model.pt"
    torch.save({"model": model.state_dict(), "config": {"model": {"name": "dualclip-tiny", "pretrained": None}},
                "step": 0, "summary": RUN}, path)
    return path


def _evaluate(tmp_path, model_file, benchmark, settings):
    config = config_for(tmp_path, **{benchmark: settings})
    stage.prepare(benchmark, config, tmp_path / "results" / "benchmark_data" / benchmark)
    out = tmp_path / "eval" / f"{benchmark}.csv"
    stage.evaluate(model_file, benchmark, config, out, tmp_path / "eval" / f"{benchmark}_items.csv", device="cpu")
    scores = pd.read_csv(out)
    items = pd.read_csv(tmp_path / "eval" / f"{benchmark}_items.csv")
    skips = pd.read_csv(tmp_path / "eval" / f"{benchmark}_skips.csv")
    assert list(scores.columns) == ["method", "n_train", "seed", "benchmark", "suite", "metric", "value",
                                    "n_items", "code_version", "n_items_total", "incomplete"]
    if len(scores):
        assert (scores.method == "ours").all() and (scores.n_train == 24).all() and (scores.seed == 3).all()
        assert (scores.code_version == "test-version").all() and (scores.benchmark == benchmark).all()
        assert scores.value[scores.metric != "rsum"].between(0, 100).all()
        assert list(items.columns[:3]) == ["method", "n_train", "seed"]
    return scores, items, skips


def _value(scores, suite, metric):
    row = scores[(scores.suite == suite) & (scores.metric == metric)]
    assert len(row) == 1, (suite, metric)
    return row.iloc[0]


def test_eval_sugarcrepe_partial_images(tmp_path, model_file):
    images, removed = sugarcrepe_images(tmp_path)
    settings = {"annotations": str(FIX / "sugarcrepe"), "images": str(images), "verify_checksums": False}
    scores, items, skips = _evaluate(tmp_path, model_file, "sugarcrepe", settings)
    n_add_att = sum(n != removed for n in sugarcrepe_names("add_att"))
    expected = {"replace_obj": 5, "replace_att": 5, "replace_rel": 5, "swap_att": 5, "add_obj": 5, "add_att": n_add_att}
    for suite, n in expected.items():
        assert _value(scores, suite, "accuracy").n_items == n
    assert _value(scores, "REPLACE", "accuracy").n_items == 15 and _value(scores, "ADD", "accuracy").n_items == 5 + n_add_att
    assert "SWAP" not in set(scores.suite) and "mean" not in set(scores.suite)  # swap_obj has no images
    assert len(items) == sum(expected.values()) and items.correct.isin([True, False]).all()
    acc = items.groupby("suite").correct.mean() * 100
    assert _value(scores, "add_obj", "accuracy").value == pytest.approx(acc["add_obj"])
    piece = skips[skips.level == "piece"]
    assert list(piece.suite) == ["swap_obj"] and piece.n_items.iloc[0] == 5
    item = skips[skips.level == "item"]
    assert len(item) == 5 - n_add_att and (item.suite == "add_att").all()
    assert item.image_path.str.endswith(removed).all() and item.reason.str.contains("not found").all()


def test_eval_valse_valid_items_of_pieces_with_images(tmp_path, model_file):
    names = {p: [r["image_file"] for r in records(FIX / "valse" / f"{p}.json")]
             for p in ("existence", "counting-hard", "counting-small-quant", "counting-adversarial", "plurals", "relations")}
    write_images(tmp_path / "v7w", [n for p, ns in names.items() if p not in ("plurals", "relations") for n in ns])
    write_images(tmp_path / "val2017", names["plurals"] + names["relations"])
    settings = {"annotations": str(FIX / "valse"), "verify_checksums": False,
                "images": {"visual7w": str(tmp_path / "v7w"), "coco2017_val": str(tmp_path / "val2017")}}
    scores, items, skips = _evaluate(tmp_path, model_file, "valse", settings)
    assert set(scores.metric) == {"acc_r", "blind_acc_r", "length_acc_r"}  # official + text-only baselines
    per_piece = scores[(scores.suite != "mean_partial") & (scores.metric == "acc_r")]
    assert sorted(per_piece.suite) == sorted(names)
    assert (per_piece.n_items == 3).all()  # 3 valid items of 5 per piece
    assert _value(scores, "mean_partial", "acc_r").n_items == 18 and len(items) == 18 and items.valid.all()
    assert sorted(skips.suite) == sorted(["action-replacement", "actant-swap", "coreference-standard",
                                          "coreference-hard", "foil-it"])
    assert (skips.level == "piece").all() and skips.reason.str.contains("no image folder").all()


@pytest.mark.parametrize("benchmark, annotation, n_items", [("vg_relation", VGR, 43), ("vg_attribution", VGA, 8)])
def test_eval_aro_vg(tmp_path, model_file, benchmark, annotation, n_items):
    write_images(tmp_path / "vg", [r["image_path"] for r in records(annotation)], size=(400, 300))
    scores, items, skips = _evaluate(tmp_path, model_file, benchmark,
                                     {"annotations": str(annotation), "images": str(tmp_path / "vg")})
    assert _value(scores, "micro", "accuracy").n_items == n_items and len(items) == n_items and skips.empty
    official = scores[~scores.metric.str.startswith(("blind_", "length_"))]
    groups = official[~official.suite.isin(["micro", "macro"])]
    assert groups.n_items.sum() == n_items
    assert _value(scores, "micro", "blind_accuracy").n_items == _value(scores, "micro", "length_accuracy").n_items == n_items
    assert not scores.incomplete.any()


def test_eval_coco_order_and_retrieval(tmp_path, model_file):
    entries = records(KARPATHY)
    write_images(tmp_path / "coco", [e["image"] for e in entries])
    scores, items, skips = _evaluate(tmp_path, model_file, "coco_order",
                                     {"annotations": str(KARPATHY), "images": str(tmp_path / "coco")})
    assert {(s, m) for s, m in zip(scores.suite, scores.metric)} == {
        ("test", m) for m in ("accuracy", "accuracy_strict", "blind_accuracy", "blind_accuracy_strict", "length_accuracy")}
    assert (scores.n_items == 15).all() and len(items) == 15 and (items.n_negatives == 4).all()
    (tmp_path / "coco" / entries[1]["image"]).unlink()
    scores, items, skips = _evaluate(tmp_path / "r", model_file, "coco_retrieval",
                                     {"annotations": str(KARPATHY), "images": str(tmp_path / "coco")})
    assert _value(scores, "karpathy_test", "i2t_R@1").n_items == 2
    assert _value(scores, "karpathy_test", "t2i_R@5").n_items == 10
    assert _value(scores, "karpathy_test", "i2t_R@10").value == 100.0  # 10 captions in all
    assert (items.direction == "i2t").sum() == 2 and (items.direction == "t2i").sum() == 10
    t2i = items[items.direction == "t2i"]
    assert _value(scores, "karpathy_test", "t2i_R@1").value == pytest.approx((t2i["rank"] == 0).mean() * 100)
    assert list(skips.level) == ["item"] and skips.image_path.iloc[0].endswith(entries[1]["image"])
    assert scores.incomplete.all()  # an image is missing: no row claims the whole test set


def test_eval_with_every_piece_skipped_writes_empty_scores(tmp_path, model_file):
    scores, items, skips = _evaluate(tmp_path, model_file, "vg_relation", {"annotations": str(VGR)})
    assert scores.empty and items.empty
    assert list(skips.level) == ["piece"] and skips.n_items.iloc[0] == 43
    assert "no image folder is configured" in skips.reason.iloc[0]


# --------------------------------------------------------------------------- config and DAG

def test_schema_fragment_accepts_the_example_and_rejects_mistakes():
    import jsonschema

    fragment = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())["properties"]["benchmarks"]
    example = yaml.safe_load((REPO / "config" / "benchmarks_example.yaml").read_text())["benchmarks"]
    jsonschema.validate(example, fragment)
    assert set(example) == set(stage.BENCHMARK_NAMES)
    assert {key for settings in example.values() for key in settings} == set(stage.DEFAULTS)
    jsonschema.validate(None, fragment)
    for bad in ({"sugarcrep": {}}, {"valse": {"image": "/x"}}, {"valse": {"download_images": "yes"}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, fragment)
    # the example asks for COCO val2014 for retrieval only
    assert stage.archives_needed("coco_retrieval", {**stage.DEFAULTS, **example["coco_retrieval"]}) == ["coco_val2014"]
    assert stage.archives_needed("sugarcrepe", {**stage.DEFAULTS, **example["sugarcrepe"]}) == []


def test_sources_pieces_match_the_loaders():
    from dualclip.eval.benchmarks.sugarcrepe import SUBSETS
    from dualclip.eval.benchmarks.valse import IMAGE_SOURCES, PIECES

    benchmarks = stage.sources()["benchmarks"]
    assert set(benchmarks) == set(stage.BENCHMARK_NAMES)
    assert benchmarks["valse"]["pieces"] == PIECES and set(benchmarks["valse"]["images"]) == set(IMAGE_SOURCES)
    assert list(benchmarks["sugarcrepe"]["pieces"]) == list(SUBSETS)
    assert {f"{p}.json" for p in PIECES} == set(benchmarks["valse"]["files"])
    for name, entry in benchmarks.items():
        assert set(entry["pieces"].values()) <= set(entry["images"]), name


def test_dry_run_lists_benchmark_jobs(tmp_path):
    bench = {"benchmarks": {
        "sugarcrepe": {"annotations": str(FIX / "sugarcrepe"), "images": str(tmp_path / "coco"), "verify_checksums": False},
        "vg_relation": {"annotations": str(VGR)},
        "coco_retrieval": {"annotations": str(KARPATHY), "download_images": True},
    }}
    (tmp_path / "bench.yaml").write_text(yaml.safe_dump(bench))
    work = tmp_path / "work"
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(work), "-n",
               "--cores", "1", "--configfile", str(REPO / "config" / "config.yaml"),
               str(REPO / "tests" / "config_tiny.yaml"), str(tmp_path / "bench.yaml")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    text = result.stdout + result.stderr
    assert result.returncode == 0, text[-4000:]
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", text.split("Job stats:", 1)[1], flags=re.M))
    runs = len(yaml.safe_load((REPO / "tests" / "config_tiny.yaml").read_text())["train"]["methods"])
    assert int(jobs["download_benchmark"]) == 3
    assert int(jobs["eval_benchmark"]) == 3 * runs
    assert int(jobs["download_image_archive"]) == 1  # COCO val2014, for retrieval only
    assert "results/benchmark_data/images/coco_val2014/archive.json" in text
    assert "results/eval/ours/n24/seed0/sugarcrepe.csv" in text
    # a typo in the section stops the run before any job, naming the key
    bench["benchmarks"]["vg_relation"]["image"] = "/x"
    (tmp_path / "bench.yaml").write_text(yaml.safe_dump(bench))
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode != 0 and "'image' was unexpected" in result.stdout + result.stderr
