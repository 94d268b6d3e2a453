"""The whole workflow on the tiny config: report, power-set counts, caching, config errors."""

import json

import pytest

from helpers import REPO, planned_jobs, snakemake


@pytest.fixture(scope="module")
def workflow_dir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("workflow")
    snakemake(workdir)
    return workdir


@pytest.mark.slow
def test_report_names_every_method_and_suite(workflow_dir):
    import yaml

    report = (workflow_dir / "results" / "report" / "report.html").read_text()
    suites = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["eval"]["suites"]
    for name in ["baseline", "negclip", "ours", *suites]:
        assert name in report, name
    assert report.count("data:image/png;base64,") > 10  # figures and the gallery are embedded
    scores = (workflow_dir / "results" / "report" / "scores.csv").read_text()
    assert "blind_accuracy" in scores and "code_version" in scores
    # paired per-seed differences: the tiny config has baseline, negclip and ours, so the
    # comparisons with the ablations are listed as not made, never silently dropped
    assert "ours − baseline" in report and "ours − negclip" in report
    assert "Not in this study (no runs): ours − ours_shuf" in report
    paired = (workflow_dir / "results" / "report" / "paired_differences.csv").read_text()
    assert paired.startswith("comparison,benchmark,suite,metric,mean_difference") and "ours − negclip" in paired


@pytest.mark.slow
def test_every_image_has_all_its_duals_and_dual_texts(workflow_dir):
    results = workflow_dir / "results"
    checked = 0
    for detect_file in (results / "detect" / "train").glob("*/[0-9]*.json"):
        shard, slot = detect_file.parent.name, detect_file.stem
        k = sum(c["found"] for c in json.loads(detect_file.read_text())["components"])
        duals = json.loads((results / "inpaint" / "train" / shard / slot / "duals.json").read_text())["duals"]
        texts = json.loads((results / "rewrite" / "train" / shard / f"{slot}.json").read_text())["duals"]
        assert len(duals) == len(texts) == 2**k - 1
        assert len(list((results / "inpaint" / "train" / shard / slot).glob("drop-*.png"))) == 2**k - 1
        checked += 1
    assert checked == 24


@pytest.mark.slow
def test_caching_reruns_only_what_changed(workflow_dir):
    results = workflow_dir / "results"
    assert planned_jobs(workflow_dir) == {}  # a second run has nothing to do
    # a deleted per-image file of any stage reruns exactly its shard and what depends on it
    # (shard jobs declare only their manifest; the manifest lists every file with its size)
    (results / "parse" / "train" / "1" / "3.json").unlink()
    jobs = planned_jobs(workflow_dir)
    assert jobs == {"parse": 1, "detect": 1, "inpaint": 1, "rewrite": 1, "train": 2, "eval_synthetic": 2,
                    "eval_manifold": 1, "report": 1, "all": 1}, jobs
    assert (results / "parse" / "train" / "1" / "manifest.stale.json").exists()
    snakemake(workflow_dir)
    # a dual PNG of shard 0 and a mask of shard 1: inpaint reruns both shards, detect and
    # rewrite only shard 1, and only ours (the one method on duals) retrains
    next(iter(sorted((results / "inpaint" / "train" / "0").glob("*/drop-0.png")))).unlink()
    (results / "detect" / "train" / "1" / "5.masks.png").write_bytes(b"truncated")
    jobs = planned_jobs(workflow_dir)
    # the manifold table reads the duals
    assert jobs == {"detect": 1, "inpaint": 2, "rewrite": 1, "train": 1, "eval_synthetic": 1, "eval_manifold": 1,
                    "report": 1, "all": 1}, jobs
    snakemake(workflow_dir)
    assert planned_jobs(workflow_dir) == {}
    # a partial last shard: 30 images are shards of 12, 12 and 6, and the first two stay
    jobs = planned_jobs(workflow_dir, extra_config={"dataset": {"n_train": 30}})
    assert jobs["data"] == 1 and jobs["parse"] == 1 and jobs["inpaint"] == 1
    assert "build_suites" not in jobs  # the test suites do not depend on the train set size
    snakemake(workflow_dir, extra_config={"dataset": {"n_train": 30}})
    partial = json.loads((results / "data" / "train" / "2" / "manifest.json").read_text())
    assert partial["n_images"] == 6 and sorted(p for p in partial["files"] if p.endswith(".json")) == [f"{i}.json" for i in range(6)]
    summary = json.loads((results / "train" / "ours" / "n30" / "seed0" / "summary.json").read_text())
    assert summary["n_samples"] == 30
    # growing it reruns only that shard: membership of the full shards does not move
    jobs = planned_jobs(workflow_dir, extra_config={"dataset": {"n_train": 36}})
    assert jobs["data"] == 1 and jobs["parse"] == 1 and jobs["inpaint"] == 1
    # one stage's parameters rerun that stage and everything downstream, nothing upstream
    jobs = planned_jobs(workflow_dir, extra_config={"dataset": {"n_train": 30}, "inpaint": {"radius": 5}})
    assert jobs["inpaint"] == 3 and "parse" not in jobs and "detect" not in jobs and "data" not in jobs
    assert jobs["train"] == 1  # only ours uses dual images


def test_bad_config_stops_with_a_message_naming_the_key(tmp_path):
    result = snakemake(tmp_path, "-n", "--config", "shard_size=0", check=False)
    assert result.returncode != 0 and "shard_size" in result.stderr + result.stdout
    result = snakemake(tmp_path, "-n", "--config", "shard_sise=10", check=False)
    assert result.returncode != 0 and "shard_sise" in result.stderr + result.stdout
