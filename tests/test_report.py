"""Report aggregation: mean ± std over seeds, literature kept apart, synthetic runs untouched."""

import pandas as pd

from dualclip.report import summary_table, with_literature


def scores(rows):
    return pd.DataFrame([{"run": r, "seed": s, "benchmark": b, "suite": su, "metric": "accuracy", "value": v, "n_items": 10}
                         for r, s, b, su, v in rows])


def test_mean_and_std_over_seeds():
    table = summary_table(scores([("ours", 0, "synthetic", "omission", 80.0), ("ours", 1, "synthetic", "omission", 90.0),
                                  ("baseline", 0, "synthetic", "omission", 70.0)]))
    assert table.loc[("synthetic", "omission", "accuracy"), "ours"] == "85.0 ± 7.1"  # sample std of 80, 90
    assert table.loc[("synthetic", "omission", "accuracy"), "baseline"] == "70.0"  # one seed: no spread claimed
    assert list(table.columns) == ["baseline", "ours"]  # method order, not alphabetical by accident


def test_literature_only_for_benchmarks_that_were_scored():
    synthetic = scores([("ours", 0, "synthetic", "omission", 80.0)])
    assert len(with_literature(synthetic)) == 1
    real = scores([("ours", 0, "sugarcrepe", "add_obj", 70.0)])
    table = summary_table(with_literature(real))
    literature = [c for c in table.columns if c.startswith("literature: ")]
    assert literature and table.loc[("sugarcrepe", "add_obj", "accuracy"), "ours"] == "70.0"
    assert table.loc[("sugarcrepe", "add_obj", "accuracy"), literature[0]] == "77.2"  # CLIP ViT-B/32 zero-shot, SugarCrepe paper
