"""Tests for the rule rewriter (dualclip/rewrite/rule.py) and the dual-text validator
check_dual_text (dualclip/rewrite/__init__.py).

Components come from the real spaCy parser (the rewriter works on its character
spans), with the vocabulary of config/config.yaml.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from dualclip.download.shapes import WorldConfig, world_record
from dualclip.subsets import nonempty_subsets
from dualclip.parse import get_parser
from dualclip.parse.spacy_parser import SpacyParser
from dualclip.rewrite import check_dual_text, get_rewriter

CONFIG = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "config.yaml").read_text())
PARSE = {"backend": "spacy", "max_components": 3, "vocabulary": CONFIG["parse"]["vocabulary"],
         "attribute_words": CONFIG["parse"]["attribute_words"]}
EMPTY = CONFIG["rewrite"]["empty_caption"]


@pytest.fixture(scope="module")
def parser():
    return get_parser(PARSE)


@pytest.fixture(scope="module")
def rewriter():
    return get_rewriter(CONFIG["rewrite"])


def duals(parser, rewriter, caption: str) -> dict[tuple[int, ...], str]:
    """subset -> dual text, for every non-empty subset of the parsed components."""
    result = parser.parse([caption])[0]
    subsets = nonempty_subsets([c.index for c in result.components])
    return dict(zip(subsets, rewriter.rewrite(caption, result.components, subsets)))


def test_issue_example_removes_the_square(parser, rewriter):
    out = duals(parser, rewriter, "a red circle, a blue square and a star")
    assert out[(1,)] == "a red circle and a star"
    assert out[(0,)] == "a blue square and a star"
    assert out[(2,)] == "a red circle and a blue square"
    assert out[(0, 2)] == "a blue square"


def test_relation_needs_both_sides(parser, rewriter):
    out = duals(parser, rewriter, "a red star above a blue square")
    assert out[(0,)] == "a blue square"
    assert out[(1,)] == "a red star"
    out = duals(parser, rewriter, "a small red circle to the left of a small yellow circle and a large purple cross")
    # the relation survives when its two sides do; a listed third object joins as a list
    assert out[(2,)] == "a small red circle to the left of a small yellow circle"
    assert out[(0,)] == "a small yellow circle and a large purple cross"
    assert out[(1,)] == "a small red circle and a large purple cross"


@pytest.mark.parametrize("caption, subset, expected", [
    ("there are two red crosses and a blue star", (0,), "there is a blue star"),
    ("there are two red crosses and a blue star", (1,), "there are two red crosses"),
    ("there is a red square and two blue stars", (0,), "there are two blue stars"),
    ("there is a red square, a blue star and a green hexagon", (0, 1), "there is a green hexagon"),
])
def test_there_is_agrees_with_the_new_first_item(parser, rewriter, caption, subset, expected):
    assert duals(parser, rewriter, caption)[subset] == expected


def test_all_removed_gives_the_configured_empty_caption(parser):
    caption = "there are two red crosses and a blue star."
    result = parser.parse([caption])[0]
    assert get_rewriter(CONFIG["rewrite"]).rewrite(caption, result.components, [(0, 1)]) == [EMPTY]
    custom = get_rewriter({"backend": "rule", "empty_caption": "nothing but texture"})
    assert custom.rewrite(caption, result.components, [(0, 1)]) == ["nothing but texture"]


def test_non_component_fourth_object_stays_with_prefix_and_period(parser, rewriter):
    caption = "a picture of a red circle, a blue square, a star and a hexagon."
    out = duals(parser, rewriter, caption)
    assert len(out) == 7  # N = 3: the hexagon is not a component
    assert out[(1,)] == "a picture of a red circle, a star and a hexagon."
    assert out[(0, 1)] == "a picture of a star and a hexagon."
    # everything that is a component removed: the fourth object is still there to describe
    assert out[(0, 1, 2)] == "a picture of a hexagon."


@pytest.mark.parametrize("caption, subset, expected", [
    ("this scene contains a small red circle, a large red circle and a blue star.", (0,),
     "this scene contains a large red circle and a blue star."),
    ("we can see a yellow square and a red cross!", (0,), "we can see a red cross!"),
    ("an image showing two green stars, a red circle and a purple cross", (1, 2), "an image showing two green stars"),
])
def test_prefix_and_final_punctuation_are_kept(parser, rewriter, caption, subset, expected):
    assert duals(parser, rewriter, caption)[subset] == expected


def test_there_are_agrees_with_a_plural_non_component(parser, rewriter):
    caption = "there is a red square, a blue star and two green circles"
    two = SpacyParser({**PARSE, "max_components": 2}, nlp=parser.nlp)
    result = two.parse([caption])[0]
    assert [c.text for c in result.components] == ["a red square", "a blue star"]
    assert rewriter.rewrite(caption, result.components, [(0, 1)]) == ["there are two green circles"]


# ---------------------------------------------------------------- check_dual_text


def test_check_flags_a_removed_noun_still_present(parser):
    caption = "a red circle, a blue square and a star"
    components = parser.parse([caption])[0].components
    problems = check_dual_text("a red circle, a blue square and a star", caption, components, (1,))
    assert problems == ["removed component noun 'square' still present"]
    # a synonym-free leftover of the removed phrase ("a blue square" -> "a square") counts too
    assert check_dual_text("a red circle, a square and a star", caption, components, (1,))


def test_check_flags_a_kept_component_missing(parser):
    caption = "a red circle, a blue square and a star"
    components = parser.parse([caption])[0].components
    assert check_dual_text("a red circle", caption, components, (1,)) == ["kept component 'a star' missing"]
    assert "empty dual text" in check_dual_text("  ", caption, components, (0, 1, 2))


def test_check_accepts_another_object_sharing_the_removed_head_noun(parser):
    caption = "a red circle to the left of a blue circle and a green star"
    components = parser.parse([caption])[0].components
    assert check_dual_text("a blue circle and a green star", caption, components, (0,)) == []
    assert check_dual_text("a green star", caption, components, (0, 1)) == []
    # but keeping the wrong circle is caught: the kept blue circle is missing
    assert check_dual_text("a red circle and a green star", caption, components, (1,)) == []
    assert check_dual_text("a red circle and a green star", caption, components, (0,)) == ["kept component 'a blue circle' missing"]
    # two circles left when one was removed
    assert check_dual_text("a blue circle, a circle and a green star", caption, components, (0,)) == \
        ["removed component noun 'circle' still present"]


# ---------------------------------------------------------------- property over world captions


def world_captions(n: int) -> list[str]:
    world = WorldConfig()
    return [world_record(world, split, i)[2]["caption"] for split in ("train", "test") for i in range(n // 2)]


def test_every_dual_of_300_world_captions_passes_the_check(parser, rewriter):
    captions = world_captions(300)
    n_duals = 0
    for caption, result in zip(captions, parser.parse(captions)):
        assert result.status == "ok", caption
        subsets = nonempty_subsets([c.index for c in result.components])
        texts = rewriter.rewrite(caption, result.components, subsets)
        assert len(texts) == len(subsets)
        for subset, text in zip(subsets, texts):
            assert check_dual_text(text, caption, result.components, subset) == [], (caption, subset, text)
            assert text != caption
            # "there is/are" agreement, which check_dual_text does not look at
            assert not re.search(r"\bthere is (two|three|four)\b", text), text
            assert not re.search(r"\bthere are (a|an)\b", text), text
            # the dual never gains words: it is the caption minus phrases (plus "is"/"are"/"and")
            extra = set(re.findall(r"\w+", text)) - set(re.findall(r"\w+", caption)) - {"is", "are", "and"} - set(EMPTY.split())
            assert not extra, (caption, text)
            n_duals += 1
    assert n_duals > 600


def test_free_sentence_predicates_drop_with_either_side():
    # COCO-style captions: words between two objects that are no noun phrase ("holding")
    # form a predicate that needs both sides (the LLM rewriter's fallback relies on this)
    from dualclip.parse.spacy_parser import SpacyParser

    parser = SpacyParser({"vocabulary": "coco", "max_components": 3})
    caption = "A woman holding an umbrella near a car."
    components = parser.parse([caption])[0].components
    from dualclip.rewrite.rule import RuleRewriter

    rewriter = RuleRewriter({})
    assert rewriter.rewrite_one(caption, components, (0,)) == "An umbrella near a car."
    assert rewriter.rewrite_one(caption, components, (2,)) == "A woman holding an umbrella."
    assert rewriter.rewrite_one(caption, components, (1,)) == "A woman and a car."
