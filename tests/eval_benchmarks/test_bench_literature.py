"""Literature numbers: every row carries its source, and the NegCLIP per-subset SugarCrepe
numbers agree with the independently read category averages."""

from __future__ import annotations

import pytest

from dualclip.eval.benchmarks import literature_results
from dualclip.eval.benchmarks.literature import SUGARCREPE_PAPER_COUNTS


def test_every_number_has_a_source_and_a_plausible_value():
    lit = literature_results()
    assert lit["source"].str.len().gt(20).all() and lit["literature"].all()
    assert lit["value"].between(0, 100).all()
    assert not lit.duplicated(["benchmark", "suite", "metric", "model"]).any()


def test_negclip_subsets_reproduce_the_category_averages_of_re_eval_png():
    lit = literature_results()
    negclip = lit[lit["model"].str.startswith("NegCLIP")].set_index("suite")["value"]
    subsets = {"REPLACE": ["replace_obj", "replace_att", "replace_rel"], "SWAP": ["swap_obj", "swap_att"],
               "ADD": ["add_obj", "add_att"]}
    for category, members in subsets.items():
        weighted = sum(negclip[m] * SUGARCREPE_PAPER_COUNTS[m] for m in members) / SUGARCREPE_PAPER_COUNTS[category]
        assert weighted == pytest.approx(negclip[category], abs=0.006), category


def test_zero_shot_classification_reference():
    lit = literature_results().set_index(["benchmark", "metric"])
    assert lit.loc[("imagenet", "top1"), "value"] == pytest.approx(63.32)
    assert "open_clip" in lit.loc[("imagenet", "top1"), "source"]
