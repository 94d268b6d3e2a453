"""Compositionality benchmarks: loaders, official scorers and open_clip evaluation.

Loaders (each returns a :class:`LoadResult` with items and skip records):
:func:`load_sugarcrepe`, :func:`load_sugarcrepe_pp`, :func:`load_valse`, :func:`load_vg_relation`,
:func:`load_vg_attribution`, :func:`load_order`; retrieval: :func:`load_karpathy`,
:func:`retrieval_recall`. Scoring: :func:`score_items` then :func:`summarise` (and :func:`summarise_baselines` for the
text-only ``blind`` and ``length`` baselines). The benchmarks themselves: :data:`REGISTRY`
(dualclip.eval.benchmarks.registry).
"""

from importlib import import_module

from .registry import REGISTRY, Benchmark, get_benchmark

#: public name -> the submodule that defines it; imported on first use (PEP 562), so that
#: reading the registry or the stage's config logic (the DAG build) does not import torch
_EXPORTS = {
    "aro": ["TextShuffler", "excluded_vgr_relations", "load_order", "load_vg_attribution", "load_vg_relation",
            "pre_caption"],
    "coco_retrieval": ["RetrievalSet", "load_karpathy", "retrieval_recall", "similarity_matrix", "summarise_retrieval"],
    "evaluate": ["score_items"],
    "items": ["BenchmarkItem", "LoadResult", "SkippedItem", "SkippedPiece"],
    "literature": ["literature_results"],
    "scoring": ["BASELINES", "RESULT_COLUMNS", "correct_from_scores", "length_correct", "per_item_frame",
                "sugarcrepe_pp_correct", "sugarcrepe_pp_frame", "summarise", "summarise_baselines"],
    "sugarcrepe": ["load_sugarcrepe"],
    "sugarcrepe_pp": ["load_sugarcrepe_pp"],
    "valse": ["load_valse"],
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_MODULE_OF[name]}", __name__), name)
    globals()[name] = value
    return value


__all__ = ["REGISTRY", "Benchmark", "get_benchmark", *_MODULE_OF]
