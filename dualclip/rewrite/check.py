"""The dual-text check: does a dual text name what is kept, and nothing that was removed,
in a sentence a reader would accept?

``check_dual_text`` validates any rewriter's output (rule or LLM) the same way; a dual
text with problems keeps ``check_ok: false`` and its ``problems`` in the rewrite record.
Two layers:

* **Counts** (no parser): every kept component's span is still there (with its
  attributes); a removed component's head noun, its vocabulary synonyms and, for a
  person-like class, person words and pronouns ("someone", "he") occur no more often
  than the rest of the caption accounts for ("a red circle and a blue circle" without
  the red one still names one circle).
* **Grammar** (spaCy, the parse stage's model, loaded once; Docs cached, and
  ``check_dual_texts`` parses many dual texts in one ``nlp.pipe``): dangling function
  words ("of and", "the ."), a determiner without its noun, a preposition without its
  object, a quantity noun with a singular object ("a pair of a ball"), a verb whose
  subject in the original caption was a removed component now attached to a kept noun
  ("A cup wearing a backpack."), and a relation of the removed subject's verb now
  joining two kept nouns ("A pizza on a phone." from "... talking on a phone").
"""

from __future__ import annotations

import functools
import re
from collections import Counter

from dualclip.parse import DEFAULT_SPACY_MODEL, Component

PERSON_LABELS = {"person", "people", "human"}
PERSON_WORDS = {"person", "people", "persons", "someone", "somebody", "he", "she", "him", "his", "her", "hers",
                "himself", "herself", "man", "men", "woman", "women", "guy", "lady", "boy", "girl", "child", "kid"}
DETERMINERS = {"a", "an", "the", "this", "that", "these", "those", "some", "every", "each", "another"}
PREPOSITIONS = {"up", "down", "out", "off", "of", "on", "in", "at", "with", "to", "from", "by", "under", "above", "below", "behind", "beside",
                "near", "into", "onto", "over", "across", "inside", "outside", "next", "between", "against", "along"}
CONJUNCTIONS = {"and", "or", "but", "while", "as"}
# Prepositions that are also adverbs or particles ("standing outside", "looks on", "an outside market").
ADVERB_PREPOSITIONS = {"on", "in", "under", "above", "below", "behind", "inside", "outside", "over", "across", "along",
                       "near", "by", "up", "down", "out", "off"}
NUMBER_WORDS = {"one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "several", "some", "many"}
AUXILIARIES = {"is", "are", "was", "were", "be", "been", "being", "has", "have", "had", "can", "could", "will", "would",
               "may", "might", "must", "should", "do", "does", "did"}
# Possessives a rewriter may turn into "the" when their owner is removed ("his dog" -> "the dog").
POSSESSIVES = {"his", "her", "their", "its", "my", "our", "your"}
QUANTITY_NOUNS = {"pair", "couple", "group", "bunch", "herd", "flock", "set", "pile", "stack", "lot", "number",
                  "crowd", "team", "row", "collection", "variety", "assortment", "plenty", "lots", "pack", "fleet"}
SUBJECT_DEPS = ("nsubj", "nsubjpass")


@functools.lru_cache(maxsize=4)
def get_nlp(model: str = DEFAULT_SPACY_MODEL):
    """The spaCy pipeline, loaded once per process (no ner: only tags and dependencies)."""
    from dualclip.parse.spacy_parser import UNUSED_COMPONENTS, load_spacy

    return load_spacy(model, exclude=list(UNUSED_COMPONENTS))


@functools.lru_cache(maxsize=8)
def _builtin_synonyms() -> dict[str, set[str]]:
    """class -> its words, merged over the builtin vocabularies (a check that is given
    no vocabulary still knows that "man" is a person)."""
    from dualclip.parse.vocabularies import BUILTIN, resolve_vocabulary

    merged: dict[str, set[str]] = {}
    for path in sorted(BUILTIN.glob("*.yaml")):
        for label, words in resolve_vocabulary(path.stem).items():
            merged.setdefault(label.lower(), set()).update(w.lower() for w in [label, *words])
    return merged


def _synonyms(vocabulary) -> dict[str, set[str]]:
    if vocabulary is None:
        return _builtin_synonyms()
    from dualclip.parse.vocabularies import resolve_vocabulary

    return {label.lower(): {w.lower() for w in [label, *words]} for label, words in resolve_vocabulary(vocabulary).items()}


class _DocCache:
    """Docs by text: a caption is parsed once for all of its duals."""

    def __init__(self, nlp, size: int = 4096):
        self.nlp = nlp
        self.size = size
        self.docs: dict[str, object] = {}

    def fill(self, texts) -> None:
        todo = list(dict.fromkeys(t for t in texts if t not in self.docs))
        if len(self.docs) + len(todo) > self.size:
            self.docs.clear()
        docs = [self.nlp(todo[0])] if len(todo) == 1 else self.nlp.pipe(todo, batch_size=256)
        for text, doc in zip(todo, docs):
            self.docs[text] = doc

    def __getitem__(self, text: str):
        if text not in self.docs:
            self.fill([text])
        return self.docs[text]


@functools.lru_cache(maxsize=4)
def _cache(model: str) -> _DocCache:
    return _DocCache(get_nlp(model))


def _words(text: str) -> list[str]:
    return re.findall(r"[^\W_]+(?:'[^\W_]+)?", text.lower())


def _count_word(text: str, word: str) -> int:
    return len(re.findall(rf"\b{re.escape(word.lower())}\b", text.lower()))


def _kept_phrase_present(phrase: str, dual_lower: str) -> bool:
    """Whether a kept component's phrase is in the (lower-cased, whitespace-normalised)
    dual text, also with a possessive of a removed owner turned into "the"."""
    words = phrase.lower().split()
    variants = [" ".join(words)]
    if words and words[0] in POSSESSIVES:
        variants.append(" ".join(["the", *words[1:]]))
    return any(v in dual_lower for v in variants)


def count_problems(dual_text: str, caption: str, components: list[Component], subset, synonyms) -> list[str]:
    """The parser-free layer: kept components present with their attributes, removed
    nouns (with synonyms and person words) gone."""
    problems = []
    removed = set(subset)
    dual_lower = dual_text.lower()
    removed_per_head: Counter = Counter()
    kept_texts = []
    dual_lower = " ".join(dual_lower.split())
    for component in components:
        if component.index in removed:
            removed_per_head[component.head.lower()] += 1
        elif not _kept_phrase_present(component.text, dual_lower):
            shared = any(c.index in removed and c.head.lower() == component.head.lower() for c in components)
            if component.attributes and not shared and _count_word(dual_text, component.head):
                problems.append(f"kept component {component.text!r} lost its attributes")
            else:
                problems.append(f"kept component {component.text!r} missing")
        else:
            kept_texts.append(component.text.lower())
    for head, n_removed in sorted(removed_per_head.items()):
        allowed = _count_word(caption, head) - n_removed
        if _count_word(dual_text, head) > allowed:
            problems.append(f"removed component noun {head!r} still present")
    # synonyms of a removed class (and person words for a person): not more often than in
    # the caption outside the removed phrases and inside the kept ones
    removed_components = [c for c in components if c.index in removed]
    kept_components = [c for c in components if c.index not in removed]
    person_kept = any(c.label.lower() in PERSON_LABELS for c in kept_components)
    flagged = set(removed_per_head)
    for component in removed_components:
        words = set(synonyms.get(component.label.lower(), set())) | {component.label.lower()}
        if component.label.lower() in PERSON_LABELS and not person_kept:
            words |= PERSON_WORDS
        dual_words = set(_words(dual_text))
        for word in sorted(words - flagged):
            if " " not in word and "-" not in word and word not in dual_words:
                continue  # most synonyms are absent: no regex for them
            in_dual = _count_word(dual_text, word)
            if not in_dual:
                continue
            outside_removed = _count_word(caption, word) - sum(_count_word(c.text, word) for c in removed_components)
            if word in PERSON_WORDS and word not in synonyms.get(component.label.lower(), set()):
                outside_removed = sum(_count_word(text, word) for text in kept_texts)  # a pronoun would refer to it
            if in_dual > max(outside_removed, 0):
                problems.append(f"removed component {component.text!r} still named as {word!r}")
                flagged.add(word)
    if not dual_text.strip():
        problems.append("empty dual text")
    return problems


def _verb_subject(token, depth: int = 0):
    """The noun a verb (or participle) is said of: its nsubj, the noun a participle
    modifies ("a woman holding"), or the subject of the verb it is conjoined with or
    subordinate to ("holding ... and wearing", "eating ... while talking")."""
    if depth > 8:
        return None
    for child in token.children:
        if child.dep_ in SUBJECT_DEPS:
            return child
    if token.dep_ in ("acl", "relcl") and token.head.pos_ in ("NOUN", "PROPN", "PRON"):
        return token.head
    if token.dep_ in ("conj", "advcl", "xcomp") and token.head is not token:
        return _verb_subject(token.head, depth + 1)
    return None


def _subject_group(verb, subject) -> list:
    """The nouns a verb is said of: its subject with the nouns coordinated with it ("one
    apple and several oranges sit": not orphaned by removing the apple); a participle
    after "a man and a woman" is said of both."""
    top = subject
    while top.dep_ == "conj" and top.head is not top:
        top = top.head
    members, todo = [], [top]
    while todo:
        node = todo.pop()
        members.append(node)
        todo += [c for c in node.children if c.dep_ == "conj"]
    if verb.dep_ in ("acl", "relcl") and subject is verb.head and verb.i < max(m.i for m in members):
        return [subject]  # a participle inside the coordination is said of its own noun
    return members


def _misparsed_participle(token, orphan_indices: set[int]) -> bool:
    """"standing in a field flying kites": spaCy reads "flying" as an adjective of the
    kites, after another noun ("field"); in the object of a removed subject's verb it is
    said of that subject."""
    doc = token.doc
    if token.tag_ != "VBG" or token.dep_ != "amod" or token.i == 0:
        return False
    previous = doc[token.i - 1]
    if previous.pos_ != "NOUN" or previous.dep_ == "compound" and previous.head.i == token.head.i:
        return False
    noun = token.head
    return noun.dep_ == "pobj" and noun.head.head.i in orphan_indices


def _component_heads(doc, components: list[Component]) -> dict[int, int]:
    """token index of each component's head noun in the caption's Doc."""
    heads = {}
    for component in components:
        tokens = [t for t in doc if component.start <= t.idx < component.end]
        match = [t for t in tokens if t.text == component.head] or tokens[-1:]
        if match:
            heads[component.index] = match[-1].i
    return heads


def _tokens(text: str) -> list[str]:
    return re.findall(r"[^\W_]+(?:'[^\W_]+)?|[^\w\s]", text.lower())


@functools.lru_cache(maxsize=4096)
def _prepositions_used(caption: str) -> frozenset:
    """The words the caption uses as prepositions: those before a determiner or number."""
    tokens = _tokens(caption)
    return frozenset(word for word, nxt in zip(tokens, tokens[1:])
                     if nxt in DETERMINERS or nxt.isdigit() or nxt in NUMBER_WORDS or nxt in POSSESSIVES)


@functools.lru_cache(maxsize=4096)
def _pairs(caption: str) -> frozenset:
    """The caption's adjacent word pairs, the last word paired with what ends it."""
    tokens = _tokens(caption)
    return frozenset(zip(tokens, [*tokens[1:], ""]))


def lexical_problems(dual_text: str, caption: str | None = None) -> list[str]:
    """Broken function words, read off the words alone (no parse): a determiner without
    its noun ("the ."), a preposition without its object ("of and"), a conjunction with
    nothing to join, a quantity noun with a singular object ("a pair of a ball").

    A word that is also an adverb or particle ("standing outside", "looks on") counts as
    a dangling preposition only where the caption used it as a preposition (before a
    determiner or number), and a determiner before such a word only when no noun follows
    ("an outside market" and "the inside of a toilet" are fine)."""
    problems = []
    tokens = _tokens(dual_text)
    as_preposition = _prepositions_used(caption) if caption is not None else frozenset()
    caption_pairs = _pairs(caption) if caption is not None else frozenset()
    for position, word in enumerate(tokens):
        nxt = tokens[position + 1] if position + 1 < len(tokens) else None
        after = tokens[position + 2] if position + 2 < len(tokens) else None
        ends_phrase = nxt is None or not (nxt[0].isalnum()) or nxt in CONJUNCTIONS
        noun_follows = after is not None and after[0].isalnum() and after not in DETERMINERS | CONJUNCTIONS | PREPOSITIONS
        if word in DETERMINERS and (ends_phrase or nxt in DETERMINERS or (
                nxt in PREPOSITIONS - {"next"} and not (nxt in ADVERB_PREPOSITIONS and (noun_follows or after == "of")))):
            problems.append(f"determiner {word!r} without its noun")
        elif word in PREPOSITIONS and (ends_phrase or nxt in PREPOSITIONS - {"to", "of"}) and not (
                caption is not None and word in ADVERB_PREPOSITIONS and word not in as_preposition) \
                and (word, nxt or "") not in caption_pairs:  # "as another looks on." as in the caption
            problems.append(f"dangling function words {word + (' ' + nxt if nxt is not None else '')!r}")
        elif word in CONJUNCTIONS and (position == 0 or ends_phrase):  # "... a dog and." too
            problems.append(f"dangling conjunction {word!r}")
        if word in QUANTITY_NOUNS and nxt == "of" and position + 2 < len(tokens) and tokens[position + 2] in ("a", "an"):
            problems.append(f"quantity noun with a singular object {' '.join(tokens[position:position + 3])!r}")
    return list(dict.fromkeys(problems))


def removed_subject_words(caption_doc, components: list[Component], subset):
    """What in the caption exists only for a removed subject: the verbs said of it
    ("holding", "wearing") and the relations those verbs attach ("on phone"), each with
    the number of occurrences that do not (the same word said of a kept noun)."""
    removed = set(subset)
    heads = _component_heads(caption_doc, components)
    removed_heads = {heads[i] for i in removed if i in heads}
    orphan_verbs: Counter = Counter()
    kept_verbs: Counter = Counter()
    orphan_relations: Counter = Counter()
    kept_relations: Counter = Counter()
    if not removed_heads:
        return orphan_verbs, kept_verbs, orphan_relations, kept_relations
    orphan_indices: set[int] = set()
    removed_heads_tokens = [caption_doc[i] for i in sorted(removed_heads)]
    for token in caption_doc:
        if token.pos_ in ("VERB", "AUX") or token.tag_ in ("VBG", "VBN"):
            subject = _verb_subject(token)
            if subject is None and _misparsed_participle(token, orphan_indices):
                subject = next(iter(removed_heads_tokens))
            if subject is not None and all(member.i in removed_heads for member in _subject_group(token, subject)):
                orphan_verbs[token.lower_] += 1
                orphan_indices.add(token.i)
                for child in token.children:
                    if child.dep_ == "prep":
                        for obj in (c.lower_ for c in child.children if c.dep_ == "pobj"):
                            orphan_relations[(child.lower_, obj)] += 1
                continue
        if token.pos_ in ("VERB", "AUX"):
            kept_verbs[token.lower_] += 1
        if token.dep_ == "prep" and token.head.i not in orphan_indices:
            for obj in (c.lower_ for c in token.children if c.dep_ == "pobj"):
                kept_relations[(token.lower_, obj)] += 1
    return orphan_verbs, kept_verbs, orphan_relations, kept_relations


RELATION_WORDS = {"left", "right", "top", "front", "side", "next", "above", "below", "beside", "near", "behind"}


def caption_may_have_verbs(caption: str, components: list[Component]) -> bool:
    """Whether the caption can hold a verb said of a component: some word outside the
    component phrases, "there is/are", determiners, conjunctions and relation words
    (templated captions such as "there is a red circle to the left of a square" do not,
    and are not parsed, which keeps the check fast)."""
    rest = caption
    for component in sorted(components, key=lambda c: c.start, reverse=True):
        rest = rest[: component.start] + " " + rest[component.end:]
    rest = re.sub(r"\bthere (is|are)\b", " ", rest.lower())
    function_words = DETERMINERS | CONJUNCTIONS | PREPOSITIONS | RELATION_WORDS
    return any(word not in function_words for word in _words(rest))


def needs_parse(dual_text: str, orphans) -> bool:
    """Whether the dual text can hold a verb or relation of the removed subject at all
    (most cannot: the dual text is then not parsed, which keeps the check fast)."""
    orphan_verbs, _, orphan_relations, _ = orphans
    words = set(_words(dual_text))
    return bool(words & set(orphan_verbs)) or any(prep in words and obj in words for prep, obj in orphan_relations)


def caption_verb_words(caption_doc) -> tuple[frozenset, frozenset]:
    """(finite verbs, all verbs) of a parsed caption, as lower-cased words."""
    verbs = [t for t in caption_doc if t.pos_ in ("VERB", "AUX")]
    return (frozenset(t.lower_ for t in verbs if t.tag_ in ("VBZ", "VBP", "VBD") and t.pos_ == "VERB"),
            frozenset(t.lower_ for t in verbs))


def clause_problems(dual_text: str, caption: str, finite: frozenset, verbs: frozenset) -> list[str]:
    """A finite verb of the caption now followed by "and" where the caption went on with
    its object ("a hippo looks and some oxen" from "looks at them and some oxen"): a
    sentence joined to a noun phrase; two verbs of the caption that its removed words
    kept apart ("is displayed [in glass] stacked", "laying [in bed] reading")."""
    if not verbs:
        return []
    tokens = _tokens(dual_text)
    pairs = _pairs(caption)
    problems = [f"verb {word!r} joined to a noun phrase" for word, nxt in zip(tokens, tokens[1:])
                if word in finite and nxt == "and" and (word, nxt) not in pairs]
    problems += [f"verbs {word + ' ' + nxt!r} run together" for word, nxt in zip(tokens, tokens[1:])
                 if word in verbs and nxt in verbs and (word, nxt) not in pairs and word not in AUXILIARIES]
    return problems


def parsed_problems(dual_doc, orphans) -> list[str]:
    """On the parsed dual text: a verb of the removed subject now said of a kept noun
    ("A cup wearing a backpack."), a relation of that verb now joining kept nouns ("A
    pizza on a phone."), and a preposition without its object."""
    problems = []
    orphan_verbs, kept_verbs, orphan_relations, kept_relations = orphans
    tokens = [t for t in dual_doc if not t.is_space]
    for token in tokens:
        if token.dep_ == "prep" and token.pos_ == "ADP" and not any(c.dep_ in ("pobj", "pcomp", "prep") for c in token.children) \
                and token.lower_ not in ("next", "front"):  # "next to": the object hangs further on
            problems.append(f"preposition {token.text!r} without its object")
    dual_verbs = Counter(t.lower_ for t in tokens if t.lower_ in orphan_verbs)
    for verb, n in sorted(dual_verbs.items()):
        if n > kept_verbs[verb]:
            problems.append(f"verb {verb!r} of a removed subject kept")
    dual_relations = Counter((t.lower_, c.lower_) for t in tokens if t.dep_ == "prep"
                             for c in t.children if c.dep_ == "pobj" and (t.lower_, c.lower_) in orphan_relations)
    for (prep, obj), n in sorted(dual_relations.items()):
        if n > kept_relations[(prep, obj)]:
            problems.append(f"relation {prep + ' ' + obj!r} of a removed subject's verb kept")
    return problems


def check_dual_texts(items, vocabulary=None, spacy_model: str = DEFAULT_SPACY_MODEL, nlp=None) -> list[list[str]]:
    """Problems of many dual texts at once: ``items`` is a list of ``(dual_text, caption,
    components, subset)``; every text is parsed in one ``nlp.pipe`` (captions once each).
    ``vocabulary``: the parse stage's (a name, file or mapping) for the synonyms of a
    removed class; by default the builtin vocabularies merged. An empty list: no problem."""
    items = list(items)
    synonyms = _synonyms(vocabulary)
    cache = _DocCache(nlp) if nlp is not None else _cache(spacy_model)
    may_have_verbs = {caption: caption_may_have_verbs(caption, components) for _, caption, components, _ in items}
    cache.fill([caption for caption, needed in may_have_verbs.items() if needed])  # each caption once
    # kept here: filling the cache with the dual texts below may evict them
    caption_docs = {caption: cache[caption] for caption, needed in may_have_verbs.items() if needed}
    caption_verbs = {caption: caption_verb_words(doc) for caption, doc in caption_docs.items()}
    nothing = (Counter(), Counter(), Counter(), Counter())
    orphans = [removed_subject_words(caption_docs[caption], components, subset) if may_have_verbs[caption] else nothing
               for _, caption, components, subset in items]
    parse = [bool(dual.strip()) and needs_parse(dual, found) for (dual, _, _, _), found in zip(items, orphans)]
    cache.fill([dual for (dual, _, _, _), needed in zip(items, parse) if needed])  # one pipe for the rest
    results = []
    for (dual_text, caption, components, subset), found, needed in zip(items, orphans, parse):
        problems = count_problems(dual_text, caption, components, subset, synonyms)
        extra = lexical_problems(dual_text, caption) + (
            clause_problems(dual_text, caption, *caption_verbs[caption]) if caption in caption_verbs else []) + (
            parsed_problems(cache[dual_text], found) if needed else [])
        problems += [problem for problem in dict.fromkeys(extra) if problem not in problems]
        results.append(problems)
    return results


def check_dual_text(dual_text: str, caption: str, components: list[Component], subset: tuple[int, ...],
                    vocabulary=None, spacy_model: str = DEFAULT_SPACY_MODEL) -> list[str]:
    """Problems with one dual text (see the module's docstring); an empty list: accepted.

    Compared by head-noun counts against the original caption, so "a red circle and a
    blue circle" without the red one must still name exactly one circle, and a noun
    that is not a component (a fourth object beyond N) may stay."""
    return check_dual_texts([(dual_text, caption, components, subset)], vocabulary=vocabulary, spacy_model=spacy_model)[0]
