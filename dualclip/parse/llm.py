"""LLM parse backend: a chat LM lists a caption's key noun components as JSON.

The model is asked (few-shot, ``config/prompts/parse.txt``) for::

    {"components": [{"text": "two red circles", "head": "circles", "label": "circle",
                     "attributes": ["red"], "count": 2, "plural": true}, ...]}

Every answer is checked against the caption before it is trusted: each ``text`` must be a
span of the caption (its character offsets are computed here, never taken from the
model), ``head`` and ``attributes`` must be words of that span, ``label`` must be in the
detector vocabulary (``vocabulary``), and spans must not overlap. An invalid answer is shown
back to the model once with the problems; if the retry is invalid too, the caption goes
to the fallback parser (``spacy`` by default) and ``ParseResult.reason`` says why.
"""

from __future__ import annotations

import re
from typing import Any

from dualclip.llm import ChatGenerator, ChatLM, extract_json, generate_validated, load_prompt
from dualclip.parse import Component, ParseResult

DEFAULTS = {
    "prompt": "config/prompts/parse.txt",
    "max_components": 3,
    "vocabulary": None,  # detector class -> synonyms, shared with the spacy backend
    "fallback": "spacy",  # or "none": record the caption as skipped
    "retries": 1,
}


def load_vocabulary(vocabulary: Any) -> dict[str, list[str]] | None:
    """The detector vocabulary as {label: synonyms}; None allows any label.

    Same ``vocabulary`` key as the spacy backend (class -> list of synonyms); a plain
    list of class names is accepted too.
    """
    if vocabulary is None:
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


def _span_of(word: str, text: str) -> str:
    """``word`` as written in ``text`` (the model may change its case)."""
    match = re.search(rf"(?<!\w){re.escape(word.lower())}(?!\w)", text.lower())
    return text[match.start():match.end()]


def validate_components(
    caption: str, data: Any, vocabulary: dict[str, list[str]] | None, max_components: int
) -> tuple[list[Component], list[str], list[str]]:
    """Components from a model answer: ``(components, problems, notes)``.

    ``problems`` make the answer invalid; ``notes`` record accepted adjustments (extra
    components beyond ``max_components`` are dropped, in caption order, and noted).
    """
    problems: list[str] = []
    notes: list[str] = []
    if isinstance(data, dict) and "components" in data:
        items = data["components"]
    else:
        return [], ['expected a JSON object {"components": [...]}'], notes
    if not isinstance(items, list):
        return [], ['"components" must be a list'], notes
    lowered = caption.lower()
    taken: list[tuple[int, int]] = []
    found: list[dict] = []
    # A synonym given as the label ("man") is read as its class ("person").
    synonyms = None
    if vocabulary is not None:
        synonyms = {word.lower(): label for label, words in vocabulary.items() for word in words}
        synonyms.update({label: label for label in vocabulary})
    for number, item in enumerate(items):
        where = f"component {number + 1}"
        if not isinstance(item, dict):
            problems.append(f"{where} is not an object")
            continue
        text = item.get("text")
        head = item.get("head")
        label = item.get("label")
        if not isinstance(text, str) or not text.strip():
            problems.append(f'{where} has no "text"')
            continue
        text = text.strip()
        # The first occurrence not overlapping an earlier component: "a dog and a dog".
        start = -1
        position = 0
        while True:
            start = lowered.find(text.lower(), position)
            if start < 0 or not any(start < end and start + len(text) > begin for begin, end in taken):
                break
            position = start + 1
        if start < 0:
            problems.append(f'{where}: "text" {text!r} is not a span of the caption (copy it exactly)')
            continue
        end = start + len(text)
        if not isinstance(head, str) or not head.strip() or not _word_in(head.strip(), text):
            problems.append(f'{where}: "head" {head!r} must be the noun of {text!r}, written as in the caption')
            continue
        if not isinstance(label, str) or not label.strip():
            problems.append(f'{where} has no "label"')
            continue
        label = label.strip().lower()
        if synonyms is not None:
            label = synonyms.get(label, label)
        if synonyms is not None and label not in vocabulary:
            problems.append(f'{where}: label {label!r} is not in the vocabulary; pick one of the listed labels or leave the component out')
            continue
        attributes = item.get("attributes", [])
        if not isinstance(attributes, list) or not all(isinstance(value, str) for value in attributes):
            problems.append(f'{where}: "attributes" must be a list of words')
            continue
        missing = [value for value in attributes if not _word_in(value.strip(), text)]
        if missing:
            problems.append(f"{where}: attributes {missing} are not words of {text!r}")
            continue
        count = item.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            problems.append(f'{where}: "count" must be a positive integer')
            continue
        plural = item.get("plural", count > 1)
        if not isinstance(plural, bool):
            problems.append(f'{where}: "plural" must be true or false')
            continue
        taken.append((start, end))
        found.append(
            dict(
                text=caption[start:end],
                start=start,
                end=end,
                head=_span_of(head.strip(), caption[start:end]),
                label=label,
                attributes=[value.strip() for value in attributes],
                count=count,
                plural=plural,
            )
        )
    if problems:
        return [], problems, notes
    found.sort(key=lambda component: component["start"])
    if len(found) > max_components:
        dropped = [component["text"] for component in found[max_components:]]
        notes.append(f"kept the first {max_components} of {len(found)} components; dropped {dropped}")
        found = found[:max_components]
    return [Component(index=index, **component) for index, component in enumerate(found)], problems, notes


class LLMParser:
    name = "llm"

    def __init__(self, config: dict, lm: ChatGenerator | None = None, fallback=None, nlp=None):
        self.config = {**DEFAULTS, **config}
        self.max_components = int(self.config["max_components"])
        if self.max_components < 1:
            raise ValueError(f"parse.max_components must be >= 1, got {self.max_components}")
        self.vocabulary = load_vocabulary(self.config["vocabulary"])
        self.prompt = load_prompt(self.config["prompt"])
        self.retries = int(self.config["retries"])
        self.lm = lm if lm is not None else ChatLM.from_config(self.config)
        self._fallback = fallback
        self.nlp = nlp  # a loaded spaCy pipeline for the spacy fallback (run_shard's, shared)

    def conversation(self, caption: str):
        return self.prompt.conversation(
            caption=caption, labels=vocabulary_lines(self.vocabulary), max_components=self.max_components
        )

    def fallback(self):
        if self._fallback is None and self.config["fallback"] not in (None, "none"):
            from dualclip.parse import get_parser

            self._fallback = get_parser({**self.config, "backend": self.config["fallback"]}, nlp=self.nlp)
        return self._fallback

    def parse(self, captions: list[str], docs=None) -> list[ParseResult]:
        """``docs``: spaCy Docs of ``captions`` (from ``self.nlp``), handed to the fallback so
        it does not parse a caption again."""
        notes: dict[int, list[str]] = {}

        def validate(i: int, answer: str):
            components, problems, accepted_notes = validate_components(
                captions[i], extract_json(answer), self.vocabulary, self.max_components
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
                failed_docs = None if docs is None else [docs[i] for i in failed]
                for i, result in zip(failed, fallback.parse([captions[i] for i in failed], docs=failed_docs)):
                    result.reason = why[i] + f"; used the {getattr(fallback, 'name', 'fallback')} parser" + (
                        f" ({result.reason})" if result.reason else ""
                    )
                    results[i] = result
        return results  # type: ignore[return-value]
