"""The rewrite stage batches the llm backend across the images of a shard.

A synthetic shard of 20 images (shapes world, spaCy parse, oracle detection) is rewritten
with the tiny random-weight chat model: all rows of the shard go through
``rewrite_batch``, so the model's ``generate()`` runs ceil(rows / batch_size) times per
round (not once per image), and the shard's ``summary.json`` records that count. Random
weights never answer valid JSON: every row takes the fallback, with its reason.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

import dualclip.detect
import dualclip.parse
import dualclip.rewrite
from dualclip.data import write_shapes_shard
from dualclip.parse.llm import LLMParser

REPO = Path(__file__).resolve().parents[2]
N_IMAGES = 20


@pytest.fixture(scope="module")
def shard(tmp_path_factory):
    """parse and detect records of a 20-image synthetic shard (the embedded default's stages)."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    root = tmp_path_factory.mktemp("shard")
    for name in ("data", "parse", "detect"):
        (root / name).mkdir()
    files = {name: [str(root / name / f"{slot}.json") for slot in range(N_IMAGES)] for name in ("data", "parse", "detect")}
    write_shapes_shard(config["dataset"], "train", 0, N_IMAGES, root / "data", n_images=N_IMAGES)
    dualclip.parse.run_shard(config["parse"], files["data"], files["parse"])
    images = [str(root / "data" / f"{slot}.png") for slot in range(N_IMAGES)]
    dualclip.detect.run_shard(config["detect"], images, files["data"], files["parse"], files["detect"])
    return root, files


def counted_generate(monkeypatch):
    """Counts calls to the model's own ``generate`` (and the rows of each)."""
    from dualclip import llm

    calls: list[int] = []
    original = llm.ChatLM.from_config.__func__

    def from_config(cls, config):
        lm = original(cls, config)
        generate = lm.model.generate

        def counting(*args, **kwargs):
            calls.append(int(kwargs["input_ids"].shape[0]))
            return generate(*args, **kwargs)

        lm.model.generate = counting
        return lm

    monkeypatch.setattr(llm.ChatLM, "from_config", classmethod(from_config))
    return calls


@pytest.mark.parametrize("retries", [0, 1])
def test_a_shard_of_20_images_makes_ceil_rows_over_batch_size_calls(shard, tiny_lm_dir, tmp_path, monkeypatch, retries):
    root, files = shard
    calls = counted_generate(monkeypatch)
    batch_size = 16
    config = {"backend": "llm", "model": str(tiny_lm_dir), "device": "cpu", "max_new_tokens": 4,
              "batch_size": batch_size, "retries": retries, "empty_caption": "an empty background"}
    out = [str(tmp_path / f"{slot}.json") for slot in range(N_IMAGES)]
    summary = dualclip.rewrite.run_shard(config, files["parse"], files["detect"], out)

    records = [json.loads(Path(path).read_text()) for path in out]
    rows = sum(len(record["duals"]) for record in records)
    assert rows > N_IMAGES  # more rows than images: per-image calls would be N_IMAGES or more
    per_round = math.ceil(rows / batch_size)
    # random weights: every answer is invalid, so each retry round asks all rows again
    assert len(calls) == (retries + 1) * per_round
    assert calls[:per_round] == [batch_size] * (rows // batch_size) + ([rows % batch_size] if rows % batch_size else [])
    assert summary == json.loads((tmp_path / "summary.json").read_text())
    assert summary["llm_calls"] == len(calls) and summary["n_rows"] == rows and summary["n_images"] == N_IMAGES
    assert summary["backend"] == "llm" and summary["batch_size"] == batch_size
    retry_word = "retry" if retries == 1 else "retries"
    for record in records:
        assert record["backend"] == "llm"
        for dual in record["duals"]:  # the fallback was taken and recorded, row by row
            assert dual["note"].startswith(f"llm answer invalid after {retries} {retry_word}")
            assert "used the rule rewriter" in dual["note"]


@pytest.mark.parametrize("backend", ["rule", "llm"])
def test_run_shard_checks_each_dual_text_once(shard, tiny_lm_dir, tmp_path, monkeypatch, backend):
    """The rewriter's texts come with their check: run_shard does not check them again (with
    the tiny model no answer is JSON, so only the rule fallback's texts are checked)."""
    from dualclip.rewrite import check

    _, files = shard
    checked: list[str] = []
    count_problems = check.count_problems
    monkeypatch.setattr(check, "count_problems", lambda text, *args: checked.append(text) or count_problems(text, *args))
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["rewrite"]
    if backend == "llm":
        config = {**config, "backend": "llm", "model": str(tiny_lm_dir), "device": "cpu", "max_new_tokens": 4, "retries": 0}
    out = [str(tmp_path / f"{slot}.json") for slot in range(N_IMAGES)]
    summary = dualclip.rewrite.run_shard(config, files["parse"], files["detect"], out)
    texts = [dual["text"] for path in out for dual in json.loads(Path(path).read_text())["duals"]]
    assert summary["backend"] == backend and len(texts) == summary["n_rows"] > N_IMAGES
    assert checked == texts


def test_rule_backend_records_do_not_depend_on_batching(shard, tmp_path):
    """The rule backend goes image by image and writes the records it always wrote."""
    from dualclip.detect import detected_indices
    from dualclip.io import read_json
    from dualclip.parse import Component
    from dualclip.rewrite import check_dual_text, get_rewriter
    from dualclip.subsets import nonempty_subsets

    _, files = shard
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["rewrite"]
    out = [str(tmp_path / f"{slot}.json") for slot in range(N_IMAGES)]
    summary = dualclip.rewrite.run_shard(config, files["parse"], files["detect"], out)
    assert "llm_calls" not in summary and summary["backend"] == "rule"
    rewriter = get_rewriter(config)
    for parse_file, detect_file, path in zip(files["parse"], files["detect"], out):
        parsed = read_json(parse_file)
        components = [Component.from_dict(c) for c in parsed["components"]]
        subsets = nonempty_subsets(detected_indices(read_json(detect_file)))
        texts = rewriter.rewrite(parsed["caption"], components, subsets) if subsets else []
        duals = []
        for subset, text in zip(subsets, texts):
            problems = check_dual_text(text, parsed["caption"], components, subset)
            duals.append({"subset": list(subset), "text": text, "check_ok": not problems, "problems": problems, "note": None})
        expected = {"image_id": parsed["image_id"], "backend": "rule", "caption": parsed["caption"], "duals": duals}
        assert Path(path).read_text() == json.dumps(expected, indent=1) + "\n"


def test_llm_parser_drops_invalid_components_one_by_one():
    class Scripted:
        def generate(self, conversations):
            return ['{"components": [{"text": "A man", "label": "person"}, {"text": "a cat", "label": "dog"}, '
                    '{"text": "a dog", "label": "cat"}, {"text": "a horse", "label": "horse"}]}'] * len(conversations)

    parser = LLMParser({"backend": "llm", "vocabulary": "coco", "max_components": 3}, lm=Scripted())
    [result] = parser.parse(["A man riding a horse next to a dog."])
    assert result.status == "ok" and result.backend == "llm"
    assert [(c.text, c.label) for c in result.components] == [("A man", "person"), ("a horse", "horse")]
    assert "dropped invalid components" in result.reason
    assert "'dog' in 'a dog' is not a word for 'cat'" in result.reason and "'a cat'" in result.reason
