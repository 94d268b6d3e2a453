"""NegCLIP-style hard negative captions built by swapping two caption elements.

Follows the hard-negative recipe of NegCLIP (Yuksekgonul et al., "When and why
vision-language models behave like bags-of-words, and what to do about it?",
ICLR 2023), whose dataset-preparation script produces, for each caption, at
most one negative per swap type, in this order:

1. ``noun_chunk``  -- two spaCy noun chunks whose text has more than two
   whitespace-separated words;
2. ``verb_phrase`` -- two verb phrases matched by ``VERB? ADV* AUX* VERB+``
   (overlapping matches reduced with ``spacy.util.filter_spans``);
3. ``NN``  -- two tokens whose fine-grained tag (``tag_``) is ``NN``;
4. ``NNS`` -- two tokens whose ``tag_`` is ``NNS``;
5. ``ADV`` -- two tokens whose coarse POS (``pos_``) is ``ADV``;
6. ``ADJ`` -- two tokens whose ``pos_`` is ``ADJ``.

Selection rule (as in the reference script): when a type has at least two
candidates, *one* pair is drawn uniformly at random without replacement
(``random.sample(candidates, 2)``) and swapped; there is no retry. If the
swapped caption equals the source (compared ignoring ``.``/``,``, runs of
whitespace and -- here, additionally -- case), that type yields nothing.

Deliberate differences from the reference script, all to make the output
well-formed and reproducible:

* swaps are done on token spans with their original whitespace
  (``token.whitespace_``) instead of ``str.replace`` on the raw caption (which
  also hits repeated/sub-string occurrences) or ``" ".join`` of tokens (which
  detaches punctuation, e.g. ``"dog ,"``);
* case is kept (the reference lower-cases phrase swaps; CLIP tokenizers
  lower-case anyway), and a negative differing from its source only in case
  is dropped;
* randomness comes from a ``random.Random`` seeded per caption from a stable
  hash (BLAKE2b) of ``(seed, caption)``, so results do not depend on batch
  composition, order, process or ``PYTHONHASHSEED``.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from dualclip.parse import DEFAULT_SPACY_MODEL
from dualclip.runtime import stable_seed_blake2b

__all__ = [
    "SWAP_TYPES",
    "HardNegative",
    "SwapNegativeGenerator",
    "swap_spans",
    "detokenize",
]

SWAP_TYPES: tuple[str, ...] = ("noun_chunk", "verb_phrase", "NN", "NNS", "ADV", "ADJ")

# Token-level swap types: (swap_type, token attribute compared, value).
_TOKEN_SWAPS: tuple[tuple[str, str, str], ...] = (
    ("NN", "tag_", "NN"),
    ("NNS", "tag_", "NNS"),
    ("ADV", "pos_", "ADV"),
    ("ADJ", "pos_", "ADJ"),
)

# NegCLIP's verb-phrase pattern: VERB? ADV* AUX* VERB+
_VERB_PHRASE_PATTERN = [
    {"POS": "VERB", "OP": "?"},
    {"POS": "ADV", "OP": "*"},
    {"POS": "AUX", "OP": "*"},
    {"POS": "VERB", "OP": "+"},
]

# Components that do not influence tag_/pos_/dep_/noun_chunks; skipped for speed
# when the generator loads the pipeline itself.
_UNNEEDED_COMPONENTS = ("ner", "lemmatizer")

Token = tuple[str, str]  # (text, trailing whitespace)
Span = tuple[int, int]  # token indices [start, end)


@dataclass(frozen=True)
class HardNegative:
    """One hard negative caption.

    ``swapped`` holds the texts of the two exchanged elements in the order
    they appear in the *source* caption.
    """

    text: str
    swap_type: str
    swapped: tuple[str, str]


def detokenize(tokens: Iterable[Token]) -> str:
    """Join ``(text, whitespace)`` pairs back into a string."""
    return "".join(text + ws for text, ws in tokens)


def swap_spans(tokens: Sequence[Token], span_a: Span, span_b: Span) -> list[Token]:
    """Exchange two non-overlapping token spans, keeping the layout intact.

    ``tokens`` is a sequence of ``(text, whitespace)`` pairs, as given by
    ``(token.text, token.whitespace_)``; spans are ``(start, end)`` token
    indices, end exclusive, in either order. Whitespace *inside* a span moves
    with it; the whitespace after a span's last token belongs to the position
    (so ``"a dog, a cat."`` -> ``"a cat, a dog."``). Returns a new list; the
    input is not modified.
    """
    n = len(tokens)
    (a0, a1), (b0, b1) = sorted((tuple(span_a), tuple(span_b)))
    for s, e in ((a0, a1), (b0, b1)):
        if not (0 <= s < e <= n):
            raise ValueError(f"invalid span ({s}, {e}) for {n} tokens")
    if a1 > b0:
        raise ValueError(f"spans ({a0}, {a1}) and ({b0}, {b1}) overlap")

    def moved(s: int, e: int, trailing_ws: str) -> list[Token]:
        part = [tuple(t) for t in tokens[s:e]]
        part[-1] = (part[-1][0], trailing_ws)
        return part

    return (
        [tuple(t) for t in tokens[:a0]]
        + moved(b0, b1, tokens[a1 - 1][1])
        + [tuple(t) for t in tokens[a1:b0]]
        + moved(a0, a1, tokens[b1 - 1][1])
        + [tuple(t) for t in tokens[b1:]]
    )


_SAME_STRIP = re.compile(r"[.,]")


def _normalise(text: str) -> str:
    # The reference check ignores '.' and ',' and whitespace differences.
    return " ".join(_SAME_STRIP.sub("", text).split()).lower()


class SwapNegativeGenerator:
    """Generate NegCLIP swap hard negatives for captions.

    Parameters
    ----------
    nlp:
        A loaded spaCy pipeline providing ``tag_``, ``pos_`` and a dependency
        parse (for ``noun_chunks``). If ``None``, ``model_name`` is loaded
        (without ``ner`` and ``lemmatizer``, which the swaps do not use). The
        full pipeline gives the same negatives (neither component changes the
        tags or the parse), so the parse stage shares its pipeline and Docs.
    model_name:
        spaCy package to load when ``nlp`` is ``None``.
    seed:
        Global seed; combined with each caption's text to seed its draws.
    """

    def __init__(self, nlp=None, model_name: str = DEFAULT_SPACY_MODEL, seed: int = 0):
        if nlp is None:
            from dualclip.parse.spacy_parser import load_spacy

            nlp = load_spacy(model_name, exclude=list(_UNNEEDED_COMPONENTS))
        from spacy.matcher import Matcher

        self.nlp = nlp
        self.seed = int(seed)
        self._matcher = Matcher(nlp.vocab)
        self._matcher.add("VERB_PHRASE", [_VERB_PHRASE_PATTERN])

    # -- public API ---------------------------------------------------------
    def generate(self, caption: str) -> list[HardNegative]:
        """Hard negatives of one caption (``[]`` when nothing can be swapped)."""
        return self.from_doc(self.nlp(caption))

    def generate_batch(
        self, captions: Iterable[str], batch_size: int = 256, n_process: int = 1
    ) -> list[list[HardNegative]]:
        """Hard negatives for many captions, parsed with ``nlp.pipe``.

        Output ``i`` equals ``generate(captions[i])``: draws are seeded per
        caption, so batching and order do not change any result.
        """
        docs = self.nlp.pipe(captions, batch_size=batch_size, n_process=n_process)
        return [self.from_doc(doc) for doc in docs]

    def from_doc(self, doc) -> list[HardNegative]:
        """Hard negatives from an already parsed spaCy ``Doc``."""
        from spacy.util import filter_spans

        source = doc.text
        rng = random.Random(stable_seed_blake2b(self.seed, source))  # per caption: batching changes nothing
        tokens: list[Token] = [(t.text, t.whitespace_) for t in doc]
        out: list[HardNegative] = []

        def attempt(swap_type: str, spans: Sequence[Span]) -> None:
            # One random pair per type, as in the reference; no retry.
            if len(spans) < 2:
                return
            i, j = rng.sample(range(len(spans)), 2)
            first, second = sorted((spans[i], spans[j]))
            text = detokenize(swap_spans(tokens, first, second))
            if _normalise(text) == _normalise(source):
                return
            out.append(
                HardNegative(
                    text=text,
                    swap_type=swap_type,
                    swapped=(doc[first[0]:first[1]].text, doc[second[0]:second[1]].text),
                )
            )

        chunks = [c for c in doc.noun_chunks if len(c.text.split()) > 2]
        attempt("noun_chunk", [(c.start, c.end) for c in chunks])

        matches = [doc[s:e] for _, s, e in self._matcher(doc)]
        verb_phrases = sorted(filter_spans(matches), key=lambda sp: sp.start)
        attempt("verb_phrase", [(sp.start, sp.end) for sp in verb_phrases])

        for swap_type, attr, value in _TOKEN_SWAPS:
            idx = [t.i for t in doc if getattr(t, attr) == value]
            attempt(swap_type, [(k, k + 1) for k in idx])

        return out
