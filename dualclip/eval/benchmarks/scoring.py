"""Official scoring rules of SugarCrepe, VALSE and ARO, on per-item scores.

Per-item correctness (:func:`correct_from_scores`):

* SugarCrepe, VALSE (acc_r), VG-Relation, VG-Attribution: correct only if the positive
  scores strictly higher than every negative; a tie is wrong. (SugarCrepe:
  ``pos_score > neg_score``; VALSE: ``cross_score[0,1] > cross_score[1,1]``; VG-R/VG-A:
  ``argmax([false, true]) == 1`` where a tie goes to index 0, the false caption.)
* SugarCrepe++ (:func:`sugarcrepe_pp_correct`, upstream ``VLMs/test_*.py``): cosine
  similarities of L2-normalised embeddings, strict ``>`` (ties are wrong). ITT (image-to-
  text, the headline): ``cos(I,P1) > cos(I,N)`` and ``cos(I,P2) > cos(I,N)``; Image-P1-Neg:
  ``cos(I,P1) > cos(I,N)``; Image-P2-Neg: ``cos(I,P2) > cos(I,N)``; TOT (text only):
  ``cos(P1,P2) > cos(P1,N)`` and ``cos(P1,P2) > cos(P2,N)``. The per-item ``correct`` column
  is ITT.
* COCO-Order / Flickr30k-Order: upstream takes ``argmax([original, 4 perturbations]) == 0``;
  NumPy's argmax returns the first maximum, so a tie between the original and a
  perturbation (e.g. a perturbation that left the caption unchanged) counts as CORRECT.
  This official rule gives metric ``accuracy``; :func:`summarise` also reports
  ``accuracy_strict`` where ties are wrong, like every other benchmark.

Aggregation (:func:`summarise`, long format ``benchmark, suite, metric, value, n_items``,
value in percent):

* ``sugarcrepe``: ``accuracy`` per subset; suites ``REPLACE``/``SWAP``/``ADD`` are the
  item-weighted (micro) averages of their subsets (these reproduce the paper's
  category numbers), emitted only when all subsets of the category are present; suite
  ``mean`` is the unweighted mean of the seven subsets (only when all seven are present).
* ``sugarcrepe_pp``: metrics ``itt``, ``image_p1_neg``, ``image_p2_neg`` and ``tot``
  (accuracy, %) per subset; suite ``mean`` is the unweighted mean of the five subsets per
  metric (only when all five are present; ours, the paper reports subsets only).
* ``valse``: ``acc_r`` per piece on valid items only (``mturk.caption >= 2``); suite
  ``mean`` is the unweighted mean over the eleven pieces (``mean_partial`` when some
  pieces are missing).
* ``vg_relation``: ``accuracy`` per relation; suite ``macro`` = mean over relations after
  dropping the 157 relations of the official notebook (those rows get metric
  ``accuracy_excluded_from_macro``); suite ``micro`` = accuracy over all items
  (``main_aro.py``'s "Accuracy").
* ``vg_attribution``: ``accuracy`` per attribute pair; pairs with < 25 items get metric
  ``accuracy_excluded_from_macro``; suite ``macro`` = mean over the remaining pairs; suite
  ``micro`` = accuracy over all items.
* ``coco_order`` / ``flickr30k_order``: ``accuracy`` (official, micro over all captions)
  and ``accuracy_strict`` per split suite.

Text-only baselines (:func:`summarise_baselines`), the same aggregation on per-item
``blind_correct`` / ``length_correct`` (see :mod:`dualclip.eval.benchmarks.evaluate`), metric
names prefixed ``blind_`` / ``length_`` as the synthetic suites' ``blind_accuracy``:
``blind`` scores the captions against the mean image of the benchmark; ``length`` counts an
item correct when the positive has strictly fewer words than every negative (ties wrong,
the Order benchmarks included). SugarCrepe++ gets ``blind_itt`` and ``length_itt`` only
(TOT is text-only already).
"""

from __future__ import annotations

import logging
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from dualclip.eval.scoring import strictly_best

from .aro import VGA_MIN_PAIR_ITEMS, excluded_vgr_relations
from .registry import REGISTRY, benchmark_names
from .sugarcrepe import SUBSETS as SUGARCREPE_SUBSETS
from .sugarcrepe_pp import SUBSETS as SUGARCREPE_PP_SUBSETS
from .valse import PIECES as VALSE_PIECES

log = logging.getLogger(__name__)

RESULT_COLUMNS = ["benchmark", "suite", "metric", "value", "n_items"]
#: the benchmarks scored per item (retrieval is scored by recall@k, coco_retrieval.py)
BENCHMARKS = tuple(benchmark_names(retrieval=False))
ORDER_BENCHMARKS = frozenset(name for name in BENCHMARKS if REGISTRY[name].ties_go_to_positive)


def correct_from_scores(benchmark: str, pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Per-item correctness from positive scores ``pos`` (n,) and negative scores
    ``neg`` (n, k) (or the row-wise max of the negatives, shape (n,)).

    Strict ``pos > max(neg)`` everywhere except the Order benchmarks, whose official
    rule ``argmax == 0`` lets ties go to the positive (``pos >= max(neg)``).
    """
    if benchmark in ORDER_BENCHMARKS:
        pos = np.asarray(pos, dtype=np.float64)
        neg = np.asarray(neg, dtype=np.float64)
        max_neg = neg.max(axis=1) if neg.ndim == 2 else neg
        if pos.shape != max_neg.shape:
            raise ValueError(f"pos has shape {pos.shape} but negatives give {max_neg.shape}")
        return pos >= max_neg
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; choose from {BENCHMARKS}")
    return strictly_best(pos, neg)


#: SugarCrepe++ metric -> per-item boolean column (``correct`` holds ITT).
SUGARCREPE_PP_METRICS = {"itt": "correct", "image_p1_neg": "image_p1_neg",
                         "image_p2_neg": "image_p2_neg", "tot": "tot"}
#: The six similarities of a SugarCrepe++ item, in the per-item table's column names.
SUGARCREPE_PP_SCORES = ("pos_score", "pos2_score", "max_neg_score", "text_p1_p2", "text_p1_neg",
                        "text_p2_neg")


#: The text-only baselines: per-item column ``<kind>_correct``, metrics ``<kind>_<metric>``.
BASELINES = ("blind", "length")


def word_count(text: str) -> int:
    return len(text.split())


def length_correct(positives: Sequence[str], negatives: Sequence[str]) -> bool:
    """The length-only baseline ("the shorter caption wins"): correct when every positive has
    strictly fewer words than every negative; equal lengths are wrong. Words, not characters:
    SugarCrepe's add-obj negative is the longer caption in words in 97.6% of items."""
    return max(map(word_count, positives)) < min(map(word_count, negatives))


def sugarcrepe_pp_correct(i_p1, i_p2, i_n, p1_p2, p1_n, p2_n) -> dict[str, np.ndarray]:
    """SugarCrepe++ per-item correctness from the six cosine similarities (arrays of the
    same shape): ``cos(I,P1)``, ``cos(I,P2)``, ``cos(I,N)``, ``cos(P1,P2)``, ``cos(P1,N)``,
    ``cos(P2,N)``. Strict ``>`` everywhere: a tie is wrong. Keys: ``itt``,
    ``image_p1_neg``, ``image_p2_neg``, ``tot``."""
    arrays = [np.asarray(a, dtype=np.float64) for a in (i_p1, i_p2, i_n, p1_p2, p1_n, p2_n)]
    if len({a.shape for a in arrays}) != 1:
        raise ValueError(f"SugarCrepe++ similarities differ in shape: {[a.shape for a in arrays]}")
    i_p1, i_p2, i_n, p1_p2, p1_n, p2_n = arrays
    p1_wins, p2_wins = i_p1 > i_n, i_p2 > i_n
    return {"itt": p1_wins & p2_wins, "image_p1_neg": p1_wins, "image_p2_neg": p2_wins,
            "tot": (p1_p2 > p1_n) & (p1_p2 > p2_n)}


def sugarcrepe_pp_frame(suites: Sequence[str], scores, item_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """Per-item SugarCrepe++ table from an (n, 6) array of the similarities, columns in the
    order of :data:`SUGARCREPE_PP_SCORES` (I·P1, I·P2, I·N, P1·P2, P1·N, P2·N)."""
    arr = np.asarray(scores, dtype=np.float64).reshape(-1, len(SUGARCREPE_PP_SCORES))
    if len(arr) != len(suites):
        raise ValueError(f"{len(arr)} score rows but {len(suites)} suites")
    cols = dict(zip(SUGARCREPE_PP_SCORES, arr.T))
    ok = sugarcrepe_pp_correct(*(cols[c] for c in SUGARCREPE_PP_SCORES))
    return pd.DataFrame({
        "benchmark": "sugarcrepe_pp",
        "suite": list(suites),
        "item_id": list(item_ids) if item_ids is not None else [str(i) for i in range(len(arr))],
        "pos_score": cols["pos_score"],
        "max_neg_score": cols["max_neg_score"],
        "n_negatives": 1,
        "correct": ok["itt"],
        "valid": True,
        **{c: cols[c] for c in SUGARCREPE_PP_SCORES if c not in ("pos_score", "max_neg_score")},
        "image_p1_neg": ok["image_p1_neg"],
        "image_p2_neg": ok["image_p2_neg"],
        "tot": ok["tot"],
    })


def per_item_frame(
    benchmark: str,
    suites: Sequence[str],
    scores: np.ndarray | Sequence[Sequence[float]],
    item_ids: Sequence[str] | None = None,
    valid: Sequence[bool] | None = None,
) -> pd.DataFrame:
    """Per-item table from a score matrix whose column 0 is the positive caption and
    whose other columns are the negatives (rows may be ragged lists)."""
    rows = [np.asarray(r, dtype=np.float64) for r in scores]
    if len(rows) != len(suites):
        raise ValueError(f"{len(rows)} score rows but {len(suites)} suites")
    if any(r.size < 2 for r in rows):
        raise ValueError("every score row needs the positive and at least one negative")
    pos = np.array([r[0] for r in rows])
    max_neg = np.array([r[1:].max() for r in rows])
    df = pd.DataFrame({
        "benchmark": benchmark,
        "suite": list(suites),
        "item_id": list(item_ids) if item_ids is not None else [str(i) for i in range(len(rows))],
        "pos_score": pos,
        "max_neg_score": max_neg,
        "n_negatives": [r.size - 1 for r in rows],
        "correct": correct_from_scores(benchmark, pos, max_neg),
    })
    if valid is not None:
        df["valid"] = list(valid)
    return df


def _row(benchmark, suite, metric, correct_or_value, n_items) -> dict:
    return {"benchmark": benchmark, "suite": suite, "metric": metric,
            "value": float(correct_or_value), "n_items": int(n_items)}


def _per_suite(df: pd.DataFrame) -> pd.DataFrame:
    g = df.groupby("suite", sort=True)["correct"]
    return pd.DataFrame({"acc": g.mean() * 100.0, "n": g.size()})


def _check(df: pd.DataFrame, benchmark: str) -> pd.DataFrame:
    missing = {"suite", "correct"} - set(df.columns)
    if missing:
        raise ValueError(f"per-item table for {benchmark} lacks columns {sorted(missing)}; "
                         f"build it with evaluate.score_items or scoring.per_item_frame")
    if "benchmark" in df.columns:
        other = set(df["benchmark"].unique()) - {benchmark}
        if other:
            raise ValueError(f"summarise({benchmark!r}) got rows of other benchmarks "
                             f"{sorted(other)}; filter the table per benchmark first")
    df = df.copy()
    df["correct"] = df["correct"].astype(bool)
    return df


def summarise_sugarcrepe(df: pd.DataFrame) -> list[dict]:
    b = "sugarcrepe"
    ps = _per_suite(df)
    unknown = set(ps.index) - set(SUGARCREPE_SUBSETS)
    if unknown:
        raise ValueError(f"unknown SugarCrepe subsets {sorted(unknown)}")
    rows = [_row(b, s, "accuracy", r.acc, r.n) for s, r in ps.iterrows()]
    for cat in ("REPLACE", "SWAP", "ADD"):
        members = [s for s, c in SUGARCREPE_SUBSETS.items() if c == cat]
        if all(m in ps.index for m in members):
            sub = df[df["suite"].isin(members)]
            rows.append(_row(b, cat, "accuracy", sub["correct"].mean() * 100.0, len(sub)))
        else:
            log.warning("sugarcrepe: %s average left out: subsets %s missing", cat,
                        [m for m in members if m not in ps.index])
    if all(s in ps.index for s in SUGARCREPE_SUBSETS):
        rows.append(_row(b, "mean", "accuracy", ps["acc"].mean(), ps["n"].sum()))
    return rows


def summarise_sugarcrepe_pp(df: pd.DataFrame) -> list[dict]:
    b = "sugarcrepe_pp"
    missing = [c for c in SUGARCREPE_PP_METRICS.values() if c not in df.columns]
    if missing:
        raise ValueError(f"per-item table for sugarcrepe_pp lacks columns {missing}; build it with "
                         f"evaluate.score_items or scoring.sugarcrepe_pp_frame")
    unknown = set(df["suite"]) - set(SUGARCREPE_PP_SUBSETS)
    if unknown:
        raise ValueError(f"unknown SugarCrepe++ subsets {sorted(unknown)}")
    rows = []
    for metric, column in SUGARCREPE_PP_METRICS.items():
        g = df.groupby("suite", sort=True)[column]
        acc = g.apply(lambda x: x.astype(bool).mean() * 100.0)
        n = g.size()
        rows += [_row(b, s, metric, acc[s], n[s]) for s in acc.index]
        if all(s in acc.index for s in SUGARCREPE_PP_SUBSETS):
            rows.append(_row(b, "mean", metric, acc.mean(), n.sum()))
    if not all(s in set(df["suite"]) for s in SUGARCREPE_PP_SUBSETS):
        log.warning("sugarcrepe_pp: mean left out: subsets %s missing",
                    [s for s in SUGARCREPE_PP_SUBSETS if s not in set(df["suite"])])
    return rows


def summarise_valse(df: pd.DataFrame) -> list[dict]:
    b = "valse"
    if "valid" in df.columns:
        n_invalid = int((~df["valid"].astype(bool)).sum())
        if n_invalid:
            log.info("valse: %d non-validated items (mturk.caption < 2) left out of acc_r",
                     n_invalid)
        df = df[df["valid"].astype(bool)]
    ps = _per_suite(df)
    unknown = set(ps.index) - set(VALSE_PIECES)
    if unknown:
        raise ValueError(f"unknown VALSE pieces {sorted(unknown)}")
    rows = [_row(b, s, "acc_r", r.acc, r.n) for s, r in ps.iterrows()]
    if len(ps):
        complete = all(p in ps.index for p in VALSE_PIECES)
        if not complete:
            log.warning("valse: pieces %s missing; reporting mean_partial",
                        [p for p in VALSE_PIECES if p not in ps.index])
        rows.append(_row(b, "mean" if complete else "mean_partial", "acc_r",
                         ps["acc"].mean(), ps["n"].sum()))
    return rows


def _summarise_grouped(df: pd.DataFrame, b: str, drop: Iterable[str] | None,
                       min_items: int) -> list[dict]:
    ps = _per_suite(df)
    dropped = set(drop or ())
    keep = [s for s, r in ps.iterrows() if s not in dropped and r.n >= min_items]
    rows = []
    for s, r in ps.iterrows():
        metric = "accuracy" if s in keep else "accuracy_excluded_from_macro"
        rows.append(_row(b, s, metric, r.acc, r.n))
    if keep:
        kept = ps.loc[keep]
        rows.append(_row(b, "macro", "accuracy", kept["acc"].mean(), kept["n"].sum()))
    if len(df):
        rows.append(_row(b, "micro", "accuracy", df["correct"].mean() * 100.0, len(df)))
    return rows


def summarise_vg_relation(df: pd.DataFrame, excluded: Iterable[str] | None = None) -> list[dict]:
    excluded = excluded_vgr_relations() if excluded is None else excluded
    return _summarise_grouped(df, "vg_relation", excluded, 0)


def summarise_vg_attribution(df: pd.DataFrame, min_items: int = VGA_MIN_PAIR_ITEMS) -> list[dict]:
    return _summarise_grouped(df, "vg_attribution", None, min_items)


def summarise_order(df: pd.DataFrame, benchmark: str) -> list[dict]:
    rows = []
    for s, sub in df.groupby("suite", sort=True):
        rows.append(_row(benchmark, s, "accuracy", sub["correct"].mean() * 100.0, len(sub)))
        if {"pos_score", "max_neg_score"} <= set(sub.columns):
            strict = (sub["pos_score"] > sub["max_neg_score"]).mean() * 100.0
            rows.append(_row(benchmark, s, "accuracy_strict", strict, len(sub)))
    return rows


def summarise_baselines(benchmark: str, per_item: pd.DataFrame) -> pd.DataFrame:
    """The ``blind_`` and ``length_`` rows of one benchmark (long results format): the
    official aggregation of :func:`summarise` on the baselines' per-item correctness."""
    frames = []
    for kind in BASELINES:
        if f"{kind}_correct" not in per_item.columns or per_item.empty:
            continue
        df = per_item.assign(correct=per_item[f"{kind}_correct"].astype(bool))
        if benchmark in ORDER_BENCHMARKS:
            # accuracy_strict re-reads the scores: the blind ones, and none for length (strict already)
            df = (df.assign(pos_score=df["blind_pos_score"], max_neg_score=df["blind_max_neg_score"])
                  if kind == "blind" else df.drop(columns=["pos_score", "max_neg_score"]))
        out = summarise(benchmark, df)
        if benchmark == "sugarcrepe_pp":
            out = out[out["metric"] == "itt"]
        frames.append(out.assign(metric=kind + "_" + out["metric"]))
    if not frames:
        return pd.DataFrame(columns=RESULT_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def summarise(benchmark: str, per_item: pd.DataFrame) -> pd.DataFrame:
    """Official aggregate numbers of one benchmark in the long results format
    (columns ``benchmark, suite, metric, value, n_items``; value in percent)."""
    df = _check(per_item, benchmark)
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; choose from {BENCHMARKS}")
    rows = REGISTRY[benchmark].summarise(df)  # the registry's official scorer
    out = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    out["n_items"] = out["n_items"].astype("int64")
    return out
