"""Compositionality benchmarks: loaders, official scorers and open_clip evaluation.

Loaders (each returns a :class:`LoadResult` with items and skip records):
:func:`load_sugarcrepe`, :func:`load_sugarcrepe_pp`, :func:`load_valse`, :func:`load_vg_relation`,
:func:`load_vg_attribution`, :func:`load_order`; retrieval: :func:`load_karpathy`,
:func:`retrieval_recall`. Scoring: :func:`score_items` then :func:`summarise` (and :func:`summarise_baselines` for the
text-only ``blind`` and ``length`` baselines).
"""

from .aro import TextShuffler, excluded_vgr_relations, load_order, load_vg_attribution, load_vg_relation, pre_caption
from .coco_retrieval import RetrievalSet, load_karpathy, retrieval_recall, similarity_matrix, summarise_retrieval
from .evaluate import score_items
from .items import BenchmarkItem, LoadResult, SkippedItem, SkippedPiece
from .literature import literature_results
from .scoring import (
                  BASELINES,
                  RESULT_COLUMNS,
                  correct_from_scores,
                  length_correct,
                  per_item_frame,
                  sugarcrepe_pp_correct,
                  sugarcrepe_pp_frame,
                  summarise,
                  summarise_baselines,
)
from .sugarcrepe import load_sugarcrepe
from .sugarcrepe_pp import load_sugarcrepe_pp
from .valse import load_valse

__all__ = [
    "BenchmarkItem", "LoadResult", "SkippedItem", "SkippedPiece",
    "load_sugarcrepe", "load_sugarcrepe_pp", "load_valse", "load_vg_relation", "load_vg_attribution", "load_order",
    "TextShuffler", "pre_caption", "excluded_vgr_relations",
    "RetrievalSet", "load_karpathy", "retrieval_recall", "similarity_matrix",
    "summarise_retrieval",
    "score_items", "summarise", "per_item_frame", "correct_from_scores", "RESULT_COLUMNS",
    "summarise_baselines", "length_correct", "BASELINES",
    "sugarcrepe_pp_correct", "sugarcrepe_pp_frame",
    "literature_results",
]
