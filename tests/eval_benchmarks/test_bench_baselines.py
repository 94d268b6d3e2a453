"""Text-only baselines of the real benchmarks (blind: the mean image; length: the shorter
caption wins) and the flag on a piece scored on fewer items than its file holds.

The baselines run on a hand-built benchmark scored by a hand-set model: a 3-d embedding
table for the captions and the mean RGB colour as the image embedding, so every score,
and with it every baseline's answer, is known in advance.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from bench_helpers import json_image_names, make_images
from dualclip.eval.benchmarks import BenchmarkItem, length_correct, score_items, stage, summarise, summarise_baselines
from dualclip.eval.benchmarks.sugarcrepe import SUBSETS
from dualclip.report import LENGTH_RUN, load_scores, summary_table

# caption -> embedding (rows are L2-normalised by score_items)
EMBEDDINGS = {
    "a red thing": (1.0, 0.0, 0.0),
    "a green thing here now": (0.0, 1.0, 0.0),
    "a green ball lying on grass": (0.0, 1.0, 0.0),
    "a red ball": (0.0, 0.0, 1.0),
    "red": (0.6, 0.0, 0.8),
    "blue sky": (1.0, 1.0, 0.0),
    "a red thing again": (1.0, 0.0, 0.0),
    "a red thing at noon": (0.0, 0.0, 1.0),
}


class HandSetModel(torch.nn.Module):
    """An image is embedded as its mean colour, a caption by a fixed table (EMBEDDINGS)."""

    def __init__(self):
        super().__init__()
        self.table = torch.nn.Embedding(len(EMBEDDINGS), 3)
        with torch.no_grad():
            self.table.weight.copy_(torch.tensor(list(EMBEDDINGS.values())))

    def encode_image(self, images):
        return images.mean(dim=(2, 3))

    def encode_text(self, tokens):
        return self.table(tokens)


def tokenize(texts):
    return torch.tensor([list(EMBEDDINGS).index(t) for t in texts])


def image(folder, name, colour):
    path = folder / name
    Image.new("RGB", (4, 4), colour).save(path)
    return path


@pytest.fixture()
def items(tmp_path):
    red, green = image(tmp_path, "red.png", (255, 0, 0)), image(tmp_path, "green.png", (0, 255, 0))
    # mean image: (1, 1, 0)/sqrt(2)
    return [
        # real right (1 > 0); blind tie (0.71 = 0.71) is wrong; length 3 < 5 words right
        BenchmarkItem("sugarcrepe", "add_obj", "a", red, "a red thing", ["a green thing here now"]),
        # real right; blind right (0.71 > 0); length 6 > 3 words wrong
        BenchmarkItem("sugarcrepe", "add_obj", "b", green, "a green ball lying on grass", ["a red ball"]),
        # real wrong (0.6 < 0.71); blind wrong (0.42 < 1); length 1 < 2 words right
        BenchmarkItem("sugarcrepe", "add_obj", "c", red, "red", ["blue sky"]),
    ]


def test_blind_and_length_baselines_on_a_hand_built_benchmark(items):
    per_item = score_items(HandSetModel(), TF.to_tensor, tokenize, items)
    assert per_item["correct"].tolist() == [True, True, False]
    assert per_item["blind_correct"].tolist() == [False, True, False]
    assert per_item["length_correct"].tolist() == [True, False, True]
    assert per_item["blind_pos_score"].iloc[0] == per_item["blind_max_neg_score"].iloc[0]  # an exact tie
    summary = pd.concat([summarise("sugarcrepe", per_item), summarise_baselines("sugarcrepe", per_item)])
    values = summary.set_index("metric")["value"]
    assert values["accuracy"] == pytest.approx(200 / 3)
    assert values["blind_accuracy"] == pytest.approx(100 / 3)
    assert values["length_accuracy"] == pytest.approx(200 / 3)
    assert (summary["n_items"] == 3).all()


def test_order_baselines_keep_ties_wrong_for_length(tmp_path):
    red = image(tmp_path, "red.png", (255, 0, 0))
    green = image(tmp_path, "green.png", (0, 255, 0))
    order = [  # the Order tie rule (a tie is right) applies to blind, never to length
        # blind 0.71 > 0: right; length 4 < 5 words: right
        BenchmarkItem("coco_order", "test", "0/0", red, "a red thing again", ["a red thing at noon"]),
        # blind 0 < 0.71: wrong; length 3 = 3 words: a tie, wrong
        BenchmarkItem("coco_order", "test", "1/0", green, "a red ball", ["a red thing"]),
        # blind 0.71 = 0.71: right by the Order rule, wrong strictly; length 3 < 4: right
        BenchmarkItem("coco_order", "test", "2/0", green, "a red thing", ["a red thing again"]),
    ]
    per_item = score_items(HandSetModel(), TF.to_tensor, tokenize, order)
    assert per_item["blind_correct"].tolist() == [True, False, True]
    assert per_item["length_correct"].tolist() == [True, False, True]
    values = summarise_baselines("coco_order", per_item).set_index("metric")["value"]
    assert values["blind_accuracy"] == pytest.approx(200 / 3)
    assert values["blind_accuracy_strict"] == pytest.approx(100 / 3)
    assert values["length_accuracy"] == pytest.approx(200 / 3) and "length_accuracy_strict" not in values


def test_length_rule_counts_words_and_every_positive():
    assert length_correct(["a dog"], ["a big dog"])
    assert not length_correct(["a big dog"], ["a dog runs"])  # equal: wrong
    assert not length_correct(["a dog", "a dog that runs"], ["a big dog"])  # SugarCrepe++: both positives
    assert length_correct(["a  dog\n"], ["a big  dog"])  # whitespace runs are one separator


def test_sugarcrepe_pp_baselines_are_itt_only(tmp_path):
    red = image(tmp_path, "red.png", (255, 0, 0))
    item = BenchmarkItem("sugarcrepe_pp", "swap_att", "0", red, "a red thing", ["a green thing here now"],
                         meta={"positive2": "red"})
    per_item = score_items(HandSetModel(), TF.to_tensor, tokenize, [item])
    # length: P1 (3 words) and P2 (1) < N (5); blind (the only image is the mean, red): P1 1, P2 0.6 > N 0
    assert bool(per_item["length_correct"].iloc[0]) and bool(per_item["blind_correct"].iloc[0])
    out = summarise_baselines("sugarcrepe_pp", per_item)
    assert sorted(out["metric"]) == ["blind_itt", "length_itt"]


# --------------------------------------------------------------------------- incomplete pieces

def _model_file(tmp_path):
    from dualclip.train.models import create_model

    torch.manual_seed(0)
    model, _, _ = create_model("dualclip-tiny")
    path = tmp_path / "model.pt"
    torch.save({"model": model.state_dict(), "config": {"model": {"name": "dualclip-tiny", "pretrained": None}},
                "step": 0, "summary": {"method": "ours", "seed": 0, "n_train": 24, "n_samples": 24, "code_version": "test"}}, path)
    return path


def test_a_piece_scored_on_fewer_items_is_flagged_in_scores_and_report(fixtures_dir, tmp_path):
    fix = fixtures_dir / "sugarcrepe"
    names = {s: json_image_names(fix / f"{s}.json", "filename") for s in SUBSETS}
    dropped = names["add_obj"][0]
    make_images(tmp_path / "coco", [n for s in SUBSETS for n in names[s] if n != dropped])
    config = {"results_dir": str(tmp_path / "results"), "device": "cpu", "eval": {"batch_size": 8},
              "benchmarks": {"sugarcrepe": {"annotations": str(fix), "images": str(tmp_path / "coco"),
                                            "verify_checksums": False}}}
    stage.prepare("sugarcrepe", config, tmp_path / "results" / "benchmark_data" / "sugarcrepe")
    out = tmp_path / "eval" / "sugarcrepe.csv"
    stage.evaluate(_model_file(tmp_path), "sugarcrepe", config, out, tmp_path / "eval" / "items.csv", device="cpu")
    scores = pd.read_csv(out)
    n_file = len(names["add_obj"])
    n_missing = names["add_obj"].count(dropped)
    add_obj = scores[scores["suite"] == "add_obj"]
    assert set(add_obj["metric"]) == {"accuracy", "blind_accuracy", "length_accuracy"}
    assert (add_obj["n_items"] == n_file - n_missing).all() and (add_obj["n_items_total"] == n_file).all()
    assert add_obj["incomplete"].all()
    # complete subsets are not flagged; the aggregates that hold add_obj are
    assert not scores[scores["suite"] == "replace_obj"]["incomplete"].any()
    assert scores[scores["suite"].isin(["ADD", "mean"])]["incomplete"].all()
    # the report: "score (n/N items)", and the length baseline once, in its own column
    table = summary_table(load_scores([str(out), str(out)], 24))
    cell = table.loc[("sugarcrepe", "add_obj", "accuracy"), "ours"]
    assert cell.endswith(f" ({n_file - n_missing}/{n_file} items)")
    assert table.loc[("sugarcrepe", "replace_obj", "accuracy"), "ours"].count("(") == 0
    assert LENGTH_RUN in table.columns
    assert pd.isna(table.loc[("sugarcrepe", "add_obj", "length_accuracy"), "ours"])
    assert table.loc[("sugarcrepe", "add_obj", "length_accuracy"), LENGTH_RUN].endswith("items)")
    loaded = load_scores([str(out), str(out)], 24)
    assert (loaded["metric"] == "length_accuracy").sum() == scores["metric"].eq("length_accuracy").sum()
