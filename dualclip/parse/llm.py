"""LLM parse backend: a chat LM lists a caption's key noun components as JSON.

The model is asked (few-shot, ``config/prompts/parse.txt``) only for each component's
span and class::

    {"components": [{"text": "two red circles", "label": "circle"}, ...]}

everything else is read from spaCy's parse of the caption, as the spacy backend does:
the head is the span's root, attributes its adjectives (and ``attribute_words``), count
its numeral, plural the head's tag. Each component is checked on its own before it is
trusted: ``text`` must be a whole-word span of the caption ("cat" is not in "scattered";
the offsets are computed here, never taken from the model) not overlapping another, its
head must be a noun, ``label`` must be in the detector vocabulary (``vocabulary``; a
synonym is read as its class) and the head must be that class or one of its synonyms
("A cat" labelled dog is refused); with ``vocabulary: open`` the head must instead be a
concrete, removable noun and the label is read from it (``dualclip.parse.open_vocabulary``,
prompt ``config/prompts/parse_open.txt``). An invalid component is dropped and noted in
``ParseResult.reason``; only an answer that is not JSON of that shape, or whose components
are all invalid, is shown back to the model once with the problems; if the retry is
invalid too, the caption goes to the fallback parser (``spacy`` by default) and
``ParseResult.reason`` says why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from dualclip.llm import ChatGenerator, ChatLM, LLMSettings, extract_json, generate_validated, load_prompt
from dualclip.parse import Component, ComponentSettings, ParseResult
from dualclip.parse.spacy_parser import NUMBERS, UNUSED_COMPONENTS


@dataclass(frozen=True, kw_only=True)
class LLMParseSettings(LLMSettings, ComponentSettings):
    prompt: str = "config/prompts/parse.txt"
    vocabulary: Any = None  # detector class -> synonyms, shared with the spacy backend; None: any label
    fallback: str | None = "spacy"  # a parse backend, or "none": record the caption as skipped
    retries: int = 1  # times an invalid answer is shown back to the model


def load_vocabulary(vocabulary: Any) -> dict[str, list[str]] | None:
    """The detector vocabulary as {label: synonyms}; None allows any label.

    Same ``vocabulary`` key as the spacy backend (class -> list of synonyms); a plain
    list of class names is accepted too.
    """
    from dualclip.parse.open_vocabulary import is_open

    if vocabulary is None or is_open(vocabulary):  # open: any label, checked by OpenVocabulary instead
        return None
    if isinstance(vocabulary, str):  # a builtin name or a YAML file, as for the spacy backend
        from dualclip.parse.vocabularies import resolve_vocabulary

        vocabulary = resolve_vocabulary(vocabulary)
    if isinstance(vocabulary, dict):
        cleaned = {str(label).strip().lower(): [str(word) for word in (words or [])] for label, words in vocabulary.items()}
    elif isinstance(vocabulary, (list, tuple)):
        cleaned = {str(label).strip().lower(): [] for label in vocabulary}
    else:
        raise ValueError("parse.vocabulary must map each detector class to a list of synonyms (or list the classes)")
    cleaned.pop("", None)
    if not cleaned:
        raise ValueError("parse.vocabulary is empty; list the detector's class names")
    return cleaned


def vocabulary_lines(vocabulary: dict[str, list[str]] | None) -> str:
    """The vocabulary shown to the model: one label a line, synonyms as hints."""
    if vocabulary is None:
        return "(any concrete object noun; use its singular form as the label)"
    return "\n".join(f"- {label}" + (f" (also: {', '.join(words)})" if words else "") for label, words in vocabulary.items())


def _word_in(word: str, text: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(word.lower())}(?!\w)", text.lower()) is not None


def _occurrences(text: str, caption: str):
    """Start offsets of ``text`` in ``caption`` as whole words ("cat" is not in "scattered")."""
    return [match.start() for match in re.finditer(rf"(?<!\w){re.escape(text.lower())}(?!\w)", caption.lower())]


def head_matches_label(span, head, label: str, vocabulary: dict[str, list[str]]) -> bool:
    """Whether the span's head noun is ``label`` or one of its synonyms ("kittens" -> cat),
    a multi-word entry included when it ends at the head ("teddy bear", "stuffed animal")."""
    words = [label, *[word.lower() for word in vocabulary.get(label, [])]]
    forms = {head.lemma_.lower(), head.text.lower(), head.text.lower().rstrip("s")}
    doc = head.doc
    for word in words:
        if " " in word:
            n = len(word.split())
            if head.i - n + 1 < span.start:
                continue
            before = [token.lower_ for token in doc[head.i - n + 1 : head.i]]
            if any(" ".join(before + [form]) in (word, word.rstrip("s")) for form in forms):
                return True
        elif word in forms or word.rstrip("s") in forms:
            return True
    return False


def _analyse(span, head, attribute_words: set[str]) -> dict:
    """head, attributes, count and plural of a component span, read from spaCy's tokens
    (as the spacy backend does): the model is asked only for ``text`` and ``label``."""
    before = [token for token in span if token.i < head.i]
    attributes = [t.text for t in before if (t.pos_ == "ADJ" or t.lower_ in attribute_words) and t.lower_ not in NUMBERS]
    count = 1
    for token in before:
        if token.lower_ in NUMBERS:
            count = NUMBERS[token.lower_]
        elif token.like_num and token.text.isdigit():
            count = int(token.text)
    return dict(head=head.text, attributes=attributes, count=count, plural=head.tag_ in ("NNS", "NNPS") or count > 1)


def validate_components(
    caption: str,
    data: Any,
    vocabulary: dict[str, list[str]] | None,
    max_components: int,
    doc,
    attribute_words=(),
    open_vocabulary=None,
) -> tuple[list[Component], list[str], list[str]]:
    """Components from a model answer: ``(components, problems, notes)``.

    ``open_vocabulary`` (an ``OpenVocabulary``, for ``parse.vocabulary: open``): a span
    whose head is no concrete, removable noun is dropped, and the label is the one it
    reads from the head (its lemma), whatever the model wrote.

    ``doc``: the caption's spaCy Doc (from the parser's pipeline, parsed with the other
    captions), which gives each span its head (the span's root), attributes, count and
    plural. Each listed component is checked on its own and an invalid one is dropped with
    a note; ``problems`` (the answer is invalid, retry) only when the answer is not
    ``{"components": [...]}`` or every listed component was invalid. Components beyond
    ``max_components`` are dropped, in caption order, and noted.
    """
    problems: list[str] = []
    notes: list[str] = []
    if isinstance(data, dict) and "components" in data:
        items = data["components"]
    else:
        return [], ['expected a JSON object {"components": [...]}'], notes
    if not isinstance(items, list):
        return [], ['"components" must be a list'], notes
    if doc.text != caption:
        raise ValueError("validate_components: doc must be the caption's Doc")
    attribute_words = {word.lower() for word in attribute_words}
    taken: list[tuple[int, int]] = []
    found: list[dict] = []
    dropped: list[str] = []
    # A synonym given as the label ("man") is read as its class ("person").
    synonyms = None
    if vocabulary is not None:
        synonyms = {word.lower(): label for label, words in vocabulary.items() for word in words}
        synonyms.update({label: label for label in vocabulary})
    for number, item in enumerate(items):
        where = f"component {number + 1}"
        if not isinstance(item, dict):
            dropped.append(f"{where} is not an object")
            continue
        text = item.get("text")
        label = item.get("label")
        if not isinstance(text, str) or not text.strip():
            dropped.append(f'{where} has no "text"')
            continue
        text = text.strip()
        # The first whole-word occurrence not overlapping an earlier component: "a dog and a dog".
        starts = _occurrences(text, caption)
        free = [s for s in starts if not any(s < end and s + len(text) > begin for begin, end in taken)]
        if not free:
            dropped.append(
                f'{where}: "text" {text!r} is ' + ("already taken by another component" if starts else "not a span of the caption (copy it exactly)")
            )
            continue
        start = free[0]
        end = start + len(text)
        span = doc.char_span(start, end)
        if span is None or not len(span):
            dropped.append(f'{where}: "text" {text!r} does not start and end at word boundaries of the caption')
            continue
        head = span.root
        if head.pos_ not in ("NOUN", "PROPN"):
            dropped.append(f'{where}: {text!r} is not a noun phrase here ({head.text!r} is a {head.pos_.lower()})')
            continue
        if open_vocabulary is not None:
            why = open_vocabulary.why_not(head)
            if why is not None:
                dropped.append(f"{where}: {text!r} is not a removable object ({why})")
                continue
            label = open_vocabulary.label(head)
        if not isinstance(label, str) or not label.strip():
            dropped.append(f'{where} has no "label"')
            continue
        label = label.strip().lower()
        if synonyms is not None:
            label = synonyms.get(label, label)
            if label not in vocabulary:
                dropped.append(f"{where}: label {label!r} is not in the vocabulary")
                continue
            if not head_matches_label(span, head, label, vocabulary):
                dropped.append(f"{where}: {head.text!r} in {text!r} is not a word for {label!r}")
                continue
        taken.append((start, end))
        found.append(dict(text=caption[start:end], start=start, end=end, label=label, **_analyse(span, head, attribute_words)))
    if dropped and not found:
        return [], dropped, notes
    if dropped:
        notes.append("dropped invalid components: " + "; ".join(dropped))
    found.sort(key=lambda component: component["start"])
    if len(found) > max_components:
        extra = [component["text"] for component in found[max_components:]]
        notes.append(f"kept the first {max_components} of {len(found)} components; dropped {extra}")
        found = found[:max_components]
    return [Component(index=index, **component) for index, component in enumerate(found)], problems, notes


class LLMParser:
    name = "llm"

    def __init__(self, config: dict, lm: ChatGenerator | None = None, fallback=None, nlp=None):
        self.config = config  # the whole section: the fallback parser reads its own keys from it
        self.settings = LLMParseSettings.from_config(config, "parse")
        self.max_components = int(self.settings.max_components)
        if self.max_components < 1:
            raise ValueError(f"parse.max_components must be >= 1, got {self.max_components}")
        self.vocabulary = load_vocabulary(self.settings.vocabulary)
        from dualclip.parse.open_vocabulary import OpenVocabulary, is_open

        self.open_vocabulary = OpenVocabulary() if is_open(self.settings.vocabulary) else None
        self.prompt = load_prompt(self.settings.prompt)
        self.retries = int(self.settings.retries)
        self.lm = lm if lm is not None else ChatLM.from_config(config)
        self._fallback = fallback
        self.nlp = nlp  # a loaded spaCy pipeline for the spacy fallback (run_shard's, shared)

    def conversation(self, caption: str):
        from dualclip.parse.open_vocabulary import PROMPT_LINES

        labels = PROMPT_LINES if self.open_vocabulary is not None else vocabulary_lines(self.vocabulary)
        return self.prompt.conversation(caption=caption, labels=labels, max_components=self.max_components)

    def spacy(self):
        """The spaCy pipeline that reads heads, attributes and counts (and the fallback's)."""
        if self.nlp is None:
            from dualclip.parse.spacy_parser import load_spacy

            self.nlp = load_spacy(self.settings.spacy_model, exclude=list(UNUSED_COMPONENTS))
        return self.nlp

    def fallback(self):
        if self._fallback is None and self.settings.fallback not in (None, "none"):
            from dualclip.parse import get_parser

            self._fallback = get_parser({**self.config, "backend": self.settings.fallback}, nlp=self.spacy())
        return self._fallback

    def parse(self, captions: list[str], docs=None) -> list[ParseResult]:
        """``docs``: spaCy Docs of ``captions`` (from ``self.nlp``), used to read each
        component's head, attributes and count and handed to the fallback, so no caption
        is parsed twice."""
        notes: dict[int, list[str]] = {}
        if docs is None:
            docs = list(self.spacy().pipe(captions))
        attribute_words = self.settings.attribute_words or ()

        def validate(i: int, answer: str):
            components, problems, accepted_notes = validate_components(
                captions[i], extract_json(answer), self.vocabulary, self.max_components, docs[i], attribute_words,
                open_vocabulary=self.open_vocabulary,
            )
            notes[i] = accepted_notes
            return components, problems

        outcomes = generate_validated(
            self.lm, [self.conversation(caption) for caption in captions], validate, self.prompt, self.retries
        )
        results: list[ParseResult | None] = [None] * len(captions)
        failed: list[int] = []
        for i, (caption, outcome) in enumerate(zip(captions, outcomes)):
            if not outcome.ok:
                failed.append(i)
                continue
            reason_parts = []
            if outcome.retried:
                reason_parts.append("llm answer valid on retry")
            reason_parts += notes.get(i, [])
            if outcome.value:
                results[i] = ParseResult(caption, outcome.value, "ok", "; ".join(reason_parts) or None, self.name)
            else:
                reason_parts.insert(0, "no key noun component of the vocabulary in the caption")
                results[i] = ParseResult(caption, [], "skipped", "; ".join(reason_parts), self.name)
        if failed:
            why = {i: f"llm answer invalid after {self.retries} retr{'y' if self.retries == 1 else 'ies'}: " + "; ".join(outcomes[i].problems) for i in failed}
            fallback = self.fallback()
            if fallback is None:
                for i in failed:
                    results[i] = ParseResult(captions[i], [], "skipped", why[i] + "; no fallback parser configured", self.name)
            else:
                for i, result in zip(failed, fallback.parse([captions[i] for i in failed], docs=[docs[i] for i in failed])):
                    result.reason = why[i] + f"; used the {getattr(fallback, 'name', 'fallback')} parser" + (
                        f" ({result.reason})" if result.reason else ""
                    )
                    results[i] = result
        return results  # type: ignore[return-value]
