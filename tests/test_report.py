"""Report aggregation: mean ± std over seeds, literature kept apart, synthetic runs untouched."""

import pandas as pd

from dualclip.report import paired_differences, paired_table, real_image_equivalents, summary_table, with_literature


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


def test_paired_differences_pair_runs_by_seed():
    rows = [("ours", 0, "synthetic", "swap_att", 60.0), ("ours", 1, "synthetic", "swap_att", 58.0),
            ("ours", 2, "synthetic", "swap_att", 65.0),
            ("ours_shuf", 0, "synthetic", "swap_att", 55.0), ("ours_shuf", 1, "synthetic", "swap_att", 59.0),
            ("ours_shuf", 2, "synthetic", "swap_att", 61.0),
            ("baseline", 0, "synthetic", "swap_att", 50.0)]  # one seed only
    differences, missing = paired_differences(scores(rows), [["ours", "ours_shuf"], ["ours", "baseline"], ["ours", "negclip"]])
    shuf = differences[differences["comparison"] == "ours − ours_shuf"].iloc[0]
    assert shuf["mean_difference"] == 8.0 / 3 and shuf["seeds"] == 3 and shuf["a_ahead"] == 2  # +5, -1, +4
    assert abs(shuf["std"] - pd.Series([5.0, -1.0, 4.0]).std()) < 1e-12
    base = differences[differences["comparison"] == "ours − baseline"].iloc[0]
    assert base["seeds"] == 1 and base["mean_difference"] == 10.0  # only the seed both runs have
    assert missing == ["ours − negclip"]
    table = paired_table(differences)
    assert table.loc[("synthetic", "swap_att", "accuracy"), "ours − ours_shuf"] == "+2.7 ± 3.2 (2/3)"
    assert table.loc[("synthetic", "swap_att", "accuracy"), "ours − baseline"] == "+10.0 (1/1)"


def test_real_image_equivalents_interpolate_the_baseline_curve_in_log_n():
    def row(method, n, seed, value):
        return {"method": method, "n_train": n, "seed": seed, "run": method, "benchmark": "synthetic",
                "suite": "swap_att", "metric": "accuracy", "value": value, "n_items": 10}

    frame = pd.DataFrame([row("baseline", 1000, 0, 50.0), row("baseline", 1000, 1, 52.0),  # mean 51
                          row("baseline", 2000, 0, 61.0), row("baseline", 4000, 0, 66.0),
                          row("ours", 1000, 0, 56.0),      # halfway from 51 to 61: 2**10.5 / 1000 * 1000
                          row("negclip", 1000, 0, 49.0),   # below the baseline on the same images
                          row("ours_pos", 1000, 0, 70.0)])  # beyond the largest size
    table = real_image_equivalents(frame, 1000).set_index("method")
    assert abs(table.loc["ours", "baseline_images_equivalent"] - 1000 * 2 ** 0.5) < 1e-6
    assert table.loc["ours", "label"] == "1,414"
    assert table.loc["negclip", "label"] == "≤ 1,000" and table.loc["ours_pos", "label"] == "> 4,000"
    assert real_image_equivalents(frame[frame["n_train"] == 1000], 1000).empty  # no curve, no prices
