"""The method registry is the one list of methods: schema, workflow and report follow it."""

import re

import pytest
import yaml

from dualclip.subsets import DEFAULT_SUBSET_POLICY, SUBSET_POLICIES
from dualclip.train.methods import (
    METHODS,
    REGISTRY,
    get_method,
    method_rank,
    method_wildcard,
    policy_method_pattern,
    subset_policy,
)
from helpers import REPO

SCHEMA = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
TRAIN_SCHEMA = SCHEMA["properties"]["train"]["properties"]


def test_the_schema_lists_exactly_the_registered_methods_and_policies():
    plain, with_policy = TRAIN_SCHEMA["methods"]["items"]["anyOf"]
    assert plain["enum"] == METHODS
    assert with_policy["pattern"] == policy_method_pattern()
    assert TRAIN_SCHEMA["subsets"]["enum"] == list(SUBSET_POLICIES)
    assert TRAIN_SCHEMA["subsets"]["default"] == DEFAULT_SUBSET_POLICY


def test_every_listed_method_has_a_planner_and_zeroshot_is_not_listed():
    assert "zeroshot" in REGISTRY and "zeroshot" not in METHODS and REGISTRY["zeroshot"].planner is None
    assert all(REGISTRY[name].planner is not None for name in METHODS)
    assert {"baseline", "negclip", "ours", "ours_soft"} <= set(METHODS)
    # what each reads: the workflow's inputs follow these flags
    assert not REGISTRY["baseline"].uses_duals and not REGISTRY["baseline"].uses_negatives
    assert REGISTRY["negclip"].uses_negatives and REGISTRY["negclip"].uses_neighbours and not REGISTRY["negclip"].uses_duals
    assert REGISTRY["ours+negclip"].uses_duals and REGISTRY["ours+negclip"].uses_neighbours
    assert [name for name in METHODS if REGISTRY[name].graded_targets] == ["ours_soft"]


def test_a_policy_in_the_name_is_checked_and_overrides_train_subsets():
    assert get_method("ours@singletons") is REGISTRY["ours"]
    assert subset_policy("ours@singletons", {"subsets": "all"}) == "singletons"
    assert subset_policy("ours", {"subsets": "empty_only"}) == "empty_only"
    assert subset_policy("ours_soft", {}) == DEFAULT_SUBSET_POLICY
    assert subset_policy("baseline", {"subsets": "singletons"}) is None  # no duals, no policy
    with pytest.raises(ValueError, match=r"train.methods: unknown method 'ourz'.*ours@singletons"):
        get_method("ourz")
    with pytest.raises(ValueError, match="baseline trains on no duals"):
        get_method("baseline@singletons")
    with pytest.raises(ValueError, match="unknown subset policy 'pairs'"):
        get_method("ours@pairs")
    with pytest.raises(ValueError, match="train.subsets: unknown subset policy"):
        subset_policy("ours", {"subsets": "some"})


def test_the_method_wildcard_accepts_every_run_name_and_nothing_else():
    wildcard = re.compile(method_wildcard())
    names = [*REGISTRY, *(f"{m}@{p}" for m in METHODS if REGISTRY[m].uses_duals for p in SUBSET_POLICIES)]
    assert all(wildcard.fullmatch(name) for name in names)
    for bad in ("baseline@singletons", "ours@", "ours@pairs", "ours+", "ours_soft@all@all", "Ours"):
        assert not wildcard.fullmatch(bad), bad
    pattern = re.compile(policy_method_pattern())  # the schema's: policies only on methods with duals
    assert pattern.match("ours+negclip@sample_k") and not pattern.match("negclip@sample_k")


def test_report_order_is_registry_order_then_policy_order():
    runs = ["ours_soft", "ours@sample_k", "literature: CLIP", "baseline", "ours", "ours@singletons", "zeroshot", "negclip"]
    assert sorted(runs, key=method_rank) == ["zeroshot", "baseline", "negclip", "ours", "ours@singletons", "ours@sample_k",
                                             "ours_soft", "literature: CLIP"]


def test_no_method_list_or_name_test_is_written_outside_the_registry():
    """The workflow, train scripts and report read the registry instead of repeating it."""
    files = [REPO / "Snakefile", *(REPO / "rules").glob("*.smk"), *(REPO / "scripts").glob("*.py"),
             *(REPO / "dualclip" / "train").glob("*.py"), *(REPO / "dualclip" / "report").glob("*.py")]
    assert len(files) > 20
    for path in files:
        text = path.read_text()
        for written_out in ('startswith("ours")', "METHOD_ORDER", '"ours+negclip")', '("negclip", "ours+negclip"'):
            assert written_out not in text, f"{path.relative_to(REPO)} writes {written_out}: use dualclip.train.methods"
    report = (REPO / "dualclip" / "report" / "__init__.py").read_text()
    common = (REPO / "rules" / "common.smk").read_text()
    assert "from dualclip.train.methods import" in report and "from dualclip.train.methods import" in common
