"""The one per-item rule (strictly_best) and schema shared by the synthetic suites and the real benchmarks."""
import numpy as np
import pytest

from dualclip.eval.benchmarks.evaluate import PER_ITEM_COLUMNS
from dualclip.eval.benchmarks.scoring import correct_from_scores
from dualclip.eval.scoring import PER_ITEM_SCORE_COLUMNS, strictly_best


def test_strictly_best_vectorised_equals_the_scalar_rule():
    rng = np.random.default_rng(0)
    positives = rng.integers(0, 4, 200).astype(float)  # small integers: many ties
    negatives = rng.integers(0, 4, (200, 3)).astype(float)
    expected = [strictly_best(p, list(n)) for p, n in zip(positives, negatives)]
    assert 0 < sum(expected) < 200 and (positives == negatives.max(1)).any()
    assert list(strictly_best(positives, negatives)) == expected
    assert list(strictly_best(positives, negatives.max(1))) == expected
    with pytest.raises(ValueError, match="shape"):
        strictly_best(positives, negatives[:10])


def test_real_benchmarks_use_strictly_best_except_the_order_tie_rule():
    pos, neg = np.array([0.5, 0.5, 0.4]), np.array([[0.5, 0.1], [0.2, 0.3], [0.1, 0.6]])
    for benchmark in ("sugarcrepe", "valse", "vg_relation", "vg_attribution", "sugarcrepe_pp"):
        assert list(correct_from_scores(benchmark, pos, neg)) == list(strictly_best(pos, neg)) == [False, True, False]
    assert list(correct_from_scores("coco_order", pos, neg)) == [True, True, False]  # ties go to the original


def test_real_per_item_table_has_the_shared_schema():
    assert set(PER_ITEM_SCORE_COLUMNS) <= set(PER_ITEM_COLUMNS)
