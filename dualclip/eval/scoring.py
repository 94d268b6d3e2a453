"""The per-item result schema and the one correctness rule of every suite and benchmark.

The synthetic suites (dualclip.eval.synthetic) and the real benchmarks
(dualclip.eval.benchmarks.evaluate) both write one row per item with at least
:data:`PER_ITEM_SCORE_COLUMNS`, and both decide ``correct`` with :func:`strictly_best`
(the Order benchmarks alone keep their official tie rule, dualclip.eval.benchmarks.scoring).
"""
from __future__ import annotations

import numpy as np

#: Columns every per-item table has: the item, its positive score, its best negative score
#: (empty where an item has no negatives, e.g. retrieval), correct and the text-only baseline.
PER_ITEM_SCORE_COLUMNS = ("suite", "item_id", "pos_score", "max_neg_score", "correct", "blind_correct")


def strictly_best(positive, negatives):
    """The official rule: correct when the positive scores strictly above every negative; a tie
    is wrong. A scalar positive with its negatives gives a bool; positives (n,) with negatives
    (n, k), or their row maxima (n,), give a bool array."""
    positive = np.asarray(positive, dtype=np.float64)
    negatives = np.asarray(negatives, dtype=np.float64)
    if positive.ndim == 0:
        return bool((positive > negatives).all())
    max_negative = negatives.max(axis=1) if negatives.ndim == 2 else negatives
    if positive.shape != max_negative.shape:
        raise ValueError(f"positives have shape {positive.shape} but the negatives give {max_negative.shape}")
    return positive > max_negative
