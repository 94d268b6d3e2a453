"""Rule rewriter: the caption without the removed components, as a sentence.

Two grammars, chosen per caption:

* **List grammar** (templated captions: a frame such as "there are" or "a picture of",
  then noun phrases joined by list words and the configured relation phrases; the
  embedded shapes world). The caption is read as ``prefix item (connector item)*
  suffix``; removing an item also removes a relation that needs it, the surviving
  items are joined again as an English list and "there is/are" agrees with the new
  first item. Exact for these captions, and needs no parse.
* **Dependency grammar** (any other caption, e.g. COCO's): spaCy's tree of the
  caption (see ``TreeRewrite``). A removed component goes with the words that exist
  only for it; every other noun phrase stays; what lost its attachment is listed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from dualclip.parse import Component
from dualclip.parse.spacy_parser import COLOUR_WORDS
from dualclip.registry import Settings
from dualclip.rewrite import DualText, check_dual_texts
from dualclip.rewrite.check import SUBJECT_DEPS

DEFAULT_RELATIONS = ("to the left of", "to the right of", "on the left of", "on the right of", "above", "below",
                     "next to", "beside", "behind", "in front of", "on top of", "under", "on", "near")
NOUN_PHRASE_STARTS = {"a", "an", "the", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                      "some", "several", "many", "his", "her", "their", "its", "this", "that", "these", "those"}
PLURAL_NUMERALS = {"two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "several", "many", "some"}
LIST_CONNECTORS = [", and", ",", "and", "with", "along with"]


@dataclass(frozen=True, kw_only=True)
class RuleSettings(Settings):
    relation_phrases: Sequence[str] = DEFAULT_RELATIONS  # what the list grammar reads as relations
    empty_caption: str = "an empty background"  # the dual text when every component is removed


class RuleRewriter:
    name = "rule"

    def __init__(self, config: dict, nlp=None):
        settings = RuleSettings.from_config(config, "rewrite")
        self.relations = [phrase.lower() for phrase in settings.relation_phrases]
        self.empty_caption = settings.empty_caption
        alternatives = sorted(self.relations + LIST_CONNECTORS, key=len, reverse=True)
        self.connector = re.compile(r"^\s*(" + "|".join(re.escape(a) for a in alternatives) + r")(?=\s|$)\s*", re.I)
        self._nlp = nlp
        self._docs = None

    @property
    def docs(self):
        """Docs of the captions by text: the dual-text check's cache (the same pipeline, loaded
        once per process), so a caption parsed here is not parsed again by the check."""
        if self._docs is None:
            from dualclip.rewrite.check import DEFAULT_SPACY_MODEL, _cache, _DocCache

            self._docs = _DocCache(self._nlp) if self._nlp is not None else _cache(DEFAULT_SPACY_MODEL)
        return self._docs

    def prepare(self, items) -> None:
        """Parse the captions of many ``(caption, components)`` in one ``nlp.pipe`` (those
        the dependency grammar needs)."""
        self.docs.fill([caption for caption, components in items if not self.is_templated(caption, components)])

    def is_templated(self, caption: str, components: list[Component]) -> bool:
        """Whether the list grammar reads ``caption`` exactly: before the first component
        only frame words ("there are", "a picture of", "we can see"), between and after
        the components only list words, configured relation phrases and other noun phrases."""
        if not components:
            return True
        if set(re.findall(r"[^\W\d_]+", caption.lower())) & PERSON_PRONOUNS:
            return False  # "a man and his dog": the pronoun goes with the man
        prefix, tokens, _ = self.structure(caption, components)
        if not set(re.findall(r"[^\W\d_]+", prefix.lower())) <= TEMPLATE_FRAME_WORDS:
            return False
        for kind, text, _ in tokens:
            if kind == "item":  # another thing ("a hexagon"), not a clause ("that is sitting")
                words = text.lower().split()
                if len(words) > 5 or any(w in CLAUSE_WORDS or w.endswith("ing") or not w.isalpha() for w in words):
                    return False
            elif text not in self.relations and (text not in LIST_CONNECTORS or "with" in text):
                return False  # "with" may attach what a thing wears or holds: the tree knows
        return True

    def rewrite_one(self, caption: str, components: list[Component], subset: tuple[int, ...]) -> str:
        return self.rewrite(caption, components, [subset])[0]

    def rewrite_batch(
        self, items: Sequence[tuple[str, list[Component], list[tuple[int, ...]]]]
    ) -> list[list[DualText]]:
        """Many ``(caption, components, subsets)`` at once: a checked ``DualText`` per subset.
        The captions the dependency grammar reads are parsed in one ``nlp.pipe`` first, and
        every text is checked in one ``check_dual_texts`` (its own pipe, the same Doc cache)."""
        from tqdm import tqdm

        items = list(items)
        self.prepare([(caption, components) for caption, components, _ in items])
        texts = [self.rewrite(caption, components, subsets)
                 for caption, components, subsets in tqdm(items, desc=f"rewrite ({self.name})", mininterval=5)]
        problems = iter(check_dual_texts([
            (text, caption, components, subset)
            for (caption, components, subsets), group in zip(items, texts) for subset, text in zip(subsets, group)
        ]))
        return [[DualText(text, self.name, problems=next(problems)) for text in group] for group in texts]

    def rewrite(self, caption: str, components: list[Component], subsets: list[tuple[int, ...]]) -> list[str]:
        if not self.is_templated(caption, components):
            tree = TreeRewrite(self.docs[caption], caption, components)
            return [tree.text(subset, self.empty_caption) for subset in subsets]
        return [self.rewrite_list(caption, components, subset) for subset in subsets]

    # ------------------------------------------------------------ list grammar

    def _split_glue(self, glue: str) -> list[tuple[str, str]]:
        """Split text between two components into [("conn", text) | ("item", text)]."""
        parts = []
        rest = glue
        while rest.strip():
            match = self.connector.match(rest)
            if match:
                parts.append(("conn", match.group(1).lower()))
                rest = rest[match.end():]
                continue
            # an uncovered phrase runs to the next connector
            nxt = None
            for position in range(1, len(rest)):
                if rest[position - 1] in " ," and self.connector.match(rest[position - 1:]):
                    nxt = position - 1
                    break
            text, rest = (rest, "") if nxt is None else (rest[:nxt], rest[nxt:])
            if not text.strip():
                continue
            if text.strip().split()[0].lower() in NOUN_PHRASE_STARTS:
                parts.append(("item", text.strip()))  # another noun phrase: it stays
            else:
                # words between two things that are no noun phrase ("holding", "sitting
                # on"): a predicate that needs both sides, dropped with either
                parts.append(("conn", text.strip().lower()))
        return parts

    def is_relation(self, connector: str | None) -> bool:
        return connector is not None and connector not in LIST_CONNECTORS

    def structure(self, caption: str, components: list[Component]):
        ordered = sorted(components, key=lambda c: c.start)
        prefix = caption[: ordered[0].start] if ordered else caption
        tokens: list[tuple[str, str, int | None]] = []  # (kind, text, component index)
        cursor = ordered[0].start if ordered else len(caption)
        for component in ordered:
            for kind, text in self._split_glue(caption[cursor: component.start]):
                tokens.append((kind, text, None))
            tokens.append(("item", caption[component.start: component.end], component.index))
            cursor = component.end
        tail = caption[cursor:]
        suffix_match = re.search(r"[.!?]\s*$", tail)
        suffix = suffix_match.group(0) if suffix_match else ""
        if suffix:
            tail = tail[: suffix_match.start()]
        for kind, text in self._split_glue(tail):
            tokens.append((kind, text, None))
        return prefix, tokens, suffix

    def rewrite_list(self, caption: str, components: list[Component], subset: tuple[int, ...]) -> str:
        prefix, tokens, suffix = self.structure(caption, components)
        removed = set(subset)
        items = [(text, index) for kind, text, index in tokens if kind == "item"]
        # connector before item i (i >= 1): the last connector between item i-1 and item i
        links: list[str | None] = [None]
        current = None
        seen_item = False
        for kind, text, _ in tokens:
            if kind == "conn":
                current = text if current is None or self.is_relation(text) else current
            else:
                if seen_item:
                    links.append(current)
                seen_item = True
                current = None
        keep = [index is None or index not in removed for _, index in items]
        # group kept items into chunks; a relation survives only if both of its sides do
        chunks: list[str] = []
        for position, (text, _) in enumerate(items):
            if not keep[position]:
                continue
            link = links[position] if position < len(links) else None
            if position > 0 and self.is_relation(link) and keep[position - 1] and chunks:
                chunks[-1] = f"{chunks[-1]} {link} {text}"
            else:
                chunks.append(text)
        if not chunks:
            return self.empty_caption
        body = chunks[0] if len(chunks) == 1 else ", ".join(chunks[:-1]) + " and " + chunks[-1]
        text = self._agree(prefix, body, components, items, keep) + body + suffix
        if caption[:1].isupper():  # a sentence-case caption stays one
            text = text[:1].upper() + text[1:]
        return text

    @staticmethod
    def _agree(prefix: str, body: str, components: list[Component], items, keep) -> str:
        """'there are two circles and a square' minus the circles -> 'there is a square'."""
        match = re.search(r"\b(there )(is|are)(\s+)$", prefix, re.I)
        if not match:
            return prefix
        first_text, first = next((text, index) for (text, index), kept in zip(items, keep) if kept)
        by_index = {component.index: component for component in components}
        if first is not None:
            plural = by_index[first].plural
        else:  # not a parsed component: a leading numeral above one marks a plural phrase
            words = first_text.lower().split()
            plural = bool(words) and (words[0] in PLURAL_NUMERALS or (words[0].isdigit() and int(words[0]) > 1))
        verb = "are" if plural else "is"
        return prefix[: match.start(2)] + verb + match.group(3)


# ---------------------------------------------------------------- dependency grammar

# A caption's frame before its list of things ("there are", "a picture of", "we can see"):
# the list grammar keeps it as it is.
TEMPLATE_FRAME_WORDS = {"there", "is", "are", "a", "an", "the", "this", "of", "we", "can", "see", "picture", "image",
                        "photo", "photograph", "scene", "showing", "shows", "contains", "containing", "here"}
CLAUSE_WORDS = {"that", "which", "who", "whose", "where", "is", "are", "was", "were", "has", "have", "being", "been"}
# Nouns that frame the picture rather than name something in it: a dual text left with only
# these (or pronouns) names nothing, and is the configured empty caption.
FRAME_NOUNS = {"picture", "image", "photo", "photograph", "pic", "view", "shot", "snapshot", "closeup", "close",
               "scene", "depiction", "display"}
# Nouns that are part of a relation ("in front of", "to the left of", "on top of"), not a thing.
RELATION_NOUNS = {"left", "right", "front", "top", "bottom", "middle", "center", "centre", "side", "rear", "back"}
# "X of Y" where X holds Y stays when Y goes ("a box of donuts" -> "a box").
CONTAINER_NOUNS = {"box", "plate", "tray", "basket", "bag", "bucket", "pan", "pot", "dish", "platter", "jar",
                   "container", "crate", "carton", "cart", "shelf", "rack", "bin", "case", "table", "counter", "desk"}
# What a removed person or animal wears or is made of goes with it ("a man in a red shirt").
BODY_AND_ATTIRE = {"shirt", "t-shirt", "tshirt", "jacket", "coat", "hat", "cap", "helmet", "dress", "pants", "jeans",
                   "shorts", "shoes", "shoe", "boots", "glasses", "sunglasses", "goggles", "uniform", "suit", "outfit",
                   "gear", "wetsuit", "costume", "apron", "scarf", "vest", "sweater", "hoodie", "sweatshirt", "skirt",
                   "jersey", "gloves", "glove", "mask", "hair", "hand", "hands", "head", "face", "arm", "arms", "leg",
                   "legs", "mouth", "eyes", "eye", "ear", "ears", "tail", "paw", "paws", "nose", "lap", "feet", "foot",
                   "finger", "fingers", "mane", "fur", "neck", "collar", "beard", "mustache", "teeth", "tongue",
                   "back", "body", "shoulder", "shoulders", "knee", "knees", "trunk", "horns", "horn", "wings", "wing",
                   "beak", "spots", "stripes", "hoof", "hooves", "tusks", "attire", "clothes", "clothing", "costumes",
                   "patches", "markings", "toes", "toe", "tie", "necktie", "lips", "cheek", "whiskers", "claws",
                   }
PERSON_PRONOUNS = {"he", "she", "him", "her", "they", "them", "his", "hers", "their", "theirs", "himself", "herself",
                   "themselves", "it", "its"}
FEMALE_PRONOUNS = {"she", "her", "hers", "herself"}
MALE_PRONOUNS = {"he", "him", "his", "himself"}
PLURAL_PRONOUNS = {"they", "them", "their", "theirs", "themselves"}
RELATIVE_PRONOUNS = {"that", "which", "who", "whom", "whose"}
FEMALE_NOUNS = {"woman", "women", "girl", "girls", "lady", "ladies", "mother", "mom", "daughter", "bride", "sister",
                "queen", "female", "females", "wife", "grandmother", "actress", "waitress"}
MALE_NOUNS = {"man", "men", "boy", "boys", "guy", "guys", "gentleman", "gentlemen", "father", "dad", "son", "groom",
              "brother", "king", "male", "males", "husband", "grandfather", "actor", "waiter"}
# Prepositions of a path: said of what moves, which a verb's removed object was.
DIRECTIONS = {"out", "into", "onto", "from", "off", "to", "toward", "towards", "through", "down", "up"}
# Verbs whose object is the action itself ("taking a swing", "doing tricks"): it goes with the verb.
LIGHT_VERBS = {"take", "do", "make", "perform", "give", "attempt", "execute"}
OBJECT_DEPS = {"dobj", "attr", "oprd", "dative"}
COORDINATION_DEPS = {"conj", "appos"}
PREPOSITION_DEPS = {"prep", "agent", "dative"}
# A verb that is kept although the verb it hangs on goes takes that verb's place
# ("holding a cup and wearing ..." without the cup: "wearing ...").
PROMOTED_VERB_DEPS = {"conj", "advcl", "xcomp", "ccomp"}
# Words between coordinated phrases: rebuilt from the phrases that are left.
SEPARATORS = {",", ";", "and", "or", "&", "as", "well"}


class TreeRewrite:
    """One caption's dual texts on its dependency tree.

    The caption's noun phrases (spaCy's noun chunks, merged with the components' spans)
    are its things; a subset's removal deletes the removed components' phrases and, to a
    fixed point, the words that exist only for them:

    * a verb whose subject is gone, or whose objects all are ("holding" without the cup),
      a participle that may be said of a removed subject ("a surfer on a board riding a
      wave"), "is" that lost what it said; with them their function words ("while", "is");
    * a preposition (with "the left of", "front of", "next") that lost its object, or
      whose head went with a removed subject ("talking on a phone" without the man: the
      phone stays, the relation does not); the preposition of a verb that lost only its
      object stays with the subject ("a man riding a horse on a beach" -> "a man on a
      beach");
    * another noun phrase that is part, content or quantity of a removed one ("the edge
      of a bed", "a bowl of soup", "a group of people"), what it wears or its body ("a red
      shirt", "his hands"), and a pronoun that refers to it ("riding on it").

    Every other noun phrase stays with its modifiers. Kept words keep their order;
    coordinations are joined again from the conjuncts that are left; the pieces that lost
    their attachment are listed ("A pizza and a phone."), except a lone singular noun
    without determiner ("at night", "playing tennis"). Sentence case and the final
    punctuation stay; the verb agrees with a subject that lost conjuncts; a possessive of
    a removed thing becomes "the" ("his dog" -> "the dog").
    """

    def __init__(self, doc, caption: str, components: list[Component]):
        self.doc = doc
        self.caption = caption
        self.components = components
        suffix = re.search(r"[.!?]+\s*$", caption)
        self.suffix = suffix.group(0) if suffix else ""
        body_end = suffix.start() if suffix else len(caption)
        self.tokens = [t for t in doc if t.idx < body_end and not t.is_space]
        self.end = self.tokens[-1].i + 1 if self.tokens else 0
        self.units: list[dict] = []  # {"tokens", "root", "component", "kind", "label", "plural"}
        self.relation_tokens: set[int] = set()  # "the left", "front": part of a preposition
        by_token: dict[int, dict] = {}
        for component in components:
            span = [t for t in self.tokens if component.start <= t.idx < component.end]
            if not span:
                continue
            heads = [t for t in span if t.text == component.head] or span[-1:]
            unit = {"tokens": {t.i for t in span}, "root": heads[-1], "component": component.index,
                    "kind": "component", "label": component.label.lower(), "plural": component.plural}
            self.units.append(unit)
            by_token.update({t.i: unit for t in span})
        for chunk in doc.noun_chunks:
            if chunk.end > self.end:
                continue
            indices = set(range(chunk.start, chunk.end))
            overlapping = [by_token[i] for i in sorted(indices) if i in by_token]
            if overlapping:  # the component's phrase is the thing ("a teddy" + "bear")
                overlapping[0]["tokens"] |= {i for i in indices if i not in by_token}
                by_token.update({i: overlapping[0] for i in indices if i not in by_token})
                continue
            root = chunk.root
            if root.lower_ in RELATION_NOUNS:
                self.relation_tokens |= indices
                continue
            kind = "pronoun" if root.pos_ == "PRON" else "frame" if root.lower_ in FRAME_NOUNS else "thing"
            unit = {"tokens": indices, "root": root, "component": None, "kind": kind, "label": None,
                    "plural": root.tag_ in ("NNS", "NNPS") or root.lower_ in PLURAL_PRONOUNS}
            self.units.append(unit)
            by_token.update({i: unit for i in indices})
        self.unit_of = {i: number for number, unit in enumerate(self.units) for i in unit["tokens"]}
        for number, unit in enumerate(self.units):  # the token a phrase hangs on the rest by
            unit["top"] = next((doc[i] for i in sorted(unit["tokens"]) if self.unit_of.get(doc[i].head.i) != number
                                or doc[i].head.i == i), unit["root"])
        self.antecedents = {}  # pronoun token -> the unit it refers to
        for token in self.tokens:
            if token.lower_ in PERSON_PRONOUNS | RELATIVE_PRONOUNS and token.pos_ in ("PRON", "DET"):
                found = self.antecedent(token)
                if found is not None:
                    self.antecedents[token.i] = found

    # ------------------------------------------------------------ structure

    def unit(self, token) -> dict | None:
        number = self.unit_of.get(token.i)
        return None if number is None else self.units[number]

    def group(self, token) -> list:
        """``token`` and the phrases coordinated with it, in order."""
        top = token
        while top.head.i != top.i and (top.dep_ == "conj" or top.dep_ == "appos" and any(
                t.text == "," for t in self.doc[top.head.i:top.i])):
            top = top.head
        members, todo = [], [top]
        while todo:
            node = todo.pop()
            members.append(node)
            todo += [c for c in node.children if c.i < self.end and (c.dep_ == "conj" or c.dep_ == "appos" and any(
                t.text == "," for t in self.doc[node.i:c.i]))]
        return sorted(members, key=lambda t: t.i)

    def group_units(self, token) -> list[int]:
        return list(dict.fromkeys(self.unit_of[m.i] for m in self.group(token) if m.i in self.unit_of))

    def is_verb(self, token) -> bool:
        return (token.i not in self.unit_of and token.i not in self.relation_tokens
                and token.pos_ in ("VERB", "AUX") and token.dep_ not in ("aux", "auxpass"))

    def is_body(self, unit: dict) -> bool:
        """A body part or clothing ("a red shirt", "his hands", "in white"); also a
        misparsed "a helmet standing" (the noun before an -ing root)."""
        if unit["component"] is not None:
            return False
        root = unit["root"]
        nouns = [self.doc[i] for i in sorted(unit["tokens"]) if self.doc[i].pos_ in ("NOUN", "PROPN", "ADJ")]
        if root.lower_ in COLOUR_WORDS:
            return len(nouns) == 1  # a colour worn, not "a blue and green tennis court"
        words = [root] + ([t for t in nouns if t.dep_ == "compound"] if root.lower_.endswith("ing") else [])
        return any(t.lower_ in BODY_AND_ATTIRE or t.lemma_.lower() in BODY_AND_ATTIRE for t in words)

    def subject_units(self, verb, depth: int = 0) -> list[int]:
        """The things a verb is said of: its subject (with conjuncts), the noun a
        participle or relative clause modifies (all conjuncts when it follows them), or
        the subject of the verb it joins."""
        if depth > 10:
            return []
        for child in verb.children:
            if child.dep_ in SUBJECT_DEPS and child.i in self.unit_of:
                if child.i in self.antecedents and child.lower_ in RELATIVE_PRONOUNS:
                    return [self.antecedents[child.i]]
                return self.group_units(child)
            if child.dep_ == "expl":
                return []  # "there is": the thing is its attribute (an object here)
        for child in verb.children:  # "Boy riding a skate board": a misparsed subject before the verb
            if child.i < verb.i and child.dep_ in ("intj", "npadvmod", "dep", "nmod") and child.i in self.unit_of \
                    and self.unit(child)["component"] is not None:
                return [self.unit_of[child.i]]
        if verb.dep_ in ("acl", "relcl") and verb.head.i in self.unit_of:
            members = self.group(verb.head)
            if verb.i > members[-1].i:  # "a man and a woman sitting": said of both
                return self.group_units(verb.head)
            return [self.unit_of[verb.head.i]]
        if verb.dep_ in PROMOTED_VERB_DEPS | {"pcomp"} and verb.head.i != verb.i:
            head = verb.head
            while head.dep_ == "prep" and head.head.i != head.i:  # "by eating": the verb the preposition hangs on
                head = head.head
            if self.is_verb(head):
                return self.subject_units(head, depth + 1)
            if head.i in self.unit_of:
                return [self.unit_of[head.i]]
        return []

    def other_subject_units(self, verb) -> list[int]:
        """For an -ing participle on an object ("a surfer on a board riding a wave", "a
        man holding an umbrella standing"): the subject it may be said of instead."""
        being = any(c.dep_ == "auxpass" and c.lower_ == "being" for c in verb.children)
        if verb.dep_ != "acl" or not (verb.tag_ == "VBG" or being) or verb.head.i not in self.unit_of:
            return []
        noun = self.group(verb.head)[0]
        if noun.dep_ == "pobj":
            governor = self.governor(noun.head)
            if governor.i in self.unit_of:
                return [self.unit_of[governor.i]]
            return self.subject_units(governor) if self.is_verb(governor) else []
        if noun.dep_ in OBJECT_DEPS and self.is_verb(noun.head):
            return self.subject_units(noun.head)
        return []

    def complements(self, verb) -> list:
        """What a verb says of its subject: its objects (with conjuncts); for "be", also
        its adjective, preposition or relation adverb ("a mug is next to a bowl")."""
        found = []
        for child in verb.children:
            if child.dep_ in OBJECT_DEPS:
                found += self.group(child)
            elif verb.lemma_ == "be" and (child.dep_ in ("acomp", "prep") or (
                    child.dep_ == "advmod" and any(c.dep_ == "prep" for c in child.children))):
                found.append(child)
        return found

    def preposition_objects(self, preposition, depth: int = 0) -> list:
        """The tokens a preposition relates its head to: its object with conjuncts, or
        through a relation noun the object of its "of" ("in front of a bus")."""
        found = []
        for child in preposition.children:
            if child.dep_ not in ("pobj", "pcomp"):
                continue
            if child.i in self.relation_tokens and depth < 4:
                for grandchild in child.children:
                    if grandchild.dep_ == "prep":
                        found += self.preposition_objects(grandchild, depth + 1)
            elif child.pos_ == "VERB" and child.i not in self.unit_of and any(
                    c.i in self.unit_of and c.i < child.i for c in child.children):
                # "on a surfboard riding a wave" read as "on [a surfboard riding]": the thing is the object
                found += [c for c in child.children if c.i in self.unit_of and c.i < child.i]
            else:
                found += self.group(child)
        if not found and depth < 4:  # "from behind the book": the object of the inner preposition
            for child in preposition.children:
                if child.dep_ == "prep":
                    found += self.preposition_objects(child, depth + 1)
        return found

    def governor(self, preposition):
        """What a preposition says its objects relate to, past relation words ("next",
        "front") and the prepositions of a relation noun."""
        node = preposition.head
        steps = 0
        while node.i != node.head.i and steps < 6 and node.i not in self.unit_of and not self.is_verb(node):
            node = node.head
            steps += 1
        return node

    def owners(self, unit: dict) -> list[int]:
        """Whose body part or clothing a noun phrase is: the antecedent of its possessive,
        the object of its "of" ("the back of an elephant"), else the nearest thing above
        it (through a verb, the verb's subject)."""
        root = unit["root"]
        for i in sorted(unit["tokens"]):
            if self.doc[i].dep_ == "poss" and i in self.antecedents:
                return [self.antecedents[i]]
        if root.dep_ == "pobj" and root.head.i > 0:  # "the girl in blue": worn by the phrase just before
            before = self.unit_of.get(root.head.i - 1)
            if before is not None and before != self.unit_of[root.i]:
                return [before]
        for child in root.children:
            if child.lower_ == "of" and child.dep_ == "prep":
                objects = [self.unit_of[t.i] for t in self.preposition_objects(child) if t.i in self.unit_of]
                if objects:
                    return objects
        node = root
        for _ in range(12):
            if node.head.i == node.i:
                return []
            node = node.head
            if node.i in self.unit_of and self.unit(node) is not unit:
                return [self.unit_of[node.i]]
            if self.is_verb(node):
                subjects = self.subject_units(node)
                if subjects:
                    return subjects
        return []

    def antecedent(self, pronoun) -> int | None:
        """The thing a pronoun refers to: a relative pronoun's noun; else the nearest
        thing before it that agrees (gender for he/she, number for it/they), not the
        subject or head of the pronoun's own phrase ("a boy riding on it": not the boy)."""
        lower = pronoun.lower_
        if lower in RELATIVE_PRONOUNS:
            verb = pronoun.head
            if verb.dep_ == "relcl" and verb.head.i in self.unit_of:
                return self.unit_of[verb.head.i]
            return None
        own = self.unit_of.get(pronoun.i)
        excluded: set[int] = set() if own is None else {own}
        if pronoun.dep_ != "poss":  # "a boy riding on it", "a table with dishes on it"
            node = pronoun
            for _ in range(4):
                node = node.head
                if node.dep_ == "prep" or node.pos_ == "ADP":
                    continue
                if node.i in self.unit_of:
                    excluded |= set(self.group_units(node))
                elif self.is_verb(node):
                    for number in self.subject_units(node):
                        excluded |= set(self.group_units(self.units[number]["root"]))
                break
        candidates = []
        for number, unit in enumerate(self.units):
            root = unit["root"]
            if number in excluded or root.i >= pronoun.i or unit["kind"] not in ("component", "thing"):
                continue
            words = {self.doc[i].lower_ for i in unit["tokens"]}
            female, male = bool(words & FEMALE_NOUNS), bool(words & MALE_NOUNS)
            person = unit["label"] == "person" or female or male
            if lower in FEMALE_PRONOUNS:
                fits = female or (person and not male)
            elif lower in MALE_PRONOUNS:
                fits = male or (person and not female)
            elif lower in PLURAL_PRONOUNS:
                fits = unit["plural"]
            else:  # it, its
                fits = not person and not unit["plural"]
            if fits:
                candidates.append((root.i, number))
        if candidates:
            return max(candidates)[1]
        if pronoun.dep_ == "poss" and lower not in PLURAL_PRONOUNS | {"its"}:  # "[a baseball] holding his bat"
            node = pronoun.head
            while node.head.i != node.i and not self.is_verb(node):
                node = node.head
            subjects = self.subject_units(node) if self.is_verb(node) else []
            if subjects and self.units[subjects[0]]["root"].i < pronoun.i:
                return subjects[0]
        return None

    # ------------------------------------------------------------ deletion

    def deleted_tokens(self, subset) -> tuple[set[int], set[int], set[int]]:
        """(deleted tokens, deleted units, verbs deleted with their object only)."""
        removed = set(subset)
        gone_units = {n for n, unit in enumerate(self.units) if unit["component"] in removed}
        gone: set[int] = set()
        object_loss: set[int] = set()
        for _ in range(20):
            before = (len(gone), len(gone_units))
            for number, unit in enumerate(self.units):
                if number not in gone_units and unit["component"] is None and self.unit_goes(unit, gone, gone_units):
                    gone_units.add(number)
            for number in gone_units:
                gone |= self.units[number]["tokens"]
            for token in self.tokens:
                if token.i in gone or token.i in self.unit_of:
                    continue
                if self.is_verb(token):
                    subjects = self.subject_units(token)
                    others = self.other_subject_units(token)
                    complements = self.complements(token)
                    if subjects and all(n in gone_units for n in subjects) or others and all(n in gone_units for n in others):
                        gone.add(token.i)
                    elif token.head.i in gone and token.head.i not in self.unit_of and not self.is_verb(token.head):
                        gone.add(token.i)  # "[available] to use"
                    elif complements and all(t.i in gone for t in complements):
                        gone.add(token.i)
                        object_loss.add(token.i)
                    elif any(c.dep_ == "agent" and c.i in gone for c in token.children):
                        gone.add(token.i)  # "steered by [a man]": the doer was removed
                        object_loss.add(token.i)
                elif token.dep_ in PREPOSITION_DEPS or any(c.dep_ == "pobj" for c in token.children):
                    if self.preposition_goes(token, gone, object_loss):
                        gone.add(token.i)
                elif token.i in self.relation_tokens:
                    carrier = token
                    while carrier.i in self.relation_tokens and carrier.head.i != carrier.i:
                        carrier = carrier.head
                    if carrier.i in gone:
                        gone.add(token.i)
                elif any(c.dep_ == "prep" for c in token.children) and token.head.i not in gone:
                    # a relation adverb ("next" to a car) or a quantity ("one" of the players):
                    # it goes with its prepositions
                    preps = [c for c in token.children if c.dep_ == "prep"]
                    if all(c.i in gone for c in preps) and (token.pos_ in ("ADV", "ADJ") or any(
                            c.lower_ == "of" for c in preps)):
                        gone.add(token.i)
                elif token.head.i in gone and token.head.i != token.i and token.dep_ not in ("conj", "appos"):
                    # a word that is there for a deleted word ("is", "while", "available")
                    preps = [c for c in token.children if c.dep_ == "prep"]
                    if not preps or all(c.i in gone for c in preps):
                        gone.add(token.i)
                elif token.dep_ == "mark" and self.is_verb(token.head) and token.head.head.i in gone:
                    gone.add(token.i)  # "while talking" after a deleted "eating a pizza"
                elif token.dep_ in COORDINATION_DEPS and token.pos_ in ("NUM", "ADJ", "PRON", "DET") and any(
                        c.dep_ in ("acl", "relcl") for c in token.children) and all(
                        c.i in gone for c in token.children if c.dep_ in ("acl", "relcl")):
                    gone.add(token.i)  # "one [holding a cake]": the one was only what it did
            if (len(gone), len(gone_units)) == before:
                break
        return gone, gone_units, object_loss

    def unit_goes(self, unit: dict, gone: set[int], gone_units: set[int]) -> bool:
        root = unit["root"]
        if unit["kind"] == "pronoun":
            return self.antecedents.get(root.i) in gone_units or root.head.i in gone and root.dep_ in SUBJECT_DEPS
        head = root.head
        if root.lower_.endswith("ing") and head.i in gone and root.dep_ in ("appos", "dep", "npadvmod", "compound", "amod"):
            return True  # "a person [cross-country skiing]": what the removed thing does
        # "the edge of [a bed]", "[a bowl] of soup": part, content or quantity of a removed thing
        if root.dep_ == "pobj" and head.lower_ == "of" and head.head.i in gone and head.head.i in self.unit_of:
            return True
        for child in root.children:
            if child.lower_ == "of" and child.dep_ == "prep" and root.lower_ not in CONTAINER_NOUNS:
                objects = self.preposition_objects(child)
                if objects and all(t.i in gone for t in objects):
                    return True
        if root.dep_ == "dobj" and head.i in gone and head.lemma_.lower() in LIGHT_VERBS and not unit["plural"] \
                or root.dep_ == "dobj" and head.i in gone and head.lemma_.lower() in ("do", "perform"):
            return True  # "taking a swing", "doing tricks": the action of a removed doer
        if self.is_body(unit):
            if root.dep_ == "pobj" and root.head.i in gone:
                return True  # its relation went with its owner or its verb
            owners = self.owners(unit)
            return bool(owners) and all(n in gone_units for n in owners)
        return False

    def preposition_goes(self, preposition, gone: set[int], object_loss: set[int]) -> bool:
        objects = self.preposition_objects(preposition)
        if objects and all(t.i in gone for t in objects):
            return True
        units = [self.unit(t) for t in objects]
        worn = objects and all(t.lower_ in COLOUR_WORDS or (u is not None and self.is_body(u)) for t, u in zip(objects, units))
        if worn and preposition.i > 0 and preposition.i - 1 in gone and preposition.i - 1 in self.unit_of:
            return True  # "[the girl] in blue": what the removed thing wears
        governor = self.governor(preposition)
        if worn and governor.i in self.unit_of and governor.dep_ in OBJECT_DEPS and governor.head.i in gone:
            return True  # "kissing a woman on the head" without the kisser: not "a woman on the head"
        governor = self.governor(preposition)
        if governor.i not in gone:
            return False
        if governor.i in object_loss:  # "riding [a horse] on a beach": the subject is still there, but not
            # where the object was held ("in his hand") or moved ("pulls [an elephant] out of a truck")
            if preposition.lower_ in DIRECTIONS or preposition.head.lower_ in DIRECTIONS:
                return True
            return bool(units) and all(u is not None and self.is_body(u) for u in units)
        if governor.i in self.unit_of:  # a removed first conjunct: the kept ones share what follows them all
            members = self.group(governor)
            return not (governor.i == members[0].i and any(m.i not in gone for m in members)
                        and preposition.i > members[-1].i)
        return True

    # ------------------------------------------------------------ rendering

    def attach(self, token, gone: set[int], object_loss: set[int]):
        """The kept token that ``token`` hangs on, or None (a piece of its own)."""
        node = token
        for _ in range(20):
            head = node.head
            if head.i == node.i or head.i >= self.end:
                return None
            if head.i not in gone:
                return head
            if node.dep_ in COORDINATION_DEPS:
                kept = [m for m in self.group(head) if m.i not in gone]
                if kept and kept[0].i != token.i:
                    return kept[0]
                node = head  # the first kept conjunct takes the removed one's place
                continue
            if head.i in self.unit_of:
                members = self.group(head)
                kept = [m for m in members if m.i not in gone and m.i in self.unit_of]
                if kept and token.i > members[-1].i and (head.i == members[0].i or self.is_verb(node)):
                    return kept[0]  # shared by the kept conjuncts ("a man and a woman on a bench")
                return None
            if head.i in object_loss:
                subjects = [self.units[n]["root"] for n in self.subject_units(head)]
                kept = [s for s in subjects if s.i not in gone]
                if kept:
                    return kept[0]
            if self.is_verb(node) and node.dep_ in PROMOTED_VERB_DEPS:
                node = head
                continue
            return None
        return None

    def text(self, subset, empty_caption: str) -> str:
        gone, gone_units, object_loss = self.deleted_tokens(subset)
        content = {n for n, unit in enumerate(self.units) if n not in gone_units and unit["kind"] in ("component", "thing")}
        if not content:
            return empty_caption
        # coordinations: separators rebuilt from the kept conjuncts
        separator_tokens: set[int] = set()
        before: dict[int, str] = {}
        articles: dict[int, str] = {}
        seen: set[int] = set()
        for token in self.tokens:
            if token.i in seen or token.dep_ in COORDINATION_DEPS or not any(
                    c.dep_ in COORDINATION_DEPS for c in token.children):
                continue
            members = self.group(token)
            seen |= {m.i for m in members}
            if all(m.i not in gone for m in members):
                continue  # nothing removed here: the caption's own words stay
            indices = {m.i for m in members}
            separators = [t for t in self.tokens if members[0].i < t.i < members[-1].i and t.lower_ in SEPARATORS
                          and t.head.i in indices and t.dep_ in ("cc", "punct", "advmod", "preconj")]
            separator_tokens |= {t.i for t in separators}
            alive = [m for m in members if m.i not in gone]
            word = next((t.text for t in separators if t.lower_ in ("and", "or")), "and")
            for position, member in enumerate(alive):
                start = next((t.i for t in self.tokens if member.left_edge.i <= t.i <= member.i and t.i not in gone
                              and t.i not in separator_tokens), member.i)
                if position:
                    before[start] = ", " if position < len(alive) - 1 else f" {word} "
                elif members[0].i in gone and member.i in self.unit_of:
                    article = self.inherited_article(members[0], member)
                    if article:
                        articles[start] = article + " "
        kept = [t for t in self.tokens if t.i not in gone and t.i not in separator_tokens]
        pieces: dict[int, list] = {}
        roots: dict[int, int] = {}
        for token in kept:
            # a phrase stays in one piece, even where spaCy hung its words on different heads
            node, path = (self.units[self.unit_of[token.i]]["top"] if token.i in self.unit_of else token), [token.i]
            while node.i not in roots:
                path.append(node.i)
                parent = self.attach(node, gone, object_loss)
                if parent is None or parent.i in path or parent.i in separator_tokens:
                    roots[node.i] = node.i
                    break
                node = parent
            root = roots[node.i]
            for i in path:
                roots[i] = root
            pieces.setdefault(root, []).append(token)
        rendered, clauses, plurals = [], [], []
        for tokens in sorted(pieces.values(), key=lambda piece: piece[0].i):
            units = {self.unit_of[t.i] for t in tokens if t.i in self.unit_of} & content
            if not units or (len(tokens) == 1 and self.is_bare_mass_noun(tokens[0])):
                continue  # names nothing ("we can", "an image"), or an idiom's noun ("at night")
            text = ""
            for position, token in enumerate(tokens):
                if token.i in before:  # the rebuilt separator replaces any left before it
                    text = (re.sub(r"(\s*(,|\band\b|\bor\b))*\s*$", "", text) + before[token.i]) if position else before[token.i]
                text += articles.get(token.i, "") + self.word(token, gone, gone_units, tokens, position) + token.whitespace_
            text = re.sub(r"\s+", " ", text)
            text = re.sub(r"\s+([,;])", r"\1", text)
            text = re.sub(r"([,;])(\s*[,;])+", r"\1", text)
            text = re.sub(r"^(\s*(,|;|and|or|while|as)\b\s*)+", "", text, flags=re.I)
            text = re.sub(r"(\s*\b(,|;|and|or|while|as)\s*)+$", "", text, flags=re.I).strip(" ,;")
            if text:
                rendered.append(text)
                clauses.append(any(t.tag_ in ("VBZ", "VBP", "VBD", "MD") and (t.dep_ in ("ROOT", "aux", "auxpass") or any(
                    c.dep_ in SUBJECT_DEPS for c in t.children)) for t in tokens))
                first_unit = next((self.units[self.unit_of[t.i]] for t in tokens if t.i in self.unit_of), None)
                plurals.append(bool(first_unit and first_unit["plural"]))
        if not rendered:
            return empty_caption
        if len(rendered) > 1 and any(clauses):
            # "other kids look on" and "a game system": the sentence, then what else is there
            first = clauses.index(True)
            rest = [text for position, text in enumerate(rendered) if position != first]
            rest_plural = [plural for position, plural in enumerate(plurals) if position != first]
            listed = rest[0] if len(rest) == 1 else ", ".join(rest[:-1]) + " and " + rest[-1]
            verb = "are" if len(rest) > 1 or rest_plural[0] else "is"
            body = f"{rendered[first]}, and there {verb} {listed}"
        else:
            body = rendered[0] if len(rendered) == 1 else ", ".join(rendered[:-1]) + " and " + rendered[-1]
        if self.caption[:1].isupper():
            body = body[:1].upper() + body[1:]
        return body + self.suffix

    def is_bare_mass_noun(self, token) -> bool:
        """A lone singular noun with no determiner or modifier that is no component ("at
        night", "for sale", "playing tennis", "on grass"): listed alone ("Night.") it is no
        sentence, and it is rarely the thing a reader would name."""
        unit = self.unit(token)
        return unit is not None and unit["component"] is None and len(unit["tokens"]) == 1 and token.tag_ == "NN"

    def inherited_article(self, first, member) -> str | None:
        """"a little boy and girl" without the boy: the girl takes the boy's article."""
        unit = self.unit(member)
        if unit is None or unit["plural"] or member.tag_ != "NN":
            return None
        if any(self.doc[i].dep_ in ("det", "poss", "nummod") for i in unit["tokens"]):
            return None
        article = next((c.lower_ for c in first.children if c.dep_ == "det"), None)
        if article not in ("a", "an", "the"):
            return None
        if article == "the":
            return "the"
        following = self.doc[min(unit["tokens"])].lower_
        return "an" if following[:1] in "aeiou" else "a"

    def word(self, token, gone: set[int], gone_units: set[int], piece: list, position: int) -> str:
        """A kept word as written, but a verb agreeing with a subject that lost conjuncts
        and the possessive of a removed thing as "the" ("his dog" -> "the dog")."""
        lower = token.lower_
        if token.dep_ == "poss" and self.antecedents.get(token.i) in gone_units:
            return "The" if token.text[:1].isupper() else "the"
        if token.tag_ in ("VBP", "VBZ", "VBD") and lower not in ("was", "were") or lower in ("was", "were"):
            verb = token if token.dep_ not in ("aux", "auxpass") else token.head
            subject = next((c for c in verb.children if c.dep_ in SUBJECT_DEPS), None)
            if subject is None and any(c.dep_ == "expl" for c in verb.children):
                subject = next((c for c in verb.children if c.dep_ == "attr"), None)
            if subject is not None and subject.i in self.unit_of:
                members = [m for m in self.group(subject) if m.i in self.unit_of]
                alive = [m for m in members if m.i not in gone]
                if alive and len(alive) < len(members) and len(alive) == 1 and not self.units[self.unit_of[alive[0].i]]["plural"]:
                    return singular_verb(token.text)
        return token.text


def singular_verb(word: str) -> str:
    """The third person singular of a plural present verb ("sit" -> "sits", "are" -> "is")."""
    lower = word.lower()
    irregular = {"are": "is", "were": "was", "have": "has", "do": "does", "go": "goes"}
    if lower in irregular:
        new = irregular[lower]
    elif lower in ("is", "was", "has", "does") or lower.endswith("s") and not lower.endswith(("ss", "us")):
        new = lower
    elif lower.endswith(("sh", "ch", "x", "z", "ss", "o")):
        new = lower + "es"
    elif len(lower) > 1 and lower.endswith("y") and lower[-2] not in "aeiou":
        new = lower[:-1] + "ies"
    else:
        new = lower + "s"
    return new.capitalize() if word[:1].isupper() else new
