"""Published reference numbers, in the long results format plus provenance columns.

Columns: ``benchmark, suite, metric, value, n_items`` (as :func:`evaluate.summarise`)
plus ``model`` (who was evaluated), ``source`` (where the number was read) and
``literature`` (always True, to tell these rows from our own results).

All numbers are SugarCrepe (Hsieh et al., NeurIPS 2023), read from the images in the
RAIVNLab/sugar-crepe README at commit 0047054 (see /work/shared/benchmarks/README.md):
``assets/sugarcrepe_eval.png`` (per-subset accuracy) and ``assets/re_eval.png``
(REPLACE/SWAP/ADD averages). ``n_items`` is the item count the paper used (swap_obj
had 246 items then; the current file has 245). Neither VALSE nor ARO publishes
headline numbers in its repository, so none are listed for them. SugarCrepe++ (Dumpala
et al. 2024) gives its numbers (e.g. ViT-B/32 OpenAI CLIP ITT and TOT per subset) in the
paper's Table 2 only; the paper text is not available here and the numbers are not to be
guessed, so none are listed until they are read from the paper with their source.
"""

from __future__ import annotations

import pandas as pd

SUGARCREPE_PAPER_COUNTS = {
    "replace_obj": 1652, "replace_att": 788, "replace_rel": 1406, "swap_obj": 246,
    "swap_att": 666, "add_obj": 2062, "add_att": 692,
    "REPLACE": 1652 + 788 + 1406, "SWAP": 246 + 666, "ADD": 2062 + 692,
}

_SRC_SUBSETS = "Hsieh et al. 2023 (SugarCrepe), sugar-crepe README assets/sugarcrepe_eval.png"
_SRC_AVG = "Hsieh et al. 2023 (SugarCrepe), sugar-crepe README assets/re_eval.png"
CLIP_B32 = "CLIP ViT-B/32 (OpenAI, zero-shot)"
NEGCLIP_B32 = "NegCLIP ViT-B/32 (released by the ARO authors)"

# (model, suite, accuracy %, source)
_SUGARCREPE = [
    (CLIP_B32, "replace_obj", 90.92, _SRC_SUBSETS),
    (CLIP_B32, "replace_att", 80.08, _SRC_SUBSETS),
    (CLIP_B32, "replace_rel", 69.20, _SRC_SUBSETS),
    (CLIP_B32, "swap_obj", 61.38, _SRC_SUBSETS),
    (CLIP_B32, "swap_att", 63.96, _SRC_SUBSETS),
    (CLIP_B32, "add_obj", 77.21, _SRC_SUBSETS),
    (CLIP_B32, "add_att", 68.79, _SRC_SUBSETS),
    (CLIP_B32, "REPLACE", 80.76, _SRC_AVG),
    (CLIP_B32, "SWAP", 63.27, _SRC_AVG),
    (CLIP_B32, "ADD", 75.09, _SRC_AVG),
    (NEGCLIP_B32, "REPLACE", 85.36, _SRC_AVG),
    (NEGCLIP_B32, "SWAP", 75.33, _SRC_AVG),
    (NEGCLIP_B32, "ADD", 87.29, _SRC_AVG),
]

LITERATURE_COLUMNS = ["benchmark", "suite", "metric", "value", "n_items", "model", "source",
                      "literature"]


def literature_results() -> pd.DataFrame:
    """All literature numbers as one long table (value in percent)."""
    rows = [{"benchmark": "sugarcrepe", "suite": suite, "metric": "accuracy", "value": value,
             "n_items": SUGARCREPE_PAPER_COUNTS[suite], "model": model, "source": source,
             "literature": True}
            for model, suite, value, source in _SUGARCREPE]
    df = pd.DataFrame(rows, columns=LITERATURE_COLUMNS)
    df["n_items"] = df["n_items"].astype("int64")
    return df
