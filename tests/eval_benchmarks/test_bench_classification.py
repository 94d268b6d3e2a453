"""Zero-shot classification (dualclip/eval/benchmarks/classification.py): a tiny class-folder
fixture scored by a tiny random-weight model, checked against an independent computation;
missing datasets are skipped with their reason; the COCO dry run plans the jobs."""

from __future__ import annotations

import re

import open_clip.zero_shot_metadata
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from dualclip.eval.benchmarks import stage
from dualclip.eval.benchmarks.classification import (
    CIFAR10_CLASSNAMES,
    CIFAR100_CLASSNAMES,
    CIFAR_TEMPLATES,
    DatasetMissing,
    class_folder_dataset,
    evaluate_classification,
    open_dataset,
    zero_shot_classify,
)
from dualclip.train.models import create_model
from helpers import coco_dry_run

CLASSES = ("red square", "green square", "blue square", "yellow square", "white square", "black square")
COLOURS = [(220, 30, 30), (30, 200, 30), (30, 30, 220), (230, 230, 20), (250, 250, 250), (5, 5, 5)]
TEMPLATES = ("a photo of a {}.", "a {}")


@pytest.fixture(scope="module")
def class_folders(tmp_path_factory):
    """Six class folders (sorted names = class order) with two images each."""
    root = tmp_path_factory.mktemp("classes")
    for k, colour in enumerate(COLOURS):
        folder = root / f"c{k}"
        folder.mkdir()
        for j in range(2):
            Image.new("RGB", (40, 40), tuple(max(0, c - 40 * j) for c in colour)).save(folder / f"{j}.png")
    return root


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return create_model("dualclip-tiny")


def test_zero_shot_classifier_matches_an_independent_computation(class_folders, tiny):
    model, preprocess, tokenizer = tiny
    dataset = class_folder_dataset(class_folders, CLASSES, preprocess)
    per_item = zero_shot_classify(model, tokenizer, dataset, CLASSES, TEMPLATES, batch_size=5)
    assert per_item["label"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    with torch.no_grad():
        weights = torch.stack([F.normalize(F.normalize(model.encode_text(tokenizer([t.format(c) for t in TEMPLATES])),
                                                       dim=-1).mean(0), dim=0) for c in CLASSES])
        images = torch.stack([preprocess(Image.open(path).convert("RGB")) for path, _ in dataset.samples])
        logits = F.normalize(model.encode_image(images), dim=-1) @ weights.T
    top5 = logits.topk(5, dim=-1).indices
    assert per_item["predicted"].tolist() == top5[:, 0].tolist()
    labels = torch.tensor(per_item["label"].tolist())
    assert per_item["top1_correct"].tolist() == (top5[:, 0] == labels).tolist()
    assert per_item["top5_correct"].tolist() == (top5 == labels[:, None]).any(1).tolist()


def test_a_folder_with_other_classes_is_a_clear_error(class_folders, tiny):
    with pytest.raises(ValueError, match="6 class folders .* 1000"):
        class_folder_dataset(class_folders, open_clip.zero_shot_metadata.IMAGENET_CLASSNAMES, tiny[1])


def test_evaluation_scores_what_is_there_and_lists_what_is_not(class_folders, tiny, tmp_path, monkeypatch):
    model, _, _ = tiny
    model_file = tmp_path / "model.pt"
    run = {"method": "ours", "seed": 0, "n_train": 24, "n_samples": 24, "code_version": "test"}
    torch.save({"model": model.state_dict(), "config": {"model": {"name": "dualclip-tiny", "pretrained": None}},
                "step": 0, "summary": run}, model_file)
    # the fixture stands in for ImageNet: its six folders get six of the names
    monkeypatch.setattr(open_clip.zero_shot_metadata, "IMAGENET_CLASSNAMES", CLASSES)
    datasets = {"imagenet": str(class_folders), "cifar10": str(tmp_path / "no_cifar"), "cifar100": None}
    out, items, skips = tmp_path / "c.csv", tmp_path / "c_items.csv", tmp_path / "c_skips.csv"
    evaluate_classification(model_file, datasets, out, items, skips, device="cpu", batch_size=4)
    scores, per_item, skipped = pd.read_csv(out), pd.read_csv(items), pd.read_csv(skips)
    assert list(scores.columns) == stage.SCORE_COLUMNS
    assert scores[["benchmark", "suite", "metric"]].values.tolist() == [["imagenet", "val", "top1"],
                                                                        ["imagenet", "val", "top5"]]
    top1 = scores.set_index("metric")["value"]["top1"]
    assert top1 == pytest.approx(100 * per_item["top1_correct"].mean()) and len(per_item) == 12
    # 12 of ImageNet's 50,000 validation images: flagged, never silently partial
    assert (scores["n_items"] == 12).all() and (scores["n_items_total"] == 50_000).all() and scores["incomplete"].all()
    assert (scores["method"] == "ours").all()
    assert skipped["benchmark"].tolist() == ["cifar10", "cifar100"]
    assert "cifar-10-batches-py" in skipped["reason"][0] and "no folder is configured" in skipped["reason"][1]


def test_cifar_class_names_and_templates_and_a_missing_copy():
    assert len(CIFAR10_CLASSNAMES) == 10 and len(set(CIFAR100_CLASSNAMES)) == 100 and len(CIFAR_TEMPLATES) == 18
    # CLIP's prompts.md spells torchvision's fine labels with spaces, in label order
    assert CIFAR100_CLASSNAMES[1] == "aquarium fish" and CIFAR100_CLASSNAMES[-1] == "worm"
    assert list(CIFAR100_CLASSNAMES) == sorted(CIFAR100_CLASSNAMES)
    assert all(t.count("{}") == 1 for t in CIFAR_TEMPLATES)
    with pytest.raises(DatasetMissing, match="cifar-100-python"):
        open_dataset("cifar100", "/nonexistent/cifar", None)
    with pytest.raises(ValueError, match="unknown"):
        open_dataset("mnist", "/tmp", None)


def test_coco_dry_run_plans_sugarcrepe_pp_and_classification_for_every_run(tmp_path):
    text, jobs, results = coco_dry_run(tmp_path)
    runs = set(re.findall(rf"{results}/train/([^/\s]+)/n(\d+)/seed(\d+)/model\.pt", text))
    assert runs and {m for m, _, _ in runs} == {"baseline", "ours", "zeroshot"}
    for output in ("sugarcrepe_pp", "classification"):
        planned = set(re.findall(rf"{results}/eval/([^/\s]+)/n(\d+)/seed(\d+)/{output}\.csv", text))
        assert planned == runs, (output, planned, runs)
    assert int(jobs["eval_classification"]) == int(jobs["eval_benchmark"]) == len(runs)
