"""Subset policies: which of the power-set duals a run trains on, chosen at train time."""

import json
from collections import Counter

import numpy as np
import pytest

from dualclip.subsets import SUBSET_POLICIES, nonempty_subsets, policy_keeps, sample_k_counts
from dualclip.train import assemble_records
from dualclip.train.batches import build_train_data
from helpers import REPO, SNAKEMAKE, planned_jobs, snakemake


def power_set_records(found_counts, failed=()):
    """One record per image with the power set of its ``found_counts[i]`` components;
    ``failed``: (image, subset) pairs whose dual text failed its check."""
    records = []
    for image, n_found in enumerate(found_counts):
        duals = [{"file": f"{image}/{subset}.png", "text": f"{image} without {subset}", "subset": list(subset),
                  "check_ok": (image, subset) not in failed}
                 for subset in nonempty_subsets(list(range(n_found)))]
        records.append({"image": f"{image}.png", "caption": f"scene {image}", "duals": duals})
    return records


def trained_subsets(data):
    return [[tuple(subset) for subset in sample.dual_subsets] for sample in data.samples]


def test_structural_policies_on_a_three_component_power_set():
    found = (0, 1, 2)
    kept = {policy: [s for s in nonempty_subsets(list(found)) if policy_keeps(policy, s, found)]
            for policy in SUBSET_POLICIES if policy != "sample_k"}
    assert len(kept["all"]) == 7
    assert kept["singletons"] == [(0,), (1,), (2,)]
    assert kept["leave_one_in"] == [(0, 1), (0, 2), (1, 2)]
    assert kept["empty_only"] == [(0, 1, 2)]
    # one component found: removing it is its only dual, and keeping one leaves nothing to remove
    assert policy_keeps("singletons", (0,), (0,)) and policy_keeps("empty_only", (0,), (0,))
    assert not policy_keeps("leave_one_in", (0,), (0,))


def test_a_policy_filters_the_duals_in_their_order_and_counts_what_it_leaves_out():
    records = power_set_records([3, 1, 0, 2])
    everything = build_train_data(records)
    assert everything.n_duals == 7 + 1 + 0 + 3 and everything.n_duals_left_out_by_policy == 0
    singletons = build_train_data(records, subsets="singletons")
    assert trained_subsets(singletons) == [[(0,), (1,), (2,)], [(0,)], [], [(0,), (1,)]]
    assert singletons.n_duals_left_out_by_policy == 11 - 6 and singletons.subset_policy == "singletons"
    assert trained_subsets(build_train_data(records, subsets="leave_one_in")) == [[(0, 1), (0, 2), (1, 2)], [], [], [(0,), (1,)]]
    assert trained_subsets(build_train_data(records, subsets="empty_only")) == [[(0, 1, 2)], [(0,)], [], [(0, 1)]]
    # the image table: each original, then the duals the policy kept (their files, in order)
    assert singletons.image_files[:5] == ["0.png", "0/(0,).png", "0/(1,).png", "0/(2,).png", "1.png"]
    # `all` is the data of a run without a policy, to the file
    assert build_train_data(records, subsets="all").image_files == build_train_data(records).image_files


def test_checks_apply_to_the_duals_a_policy_chose():
    records = power_set_records([3], failed={(0, (1,)), (0, (0, 1))})
    singletons = build_train_data(records, subsets="singletons")
    assert trained_subsets(singletons) == [[(0,), (2,)]] and singletons.n_duals_rejected == 1  # (0, 1) was not chosen
    assert build_train_data(records).n_duals_rejected == 2


def test_sample_k_draws_as_many_duals_as_singletons_from_the_whole_power_set():
    rng = np.random.default_rng(0)
    found_counts = [int(n) for n in rng.integers(0, 4, size=200)]
    records = power_set_records(found_counts, failed={(5, (0,)), (7, (0, 1))})
    singletons = build_train_data(records, subsets="singletons")
    sampled = build_train_data(records, subsets="sample_k", seed=0)
    assert sampled.n_duals == singletons.n_duals  # the same number of duals, exactly
    with_duals = sum(n > 0 for n in found_counts)
    assert sampled.sample_k == pytest.approx(singletons.n_duals / with_duals)  # k per image that has a dual
    assert sampled.n_duals_left_out_by_policy == build_train_data(records).n_duals - sampled.n_duals
    sizes = Counter(len(subset) for subsets in trained_subsets(sampled) for subset in subsets)
    assert sizes[2] > 0 and sizes[3] > 0  # other subsets than single removals
    k = sampled.sample_k
    for subsets, record in zip(trained_subsets(sampled), records):
        usable = [tuple(d["subset"]) for d in record["duals"] if d["check_ok"]]
        assert len(set(subsets)) == len(subsets) and set(subsets) <= set(usable)  # drawn without replacement
        # floor(k) or one more, unless the image has fewer usable duals than that
        assert len(subsets) in (min(len(usable), int(k)), int(k) + 1), (len(subsets), len(usable), k)
    # seeded: the same seed draws the same subsets, another seed others
    assert trained_subsets(build_train_data(records, subsets="sample_k", seed=0)) == trained_subsets(sampled)
    assert trained_subsets(build_train_data(records, subsets="sample_k", seed=1)) != trained_subsets(sampled)


def test_sample_k_counts_hit_the_total_within_each_images_capacity():
    counts = sample_k_counts(10, [1, 7, 0, 3, 7], np.random.default_rng(3))
    assert sum(counts) == 10 and all(c <= cap for c, cap in zip(counts, [1, 7, 0, 3, 7]))
    assert counts[2] == 0 and min(counts[1], counts[4]) >= 2  # floor(10 / 5) each where there is room
    with pytest.raises(ValueError, match="sample_k: 5 duals asked for, only 4 available"):
        sample_k_counts(5, [1, 3], np.random.default_rng(0))


def test_a_policy_needs_the_subset_of_each_dual():
    records = [{"image": "a.png", "caption": "c", "duals": [{"file": "d.png", "text": "t"}]}]
    assert build_train_data(records).n_duals == 1  # all needs no subsets
    with pytest.raises(ValueError, match=r"a.png: dual d.png has no 'subset'.*'singletons' \(train.subsets\)"):
        build_train_data(records, subsets="singletons")
    with pytest.raises(ValueError, match="train.subsets: unknown subset policy 'pairs'"):
        build_train_data(records, subsets="pairs")


def test_assemble_records_reads_each_duals_subset_from_the_inpaint_record(tmp_path):
    (tmp_path / "0").mkdir()
    (tmp_path / "0.png").write_bytes(b"")
    (tmp_path / "0.json").write_text(json.dumps({"image_id": "train-0000-000", "caption": "a red circle and a square"}))
    subsets = nonempty_subsets([0, 1])
    for subset in subsets:
        (tmp_path / "0" / f"drop-{subset}.png").write_bytes(b"")
    (tmp_path / "0" / "duals.json").write_text(json.dumps({"duals": [{"subset": list(s), "file": f"drop-{s}.png"} for s in subsets]}))
    (tmp_path / "rewrite.json").write_text(json.dumps({"duals": [{"subset": list(s), "text": str(s), "check_ok": True} for s in subsets]}))
    records = assemble_records([tmp_path / "0.png"], [tmp_path / "0.json"], rewrite=[tmp_path / "rewrite.json"],
                               duals=[tmp_path / "0" / "duals.json"])
    assert [d["subset"] for d in records[0]["duals"]] == [[0], [1], [0, 1]]
    assert trained_subsets(build_train_data(records, subsets="empty_only")) == [[(0, 1)]]


def test_the_powerset_study_plans_every_policy_and_seed(tmp_path):
    import os
    import re
    import subprocess

    import yaml

    study = yaml.safe_load((REPO / "config" / "powerset.yaml").read_text())["train"]
    policies = {method.partition("@")[2] for method in study["methods"] if "@" in method}
    assert policies | {"all"} == set(SUBSET_POLICIES) and "ours_soft" in study["methods"] and len(study["seeds"]) == 3
    command = [*SNAKEMAKE, "-n", "--configfile", str(REPO / "config" / "config.yaml"), str(REPO / "config" / "powerset.yaml"),
               "--directory", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    planned = set(re.findall(r"results/powerset/train/([^/\s]+)/n1000/seed(\d)/summary.json", result.stdout))
    assert planned == {(method, str(seed)) for method in study["methods"] for seed in study["seeds"]}


@pytest.mark.slow
def test_a_policy_change_plans_no_inpaint_or_rewrite_job(tmp_path):
    # every stage of the tiny config up to the training runs, then dry runs with other policies
    snakemake(tmp_path, "--omit-from", "train")
    assert (tmp_path / "results" / "rewrite" / "train" / "1" / "manifest.json").exists()
    for change in ({"train": {"subsets": "singletons"}},
                   {"train": {"methods": ["baseline", "ours@sample_k", "ours@leave_one_in", "ours_soft"]}}):
        jobs = planned_jobs(tmp_path, extra_config=change)
        # nothing upstream of training; the train runs and what reads them (evals, report) only
        assert not set(jobs) & {"data", "parse", "detect", "inpaint", "rewrite", "filter"}, (change, jobs)
        assert {"train", "eval_synthetic", "report", "all"} <= set(jobs) <= {
            "train", "eval_synthetic", "eval_manifold", "eval_classification", "report", "all"}, (change, jobs)
