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

from dualclip.data.shapes import WorldConfig, world_record
from dualclip.parse import get_parser
from dualclip.parse.spacy_parser import SpacyParser
from dualclip.rewrite import check_dual_text, get_rewriter
from dualclip.subsets import nonempty_subsets

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
    # COCO-style captions go through the dependency tree: the verb of a removed subject
    # goes with it, and so does the relation the verb attached ("near a car" was said of
    # the woman, not of the umbrella); a verb that lost only its object leaves its
    # relation with the subject
    from dualclip.parse.spacy_parser import SpacyParser
    from dualclip.rewrite.rule import RuleRewriter

    parser = SpacyParser({"vocabulary": "coco", "max_components": 3})
    caption = "A woman holding an umbrella near a car."
    components = parser.parse([caption])[0].components
    rewriter = RuleRewriter({})
    assert not rewriter.is_templated(caption, components)
    assert rewriter.rewrite_one(caption, components, (0,)) == "An umbrella and a car."
    assert rewriter.rewrite_one(caption, components, (1,)) == "A woman near a car."
    assert rewriter.rewrite_one(caption, components, (2,)) == "A woman holding an umbrella."


def test_templated_captions_use_the_list_grammar_and_free_ones_the_tree(parser, rewriter):
    """The shapes world's captions (the embedded default) are all lists: the rewrite
    stage never needs spaCy's tree for them; a sentence with a verb, a pronoun or a
    "with" phrase goes to the tree."""
    captions = world_captions(300)
    assert all(rewriter.is_templated(c, r.components) for c, r in zip(captions, parser.parse(captions)))
    coco = SpacyParser({"vocabulary": "coco", "max_components": 3}, nlp=parser.nlp)
    for caption, templated in [("a dog and a cat on a bed", True), ("there are two dogs next to a car", True),
                               ("A dog sitting on a bed.", False), ("A man and his dog.", False),
                               ("A man with a hat and a dog.", False), ("A boat that is in the water.", False)]:
        assert rewriter.is_templated(caption, coco.parse([caption])[0].components) is templated, caption


def test_rewrite_batch_gives_each_text_with_its_own_check(parser, rewriter):
    """The rewriter contract run_shard reads (the llm backend's too): per item a DualText per
    subset, its text rewrite()'s and its problems check_dual_text's, so nothing is checked again."""
    coco = SpacyParser({"vocabulary": "coco", "max_components": 3}, nlp=parser.nlp)
    captions = ["a red circle, a blue square and a star",  # the list grammar
                "A man throwing a frisbee on a course as another looks on."]  # the tree; (0,) leaves "as another."
    items = []
    for caption in captions:
        components = coco.parse([caption])[0].components
        items.append((caption, components, nonempty_subsets([c.index for c in components])))
    grouped = rewriter.rewrite_batch(items)
    assert [len(group) for group in grouped] == [len(subsets) for _, _, subsets in items]
    for (caption, components, subsets), group in zip(items, grouped):
        assert [dual.text for dual in group] == rewriter.rewrite(caption, components, subsets)
        for subset, dual in zip(subsets, group):
            assert dual.backend == "rule" and dual.reason is None
            assert dual.problems == check_dual_text(dual.text, caption, components, subset)
    assert "determiner 'another' without its noun" in grouped[1][0].problems  # a failed check is carried too


def test_tree_rewrite_keeps_case_punctuation_and_agreement(parser):
    coco = SpacyParser({"vocabulary": "coco", "max_components": 3}, nlp=parser.nlp)
    rewriter = get_rewriter({"backend": "rule", "empty_caption": "nothing here"})
    for caption, removed, expected in [
        ("A man eating a pizza!", (0,), "A pizza!"),
        ("a man eating a pizza", (0,), "a pizza"),
        ("Two dogs and a cat are sleeping on a couch?", (0,), "A cat is sleeping on a couch?"),
        ("A man eating a pizza.", (0, 1), "nothing here"),
        ("A little boy and girl playing with a dog.", (0,), "A girl playing with a dog."),
    ]:
        result = coco.parse([caption])[0]
        assert rewriter.rewrite(caption, result.components, [removed]) == [expected], caption


@pytest.mark.parametrize("ending", ["and.", ", and.", "while.", "and"])
def test_check_rejects_a_conjunction_left_before_the_end(parser, ending):
    # an LLM rewrite that stops after "and" must not enter training as a correct positive
    caption = "a red circle to the left of a blue circle and a green star"
    components = parser.parse([caption])[0].components
    text = f"a blue circle {ending}".replace(" ,", ",")
    assert any(problem.startswith("dangling conjunction") for problem in check_dual_text(text, caption, components, (0, 2)))
