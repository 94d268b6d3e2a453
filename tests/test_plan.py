"""What the workflow plans from a config (dualclip.plan), on the shipped configs and small variants."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dualclip import plan

REPO = Path(__file__).resolve().parents[1]


def layered(*names: str, overlay: dict | None = None) -> dict:
    """config/<names> (and an overlay) merged as Snakemake merges --configfile."""
    from snakemake.utils import update_config

    config: dict = {}
    for part in [*(yaml.safe_load((REPO / "config" / name).read_text()) for name in names), overlay or {}]:
        update_config(config, part)
    return config


@pytest.fixture
def default():
    return layered("config.yaml")


def test_the_powerset_study_trains_seven_methods_on_three_seeds():
    config = layered("config.yaml", "powerset.yaml")
    runs = plan.training_runs(config)
    assert len(runs) == 21 and {n for _, n, _ in runs} == {1000}
    assert runs[:4] == [("baseline", 1000, 0), ("baseline", 1000, 1), ("baseline", 1000, 2), ("ours", 1000, 0)]
    assert {method for method, _, _ in runs} == set(config["train"]["methods"])
    assert plan.train_summaries(config)[3] == "results/powerset/train/ours/n1000/seed0/summary.json"


def test_extra_data_sizes_add_baseline_runs_and_widen_the_train_split():
    config = layered("config.yaml", "shapes_full.yaml")
    runs = plan.training_runs(config)
    assert len(runs) == 7 * 3 + 2 * 3
    assert runs[-6:] == [("baseline", size, seed) for size in (2000, 4000) for seed in (0, 1, 2)]
    assert plan.split_size(config, "train") == 4000 and plan.split_size(config, "val") == 250
    assert plan.n_shards(config, plan.split_size(config, "train")) == 16
    # a data size equal to n_train is the study's own baseline run, not a second one
    config["train"]["data_sizes"] = [1000, 2000]
    assert [run for run in plan.training_runs(config) if run[1] != 1000] == [("baseline", 2000, s) for s in (0, 1, 2)]


def test_zeroshot_adds_the_untrained_model_once_on_the_first_seed():
    config = layered("config.yaml", "coco.yaml")
    runs = plan.training_runs(config)
    assert runs.count(("zeroshot", 10000, 0)) == 1 and [r for r in runs if r[0] == "zeroshot"] == [("zeroshot", 10000, 0)]
    assert not plan.synthetic_suites(config) and plan.eval_outputs(config) == []
    outputs = plan.benchmark_eval_outputs(config)
    assert len(outputs) == len(runs) * (8 + 1)  # every benchmark of coco.yaml, and zero-shot classification
    assert "results/coco/eval/zeroshot/n10000/seed0/classification.csv" in outputs


def test_shards_split_the_images_and_the_last_one_holds_the_rest(default):
    default["dataset"]["n_train"] = 1100
    counts = [plan.shard_image_count(default, "train", shard) for shard in range(6)]
    assert counts == [250, 250, 250, 250, 100, 0]
    assert plan.shard_image_count(default, "test", "1") == 250  # wildcards arrive as strings
    assert plan.manifests(default, "parse", "train", 1100)[-1] == "results/parse/train/4/manifest.json"
    assert plan.manifests(default, "data", "val", 250) == ["results/data/val/0/manifest.json"]
    assert plan.shard_manifest(default, "detect") == "results/detect/{split}/{shard}/manifest.json"


def test_without_sizes_drops_only_the_image_counts(default):
    assert plan.without_sizes(default["dataset"]) == {
        key: value for key, value in default["dataset"].items() if key not in ("n_train", "n_val", "n_test")}
    assert "image_size" in plan.without_sizes(default["dataset"])


def test_train_params_keep_only_what_the_method_result_depends_on(default):
    baseline = plan.train_params(default, "baseline")
    for key in ("methods", "seeds", "data_sizes", "zeroshot", "checkpoint_every", "loader_workers",
                "negclip", "ours_soft", "use_failed_rewrites", "epochs"):
        assert key not in baseline, key
    assert baseline["budget_images"] == 38400 and baseline["lr"] == 5.0e-4
    assert plan.train_params(default, "negclip")["negclip"] == {"neighbour_model": "pixels", "k": 3}
    assert "ours_soft" in plan.train_params(default, "ours_soft") and "negclip" not in plan.train_params(default, "ours")
    assert plan.train_params(default, "ours")["use_failed_rewrites"] is False
    default["train"]["compute"] = "equal_epochs"
    unchanged = copy.deepcopy(default)
    epochs = plan.train_params(default, "ours")
    assert epochs["epochs"] == 10 and "budget_images" not in epochs
    assert default == unchanged  # the config itself is left alone


def test_a_subset_policy_in_the_name_replaces_train_subsets(default):
    default["train"]["subsets"] = "singletons"
    assert plan.train_params(default, "ours")["subsets"] == "singletons"
    assert "subsets" not in plan.train_params(default, "ours@leave_one_in")
    assert "subsets" not in plan.train_params(default, "baseline")  # no duals to filter


def test_train_inputs_follow_what_each_method_reads(default):
    def stages(method):
        return {stage for stage, files in plan.train_inputs(default, method, "500").items() if files}

    assert stages("baseline") == {"data", "val"}
    assert stages("negclip") == {"data", "val", "parse"}
    assert stages("ours") == {"data", "val", "rewrite", "inpaint"}
    assert stages("ours+negclip") == {"data", "val", "parse", "rewrite", "inpaint"}
    assert plan.train_inputs(default, "ours", 500)["inpaint"] == [f"results/inpaint/train/{k}/manifest.json" for k in (0, 1)]
    default["filter"]["enabled"] = True
    assert stages("ours@singletons") == {"data", "val", "rewrite", "inpaint", "filter"}


def test_needed_manifests_close_over_the_upstream_stages(default):
    needed = plan.needed_manifests(default)
    # 4 train shards of every stage the methods read or the report shows, 1 val and 2 test shards of data
    assert len(needed) == 4 * 5 + 1 + 2 and needed == sorted(needed)
    assert "results/detect/train/3/manifest.json" in needed  # no run reads detect: inpaint and rewrite do
    assert not [m for m in needed if "/val/" in m and not m.startswith("results/data/")]
    upstream = plan.upstream_stages(default)
    for manifest in needed:
        stage, rest = manifest[len("results/"):].split("/", 1)
        assert {f"results/{before}/{rest}" for before in upstream[stage]} <= set(needed), manifest


def test_the_clip_filter_reads_the_dual_texts_and_borrows_the_model():
    config = layered("config.yaml", "coco.yaml", "coco_open.yaml")
    assert plan.clip_filter_enabled(config) and "rewrite" in plan.upstream_stages(config)["filter"]
    settings = plan.filter_settings(config)
    assert settings["clip"]["model"] == {"name": "ViT-B-32-quickgelu", "pretrained": "openai"}
    assert config["filter"]["clip"]["model"] is None  # the config itself is left alone
    assert "results/coco/rewrite/train/0/manifest.json" in plan.needed_manifests(config)
    coco = layered("config.yaml", "coco.yaml")
    assert not plan.clip_filter_enabled(coco) and plan.filter_settings(coco) == coco["filter"]
    assert plan.upstream_stages(coco)["filter"] == ["data", "parse", "detect", "inpaint"]


def test_report_inputs_of_the_dual_stages(default):
    assert plan.gallery_inputs(default) == [f"results/{stage}/train/0/manifest.json" for stage in ("data", "rewrite", "inpaint")]
    assert len(plan.funnel_inputs(default)) == 5 * 4
    default["filter"]["enabled"] = True
    assert plan.dual_stages(default) == ["rewrite", "inpaint", "filter"]
    no_duals = copy.deepcopy(default)
    no_duals["train"]["methods"] = ["baseline", "negclip"]
    assert plan.gallery_inputs(no_duals) == plan.funnel_inputs(no_duals) == plan.manifold_outputs(no_duals) == []


def test_the_manifold_check_needs_the_baseline_and_a_method_on_duals(default):
    assert plan.manifold_outputs(default) == ["results/eval/manifold.csv"]
    assert plan.manifold_images(default) == 300 and plan.manifold_model(default) == "results/train/baseline/n1000/seed0/model.pt"
    default["dataset"]["n_train"] = 120
    assert plan.manifold_images(default) == 120  # never more than the training images
    default["eval"]["manifold_images"] = 0
    assert plan.manifold_outputs(default) == []
    default["eval"]["manifold_images"] = 50
    default["train"]["methods"] = ["ours", "negclip"]
    assert plan.manifold_outputs(default) == []


def test_coco_data_waits_for_the_prepared_annotations(default):
    assert plan.data_prerequisites(default) == []
    assert plan.data_prerequisites(layered("config.yaml", "coco.yaml")) == ["results/coco/data/coco_prepared.json"]


def test_planning_imports_neither_snakemake_nor_torch():
    # the DAG build imports it, and tests and tools call it without a workflow
    code = "import sys, dualclip.plan; print([m for m in ('snakemake', 'torch') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"
