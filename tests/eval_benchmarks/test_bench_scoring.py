"""Official scorers on hand-built score matrices (column 0 = positive)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dualclip.eval.benchmarks import (
    RESULT_COLUMNS,
    correct_from_scores,
    excluded_vgr_relations,
    literature_results,
    per_item_frame,
    summarise,
)
from dualclip.eval.benchmarks.sugarcrepe import SUBSETS
from dualclip.eval.benchmarks.valse import PIECES


def _value(df, suite, metric):
    sel = df[(df.suite == suite) & (df.metric == metric)]
    assert len(sel) == 1, (suite, metric, df)
    return sel.iloc[0].value, sel.iloc[0].n_items


def test_tie_rules():
    pos = np.array([0.5, 0.5, 0.4])
    neg = np.array([[0.4, 0.49], [0.5, 0.1], [0.2, 0.41]])
    for b in ("sugarcrepe", "valse", "vg_relation", "vg_attribution"):
        assert correct_from_scores(b, pos, neg).tolist() == [True, False, False]
    # Order: upstream argmax==0 gives ties to the original caption.
    assert correct_from_scores("coco_order", pos, neg).tolist() == [True, True, False]
    with pytest.raises(ValueError, match="unknown benchmark"):
        correct_from_scores("crepe", pos, neg)


def test_sugarcrepe_subsets_and_micro_category_averages():
    suites, scores = [], []
    # replace_obj: 4 items, 3 correct (one tie -> wrong counts among the 4)
    for s, rows in {
        "replace_obj": [[.9, .1], [.8, .2], [.7, .3], [.5, .5]],           # 3/4 (tie wrong)
        "replace_att": [[.1, .9], [.6, .5]],                                # 1/2
        "replace_rel": [[.2, .3], [.2, .3], [.2, .3], [.9, .3]],            # 1/4
        "swap_obj": [[.9, .1]],                                             # 1/1
        "swap_att": [[.1, .9], [.1, .9], [.9, .1]],                         # 1/3
        "add_obj": [[.9, .1], [.9, .1]],                                    # 2/2
        "add_att": [[.3, .3], [.1, .2]],                                    # 0/2 (tie wrong)
    }.items():
        suites += [s] * len(rows)
        scores += rows
    out = summarise("sugarcrepe", per_item_frame("sugarcrepe", suites, scores))
    assert list(out.columns) == RESULT_COLUMNS
    assert _value(out, "replace_obj", "accuracy") == (75.0, 4)
    assert _value(out, "add_att", "accuracy") == (0.0, 2)
    # REPLACE is micro: 5/10 = 50, not the macro mean (75+50+25)/3 = 50 -> use SWAP to tell
    assert _value(out, "REPLACE", "accuracy") == (50.0, 10)
    v, n = _value(out, "SWAP", "accuracy")
    assert n == 4 and v == pytest.approx(50.0)  # micro 2/4; macro would be 66.67
    assert _value(out, "ADD", "accuracy") == (50.0, 4)  # micro 2/4; macro 50 as well
    v, n = _value(out, "mean", "accuracy")
    assert n == 18 and v == pytest.approx((75 + 50 + 25 + 100 + 100 / 3 + 100 + 0) / 7)


def test_sugarcrepe_incomplete_category_is_left_out():
    df = per_item_frame("sugarcrepe", ["swap_obj", "swap_obj"], [[1, 0], [0, 1]])
    out = summarise("sugarcrepe", df)
    assert set(out.suite) == {"swap_obj"}
    with pytest.raises(ValueError, match="unknown SugarCrepe subsets"):
        summarise("sugarcrepe", per_item_frame("sugarcrepe", ["swap_rel"], [[1, 0]]))


def test_valse_acc_r_on_valid_items_and_mean_over_pieces():
    suites, scores, valid = [], [], []
    expected = {}
    for k, piece in enumerate(PIECES):
        # k+1 valid items: first one correct, rest wrong (one of them a tie);
        # plus 2 invalid items that are correct and must be ignored.
        rows = [[0.9, 0.1]] + [[0.5, 0.5]] + [[0.1, 0.2]] * (k - 1) if k else [[0.9, 0.1]]
        suites += [piece] * (len(rows) + 2)
        scores += rows + [[0.9, 0.0], [0.9, 0.0]]
        valid += [True] * len(rows) + [False, False]
        expected[piece] = (100.0 / len(rows), len(rows))
    df = per_item_frame("valse", suites, scores, valid=valid)
    out = summarise("valse", df)
    for piece, (acc, n) in expected.items():
        v, m = _value(out, piece, "acc_r")
        assert v == pytest.approx(acc) and m == n
    v, n = _value(out, "mean", "acc_r")
    assert v == pytest.approx(np.mean([a for a, _ in expected.values()]))
    assert n == sum(n for _, n in expected.values())
    part = summarise("valse", df[df.suite.isin(["existence", "plurals"])])
    assert set(part.suite) == {"existence", "plurals", "mean_partial"}


def test_vg_relation_excluded_relations_are_the_157_of_the_notebook():
    ex = excluded_vgr_relations()
    assert len(ex) == 157 and "between" in ex and "on" not in ex


@pytest.mark.parametrize("benchmark, suites, scores, expected, micro", [
    # VG-Relation drops the notebook's 157 relations from the macro average
    ("vg_relation", ["on"] * 4 + ["wearing"] * 2 + ["between"] * 3,
     ([[.9, .1]] * 3 + [[.1, .1]]          # on: 3/4, the tie is wrong
      + [[.1, .9], [.9, .1]]                 # wearing: 1/2
      + [[.1, .9]] * 3),                     # between: 0/3, excluded from macro
     {("on", "accuracy"): (75.0, 4), ("between", "accuracy_excluded_from_macro"): (0.0, 3),
      ("macro", "accuracy"): (62.5, 6)},
     (400 / 9, 9)),
    # VG-Attribution drops pairs of under 25 items from the macro average
    ("vg_attribution", ["white_brown"] * 25 + ["red_blue"] * 24,
     [[.9, .1]] * 20 + [[.1, .9]] * 5 + [[.1, .9]] * 24,
     {("white_brown", "accuracy"): (80.0, 25), ("red_blue", "accuracy_excluded_from_macro"): (0.0, 24),
      ("macro", "accuracy"): (80.0, 25)},
     (2000 / 49, 49)),
])
def test_vg_macro_leaves_out_excluded_suites_and_micro_keeps_them(benchmark, suites, scores, expected, micro):
    out = summarise(benchmark, per_item_frame(benchmark, suites, scores))
    for (suite, metric), value_and_n in expected.items():
        assert _value(out, suite, metric) == value_and_n
    v, n = _value(out, "micro", "accuracy")
    assert n == micro[1] and v == pytest.approx(micro[0])


def test_order_micro_accuracy_with_official_and_strict_ties():
    scores = [[.5, .5, .1, .2, .3],   # tie with a perturbation: official correct, strict wrong
              [.6, .1, .2, .3, .4],   # correct
              [.1, .2, .0, .0, .0],   # wrong
              [.7, .1, .1, .1, .1]]   # correct
    out = summarise("coco_order", per_item_frame("coco_order", ["test"] * 4, scores))
    assert _value(out, "test", "accuracy") == (75.0, 4)
    assert _value(out, "test", "accuracy_strict") == (50.0, 4)


def test_summarise_rejects_mixed_or_unknown_tables():
    df = per_item_frame("valse", ["existence"], [[1, 0]])
    with pytest.raises(ValueError, match="other benchmarks"):
        summarise("sugarcrepe", df)
    with pytest.raises(ValueError, match="lacks columns"):
        summarise("valse", pd.DataFrame({"suite": ["existence"]}))
    with pytest.raises(ValueError, match="unknown benchmark"):
        summarise("winoground", pd.DataFrame({"suite": ["x"], "correct": [True]}))


def test_literature_table_is_consistent():
    lit = literature_results()
    assert list(lit.columns[:5]) == RESULT_COLUMNS and lit["literature"].all()
    lit = lit[lit.benchmark == "sugarcrepe"]
    clip = lit[lit.model.str.startswith("CLIP ViT-B/32")].set_index("suite")
    # The paper's REPLACE/SWAP/ADD are item-weighted means of its subset numbers.
    for cat in ("REPLACE", "SWAP", "ADD"):
        members = [s for s, c in SUBSETS.items() if c == cat]
        micro = (sum(clip.loc[s, "value"] * clip.loc[s, "n_items"] for s in members)
                 / sum(clip.loc[s, "n_items"] for s in members))
        assert micro == pytest.approx(clip.loc[cat, "value"], abs=0.02), cat
        assert clip.loc[cat, "n_items"] == sum(clip.loc[s, "n_items"] for s in members)
    neg = lit[lit.model.str.startswith("NegCLIP") & lit.suite.isin(["REPLACE", "SWAP", "ADD"])]
    assert dict(zip(neg.suite, neg.value)) == {"REPLACE": 85.36, "SWAP": 75.33, "ADD": 87.29}
