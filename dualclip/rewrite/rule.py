"""Rule rewriter: delete component phrases and repair the list/relation grammar.

The caption is read as ``prefix item (connector item)* suffix``: items are the
component spans plus any other noun phrase between connectors (a fourth object
beyond N stays); connectors are list words (",", "and", "with") or relation phrases
("to the left of", "above", ...). Removing an item also removes a relation that
needs it; the surviving items are joined again as an English list, relations that
still have both sides are kept, and "there is/are" agrees with the new first item.
"""

from __future__ import annotations

import re

from dualclip.parse import Component

DEFAULT_RELATIONS = ["to the left of", "to the right of", "on the left of", "on the right of", "above", "below",
                     "next to", "beside", "behind", "in front of", "on top of", "under", "on", "near"]
NOUN_PHRASE_STARTS = {"a", "an", "the", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                      "some", "several", "many", "his", "her", "their", "its", "this", "that", "these", "those"}
PLURAL_NUMERALS = {"two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "several", "many", "some"}
LIST_CONNECTORS = [", and", ",", "and", "with", "along with"]


class RuleRewriter:
    name = "rule"

    def __init__(self, config: dict):
        self.relations = [phrase.lower() for phrase in config.get("relation_phrases", DEFAULT_RELATIONS)]
        self.empty_caption = config.get("empty_caption", "an empty background")
        alternatives = sorted(self.relations + LIST_CONNECTORS, key=len, reverse=True)
        self.connector = re.compile(r"^\s*(" + "|".join(re.escape(a) for a in alternatives) + r")(?=\s|$)\s*", re.I)

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

    def rewrite_one(self, caption: str, components: list[Component], subset: tuple[int, ...]) -> str:
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

    def rewrite(self, caption: str, components: list[Component], subsets: list[tuple[int, ...]]) -> list[str]:
        return [self.rewrite_one(caption, components, subset) for subset in subsets]
